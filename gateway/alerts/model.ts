export const alertKinds = ["call", "sos", "fall", "geofence-exit", "device-offline", "low-battery"] as const;
export type AlertKind = (typeof alertKinds)[number];

export const alertStates = ["open", "accepted", "resolved", "cancelled"] as const;
export type AlertState = (typeof alertStates)[number];

export interface Alert {
  id: string;
  kind: AlertKind;
  deviceId: string;
  /** The resident or child the alert is about (the device's owner). */
  subjectId: string;
  state: AlertState;
  /** Escalation level last notified; 0 before the first notification. */
  level: number;
  /** Presses (or alarms) joined into this alert, the first included. */
  presses: number;
  openedAt: number;
  acceptedBy: string | null;
  acceptedAt: number | null;
  closedBy: string | null;
  closedAt: number | null;
  outcome: string | null;
  /** When the current level times out and the next one is notified; null when not escalating. */
  deadlineAt: number | null;
}

export const alertEventTypes = [
  "opened",
  "joined",
  "notified",
  "level-empty",
  "escalation-exhausted",
  "accepted",
  "resolved",
  "cancelled",
] as const;
export type AlertEventType = (typeof alertEventTypes)[number];

/** One audit-trail entry. Append-only; `id` orders the whole trail and is the live stream's event id. */
export interface AlertEvent {
  id: number;
  alertId: string;
  at: number;
  type: AlertEventType;
  actor: string | null;
  data: Record<string, unknown>;
}

export type NewAlertEvent = Omit<AlertEvent, "id" | "alertId">;
