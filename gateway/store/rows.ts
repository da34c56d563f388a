import type { Alert, AlertEvent } from "../alerts/model.ts";
import type { TelemetryPoint } from "./telemetry.ts";
import type {
  Account,
  Assignment,
  CareNotes,
  Contact,
  Device,
  NotificationAttempt,
  Person,
  Role,
} from "./types.ts";

/**
 * Rows as both engines return them, where their columns read alike (text, numbers, nulls): one
 * mapper each, so the two stores cannot drift apart on what a row means.
 */
export type Row = Record<string, unknown>;

/** A JSON column: text in SQLite, already parsed from PostgreSQL's JSONB. */
const json = (v: unknown) => (typeof v === "string" ? JSON.parse(v) : v);
/** A boolean column: 0 or 1 in SQLite, a boolean from PostgreSQL. */
const bool = (v: unknown) => v === true || v === 1;

export const toAlert = (r: Row): Alert => ({
  id: r.id as string,
  kind: r.kind as Alert["kind"],
  deviceId: r.device_id as string,
  subjectId: r.subject_id as string,
  state: r.state as Alert["state"],
  level: r.level as number,
  presses: r.presses as number,
  openedAt: r.opened_at as number,
  acceptedBy: (r.accepted_by as string | null) ?? null,
  acceptedAt: (r.accepted_at as number | null) ?? null,
  closedBy: (r.closed_by as string | null) ?? null,
  closedAt: (r.closed_at as number | null) ?? null,
  outcome: (r.outcome as string | null) ?? null,
  deadlineAt: (r.deadline_at as number | null) ?? null,
  policy: json(r.policy),
  repeats: r.repeats as number,
  reminders: r.reminders as number,
  notified: json(r.notified),
  unreached: bool(r.unreached),
  exhausted: bool(r.exhausted),
  lastActivityAt: r.last_activity_at as number,
});

/** An entry of the audit trail; its stream key is its public id. */
export const toEvent = (r: Row): AlertEvent => ({
  id: r.stream_key as number,
  alertId: r.alert_id as string,
  at: r.at as number,
  type: r.type as AlertEvent["type"],
  actor: (r.actor as string | null) ?? null,
  data: json(r.data),
});

export const toDevice = (r: Row): Device => ({
  id: r.id as string,
  kind: r.kind as Device["kind"],
  ownerId: r.owner_id as string,
  protocol: (r.protocol as Device["protocol"] | undefined) ?? "mqtt",
  createdAt: r.created_at as number,
  revokedAt: (r.revoked_at as number | null) ?? null,
});

export const toAssignment = (r: Row): Assignment => ({
  id: r.id as number,
  residentId: r.resident_id as string,
  personId: r.person_id as string,
  relation: r.relation as Assignment["relation"],
});

export const toContact = (r: Row): Contact => ({
  kind: r.kind as Contact["kind"],
  address: r.address as string,
  alertKinds: (json(r.alert_kinds) as Contact["alertKinds"]) ?? null,
  minLevel: r.min_level as number,
});

/** A person's row with their contacts' rows, in order. */
export const toPerson = (r: Row, contacts: Row[]): Person => ({
  id: r.id as string,
  name: r.name as string,
  role: r.role as Role,
  communityId: r.community_id as string,
  gridId: (r.grid_id as string | null) ?? null,
  phone: (r.phone as string | null) ?? null,
  address: (r.address as string | null) ?? null,
  locale: r.locale as string,
  contacts: contacts.map(toContact),
  category: (r.category as Person["category"]) ?? null,
});

export const toCareNotes = (r: Row): CareNotes => ({
  conditions: r.conditions as string | null,
  medicines: r.medicines as string | null,
  allergies: r.allergies as string | null,
  doorAccess: r.door_access as string | null,
  language: r.language as string | null,
  updatedAt: r.updated_at as number,
  updatedBy: r.updated_by as string,
});

export const toAccount = (r: Row): Account => ({
  username: r.username as string,
  role: r.role as Account["role"],
  personId: (r.person_id as string | null) ?? null,
  createdAt: r.created_at as number,
  disabledAt: (r.disabled_at as number | null) ?? null,
});

export const toAttempt = (r: Row): NotificationAttempt => ({
  id: r.id as number,
  alertId: r.alert_id as string,
  level: r.level as number,
  personId: (r.person_id as string | null) ?? null,
  channel: r.channel as NotificationAttempt["channel"],
  event: r.event as string,
  address: r.address as string,
  attempt: r.attempt as number,
  at: r.at as number,
  status: r.status as NotificationAttempt["status"],
  detail: (r.detail as string | null) ?? null,
});

export function toTelemetryPoint(r: Row): TelemetryPoint {
  const point: TelemetryPoint = {
    deviceId: r.device_id as string,
    ts: r.ts as number,
    receivedAt: r.received_at as number,
    battery: r.battery as number,
    fix: r.fix as TelemetryPoint["fix"],
  };
  if (r.lat !== null) Object.assign(point, { lat: r.lat, lon: r.lon, accuracy: r.accuracy ?? undefined });
  if (r.source !== null) point.source = r.source as string;
  return point;
}
