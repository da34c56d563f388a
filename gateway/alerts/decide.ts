import { Errors } from "../errors.ts";
import type { Role } from "../store/types.ts";
import {
  type Alert,
  type AlertKind,
  type AlertState,
  emergencyKinds,
  isEmergency,
  type NewAlertEvent,
} from "./model.ts";
import type { EscalationPolicies } from "./policy.ts";

/** Who acts on an alert: a responder as the person their account is, or the gateway itself. */
export interface Actor {
  id: string;
  name: string;
  role: Role | "gateway";
}

/** Someone holding a role for the alert's subject, and whether any channel reaches them now. */
export interface Responder {
  id: string;
  reachable: boolean;
  /** The lowest level their contacts are for (a phone call from level 2, say); 1 when absent. */
  reachableFrom?: number;
}

const reaches = (r: Responder, level: number) => r.reachable && level >= (r.reachableFrom ?? 1);

/** Who could be paged for an alert, worked out by the caller before deciding. */
export interface Audience {
  byRole: Partial<Record<Role, Responder[]>>;
  /** Community staff who can be reached, else admins: paged when no level reaches anyone, or nobody accepts. */
  catchAll: string[];
}

export interface DecideContext {
  /** The policies in force now: used for a new alert or an upgrade only; others keep their own. */
  policies: EscalationPolicies;
  audience: Audience;
}

/** What can happen to an alert. */
export type AlertInput =
  /** A press, SOS, fall, or a rule's finding: opens an alert, or joins (or upgrades) the active one. */
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
  /** The alert's deadline came. */
  | { type: "deadline" }
  /** Every message of this level's page failed: the next level need not wait for the deadline. */
  | { type: "level-failed"; level: number }
  | { type: "accept"; by: Actor }
  | { type: "resolve"; by: Actor; note: string }
  | { type: "false-alarm"; by: Actor }
  /** The resident's long press on the device. */
  | { type: "resident-cancel" }
  /** A press long after the alert's last activity opened `by` instead: this one is closed. */
  | { type: "supersede"; by: string };

/** What those already paged hear when the alert moves on (the last three: the accepter only). */
export type FollowUpEvent =
  | "accepted"
  | "reopened"
  | "upgraded"
  | "resolved"
  | "cancelled"
  | "reminder"
  | "pressed-again"
  | "resident-ok";

/** Fixed phrases the device may hear (see notify/phrases.ts); never free text. */
export type DevicePhrase = "received" | "accepted" | "resolved" | "cancelled";

export type Effect =
  /** Page these people; level 0 is the catch-all. */
  | { type: "page"; level: number; recipients: string[]; repeat: boolean }
  | { type: "follow-up"; event: FollowUpEvent; recipients: string[] }
  /** A command to the device that raised the alert. */
  | { type: "device"; command: "received" | "accepted" | "resolved"; phrase: DevicePhrase; name?: string };

export interface Decision {
  next: Alert;
  events: NewAlertEvent[];
  effects: Effect[];
}

export const isActive = (a: Alert) => a.state === "open" || a.state === "accepted";

const severity = (kind: AlertKind) => (emergencyKinds as readonly AlertKind[]).indexOf(kind);

/** A press this long after the active alert's last activity opens a new alert instead of joining. */
export const isStale = (alert: Alert, now: number, quietPeriodMs: number) =>
  now - alert.lastActivityAt >= quietPeriodMs;

/**
 * Who may act, one rule (documented in the README):
 *  - accept: any responder who sees the alert, at any level (help that comes early is welcome);
 *  - resolve: the accepter, community staff and grid workers, and, while nobody has accepted,
 *    the resident's doctor (who may have settled it by phone); the family accepts first;
 *  - false alarm: the accepter, the resident's doctor, community staff and grid workers;
 *  - the gateway resolves what its own rules raised, when the condition clears.
 */
export function mayAct(action: "resolve" | "false-alarm", alert: Alert, by: Actor): string | undefined {
  if (by.role === "gateway" || by.id === alert.acceptedBy) return undefined;
  if (by.role === "staff" || by.role === "grid-worker") return undefined;
  if (by.role === "doctor" && (action === "false-alarm" || alert.state === "open")) return undefined;
  return alert.state === "open"
    ? "accept the alert first; only its accepter, the doctor or community staff may close it"
    : `only ${alert.acceptedBy}, who accepted it, or community staff may close it`;
}

