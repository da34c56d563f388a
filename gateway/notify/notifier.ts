import type { Logger } from "pino";
import type { EventBus, EventMap } from "../bus/index.ts";
import type { Clock, Timer } from "../clock/index.ts";
import { type Metrics, observePressLatency } from "../metrics.ts";
import {
  type ChannelKind,
  type Contact,
  type Destination,
  type DeviceState,
  isReached,
  type NotificationAttempt,
  type Person,
  type Store,
} from "../store/types.ts";
import type { Channel, SendResult } from "./channels/channel.ts";
import { type AlertSummary, compose, summarize } from "./messages.ts";

/** One notification to one person, down their list of contacts. */
interface Delivery {
  notice: EventMap["alert.notify"];
  recipient: Person;
  about: AlertSummary;
  /** The contacts to try, in order; `step` is the one this delivery is for. */
  chain: Destination[];
  step: number;
  /** The attempt on this contact, from 1. */
  attempt: number;
  /** Clock time at which it may be made. */
  dueAt: number;
  /** The page of a level this delivery is part of: how many recipients are still being tried. */
  page?: PageOutcome;
}

interface PageOutcome {
  /** Recipients still on their first pass down their contacts. */
  trying: Set<string>;
  reached: boolean;
}

/** Deliveries to one endpoint: those under way, and the others in order of when they are due. */
interface Endpoint {
  channel: Channel;
  active: number;
  waiting: Delivery[];
  /** The one timer, for the earliest waiting delivery not yet due. */
  timer: Timer | undefined;
  timerAt: number;
}

/**
 * The contacts a page goes to: those for the alert's kind and level, on a configured channel, in
 * the person's order; a voice call is followed by an SMS to the same number if no SMS comes later,
 * and that SMS goes whether the call was placed or not (a placed call may ring unanswered).
 */
function pageContacts(person: Person, n: EventMap["alert.notify"], configured: (k: ChannelKind) => boolean) {
  const chosen = person.contacts.filter(
    (c) =>
      configured(c.kind) &&
      (c.alertKinds === null || c.alertKinds.includes(n.alert.kind)) &&
      (n.level === 0 || n.level >= c.minLevel),
  );
  return chosen.flatMap((c, i) =>
    c.kind === "voice" && configured("sms") && !chosen.slice(i + 1).some((l) => l.kind === "sms")
      ? [c, { ...c, kind: "sms" as const }]
      : [c],
  );
}

/**
 * The contacts a follow-up goes to: those that reached the person with a page of this alert, or
 * if none did, those for its kind at any level. Never a call: a voice contact is an SMS to it.
 */
function followUpContacts(
  person: Person,
  n: EventMap["alert.notify"],
  configured: (k: ChannelKind) => boolean,
  reached: readonly NotificationAttempt[],
) {
  const quiet = new Map<string, Contact>();
  for (const c of person.contacts) {
    if (c.alertKinds !== null && !c.alertKinds.includes(n.alert.kind)) continue;
    const kind = c.kind === "voice" ? "sms" : c.kind;
    if (configured(kind)) quiet.set(`${kind} ${c.address}`, { ...c, kind });
  }
  const used = reached.filter((a) => a.personId === person.id && a.event === "paged" && isReached(a.status));
  const same = [...quiet.values()].filter((c) =>
    used.some(
      (a) => a.address === c.address && (a.channel === c.kind || (a.channel === "voice" && c.kind === "sms")),
    ),
  );
  return same.length > 0 ? same : [...quiet.values()];
}

/**
 * Sends every notification to each recipient down their contacts: every attempt is stored before
 * it is made and updated with its result; a refused, throttled or failed one moves on to the
 * next contact at once, and only the last contact left is retried (with its channel's delays).
 * Follow-ups (accepted, resolved...) go on the channels that reached the person with the page,
 * never as a call: a voice call's follow-up goes by SMS (a call to say it is over wakes people
 * for nothing).
 *
 * Each endpoint gets at most its channel's concurrency of requests at a time; the rest wait in
 * order of when they are due, with one timer per endpoint for the earliest retry. However many
 * alerts pile up on a dead or hanging endpoint, it holds a bounded number of sockets and timers,
 * and deliveries to other endpoints never wait for it. Deliveries never hold up the escalation.
 */
