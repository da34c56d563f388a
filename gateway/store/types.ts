import type { Alert, AlertEvent, AlertKind, AlertState, NewAlertEvent } from "../alerts/model.ts";
import type { AccessChange } from "../bus/index.ts";
import type { DeviceEvent } from "../ingest/contract.ts";
import type { ReportAlert } from "../reports/monthly.ts";
import type { Geofence, ZoneTrack } from "../rules/geofence.ts";
import type { TelemetrySpool, TelemetryStore } from "./telemetry.ts";

export const roles = ["resident", "doctor", "family", "grid-worker", "staff"] as const;
export type Role = (typeof roles)[number];
export const deviceKinds = ["call-button", "locator-tag"] as const;
export type DeviceKind = (typeof deviceKinds)[number];
/** `mqtt`: the device contract v1; `watch`: the 3G / SeTracker text protocol of off-the-shelf watches. */
export const deviceProtocols = ["mqtt", "watch"] as const;
export type DeviceProtocol = (typeof deviceProtocols)[number];
export const relations = ["doctor", "family"] as const;
/** What kind of resident: an elderly person (call button, dementia pendant) or a child (locator card). */
export const residentCategories = ["elderly", "child"] as const;
export type ResidentCategory = (typeof residentCategories)[number];
export type Relation = (typeof relations)[number];

export interface Community {
  id: string;
  name: string;
}
export interface Grid {
  id: string;
  communityId: string;
  name: string;
}
/** Contacts a person keeps: a signed webhook, a WeCom or DingTalk group robot, an SMS, a voice call. */
export const contactKinds = ["webhook", "wecom", "dingtalk", "sms", "voice"] as const;
/** Ways to reach a person: their contacts, and Web Push to the browsers they turned alerts on in. */
export const channelKinds = [...contactKinds, "push"] as const;
export type ChannelKind = (typeof channelKinds)[number];
export type ContactKind = (typeof contactKinds)[number];
/** One way to reach a person; a person's contacts are tried in order until one takes the message. */
export interface Contact {
  kind: ContactKind;
  /** The webhook's URL; for every other channel the person's mobile number (a robot @-mentions it). */
  address: string;
  /** The alert kinds this contact is used for; null: every kind. */
  alertKinds: AlertKind[] | null;
  /** The lowest escalation level paged on it (a voice call only from level 2, say); the catch-all counts as any. */
  minLevel: number;
}
/** Where one message goes: one of the person's contacts, or one of their push subscriptions (address: its endpoint). */
export type Destination = Omit<Contact, "kind"> & { kind: ChannelKind };
export interface Person {
  id: string;
  name: string;
  role: Role;
  communityId: string;
  gridId: string | null;
  phone: string | null;
  /** Where the person lives or works, for the responder: "Building 3, Chongsaikang". */
  address: string | null;
  /** The language the person reads and hears: a device's phrases follow its resident's. */
  locale: string;
  contacts: Contact[];
  /** Residents only: elderly or child; null when not recorded, and for everyone else. */
  category?: ResidentCategory | null;
}
/**
 * What a responder needs at a resident's door, kept apart from the person record: read only by
 * those who see the resident, changed by staff in their area and the resident's doctor, and
 * never written to the log.
 */
export interface CareNotes {
  conditions: string | null;
  medicines: string | null;
  allergies: string | null;
  /** How to get in: the key holder, a door code, the neighbour with a spare key. */
  doorAccess: string | null;
  /** The language or dialect to speak to the resident in, e.g. Tibetan (Lhasa). */
  language: string | null;
  updatedAt: number;
  /** The account that last changed them. */
  updatedBy: string;
}
export interface Device {
  id: string;
  kind: DeviceKind;
  ownerId: string;
  protocol: DeviceProtocol;
  createdAt: number;
  /** When the device was revoked: it can no longer connect until its secret is rotated. */
  revokedAt: number | null;
}

