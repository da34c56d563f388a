import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { EventBus, EventMap } from "../bus/index.ts";
import type { Clock } from "../clock/index.ts";
import { Errors } from "../errors.ts";
import type { DeviceEvent } from "../ingest/contract.ts";
import type { Metrics } from "../metrics.ts";
import { DEFAULT_LOCALE, devicePhrase, type PhraseCatalogue } from "../notify/phrases.ts";
import {
  AlertChanged,
  type ChannelKind,
  isReached,
  type Person,
  type Store,
  type StoredDeviceEvent,
} from "../store/types.ts";
import { type Actor, type AlertInput, decide, type Effect, isStale } from "./decide.ts";
import { type Alert, type AlertKind, emergencyKinds, isEmergency } from "./model.ts";
import type { EscalationPolicies } from "./policy.ts";
import { findAudience } from "./recipients.ts";
import { CLAIM_LEASE_MS, ClaimedDeadlines, DeadlineScheduler, type Deadlines } from "./scheduler.ts";
import { type TakenPage, Takeover } from "./takeover.ts";

const kindOfEvent: Record<Exclude<DeviceEvent["type"], "cancel">, AlertKind> = {
  press: "call",
  sos: "sos",
  fall: "fall",
};

export interface AlertServiceDeps {
  store: Store;
  bus: EventBus;
  clock: Clock;
  policies: EscalationPolicies;
  phrases: PhraseCatalogue;
  metrics: Metrics;
  log: Logger;
  /** Whether the dashboard is open in this person's name (null: any admin's). */
  isWatching?: (personId: string | null) => boolean;
  /** Whether the gateway can send on this channel (configured): a contact on any other reaches nobody. */
  canSendOn?: (kind: ChannelKind) => boolean;
  /** What an alarm from this device should record (last position, lateness); locator tags only. */
  alarmContext?: (deviceId: string, message: DeviceEvent) => Record<string, unknown>;
}

export interface AlertServiceOptions {
  /** A press this long after an active alert's last activity opens a new alert instead of joining it. */
  quietPeriodMs: number;
  /**
   * How often deadlines are re-read from the database and failed ones retried; on a store shared
   * by several gateways (PostgreSQL), how often this one claims the deadlines due.
   */
  sweepMs: number;
}

/** The gateway itself, as the actor of alerts it resolves (a tag came back, heartbeats resumed). */
export const GATEWAY_ACTOR: Actor = { id: "gateway", name: "gateway", role: "gateway" };

/**
 * Runs the alert life cycle: turns stored device events, responder actions and due deadlines
 * into decisions, stores each decision in one transaction, then carries out its effects through
 * the bus. Work is serialised, so two presses of one device can never open two alerts.
 */
export class AlertService {
  /** Each device's alert work, in order: the tail of its queue, while it has one. */
  private readonly lanes = new Map<string, Promise<unknown>>();
  private readonly deadlines: Deadlines;
  /** With several gateways on one database: what dead ones left, taken up by this one. */
  private readonly takeover: Takeover | undefined;
  private unsubscribe: (() => void)[] = [];

  constructor(
    private readonly deps: AlertServiceDeps,
    private readonly options: AlertServiceOptions,
  ) {
    const { clock, log, store, metrics } = deps;
    const fire = (alertId: string, at: number) => this.onDeadline(alertId, at);
    const onRetry = () => metrics.deadlineRetries.inc();
    this.deadlines = store.deadlineClaims
      ? new ClaimedDeadlines(
          {
            clock,
            log,
            claims: store.deadlineClaims,
            fire,
            onRetry,
            onSweep: () => this.takeover?.sweep() ?? Promise.resolve(),
          },
          options.sweepMs,
        )
      : new DeadlineScheduler(
          { clock, log, load: () => store.alerts.withDeadlines(), fire, onRetry },
          options.sweepMs,
        );
    if (store.orphanClaims) {
      const decideLeftover = (e: StoredDeviceEvent) =>
        this.onDeviceEvent({ ...e, eventId: e.id, receivedHr: performance.now() }).then(() => undefined);
      this.takeover = new Takeover(
        {
          clock,
          log,
          claims: store.orphanClaims,
          resumePages: (p) => this.resumePages(p),
          decide: decideLeftover,
        },
        // A few sweeps long: one slow renewal does not make this gateway look dead.
        Math.max(CLAIM_LEASE_MS, 3 * options.sweepMs),
        options.sweepMs,
      );
    }
  }

