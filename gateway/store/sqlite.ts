import { chmodSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import Database from "better-sqlite3";
import type { Alert, AlertEvent, AlertState } from "../alerts/model.ts";
import { alertStates } from "../alerts/model.ts";
import { Errors } from "../errors.ts";
import type { DeviceEvent } from "../ingest/contract.ts";
import type { ReportAlert } from "../reports/monthly.ts";
import { Checkpointer, WalFlusher } from "./durability.ts";
import { migrations } from "./migrations.ts";
import {
  type Row,
  toAlert,
  toAssignment,
  toAttempt,
  toCareNotes,
  toDevice,
  toEvent,
  toPerson,
} from "./rows.ts";
import { sqliteAccounts, sqliteAudit, sqliteSessions, sqliteThrottles } from "./sqlite-auth.ts";
import { capSize, StorageHealth, type StorageHealthOptions } from "./sqlite-health.ts";
import {
  createTelemetrySchema,
  moveToTelemetryDb,
  sqliteGeofences,
  sqliteSpool,
  sqliteTelemetry,
  sqliteTracking,
} from "./sqlite-tracking.ts";
import {
  AlertChanged,
  type AlertRepository,
  type AttemptRepository,
  type Community,
  type DeviceEventRepository,
  type Grid,
  type Person,
  type PushSubscription,
  type PushSubscriptionRepository,
  type RegistryRepository,
  type Store,
  type WatchReadingRepository,
} from "./types.ts";

/** An event's public id is its time in ms times this, plus one per event sharing the millisecond. */
const STREAM_KEYS_PER_MS = 1024;

/**
 * Opens (creating if needed) `<dataDir>/gateway.db`, and `telemetry.db` beside it. WAL lets the
 * API read while a write commits. No disk flush runs on the event loop: commits go to the
 * operating system (synchronous=NORMAL) and a write resolves once a flush of the WAL in the thread
 * pool has covered it (WalFlusher, group commit; under `committed`, its caller waits with
 * `durable` instead), so an acknowledged press survives a power cut;
 * checkpoints run in a worker thread. What the heartbeats tell (telemetry, device state, zone
 * tracks) is kept apart: its batches never hold the lock a press needs, and it is not flushed per
 * write (the last seconds of positions may be lost to a power cut, never to a crash of the gateway).
 */
export function openSqliteStore(dataDir: string, options: SqliteOptions = {}): Store {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, "gateway.db");
  const db = openWal(file, options);
  keepPrivate(dataDir, [file, `${file}-wal`, `${file}-shm`], options.log);
  db.pragma("foreign_keys = ON");
  if (options.maxSizeMb !== undefined) capSize(db, options.maxSizeMb, options.log);
  migrate(db);
  const telemetryFile = join(dataDir, "telemetry.db");
  const telemetryDb = openWal(telemetryFile, options);
  createTelemetrySchema(telemetryDb);
  keepPrivate(dataDir, [telemetryFile, `${telemetryFile}-wal`, `${telemetryFile}-shm`], options.log);
  moveToTelemetryDb(db, telemetryFile);
  const flusher = new WalFlusher(`${file}-wal`, options.sync, options.onFlush);
  const checkpointer = new Checkpointer([file, telemetryFile], options.checkpointMs ?? 1000);
  const health = new StorageHealth(db, flusher, options);
  return health.watch({
    registry: registry(db),
    deviceEvents: deviceEvents(db),
    alerts: alerts(db),
    attempts: attempts(db),
    tracking: sqliteTracking(telemetryDb),
    geofences: sqliteGeofences(db, telemetryDb),
    accounts: sqliteAccounts(db),
    sessions: sqliteSessions(db),
    throttles: sqliteThrottles(db),
    audit: sqliteAudit(db),
    watchReadings: watchReadings(db),
    pushSubscriptions: pushSubscriptions(db),
    telemetry: sqliteTelemetry(telemetryDb),
    spool: sqliteSpool(telemetryDb),
    committed: (write) => health.committed(write),
    durable: () => health.durable(),
    flushCounts: () => ({ ...flusher.counts }),
    ping: async () => {
      db.prepare("SELECT 1").get();
      await health.check();
    },
    close: async () => {
      await checkpointer.close();
      await flusher.close();
      telemetryDb.close();
      db.close();
    },
  });
}