/** What a dashboard user may do; staff, doctors and family act as the person they are linked to. */
export const accountRoles = ["admin", "staff", "doctor", "family"] as const;
export type AccountRole = (typeof accountRoles)[number];
export interface Account {
  username: string;
  role: AccountRole;
  /** The person the account acts as; required except for admins. */
  personId: string | null;
  createdAt: number;
  disabledAt: number | null;
}
export interface Session {
  /** SHA-256 of the cookie's token, so a copy of the database holds no usable session. */
  idHash: string;
  username: string;
  csrfToken: string;
  createdAt: number;
  expiresAt: number;
  /** Last request made with it: a session idle for too long ends. */
  lastSeenAt: number;
}
/** Failed sign-ins for one key (a username from one address, or one address), and the block they earned. */
export interface SignInThrottle {
  key: string;
  /** The username, for a (username, address) key: so an admin can unlock the account. */
  username: string | null;
  failures: number;
  /** Blocks earned so far: each lasts twice as long as the one before. */
  strikes: number;
  blockedUntil: number;
  /** The current block has been written to the access log (once per block, not per refusal). */
  audited: boolean;
  updatedAt: number;
}
/** Who did or read what, outside the alert trail: sign-ins, registry changes, track reads. */
export interface AuditEntry {
  id: number;
  at: number;
  actor: string;
  action: string;
  target: string | null;
  detail: Record<string, unknown> | null;
}
export interface Assignment {
  id: number;
  residentId: string;
  personId: string;
  relation: Relation;
}
/**
 * pending: stored, no answer yet. accepted: the provider took it for delivery and does not say
 * whether it arrived (SMS, a voice call placed). delivered: it is where the person reads it, or
 * with the receiver the operator chose (a robot's group message, a webhook bridge's 2xx, a
 * device's acknowledgement). failed: with the reason. expired: a device command never acknowledged.
 */
export const attemptStatuses = ["pending", "accepted", "delivered", "failed", "expired"] as const;
export type AttemptStatus = (typeof attemptStatuses)[number];
/** A message reached, or was taken for, its channel: it need not go further down the person's list. */
export const isReached = (s: AttemptStatus) => s === "accepted" || s === "delivered";
export interface NotificationAttempt {
  id: number;
  alertId: string;
  level: number;
  personId: string | null;
  channel: ChannelKind | "device";
  /** `paged`, or the follow-up it carried (`accepted`, `resolved`...), or the device command's type. */
  event: string;
  address: string;
  attempt: number;
  at: number;
  status: AttemptStatus;
  detail: string | null;
}
/** A browser's Web Push subscription (the PushSubscription's endpoint and keys), made by an account for its person. */
export interface PushSubscription {
  endpoint: string;
  personId: string;
  username: string;
  /** The browser's P-256 public key and auth secret, base64url: what each message is encrypted to. */
  p256dh: string;
  auth: string;
  createdAt: number;
}
export interface PushSubscriptionRepository {
  /** Stores it, or moves it to this account if the browser's endpoint was another's. */
  save(s: PushSubscription): Promise<void>;
  get(endpoint: string): Promise<PushSubscription | undefined>;
  /** A person's subscriptions made by accounts not disabled and still acting as that person. */
  forPerson(personId: string): Promise<PushSubscription[]>;
  countForAccount(username: string): Promise<number>;
  /** Whether it existed (and belonged to `username`, when given). */
  remove(endpoint: string, username?: string): Promise<boolean>;
}
export interface StoredDeviceEvent {
  id: number;
  deviceId: string;
  message: DeviceEvent;
  receivedAt: number;
}

/** One atomic change of an alert: its new state, the audit events it adds, its deadline. */
export interface AlertChange {
  alert: Alert;
  events: NewAlertEvent[];
  /** The device event this change consumed, marked handled in the same transaction. */
  handledEventId?: number;
  /**
   * The alert as read before deciding: the commit stores nothing and throws `AlertChanged` if the
   * stored alert differs from it by then (another gateway's step came first). None for a new alert.
   */
  previous?: Alert;
}

/** A commit refused because the alert changed since it was read: decide again on what it is now. */
export class AlertChanged extends Error {
  constructor(readonly alertId: string) {
    super(`alert ${alertId} changed since it was read`);
    this.name = "AlertChanged";
  }
}