  async start(): Promise<void> {
    const { store, bus, log, policies } = this.deps;
    const adopted = await store.alerts.adoptPolicies((kind) => policies[kind]);
    if (adopted > 0) log.info({ adopted }, "alerts from before policies travelled with them took today's");
    // First, before anything new is paged: otherwise its delivery, not yet recorded, would go twice.
    // Several gateways: only what those that died left, this one's last run among them, taken
    // over at the sweeps.
    if (this.takeover) await this.takeover.start();
    else await this.resumePages();
    const failed = (deviceId: string) => (err: unknown) => log.error({ err, deviceId }, "alert rule failed");
    this.unsubscribe = [
      bus.on("device.event", (e) => void this.onDeviceEvent(e).catch(failed(e.deviceId))),
      bus.on("device.resent", (e) => void this.onResent(e).catch(failed(e.deviceId))),
      bus.on("alert.raise", (r) => void this.raise(r).catch(failed(r.deviceId))),
      bus.on("alert.clear", (c) => void this.clear(c).catch(failed(c.deviceId))),
      bus.on("alert.page-failed", (p) => void this.onPageFailed(p).catch(failed(p.deviceId))),
    ];
    // Deadlines that fell due while the gateway was down fire now.
    await this.deadlines.start();
    if (this.takeover) return;
    // Events stored (and acknowledged to the device) but not handled before the last stop.
    for (const e of await store.deviceEvents.unhandled()) {
      log.warn(
        { deviceId: e.deviceId, seq: e.message.seq },
        "handling a device event left over from the last run",
      );
      // One event that cannot be handled must not keep the gateway from starting; it stays unhandled.
      await this.onDeviceEvent({ ...e, eventId: e.id, receivedHr: performance.now() }).catch(
        failed(e.deviceId),
      );
    }
  }

  /** Finishes the transitions already queued; deadlines not yet due wait in the database for the next start. */
  async stop(): Promise<void> {
    for (const off of this.unsubscribe.splice(0)) off();
    this.deadlines.stop();
    this.takeover?.stop();
    // A queued task may queue another (an API call arriving meanwhile): wait until none is left.
    while (this.lanes.size > 0) await Promise.all(this.lanes.values());
  }

  accept(alertId: string, by: string): Promise<Alert> {
    return this.onAlert(alertId, async (alert) =>
      this.apply(alert, { type: "accept", by: await this.responder(by) }),
    );
  }

  resolve(alertId: string, by: string, note: string): Promise<Alert> {
    return this.onAlert(alertId, async (alert) =>
      this.apply(alert, { type: "resolve", by: await this.responder(by), note }),
    );
  }

  cancel(alertId: string, by: string): Promise<Alert> {
    return this.onAlert(alertId, async (alert) =>
      this.apply(alert, { type: "false-alarm", by: await this.responder(by) }),
    );
  }

