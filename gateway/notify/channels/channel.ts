import type { EventMap } from "../../bus/index.ts";
import type { AttemptStatus, ChannelKind, Destination, Person } from "../../store/types.ts";
import type { AlertSummary, Message } from "../messages.ts";
import { type OutboundGuard, OutboundRefused, type OutboundResponse } from "../outbound.ts";

/** What a channel makes of one send: how far the message got, why not further, and whether to try again. */
export interface SendResult {
  status: Exclude<AttemptStatus, "pending" | "expired">;
  detail: string;
  /** A failure that may heal (a timeout, a 5xx, the provider busy): worth a retry if nothing else is left. */
  retry: boolean;
}

/** One message to one contact of one person. */
export interface Outgoing {
  notice: EventMap["alert.notify"];
  recipient: Person;
  contact: Destination;
  /** What the alert is about, for channels that carry it whole (the webhook). */
  about: AlertSummary;
  /** The same, said short in the recipient's language. */
  message: Message;
}

/**
 * A way to reach people. The notifier stores each attempt, asks the channel whether its limits
 * let the message through, sends it, and stores the result; a failure moves on to the person's
 * next contact at once.
 */
export interface Channel {
  readonly kind: ChannelKind;
  /** Requests to one endpoint at a time; more wait their turn. */
  readonly concurrency: number;
  /** Delays before retrying a retryable failure, when the contact is the person's last. */
  readonly retryDelaysMs: readonly number[];
  /** Deliveries with the same endpoint share its concurrency (a bridge's origin, a robot, a provider). */
  endpointOf(contact: Destination): string;
  /** Why this contact may not be sent to now (a rate limit); undefined when it may, counting the send. */
  admit(contact: Destination, now: number): string | undefined;
  send(out: Outgoing): Promise<SendResult>;
}

/** A send that did not get through; a class, so that it is told apart from any provider's answer. */
class Failure implements SendResult {
  readonly status = "failed";
  constructor(
    readonly detail: string,
    readonly retry: boolean,
  ) {}
}
export const failed = (detail: string, retry: boolean): SendResult => new Failure(detail, retry);
export const isFailure = (x: unknown): x is SendResult => x instanceof Failure;

/**
 * POSTs through the outbound guard; a request that never got an answer becomes a failed result.
 * `label` names the target in details and logs instead of its URL, which may carry a key.
 */
export async function postOut(
  outbound: OutboundGuard,
  request: {
    url: string;
    label: string;
    headers: Record<string, string>;
    body: string | Buffer;
    timeoutMs: number;
  },
): Promise<OutboundResponse | SendResult> {
  try {
    return await outbound.post(request.url, request.headers, request.body, request.timeoutMs);
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e instanceof OutboundRefused)
      return failed(`refused: ${e.message.replace(request.url.split("?")[0] ?? "", request.label)}`, false);
    if (e.name === "AbortError" || e.name === "TimeoutError")
      return failed(`timed out after ${request.timeoutMs} ms`, true);
    return failed(e.code ?? "request failed", true);
  }
}

/** An answer that is not JSON, or not 2xx, said as a failure; retryable when the server may recover. */
export function answerOf(res: OutboundResponse): Record<string, unknown> | SendResult {
  if (res.status >= 300 && res.status < 400)
    return failed(`HTTP ${res.status} (redirects are not followed)`, false);
  const retry = res.status >= 500 || res.status === 408 || res.status === 429;
  try {
    const json = JSON.parse(res.body) as unknown;
    if (json && typeof json === "object" && res.status < 300) return json as Record<string, unknown>;
  } catch {
    // Said below.
  }
  return failed(`HTTP ${res.status}${res.status < 300 ? " without a JSON answer" : ""}`, retry);
}

/** Cuts text to at most `max` UTF-8 bytes without splitting a character. */
export function cutToBytes(text: string, max: number): string {
  if (Buffer.byteLength(text) <= max) return text;
  let out = "";
  let size = 0;
  for (const ch of text) {
    const n = Buffer.byteLength(ch);
    if (size + n > max - 3) break;
    out += ch;
    size += n;
  }
  return `${out}…`;
}

/**
 * A mobile number as Chinese services take it (Aliyun, and the robots' @-mentions): a mainland
 * number as its 11 digits, any other as country code and number, without `+` or `00`.
 */
export const chinaNumber = (address: string) =>
  address.replace(/^(\+|00)/, "").replace(/^86(?=1\d{10}$)/, "");