/** A connection in WAL mode that never flushes or checkpoints on its own (see openSqliteStore). */
function openWal(file: string, options: SqliteOptions): Database.Database {
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.pragma("wal_autocheckpoint = 0");
  // After a checkpoint the WAL is reused from its start; this trims a file a burst made large.
  db.pragma(`journal_size_limit = ${64 * 1024 * 1024}`);
  db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`);
  compileOnce(db);
  return db;
}

/**
 * Repository methods prepare their statements where they use them, which reads best; compiling
 * the same SQL at every call cost about a tenth of a press's CPU. Each SQL text (a fixed set) is
 * compiled once per connection.
 */
function compileOnce(db: Database.Database): void {
  const compiled = new Map<string, Database.Statement>();
  const compile = db.prepare.bind(db);
  db.prepare = ((sql: string) => {
    let statement = compiled.get(sql);
    if (!statement) {
      statement = compile(sql);
      compiled.set(sql, statement);
    }
    return statement;
  }) as typeof db.prepare;
}

export interface SqliteOptions extends StorageHealthOptions {
  /** How long a write waits for another connection's lock; better-sqlite3 blocks the process meanwhile. */
  busyTimeoutMs?: number;
  /** Cap on the database's size: beyond it, writes fail with SQLITE_FULL. */
  maxSizeMb?: number;
  /** How often the WAL is copied into the database, in a worker thread. */
  checkpointMs?: number;
  /** Flushes a file to disk (fdatasync); replaced in tests to make the disk fail. */
  sync?: (fd: number) => Promise<void>;
  /** Told how long each flush of the WAL took, in seconds. */
  onFlush?: (seconds: number) => void;
}

/**
 * The database holds residents' names, addresses and phones: only the gateway's own user may read
 * it (directory 0700, files 0600), whatever the umask. A volume it cannot chmod is warned about.
 */
function keepPrivate(dir: string, files: string[], log?: SqliteOptions["log"]): void {
  for (const [path, mode] of [[dir, 0o700] as const, ...files.map((f) => [f, 0o600] as const)]) {
    try {
      if (existsSync(path)) chmodSync(path, mode);
    } catch (err) {
      log?.warn({ path, err: (err as Error).message }, "could not make the database private to this user");
    }
  }
}

function migrate(db: Database.Database): void {
  db.exec(
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at INTEGER)",
  );
  const applied = new Set(
    db
      .prepare("SELECT version FROM schema_migrations")
      .all()
      .map((r) => (r as Row).version as number),
  );
  for (const m of migrations) {
    if (applied.has(m.version)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.prepare("INSERT INTO schema_migrations VALUES (?, ?, ?)").run(m.version, m.name, Date.now());
    })();
  }
}

function isUniqueViolation(err: unknown): boolean {
  return (
    (err as { code?: string }).code?.startsWith("SQLITE_CONSTRAINT_PRIMARYKEY") === true ||
    (err as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE"
  );
}

function registry(db: Database.Database): RegistryRepository {
  const contactsOf = db.prepare(
    "SELECT kind, address, alert_kinds, min_level FROM person_contacts WHERE person_id = ? ORDER BY position",
  );
  const personOf = (r: Row): Person => toPerson(r, contactsOf.all(r.id) as Row[]);
  const writeContacts = (p: Person) => {
    db.prepare("DELETE FROM person_contacts WHERE person_id = ?").run(p.id);
    const insert = db.prepare(
      "INSERT INTO person_contacts (person_id, position, kind, address, alert_kinds, min_level) VALUES (?, ?, ?, ?, ?, ?)",
    );
    for (const [i, c] of p.contacts.entries())
      insert.run(p.id, i + 1, c.kind, c.address, c.alertKinds && JSON.stringify(c.alertKinds), c.minLevel);
  };
  const insertOrConflict = <T>(what: string, id: string, fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      if (isUniqueViolation(err)) throw Errors.alreadyExists(what, id);
      throw err;
    }
  };

  return {
    createCommunity: async (c) =>
      insertOrConflict("community", c.id, () => {
        db.prepare("INSERT INTO communities (id, name) VALUES (?, ?)").run(c.id, c.name);
        return c;
      }),
    listCommunities: async () =>
      db.prepare("SELECT id, name FROM communities ORDER BY id").all() as Community[],
    createGrid: async (g) =>
      insertOrConflict("grid", g.id, () => {
        db.prepare("INSERT INTO grids (id, community_id, name) VALUES (?, ?, ?)").run(
          g.id,
          g.communityId,
          g.name,
        );
        return g;
      }),
    listGrids: async () =>
      db.prepare("SELECT id, community_id AS communityId, name FROM grids ORDER BY id").all() as Grid[],
    createPerson: async (p) =>
      insertOrConflict("person", p.id, () => {
        db.transaction(() => {
          db.prepare(
            "INSERT INTO people (id, name, role, community_id, grid_id, phone, address, locale, category) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
          ).run(
            p.id,
            p.name,
            p.role,
            p.communityId,
            p.gridId,
            p.phone,
            p.address,
            p.locale,
            p.category ?? null,
          );
          writeContacts(p);
        })();
        return p;
      }),
    updatePerson: async (p) => {
      db.transaction(() => {
        db.prepare(
          "UPDATE people SET name = ?, role = ?, community_id = ?, grid_id = ?, phone = ?, address = ?, locale = ?, category = ? WHERE id = ?",
        ).run(
          p.name,
          p.role,
          p.communityId,
          p.gridId,
          p.phone,
          p.address,
          p.locale,
          p.category ?? null,
          p.id,
        );
        writeContacts(p);
      })();
      return p;
    },
    getPerson: async (id) => {
      const r = db.prepare("SELECT * FROM people WHERE id = ?").get(id) as Row | undefined;
      return r && personOf(r);
    },
    listPeople: async (f = {}) => {
      const rows = db
        .prepare(
          `SELECT * FROM people WHERE (@role IS NULL OR role = @role)
             AND (@communityId IS NULL OR community_id = @communityId)
             AND (@gridId IS NULL OR grid_id = @gridId) ORDER BY id`,
        )
        .all({ role: f.role ?? null, communityId: f.communityId ?? null, gridId: f.gridId ?? null }) as Row[];
      return rows.map(personOf);
    },
    deletePerson: async (id) => {
      const device = db.prepare("SELECT id FROM devices WHERE owner_id = ? LIMIT 1").get(id) as
        | Row
        | undefined;
      if (device) throw Errors.inUse("person", id, `device '${device.id}'`);
      const assigned = db
        .prepare("SELECT id FROM assignments WHERE resident_id = ? OR person_id = ? LIMIT 1")
        .get(id, id) as Row | undefined;
      if (assigned) throw Errors.inUse("person", id, `assignment ${assigned.id}`);
      const account = db.prepare("SELECT username FROM accounts WHERE person_id = ? LIMIT 1").get(id) as
        | Row
        | undefined;
      if (account) throw Errors.inUse("person", id, `account '${account.username}'`);
      db.prepare("DELETE FROM people WHERE id = ?").run(id); // its care notes go with it (ON DELETE CASCADE)
    },
    getCareNotes: async (personId) => {
      const r = db.prepare("SELECT * FROM care_notes WHERE person_id = ?").get(personId) as Row | undefined;
      return r && toCareNotes(r);
    },
    putCareNotes: async (personId, n) => {
      db.prepare(
        `INSERT INTO care_notes (person_id, conditions, medicines, allergies, door_access, language, updated_at, updated_by)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (person_id) DO UPDATE SET conditions = excluded.conditions, medicines = excluded.medicines,
           allergies = excluded.allergies, door_access = excluded.door_access, language = excluded.language,
           updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
      ).run(
        personId,
        n.conditions,
        n.medicines,
        n.allergies,
        n.doorAccess,
        n.language,
        n.updatedAt,
        n.updatedBy,
      );
      return n;
    },
    createDevice: async (d, secretHash) =>
      insertOrConflict("device", d.id, () => {
        db.prepare(
          "INSERT INTO devices (id, kind, owner_id, protocol, secret_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        ).run(d.id, d.kind, d.ownerId, d.protocol ?? "mqtt", secretHash, d.createdAt);
        return { ...d, protocol: d.protocol ?? "mqtt", revokedAt: null };
      }),
    getDevice: async (id) => {
      const r = db.prepare("SELECT * FROM devices WHERE id = ?").get(id) as Row | undefined;
      return r && toDevice(r);
    },
    setDeviceSecret: async (id, secretHash) => {
      db.prepare("UPDATE devices SET secret_hash = ?, revoked_at = NULL WHERE id = ?").run(secretHash, id);
    },
    replaceDeviceSecret: async (id, expected, secretHash) =>
      db
        .prepare("UPDATE devices SET secret_hash = ? WHERE id = ? AND secret_hash = ? AND revoked_at IS NULL")
        .run(secretHash, id, expected).changes === 1,
    revokeDevice: async (id, at) => {
      db.prepare("UPDATE devices SET revoked_at = ? WHERE id = ?").run(at, id);
    },
    setDeviceOwner: async (id, ownerId) => {
      db.prepare("UPDATE devices SET owner_id = ? WHERE id = ?").run(ownerId, id);
    },
    getDeviceSecretHash: async (id) =>
      (
        db.prepare("SELECT secret_hash FROM devices WHERE id = ? AND revoked_at IS NULL").get(id) as
          | Row
          | undefined
      )?.secret_hash as string | undefined,
    listDevices: async () => (db.prepare("SELECT * FROM devices ORDER BY id").all() as Row[]).map(toDevice),
    createAssignment: async (a) => {
      try {
        const info = db
          .prepare("INSERT INTO assignments (resident_id, person_id, relation) VALUES (?, ?, ?)")
          .run(a.residentId, a.personId, a.relation);
        return { id: Number(info.lastInsertRowid), ...a };
      } catch (err) {
        if (isUniqueViolation(err))
          throw Errors.alreadyExists("assignment", `${a.residentId} -> ${a.personId}`);
        throw err;
      }
    },
    listAssignments: async ({ residentId, personId } = {}) =>
      (
        db
          .prepare(
            `SELECT * FROM assignments WHERE (@residentId IS NULL OR resident_id = @residentId)
               AND (@personId IS NULL OR person_id = @personId) ORDER BY id`,
          )
          .all({ residentId: residentId ?? null, personId: personId ?? null }) as Row[]
      ).map(toAssignment),
    deleteAssignment: async (id) => {
      const info = db.prepare("DELETE FROM assignments WHERE id = ?").run(id);
      if (info.changes === 0) throw Errors.notFound("assignment", String(id));
    },
    isEmpty: async () => !db.prepare("SELECT 1 FROM communities LIMIT 1").get(),
  };
}

