import type { TelemetryPoint } from "./telemetry.ts";
import type { Account, Assignment, CareNotes, Device, NotificationAttempt } from "./types.ts";

/**
 * Rows as both engines return them, where their columns read alike (text, numbers, nulls): one
 * mapper each, so the two stores cannot drift apart on what a row means.
 */
export type Row = Record<string, unknown>;

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