export class Notifier {
  private unsubscribe: (() => void) | undefined;
  private readonly channels: Map<ChannelKind, Channel>;
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
    },
    channels: Channel[],
    private readonly options: { publicUrl: string | null },
  ) {
    this.channels = new Map(channels.map((c) => [c.kind, c]));
  }

  start(): void {
    this.stopped = false;
    this.unsubscribe = this.deps.bus.on("alert.notify", (n) => this.track(this.dispatch(n)));
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
        "stopping: notifications waiting for a connection or a retry are abandoned",
      );
    }
    await Promise.allSettled([...this.inFlight]);
    this.endpoints.clear();
  }

  private async dispatch(n: EventMap["alert.notify"]): Promise<void> {
    const { store, clock, log } = this.deps;
    const configured = (k: ChannelKind) => this.channels.has(k);
    const pushes = await Promise.all(n.recipients.map((r) => this.pushSubscriptions(r)));
    // Nothing to send: not worth describing the alert.
    if (pushes.every((p) => p.length === 0) && !n.recipients.some((r) => r.contacts.length > 0)) return;
    // Side by side: a follow-up is on its way no later than a page emitted with it.
    const [about, reached] = await Promise.all([
      summarize(this.deps, n, this.options.publicUrl),
      n.event === "paged"
        ? []
        : store.attempts.forAlert(n.alert.id).catch((err) => {
            log.error(
              { err, alertId: n.alert.id },
              "could not read how the page went: following up as paged",
            );
            return [];
          }),
    ]);
    const chains = n.recipients.map((recipient, i) => ({
      recipient,
      subscriptions: pushes[i] ?? [],
      chain:
        n.event === "paged"
          ? pageContacts(recipient, n, configured)
          : followUpContacts(recipient, n, configured, reached),
    }));
    // A level's page (not the catch-all's, which has nobody after it) reports a failure on all of it.
    const page =
      n.event === "paged" && n.level > 0
        ? {
            trying: new Set(chains.filter((c) => c.chain.length > 0).map((c) => c.recipient.id)),
            reached: false,
          }
        : undefined;
    for (const { recipient, subscriptions, chain } of chains) {
      const due = { notice: n, recipient, about, step: 0, attempt: 1, dueAt: clock.now() };
      // Push rides along with whatever the person is sent, first and on its own: a push service
      // taking it says nothing of a phone ringing, so it never stands in for their contacts.
      for (const s of subscriptions)
        this.enqueue({
          ...due,
          chain: [{ kind: "push", address: s.endpoint, alertKinds: null, minLevel: 1 }],
        });
      if (chain.length > 0) this.enqueue({ ...due, chain, page });
    }
  }

  /** One recipient's first pass down their contacts is over: the last one of a page tells the escalation. */
  private settled(delivery: Delivery, reached: boolean): void {
    const { page, notice, recipient } = delivery;
    if (!page) return;
    page.reached ||= reached;
    if (!page.trying.delete(recipient.id) || page.trying.size > 0 || page.reached) return;
    this.deps.bus.emit("alert.page-failed", {
      alertId: notice.alert.id,
      deviceId: notice.alert.deviceId,
      level: notice.level,
      recipients: notice.recipients.map((r) => r.id),
    });
  }

  private async pushSubscriptions(recipient: Person) {
    if (!this.channels.has("push")) return [];
    return this.deps.store.pushSubscriptions.forPerson(recipient.id).catch((err) => {
      this.deps.log.error({ err, recipient: recipient.id }, "could not read push subscriptions: not pushing");
      return [];
    });
  }

  private track(work: Promise<void>): void {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }

  private enqueue(delivery: Delivery): void {
    if (this.stopped) return;
    const contact = delivery.chain[delivery.step] as Destination;
    const channel = this.channels.get(contact.kind) as Channel;
    const key = `${channel.kind} ${channel.endpointOf(contact)}`;
    let endpoint = this.endpoints.get(key);
    if (!endpoint) {
      endpoint = { channel, active: 0, waiting: [], timer: undefined, timerAt: Number.POSITIVE_INFINITY };
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
      if (!next || next.dueAt > now || endpoint.active >= endpoint.channel.concurrency) break;
      endpoint.waiting.shift();
      metrics.webhooksWaiting.dec();
      endpoint.active++;
      const attempt = this.attempt(endpoint.channel, next)
        .catch((err) => log.error({ err, alertId: next.notice.alert.id }, "notification failed"))
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

  /** One attempt on one contact; then the next contact at once, or a retry of this one, if any is due. */
  private async attempt(channel: Channel, delivery: Delivery): Promise<void> {
    const { store, clock, metrics, log } = this.deps;
    const { notice, recipient, attempt, chain, step } = delivery;
    const contact = chain[step] as Destination;
    const alertId = notice.alert.id;
    // A database that cannot take the record must not also cost the recipient the notification.
    const attemptId = await store.attempts
      .start({
        alertId,
        level: notice.level,
        personId: recipient.id,
        channel: channel.kind,
        event: notice.event,
        address: contact.address,
        attempt,
        at: clock.now(),
      })
      .catch((err) => {
        log.error(
          { err, alertId, recipient: recipient.id, channel: channel.kind, attempt },
          "could not store a notification attempt: sending it anyway",
        );
        return undefined;
      });
    const refused = channel.admit(contact, clock.now());
    const result: SendResult = refused
      ? { status: "failed", detail: refused, retry: false }
      : await channel.send({
          notice,
          recipient,
          contact,
          about: delivery.about,
          message: compose(delivery.about, recipient.locale),
        });
    if (attemptId !== undefined) {
      await store.attempts
        .finish(attemptId, result.status, result.detail)
        .catch((err) =>
          log.error({ err, alertId, attemptId }, "could not store a notification attempt's result"),
        );
    }
    metrics.notifications.inc({ channel: channel.kind, result: result.status });
    if (result.status !== "failed") {
      this.settled(delivery, true);
      if (attempt === 1 && step === 0) observePressLatency(metrics, channel.kind, notice.pressReceivedHr);
      // A call placed is not a call answered: the SMS after it goes as well.
      const next = chain[step + 1];
      if (channel.kind === "voice" && next?.kind === "sms")
        this.enqueue({ ...delivery, step: step + 1, attempt: 1, dueAt: clock.now() });
      return;
    }
    log.warn(
      { alertId, recipient: recipient.id, channel: channel.kind, attempt, detail: result.detail },
      "notification failed",
    );
    if (step + 1 < chain.length) {
      this.enqueue({ ...delivery, step: step + 1, attempt: 1, dueAt: clock.now() });
      return;
    }
    // Every contact failed once: the escalation hears now; the last contact is still retried.
    if (attempt === 1) this.settled(delivery, false);
    const delay = channel.retryDelaysMs[attempt - 1];
    if (delay === undefined || !result.retry) return;
    this.enqueue({ ...delivery, attempt: attempt + 1, dueAt: clock.now() + delay });
  }
}