/** Deadlines shared by several gateways on one database: each due one is handed to one of them at a time. */
export interface DeadlineClaims {
  /**
   * Claims up to `limit` deadlines due at `now`, the earliest first, for `leaseMs`: no other claim
   * gets one until its lease runs out (the gateway holding it died) or the alert's deadline changes
   * (it fired).
   */
  claimDue(now: number, leaseMs: number, limit: number): Promise<Alert[]>;
}

/**
 * What a gateway sharing the database leaves when it dies: the pages it was sending (`notified`
 * events it committed) and the device events it stored, acknowledged and never decided. Each
 * gateway renews its life; the living take over what a gateway that stopped renewing left, each
 * item once.
 */
export interface OrphanClaims {
  /** This gateway is alive until `until`: what it sends and stores stays its own. */
  renew(now: number, until: number): Promise<void>;
  /** Takes what gateways not alive at `now` left: pages of open alerts, undecided device events. */
  takeOrphans(
    now: number,
  ): Promise<{ pages: { alertId: string; eventId: number }[]; events: StoredDeviceEvent[] }>;
}

/**
 * The durable state of the gateway. Methods are async so that a PostgreSQL store can implement
 * the same interface; the SQLite store answers synchronously underneath.
 */
export interface Store {
  readonly registry: RegistryRepository;
  readonly deviceEvents: DeviceEventRepository;
  readonly alerts: AlertRepository;
  readonly attempts: AttemptRepository;
  readonly tracking: TrackingRepository;
  readonly geofences: GeofenceRepository;
  readonly accounts: AccountRepository;
  readonly sessions: SessionRepository;
  readonly throttles: SignInThrottleRepository;
  readonly audit: AuditRepository;
  /** The embedded telemetry store (used when no InfluxDB is configured). */
  readonly telemetry: TelemetryStore & { prune(before: number): Promise<number> };
  /** Where telemetry waits while InfluxDB is down. */
  readonly spool: TelemetrySpool;
  readonly watchReadings: WatchReadingRepository;
  readonly pushSubscriptions: PushSubscriptionRepository;
  /**
   * When several gateways share the store: tells each when any has committed alert events, so
   * that every dashboard's stream, on whichever gateway, follows the one trail.
   */
  readonly alertFeed?: AlertFeed;
  /** Present when several gateways may share the store: each claims due deadlines instead of owning them all. */
  readonly deadlineClaims?: DeadlineClaims;
  /** Present with `deadlineClaims`: what a gateway that died left is taken up by another. */
  readonly orphanClaims?: OrphanClaims;
  /**
   * Runs `write`, resolving once what it wrote is committed, without waiting for the flush to
   * disk that every other write waits for. The disk keeps the order of commits, so any later
   * write's flush covers it too. For a writer that waits with `durable()` before it acknowledges
   * anything (letting the writes its message causes share one flush), or whose message is as
   * good as sent if a power cut loses the row. Only the calls `write` makes at once are affected.
   */
  committed<T>(write: () => Promise<T>): Promise<T>;
  /** Resolves once every write committed so far is on disk; rejects if the flush failed. */
  durable(): Promise<void>;
  /** Flushes to disk so far, and the writes they covered (group commit). */
  flushCounts(): { flushes: number; writes: number };
  /** Cheap query proving the database answers; throws otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface AlertFeed {
  /** Wakes every listener, on every gateway: alert events were committed. */
  announce(): Promise<void>;
  /** Tells the other gateways who may see what changed, for the live streams it touches. */
  announceAccess(change: AccessChange): Promise<void>;
  /**
   * Calls `onWake` after each announcement (and once listening), `onAccess` for each change of
   * access another gateway announced (null: too large to tell, every stream is touched); resolves
   * with a way to stop.
   */
  listen(onWake: () => void, onAccess: (change: AccessChange | null) => void): Promise<() => Promise<void>>;
}