  /**
   * A device sends an event again until it hears `received`. If the first one is still unhandled
   * (its alert could not be saved: the database was locked or full), handle it now; if it was
   * handled but the confirmation was lost (a crash), confirm again. Nothing is stored twice.
   */
  private onResent(e: EventMap["device.resent"]): Promise<unknown> {
    // Queued behind the first delivery's handling, so that it is not handled twice.
    return this.inDeviceOrder(e.deviceId, async () => {
      const { store } = this.deps;
      const stored = await store.deviceEvents.find(e.deviceId, e.message.seq, e.message.ts);
      if (!stored) return;
      if (!stored.handled)
        return this.handleDeviceEvent({ ...stored, eventId: stored.id, receivedHr: e.receivedHr });
      if (e.message.type === "cancel") return;
      const active = await store.alerts.findActive(e.deviceId, emergencyKinds);
      if (active) {
        const subject = await store.registry.getPerson(active.subjectId);
        this.commandDevice(active, { type: "device", command: "received", phrase: "received" }, subject);
      }
    });
  }

  /**
   * Handles a stored event once, whichever comes first: its first delivery, a re-delivery (the
   * device reconnected while the event was being stored), or the leftovers at start.
   */
  private onDeviceEvent(e: EventMap["device.event"]): Promise<unknown> {
    return this.inDeviceOrder(e.deviceId, async () => {
      const stored = await this.deps.store.deviceEvents.find(e.deviceId, e.message.seq, e.message.ts);
      if (!stored?.handled) return this.handleDeviceEvent(e);
    });
  }

  private async handleDeviceEvent(e: EventMap["device.event"]): Promise<unknown> {
    const { store, log, clock } = this.deps;
    const device = await store.registry.getDevice(e.deviceId);
    if (!device) throw Errors.notFound("device", e.deviceId);
    const trace = { handledEventId: e.eventId, pressReceivedHr: e.receivedHr };
    let active = await store.alerts.findActive(e.deviceId, emergencyKinds);
    if (e.message.type === "cancel") {
      if (active) return this.apply(active, { type: "resident-cancel" }, trace);
      log.info({ deviceId: e.deviceId }, "cancel with no active alert");
      return store.deviceEvents.markHandled(e.eventId);
    }
    const alertId = randomUUID();
    let unflushed: NotOnDisk | undefined;
    if (active && isStale(active, clock.now(), this.options.quietPeriodMs)) {
      // Hours of quiet: this is a new emergency, not more of the old one.
      await this.apply(active, { type: "supersede", by: alertId }).catch((err: unknown) => {
        // Carried out: the new alert is opened and paged all the same.
        if (!(err instanceof NotOnDisk)) throw err;
        unflushed = err;
      });
      active = undefined;
    }
    const input: AlertInput = {
      type: "trigger",
      alertId,
      kind: kindOfEvent[e.message.type],
      deviceId: e.deviceId,
      subjectId: device.ownerId,
      seq: e.message.seq,
      // Where it was: a locator tag's position, and a watch's (an SOS pendant is a call button that knows it).
      data:
        device.kind === "locator-tag" || device.protocol === "watch"
          ? this.deps.alarmContext?.(e.deviceId, e.message)
          : undefined,
    };
    const opened = await this.apply(active, input, trace);
    if (unflushed) throw unflushed;
    return opened;
  }

  private raise({ kind, deviceId, data }: EventMap["alert.raise"]): Promise<unknown> {
    return this.inDeviceOrder(deviceId, async () => {
      const { store } = this.deps;
      if (await store.alerts.findActive(deviceId, [kind])) return;
      const device = await store.registry.getDevice(deviceId);
      if (!device) return;
      const input: AlertInput = {
        type: "trigger",
        alertId: randomUUID(),
        kind,
        deviceId,
        subjectId: device.ownerId,
        data,
      };
      return this.apply(undefined, input);
    });
  }

  private clear({ kind, deviceId, note }: EventMap["alert.clear"]): Promise<unknown> {
    return this.inDeviceOrder(deviceId, async () => {
      const active = await this.deps.store.alerts.findActive(deviceId, [kind]);
      if (active) return this.apply(active, { type: "resolve", by: GATEWAY_ACTOR, note });
    });
  }

