import { type Alert, type AlertEvent, type AlertKind, alertKinds } from "../../gateway/alerts/model.ts";
import type { MonthlyReport } from "../../gateway/reports/monthly.ts";
import type { Geofence } from "../../gateway/rules/geofence.ts";
import type {
  Account,
  AuditEntry,
  Contact as ChannelContact,
  ChannelKind,
  ContactKind,
  Device,
  DeviceState,
  NotificationAttempt,
  Person,
  Relation,
} from "../../gateway/store/types.ts";

export type {
  Account,
  Alert,
  AlertEvent,
  AlertKind,
  AuditEntry,
  ChannelContact,
  ChannelKind,
  ContactKind,
  Device,
  DeviceState,
  Geofence,
  MonthlyReport,
  NotificationAttempt,
  Person,
};
export { alertKinds };
/** A resident's care notes as the gateway answers them: every field null until someone writes them. */
export interface CareNotes {
  conditions: string | null;
  medicines: string | null;
  allergies: string | null;
  doorAccess: string | null;
  language: string | null;
  updatedAt: number | null;
  updatedBy: string | null;
}
export const careFields = ["conditions", "medicines", "allergies", "doorAccess", "language"] as const;
export type CareField = (typeof careFields)[number];
export type PersonInput = Omit<Person, "id" | "contacts"> & { contacts?: Person["contacts"] };
export interface Assignment {
  id: number;
  residentId: string;
  personId: string;
  relation: Relation;
}
export type DeviceView = Device & { connected: boolean; state: DeviceState | null };
/** Someone to phone about an alert: the subject's doctor or family. */
export interface Contact {
  personId: string;
  relation: string;
  name: string;
  phone: string | null;
}
export type AlertDetail = Alert & {
  events: AlertEvent[];
  attempts: NotificationAttempt[];
  contacts: Contact[];
};
export interface TrackPoint {
  ts: number;
  battery: number;
  lat?: number;
  lon?: number;
  accuracy?: number;
  fix: string;
}
export interface UiConfig {
  tileUrl: string | null;
  tileAttribution: string;
  /** The deepest zoom the tiles have; the map zooms further by enlarging them. */
  tileMaxZoom: number;
  center: [number, number];
  /** The gateway's wall clock (REPORT_TIME_ZONE): a safe zone's hours are set in it. */
  timeZone: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface SessionInfo {
  account: { username: string; role: "admin" | "staff" | "doctor" | "family" };
  person: Person | null;
  csrfToken: string;
  expiresAt: number;
}

/** Echoed on every state-changing request: the server refuses them without it (CSRF). */
let csrfToken = "";
/** Called when the server says the session is gone (expired, signed out elsewhere, disabled). */
let onSignedOut: () => void = () => undefined;
export const whenSignedOut = (handler: () => void) => {
  onSignedOut = handler;
};

/**
 * How far the gateway's clock is ahead of this device's: deadlines and times come in the
 * gateway's time, and a phone's clock may be minutes off. Under 2 s counts as none (the Date
 * header has whole seconds).
 */
let clockOffsetMs = 0;
export const gatewayNow = () => Date.now() + clockOffsetMs;

async function request<T>(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ data: T; headers: Headers }> {
  const headers: Record<string, string> = { "x-csrf-token": csrfToken };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const date = Date.parse(res.headers.get("date") ?? "");
  if (!Number.isNaN(date)) {
    const offset = date - Date.now();
    clockOffsetMs = Math.abs(offset) > 2000 ? offset : 0;
  }
  const text = await res.text();
  const json = text ? JSON.parse(text) : undefined;
  // The session is gone; a wrong password (changing one's own) is not that.
  if (res.status === 401 && json?.error?.code === "unauthenticated") onSignedOut();
  if (!res.ok)
    throw new ApiError(res.status, json?.error?.code ?? "error", json?.error?.message ?? res.statusText);
  return { data: json as T, headers: res.headers };
}

const signedIn = (info: SessionInfo) => {
  csrfToken = info.csrfToken;
  return info;
};

export const api = {
  session: async () => signedIn((await request<SessionInfo>("GET", "/api/session")).data),
  signIn: async (username: string, password: string) =>
    signedIn((await request<SessionInfo>("POST", "/api/session", { username, password })).data),
  signOut: () => request<void>("DELETE", "/api/session"),
  config: async () => (await request<UiConfig>("GET", "/api/ui-config")).data,
  /** The alerts, and the stream position they are current to. */
  alerts: async () => {
    const { data, headers } = await request<Alert[]>("GET", "/api/alerts?limit=500");
    return { alerts: data, lastEventId: Number(headers.get("x-last-event-id") ?? 0) };
  },
  alert: async (id: string) =>
    (await request<AlertDetail>("GET", `/api/alerts/${encodeURIComponent(id)}`)).data,
  accept: (id: string) => request<Alert>("POST", `/api/alerts/${encodeURIComponent(id)}/accept`, {}),
  resolve: (id: string, note: string) =>
    request<Alert>("POST", `/api/alerts/${encodeURIComponent(id)}/resolve`, { note }),
  cancel: (id: string, reason: string) =>
    request<Alert>("POST", `/api/alerts/${encodeURIComponent(id)}/cancel`, { reason }),
  people: async () => (await request<Person[]>("GET", "/api/people")).data,
  grids: async () =>
    (await request<{ id: string; communityId: string; name: string }[]>("GET", "/api/grids")).data,
  assignments: async (residentId: string) =>
    (await request<Assignment[]>("GET", `/api/assignments?residentId=${encodeURIComponent(residentId)}`))
      .data,
  channels: async () =>
    (await request<{ kind: ChannelKind; configured: boolean }[]>("GET", "/api/channels")).data,
  /** A person's ways to be reached, in order of preference. */
  contacts: async (personId: string) =>
    (
      await request<{ contacts: ChannelContact[] }>(
        "GET",
        `/api/people/${encodeURIComponent(personId)}/contacts`,
      )
    ).data.contacts,
  setContacts: async (personId: string, contacts: ChannelContact[]) =>
    (
      await request<{ contacts: ChannelContact[] }>(
        "PUT",
        `/api/people/${encodeURIComponent(personId)}/contacts`,
        { contacts },
      )
    ).data.contacts,
  devices: async () => (await request<DeviceView[]>("GET", "/api/devices")).data,
  registerDevice: async (body: { id: string; kind: string; ownerId: string; protocol: string }) =>
    (await request<{ id: string; secret?: string }>("POST", "/api/devices", body)).data,
  pushKey: async () => (await request<{ publicKey: string }>("GET", "/api/push/key")).data.publicKey,
  /** Opts this browser in to Web Push (the subscription's JSON, as the browser gives it). */
  pushSubscribe: (subscription: PushSubscriptionJSON) =>
    request<void>("POST", "/api/push/subscriptions", subscription),
  pushUnsubscribe: (endpoint: string) => request<void>("DELETE", "/api/push/subscriptions", { endpoint }),
  geofences: async () => (await request<Geofence[]>("GET", "/api/geofences")).data,
  /** Creates a zone (no id: the gateway names it) or replaces the one with the id. */
  saveGeofence: async ({ id, ...zone }: Omit<Geofence, "id"> & { id?: string }) =>
    id === undefined
      ? (await request<Geofence>("POST", "/api/geofences", zone)).data
      : (await request<Geofence>("PUT", `/api/geofences/${encodeURIComponent(id)}`, zone)).data,
  removeGeofence: (id: string) => request<void>("DELETE", `/api/geofences/${encodeURIComponent(id)}`),
  track: async (deviceId: string, from: number, to: number) =>
    (
      await request<TrackPoint[]>(
        "GET",
        `/api/devices/${encodeURIComponent(deviceId)}/track?from=${from}&to=${to}`,
      )
    ).data,
  // Reports: the communities a viewer may ask about, and one's month (this month when none named).
  communities: async () => (await request<{ id: string; name: string }[]>("GET", "/api/communities")).data,
  monthlyReport: async (community: string, month?: string) =>
    (
      await request<MonthlyReport & { community: { id: string; name: string }; gridId: string | null }>(
        "GET",
        `/api/reports/monthly?${reportQuery(community, month)}`,
      )
    ).data,
  // People, care notes and device management (the People and Devices views).
  createPerson: async (body: PersonInput) => (await request<Person>("POST", "/api/people", body)).data,
  updatePerson: async (id: string, body: Partial<PersonInput>) =>
    (await request<Person>("PATCH", `/api/people/${encodeURIComponent(id)}`, body)).data,
  assign: async (body: Omit<Assignment, "id">) =>
    (await request<Assignment>("POST", "/api/assignments", body)).data,
  unassign: (id: number) => request<void>("DELETE", `/api/assignments/${id}`),
  care: async (personId: string) =>
    (await request<CareNotes>("GET", `/api/people/${encodeURIComponent(personId)}/care`)).data,
  setCare: async (personId: string, notes: Record<CareField, string>) =>
    (await request<CareNotes>("PUT", `/api/people/${encodeURIComponent(personId)}/care`, notes)).data,
  setDeviceOwner: async (id: string, ownerId: string) =>
    (await request<DeviceView>("PATCH", `/api/devices/${encodeURIComponent(id)}`, { ownerId })).data,
  rotateSecret: async (id: string) =>
    (await request<{ id: string; secret?: string }>("POST", `/api/devices/${encodeURIComponent(id)}/secret`))
      .data,
  revokeDevice: async (id: string) =>
    (await request<DeviceView>("POST", `/api/devices/${encodeURIComponent(id)}/revoke`)).data,
  // Accounts and the access log (the Accounts view).
  users: async () => (await request<Account[]>("GET", "/api/users")).data,
  createUser: async (body: { username: string; password: string; role: string; personId: string | null }) =>
    (await request<Account>("POST", "/api/users", body)).data,
  updateUser: async (username: string, body: { disabled?: boolean; password?: string }) =>
    (await request<Account>("PATCH", `/api/users/${encodeURIComponent(username)}`, body)).data,
  unlockUser: async (username: string) =>
    (await request<{ lifted: number }>("POST", `/api/users/${encodeURIComponent(username)}/unlock`)).data,
  audit: async (filter: Record<string, string>) =>
    (await request<AuditEntry[]>("GET", `/api/audit?${new URLSearchParams(filter)}`)).data,
  changePassword: (current: string, password: string) =>
    request<void>("PUT", "/api/session/password", { current, password }),
};

/** The query naming a report: also the CSV link's. */
export const reportQuery = (community: string, month?: string, lang?: string) =>
  new URLSearchParams({
    community,
    ...(month ? { month } : {}),
    ...(lang ? { lang } : {}),
  }).toString();