export interface RegistryRepository {
  createCommunity(c: Community): Promise<Community>;
  listCommunities(): Promise<Community[]>;
  createGrid(g: Grid): Promise<Grid>;
  listGrids(): Promise<Grid[]>;
  createPerson(p: Person): Promise<Person>;
  updatePerson(p: Person): Promise<Person>;
  getPerson(id: string): Promise<Person | undefined>;
  listPeople(filter?: { role?: Role; communityId?: string; gridId?: string }): Promise<Person[]>;
  deletePerson(id: string): Promise<void>;
  /** A resident's care notes; undefined while none were written. */
  getCareNotes(personId: string): Promise<CareNotes | undefined>;
  putCareNotes(personId: string, notes: CareNotes): Promise<CareNotes>;
  /** Without a protocol, an MQTT device. */
  createDevice(
    d: Omit<Device, "revokedAt" | "protocol"> & { protocol?: DeviceProtocol },
    secretHash: string,
  ): Promise<Device>;
  /** A new secret; also reinstates a revoked device. */
  setDeviceSecret(id: string, secretHash: string): Promise<void>;
  /**
   * Replaces the secret hash only while it is still `expected` and the device is not revoked, so
   * that re-hashing a secret never undoes a rotation or a revocation; false when it did not.
   */
  replaceDeviceSecret(id: string, expected: string, secretHash: string): Promise<boolean>;
  revokeDevice(id: string, at: number): Promise<void>;
  /** The device now belongs to (is about) another person: their alerts, their scope. */
  setDeviceOwner(id: string, ownerId: string): Promise<void>;
  getDevice(id: string): Promise<Device | undefined>;
  /** The secret hash of a device that may connect: undefined when unknown or revoked. */
  getDeviceSecretHash(id: string): Promise<string | undefined>;
  listDevices(): Promise<Device[]>;
  createAssignment(a: Omit<Assignment, "id">): Promise<Assignment>;
  listAssignments(filter?: { residentId?: string; personId?: string }): Promise<Assignment[]>;
  deleteAssignment(id: number): Promise<void>;
  isEmpty(): Promise<boolean>;
}

export interface DeviceEventRepository {
  /** Stores the event; returns undefined when the same (device, seq, ts) was stored before. */
  record(deviceId: string, message: DeviceEvent, receivedAt: number): Promise<number | undefined>;
  /** Events stored but not yet handled by the rules (the gateway stopped in between). */
  unhandled(): Promise<StoredDeviceEvent[]>;
  markHandled(id: number): Promise<void>;
  /** The stored event a re-delivery repeats, and whether the rules have handled it. */
  find(
    deviceId: string,
    seq: number,
    ts: number,
  ): Promise<(StoredDeviceEvent & { handled: boolean }) | undefined>;
}

export interface AlertRepository {
  get(id: string): Promise<Alert | undefined>;
  /** The open or accepted alert of one of these kinds for this device, if any. */
  findActive(deviceId: string, kinds: readonly Alert["kind"][]): Promise<Alert | undefined>;
  /** Newest first; `subjectIds` limits the list to alerts about those people. */
  list(filter: { states?: AlertState[]; subjectIds?: readonly string[]; limit: number }): Promise<Alert[]>;
  /** Alerts open at some time in [from, to): opened before `to`, not closed before `from`. */
  forReport(filter: { from: number; to: number; subjectIds?: readonly string[] }): Promise<ReportAlert[]>;
  /** Deletes closed alerts (their trail, attempts and device events) closed before `before`. */
  prune(before: number): Promise<number>;
  countByState(): Promise<Record<AlertState, number>>;
  /**
   * Saves the alert, appends its events and marks the consumed device event, in one transaction;
   * throws `AlertChanged`, storing nothing, when the alert is no longer `change.previous`.
   */
  commit(change: AlertChange): Promise<AlertEvent[]>;
  events(alertId: string): Promise<AlertEvent[]>;
  eventsAfter(id: number, limit: number): Promise<AlertEvent[]>;
  /**
   * An event id that every event stored from `now` on exceeds: where a page that has just read
   * the list starts streaming. It tells neither how many events there were nor when the last was.
   */
  streamPosition(now: number): Promise<number>;
  /** Alerts with a deadline, the earliest first. */
  withDeadlines(): Promise<Alert[]>;
  /** Alerts stored before policies travelled with them get the one in force now. */
  adoptPolicies(policyOf: (kind: Alert["kind"]) => Alert["policy"]): Promise<number>;
}

