import type { EscalationPolicy } from "./policy.ts";

export const alertKinds = ["call", "sos", "fall", "geofence-exit", "device-offline", "low-battery"] as const;
export type AlertKind = (typeof alertKinds)[number];

/**
 * Emergencies a device raises itself, by severity: one device has at most one of them active, at
 * the highest severity reported. Only these send commands back to the device.
 */
export const emergencyKinds = ["call", "fall", "sos"] as const satisfies readonly AlertKind[];
export type EmergencyKind = (typeof emergencyKinds)[number];
export const isEmergency = (kind: AlertKind): kind is EmergencyKind =>
  (emergencyKinds as readonly AlertKind[]).includes(kind);

export const alertStates = ["open", "accepted", "resolved", "cancelled"] as const;
export type AlertState = (typeof alertStates)[number];

export interface Alert {
  id: string;
  kind: AlertKind;
  deviceId: string;
  /** The resident or child the alert is about (the device's owner). */
  subjectId: string;
  state: AlertState;
  /** Escalation level last paged; 0 before the first. */
  level: number;
  /** Presses (or alarms) joined into this alert, the first included. */
  presses: number;
  openedAt: number;
  acceptedBy: string | null;
  acceptedAt: number | null;
  closedBy: string | null;
  closedAt: number | null;
  outcome: string | null;
  /**
   * The one thing due next: while open, when the level times out and the next is paged; while
   * accepted, when the accepter is reminded or the alert re-opens. Null once closed or exhausted.
   */
  deadlineAt: number | null;
  /** The policy in force when the alert opened (or was upgraded): later changes apply to new alerts only. */
  policy: EscalationPolicy;
  /** Times the last level reached was paged again. */
  repeats: number;
  /** Reminders sent to the accepter since the alert was accepted. */
  reminders: number;
  /** Everyone paged so far: each hears how it ends. */
  notified: string[];
  /** No level could reach anyone: the catch-all (community staff, then admins) was paged. */
  unreached: boolean;
  /** Repeats ran out and nobody accepted: the catch-all was paged and paging stopped. */
  exhausted: boolean;
  /** Last press, accept or word from the resident: after a quiet period a new press opens a new alert. */
  lastActivityAt: number;
}

export const alertEventTypes = [
  "opened",
  "joined",
  "upgraded",
  "notified",
  "level-empty",
  "level-failed",
  "unreached",
  "escalation-exhausted",
  "accepted",
  "reminder",
  "reopened",
  "resident-ok",
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
