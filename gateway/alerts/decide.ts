import { Errors } from "../errors.ts";
import type { DeviceCommand } from "../ingest/contract.ts";
import type { Role } from "../store/types.ts";
import type { Alert, AlertKind, NewAlertEvent } from "./model.ts";
import type { EscalationPolicy } from "./policy.ts";

/** What can happen to an alert. */
export type AlertInput =
  /** A press, SOS or fall: opens an alert, or joins the one already open. */
  | {
      type: "trigger";
      alertId: string;
      kind: AlertKind;
      deviceId: string;
      subjectId: string;
      seq?: number;
      /** What the alert should carry: last position, the zone left, battery level... */
      data?: Record<string, unknown>;
    }
  /** The current level's time to accept ran out. */
  | { type: "deadline" }
  /** The current level had nobody to notify: go on at once instead of waiting. */
  | { type: "level-empty" }
  | { type: "accept"; by: string; byName: string }
  | { type: "resolve"; by: string; note: string }
  | { type: "cancel"; by: string; reason: "device" | "false-alarm" };

export type Effect =
  | { type: "notify"; level: number; roles: Role[] }
  | { type: "command"; deviceId: string; command: DeviceCommand };

export interface Decision {
  next: Alert;
  events: NewAlertEvent[];
  effects: Effect[];
}

const isActive = (a: Alert) => a.state === "open" || a.state === "accepted";

/**
 * The alert life cycle and escalation, as a pure function: no clock, no I/O. The caller stores
 * `next` and `events` in one transaction, then carries out `effects`. Throws a GatewayError when
 * the input is not allowed in the alert's state (accepting a resolved alert, say).
 */
export function decide(
  alert: Alert | undefined,
  input: AlertInput,
  now: number,
  policy: EscalationPolicy,
): Decision {
  if (input.type === "trigger") {
    if (alert && isActive(alert)) return join(alert, input, now);
    return open(input, now, policy);
  }
  if (!alert) throw Errors.invalid(`'${input.type}' needs an existing alert`);
  switch (input.type) {
    case "deadline":
    case "level-empty":
      return escalate(alert, now, policy, input.type);
    case "accept":
      return accept(alert, input, now);
    case "resolve":
      return close(alert, "resolved", input.by, input.note, now, { note: input.note });
    case "cancel":
      return close(
        alert,
        "cancelled",
        input.by,
        input.reason === "device" ? "cancelled by the resident" : "false alarm",
        now,
        {
          reason: input.reason,
        },
      );
  }
}

function open(
  input: Extract<AlertInput, { type: "trigger" }>,
  now: number,
  policy: EscalationPolicy,
): Decision {
  const first = policy.levels[0];
  if (!first) throw Errors.invalid("escalation policy has no levels");
  const next: Alert = {
    id: input.alertId,
    kind: input.kind,
    deviceId: input.deviceId,
    subjectId: input.subjectId,
    state: "open",
    level: 1,
    presses: 1,
    openedAt: now,
    acceptedBy: null,
    acceptedAt: null,
    closedBy: null,
    closedAt: null,
    outcome: null,
    deadlineAt: now + first.acceptWithinSec * 1000,
  };
  return {
    next,
    events: [
      {
        at: now,
        type: "opened",
        actor: input.deviceId,
        data: { kind: input.kind, seq: input.seq, ...input.data },
      },
      { at: now, type: "notified", actor: null, data: { level: 1, roles: first.notify } },
    ],
    effects: [
      { type: "command", deviceId: input.deviceId, command: { type: "received", alertId: next.id } },
      { type: "notify", level: 1, roles: first.notify },
    ],
  };
}

function join(alert: Alert, input: Extract<AlertInput, { type: "trigger" }>, now: number): Decision {
  const next = { ...alert, presses: alert.presses + 1 };
  return {
    next,
    events: [
      { at: now, type: "joined", actor: input.deviceId, data: { presses: next.presses, seq: input.seq } },
    ],
    effects: [
      { type: "command", deviceId: alert.deviceId, command: { type: "received", alertId: alert.id } },
    ],
  };
}

function escalate(
  alert: Alert,
  now: number,
  policy: EscalationPolicy,
  cause: "deadline" | "level-empty",
): Decision {
  // A deadline that fires after acceptance (a race with the accept call) changes nothing.
  if (alert.state !== "open") return { next: { ...alert, deadlineAt: null }, events: [], effects: [] };
  const events: NewAlertEvent[] =
    cause === "level-empty"
      ? [{ at: now, type: "level-empty", actor: null, data: { level: alert.level } }]
      : [];
  const isLast = alert.level >= policy.levels.length;
  if (isLast && !policy.repeatLast) {
    return {
      next: { ...alert, deadlineAt: null },
      events: [
        ...events,
        { at: now, type: "escalation-exhausted", actor: null, data: { level: alert.level } },
      ],
      effects: [],
    };
  }
  const level = isLast ? alert.level : alert.level + 1;
  const step = policy.levels[level - 1];
  if (!step) throw Errors.invalid(`escalation policy has no level ${level}`);
  return {
    next: { ...alert, level, deadlineAt: now + step.acceptWithinSec * 1000 },
    events: [
      ...events,
      { at: now, type: "notified", actor: null, data: { level, roles: step.notify, repeat: isLast } },
    ],
    effects: [{ type: "notify", level, roles: step.notify }],
  };
}

function accept(alert: Alert, input: Extract<AlertInput, { type: "accept" }>, now: number): Decision {
  if (alert.state === "accepted") {
    if (alert.acceptedBy === input.by) return { next: alert, events: [], effects: [] };
    throw Errors.alreadyAccepted(alert.id, alert.acceptedBy ?? "someone");
  }
  if (alert.state !== "open") throw Errors.alertClosed(alert.id, alert.state);
  return {
    next: { ...alert, state: "accepted", acceptedBy: input.by, acceptedAt: now, deadlineAt: null },
    events: [{ at: now, type: "accepted", actor: input.by, data: { name: input.byName } }],
    effects: [
      {
        type: "command",
        deviceId: alert.deviceId,
        command: { type: "accepted", alertId: alert.id, message: `${input.byName} accepted your call` },
      },
    ],
  };
}

function close(
  alert: Alert,
  state: "resolved" | "cancelled",
  by: string,
  outcome: string,
  now: number,
  data: Record<string, unknown>,
): Decision {
  if (!isActive(alert)) throw Errors.alertClosed(alert.id, alert.state);
  return {
    next: { ...alert, state, closedBy: by, closedAt: now, outcome, deadlineAt: null },
    events: [{ at: now, type: state, actor: by, data }],
    effects: [
      {
        type: "command",
        deviceId: alert.deviceId,
        command: { type: "resolved", alertId: alert.id, message: outcome },
      },
    ],
  };
}
