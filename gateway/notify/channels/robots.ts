import { createHmac } from "node:crypto";
import type { Clock } from "../../clock/index.ts";
import type { ChannelSettings } from "../../config/index.ts";
import { markdownOf } from "../messages.ts";
import type { OutboundGuard } from "../outbound.ts";
import {
  answerOf,
  type Channel,
  chinaNumber,
  cutToBytes,
  failed,
  isFailure,
  type Outgoing,
  postOut,
  type SendResult,
} from "./channel.ts";
import { MINUTE, RateLimit } from "./rate-limit.ts";

interface RobotOptions {
  timeoutMs: number;
  retryDelaysMs: number[];
  perMinute: number;
}

/**
 * What both group robots share: one robot per deployment, one message at a time, and a limit of
 * messages a minute (the providers throttle a robot over it).
 */
abstract class GroupRobot implements Channel {
  abstract readonly kind: "wecom" | "dingtalk";
  readonly concurrency = 1;
  readonly retryDelaysMs: readonly number[];
  protected readonly limit: RateLimit;

  constructor(
    protected readonly deps: { outbound: OutboundGuard; clock: Clock },
    protected readonly options: RobotOptions,
  ) {
    this.retryDelaysMs = options.retryDelaysMs;
    this.limit = new RateLimit([
      { ms: MINUTE, max: options.perMinute, name: "messages a minute to the robot" },
    ]);
  }

  endpointOf(): string {
    return this.kind;
  }

  admit(_contact: unknown, now: number): string | undefined {
    return this.limit.take("robot", now);
  }

  abstract send(out: Outgoing): Promise<SendResult>;
}

/** WeCom's limit on a message's content. */
export const WECOM_MAX_BYTES = 2048;

/**
 * A WeCom (企业微信) group robot: markdown, which shows a link to tap, or text, which @-mentions
 * the person by mobile number. Its group has the message once WeCom answers errcode 0.
 */
export class WecomChannel extends GroupRobot {
  readonly kind = "wecom";

  constructor(
    deps: { outbound: OutboundGuard; clock: Clock },
    private readonly robot: NonNullable<ChannelSettings["wecom"]>,
    options: RobotOptions,
  ) {
    super(deps, options);
  }

  async send({ message, about, recipient, contact }: Outgoing): Promise<SendResult> {
    const body =
      this.robot.msgtype === "markdown"
        ? {
            msgtype: "markdown",
            markdown: { content: cutToBytes(markdownOf(message, about, recipient.locale), WECOM_MAX_BYTES) },
          }
        : {
            msgtype: "text",
            text: {
              content: cutToBytes(
                `${message.title}\n${message.text}${message.link ? `\n${message.link}` : ""}`,
                WECOM_MAX_BYTES,
              ),
              mentioned_mobile_list: [chinaNumber(contact.address)],
            },
          };
    const url = `${this.robot.url}?key=${encodeURIComponent(this.robot.key)}`;
    const res = await postOut(this.deps.outbound, {
      url,
      label: "the WeCom robot",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      timeoutMs: this.options.timeoutMs,
    });
    if (isFailure(res)) return res;
    const answer = answerOf(res);
    if (isFailure(answer)) return answer;
    const { errcode, errmsg } = answer;
    if (errcode === 0) return { status: "delivered", detail: "posted to the group", retry: false };
    // 45009: over the robot's 20 a minute.
    if (errcode === 45009) this.limit.block("robot", this.deps.clock.now() + MINUTE);
    return failed(`WeCom errcode ${String(errcode)}: ${String(errmsg)}`, errcode === -1);
  }
}

/** The DingTalk robot's signature: urlencode(base64(HmacSHA256(secret, timestamp + "\n" + secret))). */
export function signDingtalk(secret: string, timestamp: string): string {
  return encodeURIComponent(createHmac("sha256", secret).update(`${timestamp}\n${secret}`).digest("base64"));
}

/**
 * A DingTalk (钉钉) group robot: markdown, @-mentioning the person by mobile number. Over 20
 * messages a minute DingTalk throttles the robot for 10 minutes.
 */
export class DingtalkChannel extends GroupRobot {
  readonly kind = "dingtalk";

  constructor(
    deps: { outbound: OutboundGuard; clock: Clock },
    private readonly robot: NonNullable<ChannelSettings["dingtalk"]>,
    options: RobotOptions,
  ) {
    super(deps, options);
  }

  async send({ message, about, recipient, contact }: Outgoing): Promise<SendResult> {
    const timestamp = String(this.deps.clock.now());
    const mobile = chinaNumber(contact.address);
    const query = new URLSearchParams({ access_token: this.robot.token });
    let url = `${this.robot.url}?${query}`;
    if (this.robot.secret)
      url += `&timestamp=${timestamp}&sign=${signDingtalk(this.robot.secret, timestamp)}`;
    const body = {
      msgtype: "markdown",
      // DingTalk shows an @-mention only when the number is also in the text.
      markdown: {
        title: message.title,
        text: `${markdownOf(message, about, recipient.locale)}\n\n@${mobile}`,
      },
      at: { atMobiles: [mobile], isAtAll: false },
    };
    const res = await postOut(this.deps.outbound, {
      url,
      label: "the DingTalk robot",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      timeoutMs: this.options.timeoutMs,
    });
    if (isFailure(res)) return res;
    const answer = answerOf(res);
    if (isFailure(answer)) return answer;
    const { errcode, errmsg } = answer;
    if (errcode === 0) return { status: "delivered", detail: "posted to the group", retry: false };
    // 130101: sent too fast; the robot is throttled for 10 minutes.
    if (errcode === 130101) this.limit.block("robot", this.deps.clock.now() + 10 * MINUTE);
    return failed(`DingTalk errcode ${String(errcode)}: ${String(errmsg)}`, errcode === -1);
  }
}
