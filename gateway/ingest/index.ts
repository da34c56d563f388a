import type { Logger } from "pino";
import type { EventBus } from "../bus/index.ts";
import type { Clock } from "../clock/index.ts";
import type { Metrics } from "../metrics.ts";
import type { Store } from "../store/types.ts";
import { type ParseLimits, parseDeviceMessage, type RefusalReason } from "./contract.ts";

export * from "./contract.ts";

/**
 * Turns a device's publish into a typed bus event. Events are stored (de-duplicated durably by
 * device, seq and ts) before this resolves, and the broker acknowledges the publish only after:
 * an acknowledged press is never lost, and a re-delivered one never counts twice.
 */
export class Ingest {
  constructor(
    private readonly deps: { store: Store; bus: EventBus; clock: Clock; metrics: Metrics; log: Logger },
    private readonly limits: ParseLimits,
  ) {}

  /** Returns the refusal reason, or undefined when the message was accepted (or was a duplicate). */
  async receive(deviceId: string, topic: string, payload: Buffer): Promise<RefusalReason | undefined> {
    const { store, bus, clock, metrics, log } = this.deps;
    const receivedHr = performance.now();
    const receivedAt = clock.now();
    const parsed = parseDeviceMessage(deviceId, topic, payload, receivedAt, this.limits);
    if (!parsed.ok) {
      metrics.messagesRefused.inc({ reason: parsed.reason });
      log.warn({ deviceId, topic, reason: parsed.reason, detail: parsed.detail }, "device message refused");
      return parsed.reason;
    }
    const { value } = parsed;
    metrics.messagesIn.inc({ channel: value.channel });
    if (value.channel === "heartbeat") {
      bus.emit("device.heartbeat", { deviceId, message: value.message, receivedAt });
      return undefined;
    }
    const eventId = await store.deviceEvents.record(deviceId, value.message, receivedAt);
    if (eventId === undefined) {
      metrics.duplicates.inc();
      log.info({ deviceId, seq: value.message.seq }, "duplicate device event dropped");
      return undefined;
    }
    bus.emit("device.event", { deviceId, eventId, message: value.message, receivedAt, receivedHr });
    return undefined;
  }
}
