import { createHmac } from "node:crypto";
import type { Logger } from "pino";
import type { EventBus, EventMap } from "../bus/index.ts";
import type { Clock, Timer } from "../clock/index.ts";
import { type Metrics, observePressLatency } from "../metrics.ts";
import type { DeviceState, Person, Store } from "../store/types.ts";
import { type OutboundGuard, OutboundRefused } from "./outbound.ts";

export interface WebhookOptions {
  secret: string;
  /** Where people reach the dashboard; notifications link to the alert there. */
  publicUrl: string | null;
  timeoutMs: number;
  /** Delays before each retry; its length is the number of retries. */
  retryDelaysMs: number[];
  /** Requests in flight to one endpoint (scheme, host and port) at a time. */
  concurrency: number;
}

/** Signature a receiver recomputes to trust a call: HMAC-SHA256 over `<timestamp>.<body>`. */
export function signWebhook(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

/** One notification to one webhook address, through its attempts. */
interface Delivery {
  notice: EventMap["alert.notify"];
  recipient: Person;
  url: string;
  body: string;
  /** The attempt to make next, from 1. */
  attempt: number;
  /** Clock time at which it may be made. */
  dueAt: number;
}

/** Deliveries to one endpoint: those under way, and the others in order of when they are due. */
interface Endpoint {
  active: number;
  waiting: Delivery[];
  /** The one timer, for the earliest waiting delivery not yet due. */
  timer: Timer | undefined;
  timerAt: number;
}

/**
 * Posts each notification to the recipient's webhook contacts (SMS, WeChat, or phone bridges).
 * Every attempt is stored when it is made and updated with its result. Deliveries run on their
 * own and never hold up the escalation.
 *
 * Each endpoint gets at most `concurrency` requests at a time; the rest wait in order of when
 * they are due, with one timer per endpoint for the earliest retry. However many alerts pile up
 * on a dead or hanging endpoint, it holds a bounded number of sockets and timers, and deliveries
 * to other endpoints never wait for it.
 */
export class WebhookNotifier {
  private unsubscribe: (() => void) | undefined;
  private readonly endpoints = new Map<string, Endpoint>();
  private readonly inFlight = new Set<Promise<void>>();
  private stopped = false;

  constructor(
    private readonly deps: {
      store: Store;
      bus: EventBus;
      clock: Clock;
      metrics: Metrics;
      log: Logger;
      /** Battery and last position of a device, for what the recipient needs to know. */
      deviceState?: (deviceId: string) => DeviceState | undefined;
      outbound: OutboundGuard;
    },
    private readonly options: WebhookOptions,
  ) {}

  start(): void {
    this.stopped = false;
    this.unsubscribe = this.deps.bus.on("alert.notify", (n) => {
      const { clock, log } = this.deps;
      const targets = n.recipients.flatMap((recipient) =>
        recipient.contacts.filter((c) => c.kind === "webhook").map((c) => ({ recipient, url: c.address })),
      );
      if (targets.length === 0) return;
      const queued = this.describe(n)
        .catch((err) => {
          // Who and where is worth having, not worth withholding the notification for.
          log.error({ err, alertId: n.alert.id }, "could not describe the alert: notifying without details");
          return describeBare(n);
        })
        .then((about) => {
          for (const { recipient, url } of targets) {
            const body = JSON.stringify({
              ...about,
              recipient: { id: recipient.id, name: recipient.name, role: recipient.role },
            });
            this.enqueue({ notice: n, recipient, url, body, attempt: 1, dueAt: clock.now() });
          }
        });
      this.track(queued);
    });
  }

  /** Stops new deliveries and waits for the requests under way; those still waiting are abandoned. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    let abandoned = 0;
    for (const endpoint of this.endpoints.values()) {
      if (endpoint.timer) this.deps.clock.clearTimer(endpoint.timer);
      abandoned += endpoint.waiting.length;
      endpoint.waiting = [];
    }
    this.deps.metrics.webhooksWaiting.dec(abandoned);
    if (abandoned > 0) {
      this.deps.log.warn(
        { abandoned },
        "stopping: webhook deliveries waiting for a connection or a retry are abandoned",
      );
    }
    await Promise.allSettled([...this.inFlight]);
    this.endpoints.clear();
  }

  /**
   * The notification's body, but for the recipient: the alert; the resident (name, address,
   * phone); the device's battery, and for a tag its last position and how old it is; the zone
   * left; who else was told and who accepted; and a link to the alert on the dashboard.
   */
  private async describe(n: EventMap["alert.notify"]) {
    const { store, clock, deviceState } = this.deps;
    const { alert } = n;
    const nameOf = async (id: string) => {
      const p = await store.registry.getPerson(id);
      return { id, name: p?.name ?? id, role: p?.role ?? null };
    };
    const subject = await store.registry.getPerson(alert.subjectId);
    const opened = (await store.alerts.events(alert.id)).find((e) => e.type === "opened");
    const state = deviceState?.(alert.deviceId);
    const position = state?.position;
    return {
      ...describeBare(n),
      subject: subject && {
        id: subject.id,
        name: subject.name,
        address: subject.address,
        phone: subject.phone,
      },
      device: state && {
        battery: state.battery,
        online: state.online,
        position: position && {
          lat: position.lat,
          lon: position.lon,
          accuracyM: position.accuracy,
          at: new Date(position.ts).toISOString(),
          ageSec: Math.max(0, Math.round((clock.now() - position.ts) / 1000)),
        },
      },
      zone:
        alert.kind === "geofence-exit" && opened
          ? { id: opened.data.geofenceId, name: opened.data.geofence, distanceM: opened.data.distanceM }
          : null,
      notified: await Promise.all(alert.notified.map(nameOf)),
      acceptedBy: alert.acceptedBy ? await nameOf(alert.acceptedBy) : null,
      link: this.options.publicUrl ? `${this.options.publicUrl}/?alert=${alert.id}#alerts` : null,
    };
  }

  private track(work: Promise<void>): void {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }

  private enqueue(delivery: Delivery): void {
    if (this.stopped) return;
    const key = endpointOf(delivery.url);
    let endpoint = this.endpoints.get(key);
    if (!endpoint) {
      endpoint = { active: 0, waiting: [], timer: undefined, timerAt: Number.POSITIVE_INFINITY };
      this.endpoints.set(key, endpoint);
    }
    // In order of due time; among equals, first come first served.
    const later = endpoint.waiting.findIndex((d) => d.dueAt > delivery.dueAt);
    endpoint.waiting.splice(later < 0 ? endpoint.waiting.length : later, 0, delivery);
    this.deps.metrics.webhooksWaiting.inc();
    this.pump(key, endpoint);
  }

  /** Starts what is due while the endpoint has room, and sets its timer for what is not due yet. */
  private pump(key: string, endpoint: Endpoint): void {
    const { clock, metrics, log } = this.deps;
    const now = clock.now();
    for (;;) {
      const next = endpoint.waiting[0];
      if (!next || next.dueAt > now || endpoint.active >= this.options.concurrency) break;
      endpoint.waiting.shift();
      metrics.webhooksWaiting.dec();
      endpoint.active++;
      const attempt = this.attempt(next)
        .catch((err) => log.error({ err, alertId: next.notice.alert.id }, "webhook delivery failed"))
        .finally(() => {
          endpoint.active--;
          if (!this.stopped) this.pump(key, endpoint);
        });
      this.track(attempt);
    }
    const first = endpoint.waiting[0];
    const wakeAt = first && first.dueAt > now ? first.dueAt : Number.POSITIVE_INFINITY;
    if (wakeAt !== endpoint.timerAt) {
      if (endpoint.timer) clock.clearTimer(endpoint.timer);
      endpoint.timer = undefined;
      endpoint.timerAt = wakeAt;
      if (wakeAt !== Number.POSITIVE_INFINITY) {
        endpoint.timer = clock.setTimer(() => {
          endpoint.timer = undefined;
          endpoint.timerAt = Number.POSITIVE_INFINITY;
          this.pump(key, endpoint);
        }, wakeAt - now);
      }
    }
    if (endpoint.active === 0 && endpoint.waiting.length === 0) this.endpoints.delete(key);
  }

  /** One attempt; a retry, if one is due, goes back in the endpoint's queue. */
  private async attempt(delivery: Delivery): Promise<void> {
    const { store, clock, metrics, log } = this.deps;
    const { notice, recipient, url, attempt } = delivery;
    const alertId = notice.alert.id;
    // A database that cannot take the record must not also cost the recipient the notification.
    const attemptId = await store.attempts
      .start({
        alertId,
        level: notice.level,
        personId: recipient.id,
        channel: "webhook",
        event: notice.event,
        address: url,
        attempt,
        at: clock.now(),
      })
      .catch((err) => {
        log.error(
          { err, alertId, recipient: recipient.id, attempt },
          "could not store a webhook attempt: sending it anyway",
        );
        return undefined;
      });
    const result = await this.post(url, delivery.body);
    if (attemptId !== undefined) {
      await store.attempts
        .finish(attemptId, result.ok ? "delivered" : "failed", result.detail)
        .catch((err) => log.error({ err, alertId, attemptId }, "could not store a webhook attempt's result"));
    }
    metrics.notifications.inc({ channel: "webhook", result: result.ok ? "delivered" : "failed" });
    if (result.ok) {
      if (attempt === 1) observePressLatency(metrics, "webhook", notice.pressReceivedHr);
      return;
    }
    const delay = this.options.retryDelaysMs[attempt - 1];
    log.warn({ alertId, recipient: recipient.id, attempt, detail: result.detail }, "webhook failed");
    if (delay === undefined || !result.retry) return;
    this.enqueue({ ...delivery, attempt: attempt + 1, dueAt: clock.now() + delay });
  }

  private async post(url: string, body: string): Promise<{ ok: boolean; retry: boolean; detail: string }> {
    const timestamp = String(this.deps.clock.now());
    const headers = {
      "content-type": "application/json",
      "x-gateway-timestamp": timestamp,
      "x-gateway-signature": signWebhook(this.options.secret, timestamp, body),
    };
    try {
      const { status } = await this.deps.outbound.post(url, headers, body, this.options.timeoutMs);
      if (status >= 300 && status < 400)
        return { ok: false, retry: false, detail: `HTTP ${status} (redirects are not followed)` };
      // Client errors other than timeouts and throttling will not heal by retrying.
      const retry = status >= 500 || status === 408 || status === 429;
      return { ok: status >= 200 && status < 300, retry, detail: `HTTP ${status}` };
    } catch (err) {
      const e = err as Error & { code?: string };
      if (e instanceof OutboundRefused) return { ok: false, retry: false, detail: `refused: ${e.message}` };
      if (e.name === "AbortError" || e.name === "TimeoutError")
        return { ok: false, retry: true, detail: `timed out after ${this.options.timeoutMs} ms` };
      return { ok: false, retry: true, detail: e.code ?? e.message };
    }
  }
}

/** What every notification says, whatever else is known. */
function describeBare(n: EventMap["alert.notify"]) {
  const { alert } = n;
  return {
    event: n.event,
    alertId: alert.id,
    kind: alert.kind,
    state: alert.state,
    level: n.level,
    openedAt: new Date(alert.openedAt).toISOString(),
    presses: alert.presses,
    deviceId: alert.deviceId,
    unreached: alert.unreached,
    exhausted: alert.exhausted,
    outcome: alert.outcome,
  };
}

/** Requests share an endpoint's capacity by origin: one bridge serves many recipients' addresses. */
function endpointOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}