  /** Nobody on a level was reached: the next is paged now, unless one of them watches the dashboard. */
  private onPageFailed({
    alertId,
    deviceId,
    level,
    recipients,
  }: EventMap["alert.page-failed"]): Promise<unknown> {
    if (recipients.some((id) => this.deps.isWatching?.(id))) return Promise.resolve();
    return this.inDeviceOrder(deviceId, async () => {
      const alert = await this.deps.store.alerts.get(alertId);
      if (alert) await this.apply(alert, { type: "level-failed", level });
    });
  }

  /** A deadline fell due (or was claimed): fire it if the database still says so. */
  private async onDeadline(alertId: string, at: number): Promise<void> {
    const known = await this.deps.store.alerts.get(alertId);
    if (!known) return this.deadlines.set(alertId, null);
    await this.inDeviceOrder(known.deviceId, async () => {
      const alert = await this.deps.store.alerts.get(alertId);
      if (!alert || alert.deadlineAt !== at) return this.deadlines.set(alertId, alert?.deadlineAt ?? null);
      await this.apply(alert, { type: "deadline" });
    });
  }

  /**
   * Decides, stores the decision in one transaction, then carries out its effects. Everything the
   * effects need is read before the commit: once it is stored, they go out without more I/O.
   */
  private async apply(
    alert: Alert | undefined,
    input: AlertInput,
    trace: { handledEventId?: number; pressReceivedHr?: number } = {},
  ): Promise<Alert> {
    const { store, bus, clock, policies, metrics, log } = this.deps;
    const subjectId = alert?.subjectId ?? (input.type === "trigger" ? input.subjectId : "");
    const pages = input.type === "trigger" || input.type === "deadline" || input.type === "level-failed";
    const {
      audience,
      people,
      subject: found,
    } = pages
      ? await findAudience(store, subjectId, pagedKind(alert, input), {
          isWatching: this.deps.isWatching ?? (() => false),
          canSendOn: this.deps.canSendOn ?? (() => true),
        })
      : { audience: { byRole: {}, catchAll: [] }, people: new Map<string, Person>(), subject: undefined };
    const decision = decide(alert, input, clock.now(), { policies, audience });
    const { next, effects } = decision;
    for (const effect of effects) {
      if (effect.type === "device") continue;
      for (const id of effect.recipients) {
        if (people.has(id)) continue;
        const person = await store.registry.getPerson(id);
        if (person) people.set(id, person);
      }
    }
    const subject = found ?? (await store.registry.getPerson(subjectId));
    const events = await store.committed(() =>
      store.alerts.commit({
        alert: next,
        events: decision.events,
        handledEventId: trace.handledEventId,
        previous: alert,
      }),
    );
    // Nothing goes out before the decision is on disk: a press that `received` answers must survive
    // a power cut. If the disk fails to flush, it is carried out all the same (the database holds
    // it; a doctor must still be paged) but for `received`, and the caller is told the write failed.
    let unflushed: NotOnDisk | undefined;
    await store.durable().catch((err: unknown) => {
      unflushed = new NotOnDisk(err);
      log.error({ err, alertId: next.id }, "carrying out a decision not flushed to disk");
    });
    this.deadlines.set(next.id, next.deadlineAt);
    const { pressReceivedHr } = trace;
    for (const e of events) {
      if (e.type !== "unreached" && e.type !== "escalation-exhausted") continue;
      const trouble = e.type === "unreached" ? "unreached" : "exhausted";
      metrics.escalationTroubles.inc({ trouble });
      log.error(
        { alertId: next.id, kind: next.kind, subjectId, catchAll: audience.catchAll },
        trouble === "unreached"
          ? "nobody on any escalation level can be reached: paging the catch-all"
          : "nobody accepted after every repeat: paging the catch-all and stopping",
      );
    }
    if (events.length > 0) bus.emit("alert.changed", { alert: next, events, pressReceivedHr });
    for (const effect of effects) {
      if (effect.type === "device") {
        // The device, without its PUBACK, sends the press again, and hears `received` once it is on disk.
        if (!unflushed || effect.command !== "received")
          this.commandDevice(next, effect, subject, pressReceivedHr);
        continue;
      }
      const recipients = effect.recipients.flatMap((id) => people.get(id) ?? []);
      if (effect.type === "page")
        bus.emit("alert.notify", {
          alert: next,
          level: effect.level,
          event: "paged",
          recipients,
          subject,
          pressReceivedHr,
        });
      // A follow-up is not what a press waits for: it carries no press time to measure.
      else
        bus.emit("alert.notify", {
          alert: next,
          level: next.level,
          event: effect.event,
          recipients,
          subject,
        });
    }
    if (unflushed) throw unflushed;
    return next;
  }

