import { createHmac, randomUUID } from "node:crypto";
import type { Clock } from "../../clock/index.ts";
import type { AliyunAccount, ChannelSettings } from "../../config/index.ts";
import type { OutboundGuard } from "../outbound.ts";
import {
  type Channel,
  chinaNumber,
  failed,
  isFailure,
  type Outgoing,
  postOut,
  type SendResult,
} from "./channel.ts";
import { DAY, HOUR, MINUTE, RateLimit } from "./rate-limit.ts";

/** RFC 3986 encoding, as Aliyun's signature asks: space as %20, `*` as %2A, `~` left alone. */
export const percentEncode = (s: string) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** The request's parameters, sorted by name and encoded: what is signed, and the body sent. */
export const canonicalQuery = (params: Record<string, string>) =>
  Object.keys(params)
    .sort()
    .map((k) => `${percentEncode(k)}=${percentEncode(params[k] as string)}`)
    .join("&");

/**
 * Aliyun's RPC signature (SignatureMethod HMAC-SHA1, SignatureVersion 1.0):
 * base64(HMAC-SHA1(secret + "&", method + "&%2F&" + percentEncode(canonical query))).
 */
export function signAliyun(method: string, params: Record<string, string>, accessKeySecret: string): string {
  const stringToSign = `${method}&${percentEncode("/")}&${percentEncode(canonicalQuery(params))}`;
  return createHmac("sha1", `${accessKeySecret}&`).update(stringToSign).digest("base64");
}

/** One signed call to an Aliyun RPC API, POSTed as a form; its answer said as a send result. */
async function callAliyun(
  deps: { outbound: OutboundGuard; clock: Clock },
  account: AliyunAccount,
  request: { url: string; label: string; action: string; params: Record<string, string>; timeoutMs: number },
): Promise<SendResult> {
  const params: Record<string, string> = {
    AccessKeyId: account.accessKeyId,
    Action: request.action,
    Format: "JSON",
    RegionId: account.region,
    SignatureMethod: "HMAC-SHA1",
    SignatureNonce: randomUUID(),
    SignatureVersion: "1.0",
    Timestamp: new Date(deps.clock.now()).toISOString().replace(/\.\d{3}Z$/, "Z"),
    Version: "2017-05-25",
    ...request.params,
  };
  const signature = signAliyun("POST", params, account.accessKeySecret);
  const res = await postOut(deps.outbound, {
    url: request.url,
    label: request.label,
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: `${canonicalQuery(params)}&Signature=${percentEncode(signature)}`,
    timeoutMs: request.timeoutMs,
  });
  if (isFailure(res)) return res;
  let answer: { Code?: unknown; Message?: unknown; BizId?: unknown; CallId?: unknown } = {};
  try {
    answer = JSON.parse(res.body);
  } catch {
    // Said below, by status.
  }
  if (answer.Code === "OK")
    return {
      status: "accepted",
      detail: `${request.label} took it (${answer.BizId ? `BizId ${answer.BizId}` : `CallId ${answer.CallId}`})`,
      retry: false,
    };
  const code = typeof answer.Code === "string" ? answer.Code : `HTTP ${res.status}`;
  // Throttled or busy may heal; a refused number, template or signature will not.
  const retry = res.status >= 500 || /^(Throttling|ServiceUnavailable|isp\.)/.test(code);
  return failed(`${code}${typeof answer.Message === "string" ? `: ${answer.Message}` : ""}`, retry);
}

interface ProviderOptions {
  timeoutMs: number;
  retryDelaysMs: number[];
}

/** Aliyun SendSms: a template approved in advance, filled with the message's parameters. */
export class AliyunSmsChannel implements Channel {
  readonly kind = "sms";
  readonly concurrency = 4;
  readonly retryDelaysMs: readonly number[];

  constructor(
    private readonly deps: { outbound: OutboundGuard; clock: Clock },
    private readonly sms: NonNullable<ChannelSettings["sms"]>,
    private readonly options: ProviderOptions,
  ) {
    this.retryDelaysMs = options.retryDelaysMs;
  }

  endpointOf(): string {
    return "sms";
  }

  /** Aliyun counts per number itself, and refuses with isv.BUSINESS_LIMIT_CONTROL. */
  admit(): undefined {
    return undefined;
  }

  send({ message, about, contact, notice }: Outgoing): Promise<SendResult> {
    const { name, kind, address, level, link, status } = message.params;
    const paged = about.event === "paged";
    const template = paged ? this.sms.templatePaged : this.sms.templateFollowUp;
    const params = paged ? { name, kind, address, level, link } : { name, kind, status };
    return callAliyun(this.deps, this.sms, {
      url: this.sms.url,
      label: "Aliyun SMS",
      action: "SendSms",
      params: {
        PhoneNumbers: chinaNumber(contact.address),
        SignName: this.sms.signName,
        TemplateCode: template,
        TemplateParam: JSON.stringify(params),
        OutId: notice.alert.id,
      },
      timeoutMs: this.options.timeoutMs,
    });
  }
}

/**
 * Aliyun SingleCallByTts: a call reading a text-to-speech template. At most one call a minute,
 * five an hour and twenty a day to one number; a call that cannot be made (some numbers, in
 * Tibet among others, cannot be called) falls through to SMS.
 */
export class AliyunVoiceChannel implements Channel {
  readonly kind = "voice";
  readonly concurrency = 4;
  /** Not retried: the person's next contact, or an SMS, comes at once instead. */
  readonly retryDelaysMs: readonly number[] = [];
  private readonly limit = new RateLimit([
    { ms: MINUTE, max: 1, name: "call a minute to this number" },
    { ms: HOUR, max: 5, name: "calls an hour to this number" },
    { ms: DAY, max: 20, name: "calls a day to this number" },
  ]);

  constructor(
    private readonly deps: { outbound: OutboundGuard; clock: Clock },
    private readonly voice: NonNullable<ChannelSettings["voice"]>,
    private readonly options: ProviderOptions,
  ) {}

  endpointOf(): string {
    return "voice";
  }

  admit(contact: { address: string }, now: number): string | undefined {
    return this.limit.take(chinaNumber(contact.address), now);
  }

  send({ message, contact, notice }: Outgoing): Promise<SendResult> {
    const { name, kind, address } = message.params;
    return callAliyun(this.deps, this.voice, {
      url: this.voice.url,
      label: "Aliyun voice",
      action: "SingleCallByTts",
      params: {
        CalledNumber: chinaNumber(contact.address),
        TtsCode: this.voice.ttsCode,
        TtsParam: JSON.stringify({ name, kind, address }),
        PlayTimes: "2",
        OutId: notice.alert.id,
        ...(this.voice.showNumber ? { CalledShowNumber: this.voice.showNumber } : {}),
      },
      timeoutMs: this.options.timeoutMs,
    });
  }
}
