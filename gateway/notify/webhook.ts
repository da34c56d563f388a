import { createHmac } from "node:crypto";
import type { Logger } from "pino";
import type { EventBus, EventMap } from "../bus/index.ts";
import type { Clock } from "../clock/index.ts";
import { type Metrics, observePressLatency } from "../metrics.ts";
import type { Person, Store } from "../store/types.ts";

export interface WebhookOptions {
  secret: string;
  timeoutMs: number;
  /** Delays before each retry; its length is the number of retries. */
  retryDelaysMs: number[];
}

/** Signature a receiver recomputes to trust a call: HMAC-SHA256 over `<timestamp>.<body>`. */
export function signWebhook(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

/**
 * Posts each notification to the recipient's webhook contacts (SMS, WeChat, or phone bridges).
 * Every attempt is stored before it is sent and updated with its result. Deliveries run on their
 * own and never hold up the escalation: a dead endpoint only costs its own retries.
 */
export class WebhookNotifier {
  private unsubscribe: (() => void) | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  /** Wakes the deliveries waiting out a retry delay, so that stop() need not wait for them. */
  private readonly sleepers = new Set<() => void>();
  private stopped = false;

  constructor(
    private readonly deps: { store: Store; bus: EventBus; clock: Clock; metrics: Metrics; log: Logger },
    private readonly options: WebhookOptions,
  ) {}

  start(): void {
    this.stopped = false;
    this.unsubscribe = this.deps.bus.on("alert.notify", (n) => {
      const subject = this.deps.store.registry.getPerson(n.alert.subjectId);
      for (const recipient of n.recipients) {
        for (const contact of recipient.contacts.filter((c) => c.kind === "webhook")) {
          const delivery = subject
            .then((s) => this.deliver(n, recipient, contact.address, s ?? null))
            .catch((err) => this.deps.log.error({ err, alertId: n.alert.id }, "webhook delivery failed"));
          this.inFlight.add(delivery);
          void delivery.finally(() => this.inFlight.delete(delivery));
        }
      }
    });
  }

  /** Stops new deliveries and waits for those under way (pending retries are abandoned, already stored). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    for (const wake of this.sleepers) wake();
    await Promise.allSettled([...this.inFlight]);
  }

  private async deliver(n: EventMap["alert.notify"], recipient: Person, url: string, subject: Person | null) {
    const { store, clock, metrics, log } = this.deps;
    const body = JSON.stringify({
      alertId: n.alert.id,
      kind: n.alert.kind,
      state: n.alert.state,
      level: n.level,
      openedAt: new Date(n.alert.openedAt).toISOString(),
      presses: n.alert.presses,
      deviceId: n.alert.deviceId,
      subject: subject && {
        id: subject.id,
        name: subject.name,
        address: subject.address,
        phone: subject.phone,
      },
      recipient: { id: recipient.id, name: recipient.name, role: recipient.role },
    });
    for (let attempt = 1; ; attempt++) {
      const attemptId = await store.attempts.start({
        alertId: n.alert.id,
        level: n.level,
        personId: recipient.id,
        channel: "webhook",
        address: url,
        attempt,
        at: clock.now(),
      });
      const result = await this.post(url, body);
      await store.attempts.finish(attemptId, result.ok ? "delivered" : "failed", result.detail);
      metrics.notifications.inc({ channel: "webhook", result: result.ok ? "delivered" : "failed" });
      if (result.ok) {
        if (attempt === 1) observePressLatency(metrics, "webhook", n.pressReceivedHr);
        return;
      }
      const delay = this.options.retryDelaysMs[attempt - 1];
      log.warn(
        { alertId: n.alert.id, recipient: recipient.id, attempt, detail: result.detail },
        "webhook failed",
      );
      if (delay === undefined || !result.retry || this.stopped) return;
      await this.sleep(delay);
      if (this.stopped) return;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        this.deps.clock.clearTimer(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = this.deps.clock.setTimer(wake, ms);
      this.sleepers.add(wake);
    });
  }

  private async post(url: string, body: string): Promise<{ ok: boolean; retry: boolean; detail: string }> {
    const timestamp = String(this.deps.clock.now());
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-gateway-timestamp": timestamp,
          "x-gateway-signature": signWebhook(this.options.secret, timestamp, body),
        },
        body,
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
      await res.body?.cancel();
      // Client errors other than timeouts and throttling will not heal by retrying.
      const retry = res.status >= 500 || res.status === 408 || res.status === 429;
      return { ok: res.ok, retry, detail: `HTTP ${res.status}` };
    } catch (err) {
      return {
        ok: false,
        retry: true,
        detail: (err as Error).name === "TimeoutError" ? "timed out" : String(err),
      };
    }
  }
}