const toStored = (r: Row) => ({
  id: r.id as number,
  deviceId: r.device_id as string,
  message: { type: r.type, ts: r.ts, seq: r.seq } as DeviceEvent,
  receivedAt: r.received_at as number,
});

function watchReadings(db: Database.Database): WatchReadingRepository {
  return {
    add: async (r) => {
      db.prepare(
        "INSERT INTO watch_readings (device_id, ts, received_at, type, late, data) VALUES (?, ?, ?, ?, ?, ?)",
      ).run(r.deviceId, r.ts, r.receivedAt, r.type, r.late ? 1 : 0, JSON.stringify(r.data));
    },
    list: async (deviceId, limit) =>
      (
        db
          .prepare("SELECT * FROM watch_readings WHERE device_id = ? ORDER BY id DESC LIMIT ?")
          .all(deviceId, limit) as Row[]
      ).map((r) => ({
        deviceId: r.device_id as string,
        ts: r.ts as number,
        receivedAt: r.received_at as number,
        type: r.type as string,
        late: r.late === 1,
        data: JSON.parse(r.data as string) as Record<string, unknown>,
      })),
    prune: async (before) =>
      db.prepare("DELETE FROM watch_readings WHERE received_at < ?").run(before).changes,
  };
}

function pushSubscriptions(db: Database.Database): PushSubscriptionRepository {
  const toSubscription = (r: Row): PushSubscription => ({
    endpoint: r.endpoint as string,
    personId: r.person_id as string,
    username: r.username as string,
    p256dh: r.p256dh as string,
    auth: r.auth as string,
    createdAt: r.created_at as number,
  });
  return {
    save: async (s) => {
      db.prepare(
        `INSERT INTO push_subscriptions (endpoint, person_id, username, p256dh, auth, created_at)
         VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (endpoint) DO UPDATE SET person_id = excluded.person_id, username = excluded.username,
           p256dh = excluded.p256dh, auth = excluded.auth, created_at = excluded.created_at`,
      ).run(s.endpoint, s.personId, s.username, s.p256dh, s.auth, s.createdAt);
    },
    get: async (endpoint) => {
      const row = db.prepare("SELECT * FROM push_subscriptions WHERE endpoint = ?").get(endpoint) as
        | Row
        | undefined;
      return row && toSubscription(row);
    },
    forPerson: async (personId) =>
      (
        db
          .prepare(
            `SELECT s.* FROM push_subscriptions s JOIN accounts a ON a.username = s.username
             WHERE s.person_id = ? AND a.person_id = s.person_id AND a.disabled_at IS NULL
             ORDER BY s.created_at`,
          )
          .all(personId) as Row[]
      ).map(toSubscription),
    countForAccount: async (username) =>
      (db.prepare("SELECT COUNT(*) AS n FROM push_subscriptions WHERE username = ?").get(username) as Row)
        .n as number,
    remove: async (endpoint, username) =>
      (username === undefined
        ? db.prepare("DELETE FROM push_subscriptions WHERE endpoint = ?").run(endpoint)
        : db
            .prepare("DELETE FROM push_subscriptions WHERE endpoint = ? AND username = ?")
            .run(endpoint, username)
      ).changes > 0,
  };
}