/**
 * The alert life cycle and escalation, as a pure function: no clock, no I/O. The caller stores
 * `next` and `events` in one transaction, then carries out `effects`. Throws a GatewayError when
 * the input is not allowed in the alert's state (accepting a resolved alert, say).
 */
export function decide(
  alert: Alert | undefined,
  input: AlertInput,
  now: number,
  ctx: DecideContext,
): Decision {
  if (input.type === "trigger") {
    if (!alert || !isActive(alert)) return open(input, now, ctx);
    const d = new Draft(alert, now);
    if (isEmergency(input.kind) && severity(input.kind) > severity(alert.kind)) upgrade(d, input, ctx);
    else join(d, input, ctx);
    return d;
  }
  if (!alert) throw Errors.invalid(`'${input.type}' needs an existing alert`);
  const d = new Draft(alert, now);
  switch (input.type) {
    case "deadline":
      deadline(d, ctx);
      break;
    case "level-failed":
      // Only the level still being waited on: not one passed meanwhile, nor the repeats after the last.
      if (
        alert.state === "open" &&
        alert.level === input.level &&
        alert.deadlineAt !== null &&
        alert.repeats === 0
      ) {
        d.event("level-failed", null, { level: input.level });
        escalate(d, alert.level, ctx);
      }
      break;
    case "accept":
      accept(d, input.by);
      break;
    case "resolve": {
      const refused = mayAct("resolve", alert, input.by);
      if (refused && isActive(alert)) throw Errors.forbidden(refused);
      close(d, "resolved", input.by.id, input.note, { note: input.note });
      break;
    }
    case "false-alarm": {
      const refused = mayAct("false-alarm", alert, input.by);
      if (refused && isActive(alert)) throw Errors.forbidden(refused);
      close(d, "cancelled", input.by.id, "false alarm", { reason: "false-alarm" });
      break;
    }
    case "resident-cancel":
      if (alert.state === "accepted") {
        // The accepter may be on the way: the resident's word is passed on, the decision stays theirs.
        d.event("resident-ok", alert.deviceId, {});
        d.followUp("resident-ok", [alert.acceptedBy ?? ""]);
        d.next.lastActivityAt = now;
      } else close(d, "cancelled", alert.deviceId, "cancelled by the resident", { reason: "device" });
      break;
    case "supersede":
      close(d, "cancelled", null, "superseded by a new call after a quiet period", {
        reason: "superseded",
        by: input.by,
      });
      break;
  }
  return d;
}

/** A decision being built: the alert as it will be, the events to store, the effects to carry out. */
class Draft implements Decision {
  next: Alert;
  events: NewAlertEvent[] = [];
  effects: Effect[] = [];

  constructor(
    alert: Alert,
    readonly now: number,
  ) {
    this.next = { ...alert };
  }

  event(type: NewAlertEvent["type"], actor: string | null, data: Record<string, unknown>): void {
    this.events.push({ at: this.now, type, actor, data });
  }

  followUp(event: FollowUpEvent, recipients: string[]): void {
    const to = recipients.filter(Boolean);
    if (to.length > 0) this.effects.push({ type: "follow-up", event, recipients: to });
  }

  /** Commands go only to the device that raised the alert: a press, an SOS or a fall. */
  device(command: "received" | "accepted" | "resolved", phrase: DevicePhrase, name?: string): void {
    if (isEmergency(this.next.kind)) this.effects.push({ type: "device", command, phrase, name });
  }
}

function open(input: Extract<AlertInput, { type: "trigger" }>, now: number, ctx: DecideContext): Decision {
  const d = new Draft(
    {
      id: input.alertId,
      kind: input.kind,
      deviceId: input.deviceId,
      subjectId: input.subjectId,
      state: "open",
      level: 0,
      presses: 1,
      openedAt: now,
      acceptedBy: null,
      acceptedAt: null,
      closedBy: null,
      closedAt: null,
      outcome: null,
      deadlineAt: null,
      policy: ctx.policies[input.kind],
      repeats: 0,
      reminders: 0,
      notified: [],
      unreached: false,
      exhausted: false,
      lastActivityAt: now,
    },
    now,
  );
  d.event("opened", input.deviceId, { kind: input.kind, seq: input.seq, ...input.data });
  d.device("received", "received");
  escalate(d, 0, ctx);
  return d;
}