  /** A command to the alert's device, in its resident's language, from the fixed phrases. */
  private commandDevice(
    alert: Alert,
    effect: Extract<Effect, { type: "device" }>,
    subject: Person | undefined,
    pressReceivedHr?: number,
  ): void {
    const message = devicePhrase(
      this.deps.phrases,
      subject?.locale ?? DEFAULT_LOCALE,
      effect.phrase,
      effect.name,
    );
    this.deps.bus.emit("device.command", {
      deviceId: alert.deviceId,
      command: { type: effect.command, alertId: alert.id, message },
      pressReceivedHr,
    });
  }

  /**
   * A crash (or a stop with deliveries still waiting) can leave a page unsent: the alert's level
   * is stored, its notification never went out. Everyone paged on an open alert whom no contact
   * reached is paged again on the contacts that did not fail: those never tried, or cut off
   * mid-attempt (still pending). At least once, then: a message sent just before a crash, without
   * its result stored, goes out twice. Follow-ups are not resent. `only`: these pages (taken over
   * from a gateway that died), resolving with those done (one that failed is tried again later);
   * without it, every page of every open alert.
   */
  private async resumePages(only?: TakenPage[]): Promise<Set<number>> {
    const { store, log } = this.deps;
    const done = new Set<number>();
    if (!only) {
      for (const alert of await store.alerts.withDeadlines()) await this.resumeAlertPages(alert.id);
      return done;
    }
    const byAlert = new Map<string, TakenPage[]>();
    for (const p of only) byAlert.set(p.alertId, [...(byAlert.get(p.alertId) ?? []), p]);
    for (const [alertId, pages] of byAlert) {
      try {
        await this.resumeAlertPages(alertId, new Set(pages.map((p) => p.eventId)));
        for (const p of pages) done.add(p.eventId);
      } catch (err) {
        log.error({ err, alertId }, "could not page again for an alert taken over; trying again");
      }
    }
    return done;
  }

  /** The pages of one alert (`pageIds`: these only), in its device's turn: not after an accept queued before. */
  private async resumeAlertPages(alertId: string, pageIds?: Set<number>): Promise<void> {
    const { store, bus, log } = this.deps;
    const known = await store.alerts.get(alertId);
    if (!known) return;
    await this.inDeviceOrder(known.deviceId, async () => {
      const alert = await store.alerts.get(alertId);
      if (alert?.state !== "open") return;
      const reached = new Set<string>();
      // Failed for good is settled: not worth a page per restart.
      const failed = new Set<string>();
      for (const a of await store.attempts.forAlert(alert.id)) {
        // A push does not count as reaching anyone (see Notifier), and is sent with the page again.
        if (a.channel === "device" || a.channel === "push" || a.event !== "paged") continue;
        const contact = `${a.level}|${a.personId}|${a.channel} ${a.address}`;
        if (isReached(a.status)) reached.add(`${a.level}|${a.personId}`);
        if (a.status === "pending") failed.delete(contact);
        else failed.add(contact);
      }
      const pages = (await store.alerts.events(alert.id)).filter(
        (e) => e.type === "notified" && (!pageIds || pageIds.has(e.id)),
      );
      for (const page of pages) {
        const level = page.data.level as number;
        const recipients: Person[] = [];
        for (const id of (page.data.recipients as string[] | undefined) ?? []) {
          if (reached.has(`${level}|${id}`)) continue;
          const person = await store.registry.getPerson(id);
          const contacts = (person?.contacts ?? []).filter(
            (c) => !failed.has(`${level}|${id}|${c.kind} ${c.address}`),
          );
          if (person && contacts.length > 0) recipients.push({ ...person, contacts });
        }
        if (recipients.length === 0) continue;
        for (const p of recipients) reached.add(`${level}|${p.id}`);
        log.warn(
          // Not `level`: that key is the log line's own.
          { alertId: alert.id, escalationLevel: level, recipients: recipients.map((p) => p.id) },
          "paging again: the last run stopped before this page reached them",
        );
        bus.emit("alert.notify", { alert, level, event: "paged", recipients });
      }
    });
  }

