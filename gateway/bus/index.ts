import type { Logger } from "pino";
import type { Alert, AlertEvent } from "../alerts/model.ts";
import type { DeviceCommand, DeviceEvent, Heartbeat } from "../ingest/contract.ts";
import type { Person } from "../store/types.ts";

/** Every event that crosses module boundaries, with its payload. */
export interface EventMap {
  /** A validated, de-duplicated, stored device event (press, cancel, sos, fall). */
  "device.event": {
    deviceId: string;
    eventId: number;
    message: DeviceEvent;
    receivedAt: number;
    receivedHr: number;
  };
  "device.heartbeat": { deviceId: string; message: Heartbeat; receivedAt: number };
  "device.connected": { deviceId: string };
  "device.disconnected": { deviceId: string };
  /** An alert changed; `events` are the audit events just stored, in order. */
  "alert.changed": { alert: Alert; events: AlertEvent[]; pressReceivedHr?: number };
  /** Escalation reached a level: notify these people. */
  "alert.notify": { alert: Alert; level: number; recipients: Person[]; pressReceivedHr?: number };
  "device.command": { deviceId: string; command: DeviceCommand; pressReceivedHr?: number };
}

type Listener<K extends keyof EventMap> = (payload: EventMap[K]) => void;

/** Synchronous typed event bus. A listener that throws is logged and the others still run. */
export class EventBus {
  private readonly listeners = new Map<keyof EventMap, Set<Listener<never>>>();

  constructor(private readonly log: Logger) {}

  on<K extends keyof EventMap>(event: K, listener: Listener<K>): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener as Listener<never>);
    return () => set.delete(listener as Listener<never>);
  }

  emit<K extends keyof EventMap>(event: K, payload: EventMap[K]): void {
    for (const listener of this.listeners.get(event) ?? []) {
      try {
        (listener as Listener<K>)(payload);
      } catch (err) {
        this.log.error({ err, event }, "event listener failed");
      }
    }
  }
}