function join(d: Draft, input: Extract<AlertInput, { type: "trigger" }>, ctx: DecideContext): void {
  const { next } = d;
  next.presses++;
  next.lastActivityAt = d.now;
  d.event("joined", input.deviceId, { presses: next.presses, seq: input.seq, kind: input.kind });
  d.device("received", "received");
  if (next.state === "accepted") d.followUp("pressed-again", [next.acceptedBy ?? ""]);
  else if (next.exhausted) {
    // Paging had stopped; a new press starts the repeats again, now.
    next.exhausted = false;
    next.repeats = 0;
    afterLastLevel(d, ctx);
  }
}

/** An SOS or fall during a call: the same emergency, now graver; its own policy from level 1. */
function upgrade(d: Draft, input: Extract<AlertInput, { type: "trigger" }>, ctx: DecideContext): void {
  const { next } = d;
  const from = next.kind;
  const alreadyPaged = new Set(next.notified);
  Object.assign(next, {
    kind: input.kind,
    policy: ctx.policies[input.kind],
    presses: next.presses + 1,
    lastActivityAt: d.now,
    repeats: 0,
    exhausted: false,
    unreached: false,
  });
  d.event("upgraded", input.deviceId, { from, to: input.kind, seq: input.seq, ...input.data });
  d.device("received", "received");
  d.followUp("upgraded", next.notified);
  if (next.state === "accepted") {
    // Should it re-open, escalation goes on within the new policy's levels.
    next.level = Math.min(next.level, next.policy.levels.length);
    next.reminders = 0;
    next.deadlineAt = d.now + next.policy.resolveWithinSec * 1000;
  } else escalate(d, 0, ctx, alreadyPaged);
}

function deadline(d: Draft, ctx: DecideContext): void {
  const { next } = d;
  // Closed or exhausted meanwhile (a race with an accept, say): nothing is due.
  if (next.deadlineAt === null || !isActive(next)) return;
  if (next.state === "open") {
    if (next.repeats > 0 || next.unreached) afterLastLevel(d, ctx);
    else escalate(d, next.level, ctx);
    return;
  }
  const accepter = next.acceptedBy ?? "";
  if (next.reminders === 0) {
    next.reminders = 1;
    next.deadlineAt = d.now + next.policy.resolveWithinSec * 1000;
    d.event("reminder", null, { to: accepter });
    d.followUp("reminder", [accepter]);
    return;
  }
  const minutes = Math.round((2 * next.policy.resolveWithinSec) / 60);
  d.event("reopened", null, {
    acceptedBy: accepter,
    reason: `not resolved within ${minutes} min of accepting`,
  });
  d.followUp("reopened", next.notified);
  Object.assign(next, { state: "open", acceptedBy: null, acceptedAt: null, reminders: 0, repeats: 0 });
  escalate(d, next.level, ctx);
}

/** Responders of one level: everyone holding its roles, once each. */
function levelAudience(d: Draft, level: number, ctx: DecideContext): Responder[] {
  const found = new Map<string, Responder>();
  for (const role of d.next.policy.levels[level - 1]?.notify ?? [])
    for (const r of ctx.audience.byRole[role] ?? []) found.set(r.id, r);
  return [...found.values()];
}

/** Pages a level (0: the catch-all), skipping those told already; records who was paged. */
function page(
  d: Draft,
  level: number,
  ctx: DecideContext,
  repeat: boolean,
  skip?: ReadonlySet<string>,
): void {
  const everyone = level === 0 ? ctx.audience.catchAll : levelAudience(d, level, ctx).map((r) => r.id);
  const recipients = everyone.filter((id) => !skip?.has(id));
  d.event("notified", null, {
    level,
    roles: level === 0 ? ["catch-all"] : d.next.policy.levels[level - 1]?.notify,
    recipients,
    repeat,
  });
  if (recipients.length > 0) d.effects.push({ type: "page", level, recipients, repeat });
  d.next.notified = [...new Set([...d.next.notified, ...recipients])];
}