  private async get(alertId: string): Promise<Alert> {
    const alert = await this.deps.store.alerts.get(alertId);
    if (!alert) throw Errors.notFound("alert", alertId);
    return alert;
  }

  private async responder(personId: string): Promise<Actor> {
    const person = await this.deps.store.registry.getPerson(personId);
    if (!person) throw Errors.notFound("person", personId);
    if (person.role === "resident")
      throw Errors.wrongRole(personId, "responder (doctor, family, grid worker, staff)");
    return { id: person.id, name: person.name, role: person.role };
  }

  /** Runs `task` on the alert, read again in its device's turn (so as it is after the work queued before). */
  private async onAlert<T>(alertId: string, task: (alert: Alert) => Promise<T>): Promise<T> {
    const { deviceId } = await this.get(alertId);
    return this.inDeviceOrder(deviceId, async () => task(await this.get(alertId)));
  }

  /**
   * Runs `task` after the work queued before it for the same device: two presses of one button
   * never open two alerts. Different devices' work runs side by side, so a burst (a round of
   * cancels, a district's devices going offline) shares its disk flushes instead of queueing
   * behind one another's.
   */
  private inDeviceOrder<T>(deviceId: string, task: () => Promise<T>): Promise<T> {
    const result = (this.lanes.get(deviceId) ?? Promise.resolve()).then(() => afresh(task));
    const tail = result.catch(() => undefined);
    this.lanes.set(deviceId, tail);
    void tail.then(() => {
      if (this.lanes.get(deviceId) === tail) this.lanes.delete(deviceId);
    });
    return result;
  }
}

/** The kind an alert is paged as after this input: a trigger opens or upgrades it, nothing else changes it. */
function pagedKind(alert: Alert | undefined, input: AlertInput): AlertKind {
  if (input.type !== "trigger") return alert?.kind ?? "call";
  if (!alert || !isEmergency(alert.kind) || !isEmergency(input.kind)) return alert?.kind ?? input.kind;
  return emergencyKinds.indexOf(input.kind) > emergencyKinds.indexOf(alert.kind) ? input.kind : alert.kind;
}

/** A decision carried out though the disk failed to flush it: its caller is told the write failed. */
class NotOnDisk extends Error {
  /** The flush's error code (EIO…), so that it counts and answers as a storage failure. */
  readonly code: unknown;

  constructor(cause: unknown) {
    super(`carried out, but not flushed to disk: ${(cause as Error)?.message ?? cause}`, { cause });
    this.code = (cause as { code?: unknown } | undefined)?.code;
  }
}

/** Times a task is decided again on a fresh read before giving up: each retry means another gateway made progress. */
const MAX_DECISIONS = 5;

/**
 * Runs `task` again while its commit finds the alert changed since it read it: another gateway
 * (sharing the database) stepped it first. Every task reads what it decides on, so the next try
 * decides on the alert as it is now: an accept still lands, a deadline already fired is not fired again.
 */
async function afresh<T>(task: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await task();
    } catch (err) {
      if (!(err instanceof AlertChanged) || attempt >= MAX_DECISIONS) throw err;
    }
  }
}