function deviceEvents(db: Database.Database): DeviceEventRepository {
  const insert = db.prepare(
    "INSERT INTO device_events (device_id, seq, ts, type, received_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
  );
  return {
    record: async (deviceId, m, receivedAt) => {
      const info = insert.run(deviceId, m.seq, m.ts, m.type, receivedAt);
      return info.changes === 0 ? undefined : Number(info.lastInsertRowid);
    },
    unhandled: async () =>
      (db.prepare("SELECT * FROM device_events WHERE handled = 0 ORDER BY id").all() as Row[]).map(toStored),
    find: async (deviceId, seq, ts) => {
      const r = db
        .prepare("SELECT * FROM device_events WHERE device_id = ? AND seq = ? AND ts = ?")
        .get(deviceId, seq, ts) as Row | undefined;
      return r && { ...toStored(r), handled: r.handled === 1 };
    },
    markHandled: async (id) => {
      db.prepare("UPDATE device_events SET handled = 1 WHERE id = ?").run(id);
    },
  };
}

const alertRow = (a: Alert) => ({
  ...a,
  policy: JSON.stringify(a.policy),
  notified: JSON.stringify(a.notified),
  unreached: a.unreached ? 1 : 0,
  exhausted: a.exhausted ? 1 : 0,
});

function alerts(db: Database.Database): AlertRepository {
  const upsert = db.prepare(`
    INSERT INTO alerts (id, kind, device_id, subject_id, state, level, presses, opened_at, accepted_by, accepted_at,
      closed_by, closed_at, outcome, deadline_at, policy, repeats, reminders, notified, unreached, exhausted,
      last_activity_at)
    VALUES (@id, @kind, @deviceId, @subjectId, @state, @level, @presses, @openedAt, @acceptedBy, @acceptedAt,
      @closedBy, @closedAt, @outcome, @deadlineAt, @policy, @repeats, @reminders, @notified, @unreached, @exhausted,
      @lastActivityAt)
    ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, state = excluded.state, level = excluded.level,
      presses = excluded.presses, accepted_by = excluded.accepted_by, accepted_at = excluded.accepted_at,
      closed_by = excluded.closed_by, closed_at = excluded.closed_at, outcome = excluded.outcome,
      deadline_at = excluded.deadline_at, policy = excluded.policy, repeats = excluded.repeats,
      reminders = excluded.reminders, notified = excluded.notified, unreached = excluded.unreached,
      exhausted = excluded.exhausted, last_activity_at = excluded.last_activity_at`);
  const insertEvent = db.prepare(
    "INSERT INTO alert_events (alert_id, at, type, actor, data, stream_key) VALUES (?, ?, ?, ?, ?, ?)",
  );
  const lastKey = db.prepare("SELECT MAX(stream_key) AS k FROM alert_events");
  const markHandled = db.prepare("UPDATE device_events SET handled = 1 WHERE id = ? AND handled = 0");
  /** Retention: closed alerts with their trail and attempts, and handled device events, older than `before`. */
  const pruneAlerts = db.transaction((before: number): number => {
    const old = "SELECT id FROM alerts WHERE state IN ('resolved','cancelled') AND closed_at < ?";
    db.prepare(`DELETE FROM notification_attempts WHERE alert_id IN (${old})`).run(before);
    db.prepare(`DELETE FROM alert_events WHERE alert_id IN (${old})`).run(before);
    db.prepare("DELETE FROM device_events WHERE handled = 1 AND received_at < ?").run(before);
    return db
      .prepare("DELETE FROM alerts WHERE state IN ('resolved','cancelled') AND closed_at < ?")
      .run(before).changes;
  });
  const stored = db.prepare("SELECT * FROM alerts WHERE id = ?");
  const commit = db.transaction((change: Parameters<AlertRepository["commit"]>[0]): AlertEvent[] => {
    // Compare-and-set, as on PostgreSQL; one gateway's per-device queue means it never refuses here.
    if (change.previous) {
      const r = stored.get(change.alert.id) as Row | undefined;
      if (!r || !isDeepStrictEqual(toAlert(r), change.previous)) throw new AlertChanged(change.alert.id);
    }
    try {
      upsert.run(alertRow(change.alert));
    } catch (err) {
      // One active alert per device and kind: another one is open already, this decision joins it.
      if (!change.previous && isUniqueViolation(err)) throw new AlertChanged(change.alert.id);
      throw err;
    }
    // A press becomes one alert: a second decision on it stores nothing, and is taken again.
    if (change.handledEventId !== undefined && markHandled.run(change.handledEventId).changes === 0)
      throw new AlertChanged(change.alert.id);
    let key = ((lastKey.get() as Row).k as number | null) ?? 0;
    return change.events.map((e) => {
      // Increasing in the order stored, even when the clock steps back; counting nothing.
      key = Math.max(key + 1, e.at * STREAM_KEYS_PER_MS);
      insertEvent.run(change.alert.id, e.at, e.type, e.actor, JSON.stringify(e.data), key);
      return { ...e, id: key, alertId: change.alert.id };
    });
  });

  return {
    get: async (id) => {
      const r = db.prepare("SELECT * FROM alerts WHERE id = ?").get(id) as Row | undefined;
      return r && toAlert(r);
    },
    findActive: async (deviceId, kinds) => {
      const r = db
        .prepare(
          `SELECT * FROM alerts WHERE device_id = ? AND kind IN (${kinds.map(() => "?").join(",")})
             AND state IN ('open','accepted') ORDER BY opened_at DESC LIMIT 1`,
        )
        .get(deviceId, ...kinds) as Row | undefined;
      return r && toAlert(r);
    },
    list: async ({ states, subjectIds, limit }) => {
      const wanted = states ?? [...alertStates];
      const marks = (xs: readonly unknown[]) => xs.map(() => "?").join(",");
      // One JSON parameter, not one per person: SQLite allows at most 32,766 parameters.
      const bySubject = subjectIds ? "AND subject_id IN (SELECT value FROM json_each(?))" : "";
      const rows = db
        .prepare(
          `SELECT * FROM alerts WHERE state IN (${marks(wanted)}) ${bySubject} ORDER BY opened_at DESC LIMIT ?`,
        )
        .all(...wanted, ...(subjectIds ? [JSON.stringify(subjectIds)] : []), limit) as Row[];
      return rows.map(toAlert);
    },
    forReport: async ({ from, to, subjectIds }) => {
      const bySubject = subjectIds ? "AND a.subject_id IN (SELECT value FROM json_each(?))" : "";
      const rows = db
        .prepare(
          `SELECT a.id, a.kind, a.subject_id, p.name AS subject_name, a.device_id, a.state, a.opened_at, a.closed_at,
             (SELECT MIN(at) FROM alert_events e WHERE e.alert_id = a.id AND (e.type IN ('accepted', 'resolved')
                OR (e.type = 'cancelled' AND json_extract(e.data, '$.reason') = 'false-alarm'))) AS first_answered_at,
             (SELECT json_extract(data, '$.reason') FROM alert_events e
                WHERE e.alert_id = a.id AND e.type = 'cancelled' ORDER BY id DESC LIMIT 1) AS close_reason,
             (SELECT MAX(json_extract(data, '$.level')) FROM alert_events e
                WHERE e.alert_id = a.id AND e.type = 'notified') AS max_level
           FROM alerts a JOIN people p ON p.id = a.subject_id
           WHERE a.opened_at < ? AND (a.closed_at IS NULL OR a.closed_at >= ?) ${bySubject}`,
        )
        .all(to, from, ...(subjectIds ? [JSON.stringify(subjectIds)] : [])) as Row[];
      return rows.map((r) => ({
        id: r.id as string,
        kind: r.kind as ReportAlert["kind"],
        subjectId: r.subject_id as string,
        subjectName: r.subject_name as string,
        deviceId: r.device_id as string,
        state: r.state as ReportAlert["state"],
        openedAt: r.opened_at as number,
        firstAnsweredAt: (r.first_answered_at as number | null) ?? null,
        closedAt: (r.closed_at as number | null) ?? null,
        closeReason: (r.close_reason as string | null) ?? null,
        maxLevel: (r.max_level as number | null) ?? 0,
      }));
    },
    prune: async (before) => pruneAlerts(before),
    countByState: async () => {
      const counts = Object.fromEntries(alertStates.map((s) => [s, 0])) as Record<AlertState, number>;
      for (const r of db.prepare("SELECT state, COUNT(*) AS n FROM alerts GROUP BY state").all() as Row[]) {
        counts[r.state as AlertState] = r.n as number;
      }
      return counts;
    },
    commit: async (change) => commit(change),
    events: async (alertId) =>
      (db.prepare("SELECT * FROM alert_events WHERE alert_id = ? ORDER BY id").all(alertId) as Row[]).map(
        toEvent,
      ),
    eventsAfter: async (id, limit) =>
      (
        db
          .prepare("SELECT * FROM alert_events WHERE stream_key > ? ORDER BY stream_key LIMIT ?")
          .all(id, limit) as Row[]
      ).map(toEvent),
    // The key of "now" (later events exceed it), unless the clock stepped back behind the last event.
    streamPosition: async (now) =>
      Math.max(((lastKey.get() as Row).k as number | null) ?? 0, now * STREAM_KEYS_PER_MS - 1),
    withDeadlines: async () =>
      (
        db.prepare("SELECT * FROM alerts WHERE deadline_at IS NOT NULL ORDER BY deadline_at").all() as Row[]
      ).map(toAlert),
    adoptPolicies: async (policyOf) =>
      db.transaction(() => {
        let changed = 0;
        const kinds = db.prepare("SELECT DISTINCT kind FROM alerts WHERE policy IS NULL").all() as Row[];
        for (const { kind } of kinds) {
          changed += db
            .prepare("UPDATE alerts SET policy = ? WHERE policy IS NULL AND kind = ?")
            .run(JSON.stringify(policyOf(kind as Alert["kind"])), kind).changes;
        }
        return changed;
      })(),
  };
}

