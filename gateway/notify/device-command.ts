import type { Logger } from "pino";
import type { Broker } from "../broker/index.ts";
import type { EventBus } from "../bus/index.ts";
import type { Clock } from "../clock/index.ts";
import { commandTopic } from "../ingest/contract.ts";
import { type Metrics, observePressLatency } from "../metrics.ts";
import type { Store } from "../store/types.ts";

/**
 * Closes the loop to the resident: `received`, `accepted` and `resolved` commands go to the
 * device's command topic at QoS 1. Each is stored as a notification attempt with its result.
 */
export class DeviceCommandNotifier {
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly deps: {
      store: Store;
      bus: EventBus;
      broker: Broker;
      clock: Clock;
      metrics: Metrics;
      log: Logger;
    },
  ) {}

  start(): void {
    const { store, bus, broker, clock, metrics, log } = this.deps;
    this.unsubscribe = bus.on("device.command", ({ deviceId, command, pressReceivedHr }) => {
      const send = async () => {
        // The resident hears back even when the attempt cannot be recorded (database locked or full).
        const attemptId = await store.attempts
          .start({
            alertId: command.alertId,
            level: 0,
            personId: null,
            channel: "device",
            address: commandTopic(deviceId),
            attempt: 1,
            at: clock.now(),
          })
          .catch((err) => {
            log.error({ err, deviceId }, "could not record the device command; sending it anyway");
            return undefined;
          });
        const error = await broker.publishCommand(deviceId, command);
        if (attemptId !== undefined)
          await store.attempts.finish(attemptId, error ? "failed" : "delivered", error ?? command.type);
        metrics.notifications.inc({ channel: "device", result: error ? "failed" : "delivered" });
        if (!error && command.type === "received") observePressLatency(metrics, "device", pressReceivedHr);
      };
      send().catch((err) => log.error({ err, deviceId }, "device command failed"));
    });
  }

  stop(): void {
    this.unsubscribe?.();
  }
}
