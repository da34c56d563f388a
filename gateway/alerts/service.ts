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
    const failed = (deviceId: string) => (err: unknown) => log.error({ err, deviceId }, "alert rule failed");
    this.unsubscribe = [
      bus.on("device.event", (e) => void this.onDeviceEvent(e).catch(failed(e.deviceId))),
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
      await this.onDeviceEvent({ ...e, eventId: e.id, receivedHr: performance.now() });
    }
  }

  async stop(): Promise<void> {
    for (const off of this.unsubscribe.splice(0)) off();
    this.scheduler.stop();
    await this.queue.catch(() => undefined);
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

  private onDeviceEvent(e: EventMap["device.event"]): Promise<unknown> {
    return this.serially(async () => {
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
    });
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
