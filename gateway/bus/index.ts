import type { Logger } from "pino";
import type { FollowUpEvent } from "../alerts/decide.ts";
import type { Alert, AlertEvent, AlertKind } from "../alerts/model.ts";
import type { DeviceCommand, DeviceEvent, Heartbeat } from "../ingest/contract.ts";
import type { DeviceKind, Person } from "../store/types.ts";

export interface AccessChange {
  sessions?: string[];
  usernames?: string[];
  people?: string[];
  communities?: string[];
}

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
  /** A device sent an event again that was stored before (a QoS 1 retry, or no `received` yet). */
  "device.resent": { deviceId: string; message: DeviceEvent; receivedHr: number };
  "device.heartbeat": { deviceId: string; message: Heartbeat; receivedAt: number };
  "device.connected": { deviceId: string };
  "device.disconnected": { deviceId: string };
  /** An alert changed; `events` are the audit events just stored, in order. */
  "alert.changed": { alert: Alert; events: AlertEvent[]; pressReceivedHr?: number };
  /**
   * Tell these people about the alert: `paged` when escalation reached them (level 0: the
   * catch-all), or a follow-up (`accepted`, `resolved`...) to those paged before.
   */
  "alert.notify": {
    alert: Alert;
    level: number;
    event: "paged" | FollowUpEvent;
    recipients: Person[];
    /** The resident or child the alert is about, as the decision read them. */
    subject?: Person;
    pressReceivedHr?: number;
  };
  /**
   * Every message of a level's page failed, on every contact of every recipient: nobody on it
   * will hear of the alert unless they have the dashboard open.
   */
  "alert.page-failed": { alertId: string; deviceId: string; level: number; recipients: string[] };
  "device.registered": { deviceId: string; kind: DeviceKind };
  /** A rule found a condition: open an alert of this kind for the device, unless one is open. */
  "alert.raise": { kind: AlertKind; deviceId: string; data: Record<string, unknown> };
  /** The condition is over: resolve the device's open alert of this kind, as the gateway. */
  "alert.clear": { kind: AlertKind; deviceId: string; note: string };
  "geofences.changed": Record<string, never>;
  /**
   * Who may see what changed, for these sessions (by id hash), accounts, people (and whoever
   * sees them) or communities (their staff): those readers are checked and scoped afresh.
   */
  "access.changed": AccessChange;
  "device.command": { deviceId: string; command: DeviceCommand; pressReceivedHr?: number };
  /** A device is connected and subscribed to its command topic: its outbox can be sent. */
  "device.listening": { deviceId: string };
  /** A device acknowledged (PUBACK) a command: its payload, or null when the broker no longer holds it. */
  "device.acknowledged": { deviceId: string; payload: string | null };
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
