import { type Alert, type AlertKind, emergencyKinds } from "../../gateway/alerts/model.ts";

/** Which list an alert belongs in: people in danger, or devices needing care. */
export type Lane = "urgent" | "health";
export const laneOf = (kind: AlertKind): Lane =>
  kind === "device-offline" || kind === "low-battery" ? "health" : "urgent";

/** SOS, then fall, then call (the gateway's own order), then a tag out of its zone, then device health. */
export function severity(kind: AlertKind): number {
  const emergency = (emergencyKinds as readonly AlertKind[]).indexOf(kind);
  if (emergency >= 0) return 2 + emergency;
  return kind === "geofence-exit" ? 1 : 0;
}

export const isActive = (a: Alert) => a.state === "open" || a.state === "accepted";

/**
 * Active alerts: the most severe first, then the one waiting longest, then the higher level.
 * Closed ones: the most recently closed first.
 */
export function triageOrder(a: Alert, b: Alert): number {
  if (isActive(a) && isActive(b))
    return severity(b.kind) - severity(a.kind) || a.openedAt - b.openedAt || b.level - a.level;
  return (b.closedAt ?? b.openedAt) - (a.closedAt ?? a.openedAt);
}

/** What happens at the alert's deadline, and to whom: the card counts down to it. */
export type Due =
  | { what: "next"; roles: string[] }
  | { what: "repeat"; roles: string[] }
  | { what: "remind" }
  | { what: "reopen" };

export function dueAt(a: Alert): { at: number; due: Due } | null {
  if (a.deadlineAt === null) return null;
  const levels = a.policy.levels;
  if (a.state === "accepted")
    return { at: a.deadlineAt, due: { what: a.reminders === 0 ? "remind" : "reopen" } };
  if (a.state !== "open") return null;
  // `level` is the level paged last (1-based): the next one is levels[level], if any.
  const next = levels[a.level];
  if (next) return { at: a.deadlineAt, due: { what: "next", roles: next.notify } };
  const last = levels.at(-1);
  return last && a.policy.repeatLast
    ? { at: a.deadlineAt, due: { what: "repeat", roles: last.notify } }
    : null;
}

/** "0:42", "12:05", "1:00:00"; never negative (a deadline just past is being handled). */
export function formatCountdown(ms: number): string {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}
