import type { Logger } from "pino";
import type { EventBus } from "../bus/index.ts";
import type { Clock } from "../clock/index.ts";
import type { Metrics } from "../metrics.ts";
import type { Store } from "../store/types.ts";
import { type DeviceEvent, type ParseLimits, parseDeviceMessage, type RefusalReason } from "./contract.ts";

export * from "./contract.ts";

/** Why a device message was refused; undefined when it was taken. */
export type Verdict = RefusalReason | undefined;

/**
 * Turns a device's publish into a typed bus event. Events are stored (de-duplicated durably by
 * device, seq and ts) and on disk before this resolves, and the broker acknowledges the publish
 * only after: an acknowledged press is never lost, and a re-delivered one never counts twice.
 */
export class Ingest {
  /** Device events being stored, for `stop()` to wait for. */
  private readonly storing = new Set<Promise<unknown>>();
  private stopped = false;

  constructor(
    private readonly deps: { store: Store; bus: EventBus; clock: Clock; metrics: Metrics; log: Logger },
    private readonly limits: ParseLimits,
  ) {}

  /**
   * Returns the refusal reason, or undefined when the message was accepted (or was a duplicate):
   * at once for a heartbeat or a refusal, through a promise for an event, which is stored first.
   * After `stop()`, never settles.
   */
  receive(deviceId: string, topic: string, payload: Buffer): Verdict | Promise<Verdict> {
    // Never answered: the broker closes the connection without a PUBACK and the device sends it
    // again to the next run. Refusing instead would only make the device reconnect and retry at once.
    if (this.stopped) return new Promise(() => undefined);
    const { bus, clock, metrics, log } = this.deps;
    const receivedHr = performance.now();
    const receivedAt = clock.now();
    const parsed = parseDeviceMessage(deviceId, topic, payload, receivedAt, this.limits);
    if (!parsed.ok) {
      metrics.messagesRefused.inc({ reason: parsed.reason });
      log.warn({ deviceId, topic, reason: parsed.reason, detail: parsed.detail }, "device message refused");
      return parsed.reason;
    }
    const { value } = parsed;
    // Handled before this returns, with nothing to store: no promise, nothing for `stop()` to wait for.
    if (value.channel === "heartbeat") {
      metrics.heartbeatAccepted();
      bus.emit("device.heartbeat", { deviceId, message: value.message, receivedAt });
      return undefined;
    }
    metrics.messagesIn.inc({ channel: value.channel });
    const storing = this.record(deviceId, value.message, receivedAt, receivedHr);
    this.storing.add(storing);
    void storing.catch(() => undefined).finally(() => this.storing.delete(storing));
    return storing;
  }

  /**
   * Takes no more messages; those being stored finish, and are acknowledged, before this resolves.
   * Called first in a graceful stop, so that every acknowledged event is handled before the exit.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.allSettled([...this.storing]);
  }

  private async record(
    deviceId: string,
    message: DeviceEvent,
    receivedAt: number,
    receivedHr: number,
  ): Promise<Verdict> {
    const { store, bus, metrics, log } = this.deps;
    const eventId = await store.committed(() => store.deviceEvents.record(deviceId, message, receivedAt));
    if (eventId === undefined) {
      metrics.duplicates.inc();
      log.info({ deviceId, seq: message.seq }, "duplicate device event: not stored again");
      // Its first delivery may not be on disk yet (its flush running, or failing): acknowledged once it is.
      await store.durable();
      bus.emit("device.resent", { deviceId, message, receivedHr });
      return undefined;
    }
    // Decided while the event is on its way to the disk: the alert's commit joins the event's
    // flush, and nothing it causes goes out before that flush (so the event) is on disk.
    bus.emit("device.event", { deviceId, eventId, message, receivedAt, receivedHr });
    await store.durable();
    return undefined;
  }
}