export interface AttemptRepository {
  start(
    a: Omit<NotificationAttempt, "id" | "status" | "detail"> & { payload?: string; expiresAt?: number },
  ): Promise<number>;
  finish(id: number, status: AttemptStatus, detail: string | null): Promise<void>;
  forAlert(alertId: string): Promise<NotificationAttempt[]>;
  /** Of these contacts, those whose latest finished attempt failed, as `kind address`. */
  failing(contacts: readonly Pick<Contact, "kind" | "address">[]): Promise<Set<string>>;
  /** Addresses (command topics) with commands waiting: the devices worth looking up when they connect. */
  pendingCommandAddresses(): Promise<string[]>;
  /** The device outbox at `address`: marks what is past its expiry expired, returns the rest in order. */
  pendingCommands(address: string, now: number): Promise<{ id: number; payload: string }[]>;
  /** The device acknowledged (PUBACK) this payload at `address`: every pending copy is delivered. */
  commandAcknowledged(address: string, payload: string, at: number): Promise<number>;
}

/** What a watch reported beyond a heartbeat: a buffered (late) position, cells and access points, an alarm, health values. */
export interface WatchReading {
  deviceId: string;
  /** Device time (ms). */
  ts: number;
  receivedAt: number;
  /** The frame's type: `UD2`, `UD_LTE`, `AL`, `bphrt`... */
  type: string;
  /** Sent after newer reports (buffered during a coverage gap). */
  late: boolean;
  data: Record<string, unknown>;
}

export interface WatchReadingRepository {
  add(r: WatchReading): Promise<void>;
  /** Newest first. */
  list(deviceId: string, limit: number): Promise<WatchReading[]>;
  prune(before: number): Promise<number>;
}

/** What the gateway knows of a device now: last heard, battery, last trusted position. */
export interface DeviceState {
  deviceId: string;
  /** Gateway time of the last heartbeat or event. */
  lastSeenAt: number;
  /** Device time of the newest heartbeat. */
  lastTs: number;
  battery: number | null;
  batteryLow: boolean;
  online: boolean;
  position: { lat: number; lon: number; accuracy: number; source: string | null; ts: number } | null;
}

export interface TrackingRepository {
  loadStates(): Promise<DeviceState[]>;
  loadZoneTracks(): Promise<{ deviceId: string; geofenceId: string; track: ZoneTrack }[]>;
  /** Saves changed device states and zone tracks (in chunks, the event loop free between). */
  save(
    states: DeviceState[],
    tracks: { deviceId: string; geofenceId: string; track: ZoneTrack }[],
  ): Promise<void>;
}

export interface GeofenceRepository {
  list(): Promise<Geofence[]>;
  get(id: string): Promise<Geofence | undefined>;
  create(g: Geofence): Promise<Geofence>;
  update(g: Geofence): Promise<Geofence>;
  remove(id: string): Promise<void>;
}

export interface AccountRepository {
  create(a: Account, passwordHash: string): Promise<Account>;
  get(username: string): Promise<Account | undefined>;
  passwordHash(username: string): Promise<string | undefined>;
  list(): Promise<Account[]>;
  update(a: Account, passwordHash?: string): Promise<Account>;
  remove(username: string): Promise<void>;
  count(): Promise<number>;
}

export interface SessionRepository {
  create(s: Session): Promise<void>;
  get(idHash: string): Promise<Session | undefined>;
  remove(idHash: string): Promise<void>;
  /** Ends every session of an account (password changed, disabled, removed). */
  removeFor(username: string): Promise<void>;
  prune(now: number): Promise<number>;
  /** Notes a request made with the session. */
  touch(idHash: string, at: number): Promise<void>;
}

export interface SignInThrottleRepository {
  get(key: string): Promise<SignInThrottle | undefined>;
  put(t: SignInThrottle): Promise<void>;
  remove(key: string): Promise<void>;
  /** Lifts every block on a username (an admin unlocks it); returns how many there were. */
  removeFor(username: string): Promise<number>;
  prune(before: number): Promise<number>;
}

export interface AuditRepository {
  record(e: Omit<AuditEntry, "id">): Promise<void>;
  /** Newest first; `from` and `to` (ms) bound `at` to [from, to). */
  list(filter: {
    actor?: string;
    action?: string;
    target?: string;
    from?: number;
    to?: number;
    limit: number;
  }): Promise<AuditEntry[]>;
  prune(before: number): Promise<number>;
}
