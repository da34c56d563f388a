import { createHmac } from "node:crypto";
import type { Clock } from "../../clock/index.ts";
import type { OutboundGuard } from "../outbound.ts";
import { type Channel, failed, isFailure, type Outgoing, postOut, type SendResult } from "./channel.ts";

/** Signature a receiver recomputes to trust a call: HMAC-SHA256 over `<timestamp>.<body>`. */
export function signWebhook(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

/**
 * Posts the whole alert summary, signed, to a bridge of the operator's (SMS, WeChat, phone). A
 * 2xx means the bridge has it: delivered, as far as the gateway can tell (what the bridge does
 * next is the bridge's).
 */
export class WebhookChannel implements Channel {
  readonly kind = "webhook";
  readonly concurrency: number;
  readonly retryDelaysMs: readonly number[];

  constructor(
    private readonly deps: { outbound: OutboundGuard; clock: Clock },
    private readonly options: {
      secret: string;
      timeoutMs: number;
      retryDelaysMs: number[];
      concurrency: number;
    },
  ) {
    this.concurrency = options.concurrency;
    this.retryDelaysMs = options.retryDelaysMs;
  }

  /** One bridge serves many recipients' addresses: they share its capacity by origin. */
  endpointOf(contact: { address: string }): string {
    try {
      return new URL(contact.address).origin;
    } catch {
      return contact.address;
    }
  }

  admit(): undefined {
    return undefined;
  }

  async send({ about, recipient, contact }: Outgoing): Promise<SendResult> {
    const body = JSON.stringify({
      ...about,
      recipient: { id: recipient.id, name: recipient.name, role: recipient.role },
    });
    const timestamp = String(this.deps.clock.now());
    const res = await postOut(this.deps.outbound, {
      url: contact.address,
      label: contact.address.split("?")[0] ?? "",
      headers: {
        "content-type": "application/json",
        "x-gateway-timestamp": timestamp,
        "x-gateway-signature": signWebhook(this.options.secret, timestamp, body),
      },
      body,
      timeoutMs: this.options.timeoutMs,
    });
    if (isFailure(res)) return res;
    const { status } = res;
    if (status >= 300 && status < 400) return failed(`HTTP ${status} (redirects are not followed)`, false);
    if (status >= 200 && status < 300) return { status: "delivered", detail: `HTTP ${status}`, retry: false };
    // Client errors other than timeouts and throttling will not heal by retrying.
    return failed(`HTTP ${status}`, status >= 500 || status === 408 || status === 429);
  }
}
