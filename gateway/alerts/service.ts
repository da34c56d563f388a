import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { EventBus, EventMap } from "../bus/index.ts";
import type { Clock } from "../clock/index.ts";
import { Errors } from "../errors.ts";
import type { DeviceEvent } from "../ingest/contract.ts";
import type { Store } from "../store/types.ts";
import { type AlertInput, decide } from "./decide.ts";
import type { Alert, AlertKind } from "./model.ts";
import type { EscalationPolicies } from "./policy.ts";
import { findRecipients } from "./recipients.ts";
import { DeadlineScheduler } from "./scheduler.ts";

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
  log: Logger;
  /** What an alarm from this device should record (last position, lateness); locator tags only. */
  alarmContext?: (deviceId: string, message: DeviceEvent) => Record<string, unknown>;
}

/** The gateway itself, as the actor of alerts it resolves (a tag came back, heartbeats resumed). */
export const GATEWAY_ACTOR = "gateway";

/**
 * Runs the alert life cycle: turns stored device events and responder actions into decisions,
 * stores each decision in one transaction, then carries out its effects through the bus.
 * Work is serialised, so two presses of one device can never open two alerts.
 */
export class AlertService {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly scheduler: DeadlineScheduler;
  private unsubscribe: (() => void)[] = [];

  constructor(private readonly deps: AlertServiceDeps) {
    this.scheduler = new DeadlineScheduler(deps.clock, (alertId) => {
      void this.escalate(alertId, { type: "deadline" }).catch((err) =>
        deps.log.error({ err, alertId }, "escalation failed"),
      );
    });
  }

  async start(): Promise<void> {
    const { store, bus, log } = this.deps;
    this.scheduler.start();
    // First, before anything new is notified: otherwise its delivery, not yet recorded, would go twice.
    await this.resumeNotifications();
    const failed = (deviceId: string) => (err: unknown) => log.error({ err, deviceId }, "alert rule failed");
    this.unsubscribe = [
      bus.on("device.event", (e) => void this.onDeviceEvent(e).catch(failed(e.deviceId))),
      bus.on("device.resent", (e) => void this.onResent(e).catch(failed(e.deviceId))),
      bus.on("alert.raise", (r) => void this.raise(r).catch(failed(r.deviceId))),
      bus.on("alert.clear", (c) => void this.clear(c).catch(failed(c.deviceId))),
    ];
    for (const alert of await store.alerts.withDeadlines()) this.scheduler.set(alert.id, alert.deadlineAt);
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
    this.scheduler.stop();
    // A queued task may queue another (an API call arriving meanwhile): wait until the queue stays put.
    for (let tail: Promise<unknown> | undefined; tail !== this.queue; ) {
      tail = this.queue;
      await tail;
    }
  }

  accept(alertId: string, by: string): Promise<Alert> {
    return this.serially(async () => {
      const person = await this.responder(by);
      return this.apply(await this.get(alertId), { type: "accept", by, byName: person.name });
    });
  }

  resolve(alertId: string, by: string, note: string): Promise<Alert> {
    return this.serially(async () => {
      await this.responder(by);
      return this.apply(await this.get(alertId), { type: "resolve", by, note });
    });
  }

  cancel(alertId: string, by: string): Promise<Alert> {
    return this.serially(async () => {
      await this.responder(by);
      return this.apply(await this.get(alertId), { type: "cancel", by, reason: "false-alarm" });
    });
  }

  /**
   * A device sends an event again until it hears `received`. If the first one is still unhandled
   * (its alert could not be saved: the database was locked or full), handle it now; if it was
   * handled but the confirmation was lost (a crash), confirm again. Nothing is stored twice.
   */
  private onResent(e: EventMap["device.resent"]): Promise<unknown> {
    // Queued behind the first delivery's handling, so that it is not handled twice.
    return this.serially(async () => {
      const { store, bus } = this.deps;
      const stored = await store.deviceEvents.find(e.deviceId, e.message.seq, e.message.ts);
      if (!stored) return;
      if (!stored.handled)
        return this.handleDeviceEvent({ ...stored, eventId: stored.id, receivedHr: e.receivedHr });
      if (e.message.type === "cancel") return;
      const active = await store.alerts.findActive(e.deviceId, kindOfEvent[e.message.type]);
      if (active)
        bus.emit("device.command", {
          deviceId: e.deviceId,
          command: { type: "received", alertId: active.id },
        });
    });
  }

  private onDeviceEvent(e: EventMap["device.event"]): Promise<unknown> {
    return this.serially(() => this.handleDeviceEvent(e));
  }