/** A level's time to accept; beyond the last level (the catch-all), the last level's. */
function acceptWithinMs(d: Draft, level: number): number {
  const { levels } = d.next.policy;
  return (levels[Math.min(level, levels.length) - 1]?.acceptWithinSec ?? 0) * 1000;
}

/**
 * Walks on from level `from` to the next level that reaches someone, and waits there. A level
 * nobody can be reached on is skipped at once (its people are still paged, in case a channel
 * thought broken works). Past the last level: repeats, the catch-all, or the end.
 */
function escalate(d: Draft, from: number, ctx: DecideContext, skip?: ReadonlySet<string>): void {
  const { policy } = d.next;
  for (let level = from + 1; level <= policy.levels.length; level++) {
    const here = levelAudience(d, level, ctx);
    d.next.level = level;
    if (here.some((r) => reaches(r, level))) {
      page(d, level, ctx, false, skip);
      d.next.deadlineAt = d.now + acceptWithinMs(d, level);
      return;
    }
    d.event("level-empty", null, { level, recipients: here.map((r) => r.id) });
    if (here.length > 0) page(d, level, ctx, false, skip);
  }
  afterLastLevel(d, ctx);
}

/**
 * After the last level: page again the last level that reaches someone (the catch-all if none
 * does, marking the alert unreached) until the policy's repeats run out; then page the catch-all
 * one last time and stop, `exhausted`, the alert still open and red.
 */
function afterLastLevel(d: Draft, ctx: DecideContext): void {
  const { next } = d;
  const { policy } = next;
  let target = 0;
  for (let level = policy.levels.length; level >= 1 && target === 0; level--)
    if (levelAudience(d, level, ctx).some((r) => reaches(r, level))) target = level;
  if (target === 0 && !next.unreached) {
    next.unreached = true;
    d.event("unreached", null, { catchAll: ctx.audience.catchAll });
    page(d, 0, ctx, false);
    next.deadlineAt = d.now + acceptWithinMs(d, policy.levels.length);
    return;
  }
  if (policy.repeatLast && next.repeats < policy.maxRepeats) {
    next.repeats++;
    if (target > 0) next.level = target;
    page(d, target, ctx, true);
    next.deadlineAt = d.now + acceptWithinMs(d, target || policy.levels.length);
    return;
  }
  next.exhausted = true;
  next.deadlineAt = null;
  d.event("escalation-exhausted", null, { level: next.level, repeats: next.repeats });
  page(d, 0, ctx, false);
}

function accept(d: Draft, by: Actor): void {
  const { next } = d;
  if (next.state === "accepted") {
    if (next.acceptedBy === by.id) return;
    throw Errors.alreadyAccepted(next.id, next.acceptedBy ?? "someone");
  }
  if (next.state !== "open") throw Errors.alertClosed(next.id, next.state);
  Object.assign(next, {
    state: "accepted",
    acceptedBy: by.id,
    acceptedAt: d.now,
    deadlineAt: d.now + next.policy.resolveWithinSec * 1000,
    reminders: 0,
    exhausted: false,
    lastActivityAt: d.now,
  });
  d.event("accepted", by.id, { name: by.name });
  d.device("accepted", "accepted", by.name);
  d.followUp(
    "accepted",
    next.notified.filter((id) => id !== by.id),
  );
}

function close(
  d: Draft,
  state: Extract<AlertState, "resolved" | "cancelled">,
  by: string | null,
  outcome: string,
  data: Record<string, unknown>,
): void {
  const { next } = d;
  if (!isActive(next)) throw Errors.alertClosed(next.id, next.state);
  Object.assign(next, { state, closedBy: by, closedAt: d.now, outcome, deadlineAt: null });
  d.event(state, by, data);
  if (data.reason !== "superseded") d.device("resolved", state === "resolved" ? "resolved" : "cancelled");
  d.followUp(
    state,
    next.notified.filter((id) => id !== by),
  );
}