function attempts(db: Database.Database): AttemptRepository {
  const expire = db.prepare("UPDATE notification_attempts SET status = 'expired' WHERE id = ?");
  const pending = db.prepare(
    "SELECT id, payload, expires_at FROM notification_attempts WHERE channel = 'device' AND status = 'pending' AND address = ? ORDER BY id",
  );
  return {
    start: async (a) =>
      Number(
        db
          .prepare(
            `INSERT INTO notification_attempts (alert_id, level, person_id, channel, event, address, attempt, at, status, payload, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)`,
          )
          .run(
            a.alertId,
            a.level,
            a.personId,
            a.channel,
            a.event,
            a.address,
            a.attempt,
            a.at,
            a.payload ?? null,
            a.expiresAt ?? null,
          ).lastInsertRowid,
      ),
    finish: async (id, status, detail) => {
      db.prepare("UPDATE notification_attempts SET status = ?, detail = ? WHERE id = ?").run(
        status,
        detail,
        id,
      );
    },
    forAlert: async (alertId) =>
      (
        db.prepare("SELECT * FROM notification_attempts WHERE alert_id = ? ORDER BY id").all(alertId) as Row[]
      ).map(toAttempt),
    failing: async (contacts) => {
      const last = db.prepare(
        // "channel <> 'device'" lets SQLite use the partial index notification_attempts_contact.
        `SELECT status FROM notification_attempts WHERE address = ? AND channel = ? AND channel <> 'device'
           AND status NOT IN ('pending','expired') ORDER BY id DESC LIMIT 1`,
      );
      return new Set(
        contacts
          .filter((c) => (last.get(c.address, c.kind) as Row | undefined)?.status === "failed")
          .map((c) => `${c.kind} ${c.address}`),
      );
    },
    pendingCommandAddresses: async () =>
      (
        db
          .prepare(
            "SELECT DISTINCT address FROM notification_attempts WHERE channel = 'device' AND status = 'pending'",
          )
          .all() as Row[]
      ).map((r) => r.address as string),
    // Read first: most devices that connect have nothing waiting, and a read costs no commit.
    pendingCommands: async (address, now) => {
      const rows = pending.all(address) as { id: number; payload: string; expires_at: number | null }[];
      const expired = rows.filter((r) => r.expires_at !== null && r.expires_at <= now);
      if (expired.length > 0)
        db.transaction(() => {
          for (const r of expired) expire.run(r.id);
        })();
      return rows.filter((r) => !expired.includes(r)).map(({ id, payload }) => ({ id, payload }));
    },
    commandAcknowledged: async (address, payload, at) =>
      db
        .prepare(
          `UPDATE notification_attempts SET status = 'delivered', detail = ?
             WHERE channel = 'device' AND status = 'pending' AND address = ? AND payload = ?`,
        )
        .run(`acknowledged at ${new Date(at).toISOString()}`, address, payload).changes,
  };
}