  private async handleDeviceEvent(e: EventMap["device.event"]): Promise<unknown> {
    const { store, log } = this.deps;
    const device = await store.registry.getDevice(e.deviceId);
    if (!device) throw Errors.notFound("device", e.deviceId);
    const trace = { handledEventId: e.eventId, pressReceivedHr: e.receivedHr };
    if (e.message.type === "cancel") {
      const active = await this.activeAlertOf(e.deviceId);
      if (!active) {
        log.info({ deviceId: e.deviceId }, "cancel with no active alert");
        await store.deviceEvents.markHandled(e.eventId);
        return;
      }
      return this.apply(active, { type: "cancel", by: e.deviceId, reason: "device" }, trace);
    }
    const kind = kindOfEvent[e.message.type];
    const existing = await store.alerts.findActive(e.deviceId, kind);
    const input: AlertInput = {
      type: "trigger",
      alertId: randomUUID(),
      kind,
      deviceId: e.deviceId,
      subjectId: device.ownerId,
      seq: e.message.seq,
      data: device.kind === "locator-tag" ? this.deps.alarmContext?.(e.deviceId, e.message) : undefined,
    };
    return this.apply(existing, input, trace);
  }

  private raise({ kind, deviceId, data }: EventMap["alert.raise"]): Promise<unknown> {
    return this.serially(async () => {
      const { store } = this.deps;
      if (await store.alerts.findActive(deviceId, kind)) return;
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
    return this.serially(async () => {
      const active = await this.deps.store.alerts.findActive(deviceId, kind);
      if (active) return this.apply(active, { type: "resolve", by: GATEWAY_ACTOR, note });
    });
  }

  private escalate(alertId: string, input: AlertInput): Promise<unknown> {
    return this.serially(async () => this.apply(await this.get(alertId), input));
  }

  private async apply(
    alert: Alert | undefined,
    input: AlertInput,
    trace: { handledEventId?: number; pressReceivedHr?: number } = {},
  ): Promise<Alert> {
    const { store, bus, clock, policies } = this.deps;
    const kind = alert?.kind ?? (input.type === "trigger" ? input.kind : "call");
    const decision = decide(alert, input, clock.now(), policies[kind]);
    const { next } = decision;
    const events = await store.alerts.commit({
      alert: next,
      events: decision.events,
      handledEventId: trace.handledEventId,
    });
    this.scheduler.set(next.id, next.deadlineAt);
    const pressReceivedHr = trace.pressReceivedHr;
    if (events.length > 0) bus.emit("alert.changed", { alert: next, events, pressReceivedHr });
    for (const effect of decision.effects) {
      if (effect.type === "command") {
        bus.emit("device.command", { deviceId: effect.deviceId, command: effect.command, pressReceivedHr });
        continue;
      }
      const recipients = await findRecipients(store.registry, next.subjectId, effect.roles);
      if (recipients.length > 0) {
        bus.emit("alert.notify", { alert: next, level: effect.level, recipients, pressReceivedHr });
      } else if (effect.level < policies[kind].levels.length) {
        // Nobody holds this level's roles: waiting out its deadline would only delay help.
        return this.apply(next, { type: "level-empty" });
      }
    }
    return next;
  }

  /**
   * A crash (or a stop with deliveries still waiting) can leave an escalating alert's notification
   * unsent: its level is stored, its webhook never went out. Each webhook contact of a level
   * reached so far with no delivered attempt is notified again. At least once, then: a webhook
   * delivered just before a crash, without its result stored, goes out twice.
   */
  private async resumeNotifications(): Promise<void> {
    const { store, bus, policies, log } = this.deps;
    for (const alert of await store.alerts.withDeadlines()) {
      if (alert.state !== "open") continue;
      const delivered = new Set(
        (await store.attempts.forAlert(alert.id))
          .filter((a) => a.channel === "webhook" && a.status === "delivered")
          .map((a) => `${a.level}|${a.personId}|${a.address}`),
      );
      const levels = policies[alert.kind].levels.slice(0, alert.level);
      for (const [i, step] of levels.entries()) {
        const level = i + 1;
        const recipients = (await findRecipients(store.registry, alert.subjectId, step.notify))
          .map((p) => ({
            ...p,
            contacts: p.contacts.filter(
              (c) => c.kind === "webhook" && !delivered.has(`${level}|${p.id}|${c.address}`),
            ),
          }))
          .filter((p) => p.contacts.length > 0);
        if (recipients.length === 0) continue;
        log.warn(
          // Not `level`: that key is the log line's own.
          { alertId: alert.id, escalationLevel: level, recipients: recipients.map((p) => p.id) },
          "notifying again: the last run stopped before this notification was delivered",
        );
        bus.emit("alert.notify", { alert, level, recipients });
      }
    }
  }

  private async activeAlertOf(deviceId: string): Promise<Alert | undefined> {
    for (const kind of Object.values(kindOfEvent)) {
      const alert = await this.deps.store.alerts.findActive(deviceId, kind);
      if (alert) return alert;
    }
    return undefined;
  }

  private async get(alertId: string): Promise<Alert> {
    const alert = await this.deps.store.alerts.get(alertId);
    if (!alert) throw Errors.notFound("alert", alertId);
    return alert;
  }

  private async responder(personId: string) {
    const person = await this.deps.store.registry.getPerson(personId);
    if (!person) throw Errors.notFound("person", personId);
    if (person.role === "resident")
      throw Errors.wrongRole(personId, "responder (doctor, family, grid worker, staff)");
    return person;
  }

  /** Runs `task` after every task queued before it. */
  private serially<T>(task: () => Promise<T>): Promise<T> {
    const result = this.queue.then(task);
    this.queue = result.catch(() => undefined);
    return result;
  }
}
