import { createECDH } from "node:crypto";
import { closeSync, openSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import webpush from "web-push";
import type { PushSubscriptionRepository } from "../../store/types.ts";
import type { OutboundGuard } from "../outbound.ts";
import {
  type Channel,
  cutToBytes,
  failed,
  isFailure,
  type Outgoing,
  postOut,
  type SendResult,
} from "./channel.ts";

export interface VapidKeys {
  publicKey: string;
  privateKey: string;
}

export const VAPID_KEYS_FILE = "vapid-keys.json";

/**
 * The VAPID key pair: the configured one, else the one in the data directory, made (mode 0600)
 * at the first start. Browsers subscribe to the public key: a new pair would silence every phone
 * that turned alerts on, so the file is kept, never replaced. The private key is never logged.
 */
export function loadVapidKeys(options: {
  configured: VapidKeys | undefined;
  dataDir: string;
  log: Logger;
}): VapidKeys {
  const { configured, dataDir, log } = options;
  if (configured) {
    const wrong = pairProblem(configured);
    if (wrong) throw new Error(`VAPID_PUBLIC_KEY, VAPID_PRIVATE_KEY: ${wrong}`);
    return configured;
  }
  const file = join(dataDir, VAPID_KEYS_FILE);
  try {
    const keys = JSON.parse(readFileSync(file, "utf8")) as Partial<VapidKeys>;
    if (typeof keys.publicKey !== "string" || typeof keys.privateKey !== "string")
      throw new Error("it does not hold publicKey and privateKey");
    const pair = { publicKey: keys.publicKey, privateKey: keys.privateKey };
    const wrong = pairProblem(pair);
    if (wrong) throw new Error(wrong);
    return pair;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT")
      throw new Error(
        `${file}: ${(err as Error).message}; fix it, or set VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY`,
      );
  }
  const keys = webpush.generateVAPIDKeys();
  // `wx`: two gateways starting on one data directory never overwrite each other's pair.
  const fd = openSync(file, "wx", 0o600);
  try {
    writeSync(fd, JSON.stringify(keys));
  } finally {
    closeSync(fd);
  }
  log.info({ file }, "made a VAPID key pair for Web Push");
  return keys;
}

/** What is wrong with a key pair, if anything: a mismatched one would fail every push. */
function pairProblem(keys: VapidKeys): string | undefined {
  const ecdh = createECDH("prime256v1");
  try {
    ecdh.setPrivateKey(Buffer.from(keys.privateKey, "base64url"));
  } catch {
    return "the private key is not a P-256 key";
  }
  return ecdh.getPublicKey("base64url") === keys.publicKey
    ? undefined
    : "the public key is not the private key's";
}

/** Long enough for a phone that is briefly out of coverage; after that the alert has escalated anyway. */
const URGENT_TTL_SEC = 600;
/** News (accepted, resolved) is still worth knowing later. */
const NEWS_TTL_SEC = 3600;
/** Follow-ups that only tell; the others (a page, a reminder, another press, reopened, upgraded) ask for action. */
const NEWS = new Set(["accepted", "resolved", "cancelled", "resident-ok"]);
/** The push service's limit is 4096 bytes encrypted; the text is far shorter, this only guards it. */
const MAX_TEXT_BYTES = 1000;

/** What the service worker gets: it shows `title` and `body`, tagged with the alert, and opens `link`. */
export interface PushPayload {
  alertId: string;
  event: string;
  title: string;
  body: string;
  link: string;
}

/**
 * Web Push (RFC 8030) to a browser the person turned alerts on in, encrypted to it (RFC 8291,
 * aes128gcm) and signed with the gateway's VAPID key (RFC 8292), through the outbound guard. The
 * push service's 201 means it took the message for the phone: `accepted`, never more. A 404 or
 * 410 means the browser dropped the subscription: it is deleted, so nothing is sent to it again.
 */
export class PushChannel implements Channel {
  readonly kind = "push";
  readonly concurrency = 8;
  readonly retryDelaysMs: readonly number[];

  constructor(
    private readonly deps: {
      outbound: OutboundGuard;
      subscriptions: PushSubscriptionRepository;
      log: Logger;
    },
    private readonly options: {
      keys: VapidKeys;
      subject: string;
      timeoutMs: number;
      retryDelaysMs: number[];
    },
  ) {
    this.retryDelaysMs = options.retryDelaysMs;
  }

  /** A push service (fcm.googleapis.com, updates.push.services.mozilla.com) serves many browsers. */
  endpointOf(contact: { address: string }): string {
    return new URL(contact.address).origin;
  }

  admit(): undefined {
    return undefined;
  }

  async send({ notice, contact, message }: Outgoing): Promise<SendResult> {
    const { subscriptions, outbound, log } = this.deps;
    const subscription = await subscriptions.get(contact.address);
    if (!subscription) return failed("the subscription was removed", false);
    const payload: PushPayload = {
      alertId: notice.alert.id,
      event: notice.event,
      title: cutToBytes(message.title, MAX_TEXT_BYTES),
      body: cutToBytes(message.text, MAX_TEXT_BYTES),
      link: message.link ?? `/?alert=${encodeURIComponent(notice.alert.id)}#alerts`,
    };
    const urgent = !NEWS.has(notice.event);
    let request: ReturnType<typeof webpush.generateRequestDetails> & { body: Buffer };
    try {
      request = webpush.generateRequestDetails(
        { endpoint: subscription.endpoint, keys: { p256dh: subscription.p256dh, auth: subscription.auth } },
        JSON.stringify(payload),
        {
          vapidDetails: { subject: this.options.subject, ...this.options.keys },
          TTL: urgent ? URGENT_TTL_SEC : NEWS_TTL_SEC,
          urgency: urgent ? "high" : "normal",
          contentEncoding: "aes128gcm",
        },
      );
    } catch (err) {
      return failed(`cannot encrypt to this subscription: ${(err as Error).message}`, false);
    }
    const origin = this.endpointOf(contact);
    const headers = Object.fromEntries(
      Object.entries(request.headers).map(([name, value]) => [name.toLowerCase(), String(value)]),
    );
    // The guard sets the length itself.
    delete headers["content-length"];
    const res = await postOut(outbound, {
      url: subscription.endpoint,
      // The endpoint's path is the subscription's capability: logs and details name the service only.
      label: origin,
      headers,
      body: request.body,
      timeoutMs: this.options.timeoutMs,
    });
    if (isFailure(res)) return res;
    const { status } = res;
    if (status >= 200 && status < 300)
      return { status: "accepted", detail: `push service ${origin}: HTTP ${status}`, retry: false };
    if (status === 404 || status === 410) {
      await subscriptions.remove(subscription.endpoint);
      log.info(
        { personId: subscription.personId, username: subscription.username, service: origin, status },
        "a push subscription has ended: removed",
      );
      return failed(`HTTP ${status}: the browser ended the subscription; removed`, false);
    }
    if (status >= 300 && status < 400) return failed(`HTTP ${status} (redirects are not followed)`, false);
    return failed(`HTTP ${status}`, status >= 500 || status === 408 || status === 429);
  }
}
