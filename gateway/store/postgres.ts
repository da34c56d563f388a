import { randomUUID } from "node:crypto";
import type pg from "pg";
import type { Logger } from "pino";
import { Errors } from "../errors.ts";
import {
  type DeadlineClaims,
  type OrphanClaims,
  postgresAlerts,
  postgresAttempts,
  postgresDeadlineClaims,
  postgresDeviceEvents,
  postgresOrphanClaims,
} from "./postgres-alerts.ts";
import { postgresAccounts, postgresAudit, postgresSessions, postgresThrottles } from "./postgres-auth.ts";
import {
  changes,
  closePool,
  isUniqueViolation,
  json,
  LOCKS,
  openPool,
  type Queryable,
  type Row,
  row,
  rows,
  transaction,
} from "./postgres-db.ts";
import { postgresAlertFeed } from "./postgres-feed.ts";
import { postgresMigrations } from "./postgres-migrations.ts";
import {
  postgresGeofences,
  postgresSpool,
  postgresTelemetry,
  postgresTracking,
} from "./postgres-tracking.ts";
import { toAssignment, toCareNotes, toDevice, toPerson } from "./rows.ts";
import type {
  Person,
  PushSubscription,
  PushSubscriptionRepository,
  RegistryRepository,
  Store,
  WatchReadingRepository,
} from "./types.ts";

export interface PostgresOptions {
  log?: Logger;
  /** Connections in the pool. */
  maxConnections?: number;
}

/** The store, and what only PostgreSQL offers: deadlines several gateways can share. */
export type PostgresStore = Store & {
  readonly deadlineClaims: DeadlineClaims;
  readonly orphanClaims: OrphanClaims;
};

/**
 * Opens the store in the PostgreSQL database at `url` (postgres://user:password@host:port/db),
 * migrating it first. Durability is the server's: a commit returns once its WAL is flushed
 * (synchronous_commit on, PostgreSQL's default), so there is no flusher or checkpointer here. The
 * embedded telemetry and its spool are tables of the same database.
 */

/** Connections for what comes in bulk (telemetry, device states, watch readings), apart from the rest. */
const BULK_CONNECTIONS = 3;

export async function openPostgresStore(url: string, options: PostgresOptions = {}): Promise<PostgresStore> {
  const pool = openPool(url, options.maxConnections ?? 10);
  // Telemetry, device states and watch readings come in bulk, thousands a second with many
  // devices: they have connections of their own, so that a press never waits for one behind them.
  const bulk = openPool(url, BULK_CONNECTIONS);
  // An idle connection the server dropped (restart, failover) must not crash the gateway.
  for (const p of [pool, bulk])
    p.on("error", (err) => options.log?.warn({ err: err.message }, "a PostgreSQL connection was lost"));
  const closeAll = () => Promise.all([closePool(pool), closePool(bulk)]).then(() => undefined);
  try {
    await migratePostgres(pool);
  } catch (err) {
    await closeAll();
    throw err;
  }
  let closed: Promise<void> | undefined;
  // This gateway, as the sender of the pages it commits and the receiver of the events it stores (see OrphanClaims).
  const gatewayId = randomUUID();
  return {
    registry: registry(pool),
    deviceEvents: postgresDeviceEvents(pool, gatewayId),
    alerts: postgresAlerts(pool, gatewayId),
    attempts: postgresAttempts(pool),
    tracking: postgresTracking(bulk),
    geofences: postgresGeofences(pool),
    accounts: postgresAccounts(pool),
    sessions: postgresSessions(pool),
    throttles: postgresThrottles(pool),
    audit: postgresAudit(pool),
    watchReadings: watchReadings(bulk),
    pushSubscriptions: pushSubscriptions(pool),
    telemetry: postgresTelemetry(bulk),
    spool: postgresSpool(bulk),
    deadlineClaims: postgresDeadlineClaims(pool),
    orphanClaims: postgresOrphanClaims(pool, gatewayId),
    alertFeed: postgresAlertFeed(url, pool, options.log),
    // The server flushes at each commit: committed is durable, and there is no group commit of ours to count.
    committed: (write) => write(),
    durable: async () => {},
    flushCounts: () => ({ flushes: 0, writes: 0 }),
    ping: async () => {
      // A standby after a failover, or a server set read-only, answers reads and refuses every write.
      const { rows } = await pool.query(
        "SELECT pg_is_in_recovery() AS standby, current_setting('transaction_read_only') = 'on' AS read_only",
      );
      if (rows[0]?.standby || rows[0]?.read_only)
        throw Object.assign(new Error("PostgreSQL is read-only: writes would fail"), { code: "25006" });
    },
    close: () => {
      closed ??= closeAll();
      return closed;
    },
  };
}

/**
 * Applies the migrations not yet recorded in `schema_migrations`, each in its own transaction.
 * A session advisory lock makes instances starting together wait for the first one's migration,
 * then find nothing left to do.
 */
export async function migratePostgres(pool: pg.Pool, migrations = postgresMigrations): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query("SELECT pg_advisory_lock($1)", [LOCKS.migrations]);
    try {
      await client.query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
      );
      const applied = new Set(
        (await rows(client, "SELECT version FROM schema_migrations")).map((r) => r.version as number),
      );
      for (const m of migrations) {
        if (applied.has(m.version)) continue;
        await client.query("BEGIN");
        try {
          await client.query(m.sql);
          await client.query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            [m.version, m.name, Date.now()],
          );
          await client.query("COMMIT");
        } catch (err) {
          await client.query("ROLLBACK");
          throw new Error(`PostgreSQL migration ${m.version} (${m.name}) failed: ${(err as Error).message}`);
        }
      }
    } finally {
      await client.query("SELECT pg_advisory_unlock($1)", [LOCKS.migrations]);
    }
  } finally {
    client.release();
  }
}

function registry(pool: pg.Pool): RegistryRepository {
  /** People read with their contacts in one statement: `${withContacts} WHERE …`. */
  const withContacts = `SELECT p.*, (SELECT COALESCE(json_agg(c ORDER BY c.position), '[]') FROM person_contacts c
      WHERE c.person_id = p.id) AS contacts FROM people p`;
  const personOf = (r: Row): Person => toPerson(r, r.contacts as Row[]);
  const writeContacts = async (tx: Queryable, p: Person) => {
    await tx.query("DELETE FROM person_contacts WHERE person_id = $1", [p.id]);
    for (const [i, c] of p.contacts.entries())
      await tx.query(
        "INSERT INTO person_contacts (person_id, position, kind, address, alert_kinds, min_level) VALUES ($1, $2, $3, $4, $5, $6)",
        [p.id, i + 1, c.kind, c.address, json(c.alertKinds), c.minLevel],
      );
  };
  const insertOrConflict = async <T>(what: string, id: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      if (isUniqueViolation(err)) throw Errors.alreadyExists(what, id);
      throw err;
    }
  };

  return {
    createCommunity: (c) =>
      insertOrConflict("community", c.id, async () => {
        await pool.query("INSERT INTO communities (id, name) VALUES ($1, $2)", [c.id, c.name]);
        return c;
      }),
    listCommunities: async () =>
      (await rows(pool, "SELECT id, name FROM communities ORDER BY id")).map((r) => ({
        id: r.id as string,
        name: r.name as string,
      })),
    createGrid: (g) =>
      insertOrConflict("grid", g.id, async () => {
        await pool.query("INSERT INTO grids (id, community_id, name) VALUES ($1, $2, $3)", [
          g.id,
          g.communityId,
          g.name,
        ]);
        return g;
      }),
    listGrids: async () =>
      (await rows(pool, "SELECT * FROM grids ORDER BY id")).map((r) => ({
        id: r.id as string,
        communityId: r.community_id as string,
        name: r.name as string,
      })),
    createPerson: (p) =>
      insertOrConflict("person", p.id, () =>
        transaction(pool, async (tx) => {
          await tx.query(
            "INSERT INTO people (id, name, role, community_id, grid_id, phone, address, locale, category) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            [p.id, p.name, p.role, p.communityId, p.gridId, p.phone, p.address, p.locale, p.category ?? null],
          );
          await writeContacts(tx, p);
          return p;
        }),
      ),
    updatePerson: (p) =>
      transaction(pool, async (tx) => {
        await tx.query(
          "UPDATE people SET name = $1, role = $2, community_id = $3, grid_id = $4, phone = $5, address = $6, locale = $7, category = $8 WHERE id = $9",
          [p.name, p.role, p.communityId, p.gridId, p.phone, p.address, p.locale, p.category ?? null, p.id],
        );
        await writeContacts(tx, p);
        return p;
      }),
    getPerson: async (id) => {
      const r = await row(pool, `${withContacts} WHERE p.id = $1`, [id]);
      return r && personOf(r);
    },
    listPeople: async (f = {}) =>
      (
        await rows(
          pool,
          `${withContacts} WHERE ($1::text IS NULL OR p.role = $1)
             AND ($2::text IS NULL OR p.community_id = $2) AND ($3::text IS NULL OR p.grid_id = $3) ORDER BY p.id`,
          [f.role ?? null, f.communityId ?? null, f.gridId ?? null],
        )
      ).map(personOf),
    deletePerson: async (id) => {
      const device = await row(pool, "SELECT id FROM devices WHERE owner_id = $1 LIMIT 1", [id]);
      if (device) throw Errors.inUse("person", id, `device '${device.id}'`);
      const assigned = await row(
        pool,
        "SELECT id FROM assignments WHERE resident_id = $1 OR person_id = $1 LIMIT 1",
        [id],
      );
      if (assigned) throw Errors.inUse("person", id, `assignment ${assigned.id}`);
      const account = await row(pool, "SELECT username FROM accounts WHERE person_id = $1 LIMIT 1", [id]);
      if (account) throw Errors.inUse("person", id, `account '${account.username}'`);
      await pool.query("DELETE FROM people WHERE id = $1", [id]); // its care notes go with it (ON DELETE CASCADE)
    },
    getCareNotes: async (personId) => {
      const r = await row(pool, "SELECT * FROM care_notes WHERE person_id = $1", [personId]);
      return r && toCareNotes(r);
    },
    putCareNotes: async (personId, n) => {
      await pool.query(
        `INSERT INTO care_notes (person_id, conditions, medicines, allergies, door_access, language, updated_at, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (person_id) DO UPDATE SET conditions = excluded.conditions, medicines = excluded.medicines,
           allergies = excluded.allergies, door_access = excluded.door_access, language = excluded.language,
           updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
        [
          personId,
          n.conditions,
          n.medicines,
          n.allergies,
          n.doorAccess,
          n.language,
          n.updatedAt,
          n.updatedBy,
        ],
      );
      return n;
    },
    createDevice: (d, secretHash) =>
      insertOrConflict("device", d.id, async () => {
        const protocol = d.protocol ?? "mqtt";
        await pool.query(
          "INSERT INTO devices (id, kind, owner_id, protocol, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
          [d.id, d.kind, d.ownerId, protocol, secretHash, d.createdAt],
        );
        return { ...d, protocol, revokedAt: null };
      }),
    getDevice: async (id) => {
      const r = await row(pool, "SELECT * FROM devices WHERE id = $1", [id]);
      return r && toDevice(r);
    },
    setDeviceSecret: async (id, secretHash) => {
      await pool.query("UPDATE devices SET secret_hash = $1, revoked_at = NULL WHERE id = $2", [
        secretHash,
        id,
      ]);
    },
    replaceDeviceSecret: async (id, expected, secretHash) =>
      (await changes(
        pool,
        "UPDATE devices SET secret_hash = $1 WHERE id = $2 AND secret_hash = $3 AND revoked_at IS NULL",
        [secretHash, id, expected],
      )) === 1,
    revokeDevice: async (id, at) => {
      await pool.query("UPDATE devices SET revoked_at = $1 WHERE id = $2", [at, id]);
    },
    setDeviceOwner: async (id, ownerId) => {
      await pool.query("UPDATE devices SET owner_id = $1 WHERE id = $2", [ownerId, id]);
    },
    getDeviceSecretHash: async (id) =>
      (await row(pool, "SELECT secret_hash FROM devices WHERE id = $1 AND revoked_at IS NULL", [id]))
        ?.secret_hash as string | undefined,
    listDevices: async () => (await rows(pool, "SELECT * FROM devices ORDER BY id")).map(toDevice),
    createAssignment: (a) =>
      insertOrConflict("assignment", `${a.residentId} -> ${a.personId}`, async () => {
        const r = await row(
          pool,
          "INSERT INTO assignments (resident_id, person_id, relation) VALUES ($1, $2, $3) RETURNING id",
          [a.residentId, a.personId, a.relation],
        );
        return { id: r?.id as number, ...a };
      }),
    listAssignments: async ({ residentId, personId } = {}) =>
      (
        await rows(
          pool,
          `SELECT * FROM assignments WHERE ($1::text IS NULL OR resident_id = $1)
             AND ($2::text IS NULL OR person_id = $2) ORDER BY id`,
          [residentId ?? null, personId ?? null],
        )
      ).map(toAssignment),
    deleteAssignment: async (id) => {
      if ((await changes(pool, "DELETE FROM assignments WHERE id = $1", [id])) === 0)
        throw Errors.notFound("assignment", String(id));
    },
    isEmpty: async () => !(await row(pool, "SELECT 1 FROM communities LIMIT 1")),
  };
}

function watchReadings(pool: pg.Pool): WatchReadingRepository {
  return {
    add: async (r) => {
      await pool.query(
        "INSERT INTO watch_readings (device_id, ts, received_at, type, late, data) VALUES ($1, $2, $3, $4, $5, $6)",
        [r.deviceId, r.ts, r.receivedAt, r.type, r.late, json(r.data)],
      );
    },
    list: async (deviceId, limit) =>
      (
        await rows(pool, "SELECT * FROM watch_readings WHERE device_id = $1 ORDER BY id DESC LIMIT $2", [
          deviceId,
          limit,
        ])
      ).map((r) => ({
        deviceId: r.device_id as string,
        ts: r.ts as number,
        receivedAt: r.received_at as number,
        type: r.type as string,
        late: r.late as boolean,
        data: r.data as Record<string, unknown>,
      })),
    prune: (before) => changes(pool, "DELETE FROM watch_readings WHERE received_at < $1", [before]),
  };
}

function pushSubscriptions(pool: pg.Pool): PushSubscriptionRepository {
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
      await pool.query(
        `INSERT INTO push_subscriptions (endpoint, person_id, username, p256dh, auth, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (endpoint) DO UPDATE SET person_id = excluded.person_id, username = excluded.username,
           p256dh = excluded.p256dh, auth = excluded.auth, created_at = excluded.created_at`,
        [s.endpoint, s.personId, s.username, s.p256dh, s.auth, s.createdAt],
      );
    },
    get: async (endpoint) => {
      const r = await row(pool, "SELECT * FROM push_subscriptions WHERE endpoint = $1", [endpoint]);
      return r && toSubscription(r);
    },
    forPerson: async (personId) =>
      (
        await rows(
          pool,
          `SELECT s.* FROM push_subscriptions s JOIN accounts a ON a.username = s.username
           WHERE s.person_id = $1 AND a.person_id = s.person_id AND a.disabled_at IS NULL
           ORDER BY s.created_at`,
          [personId],
        )
      ).map(toSubscription),
    countForAccount: async (username) =>
      (await row(pool, "SELECT COUNT(*) AS n FROM push_subscriptions WHERE username = $1", [username]))
        ?.n as number,
    remove: async (endpoint, username) =>
      (await changes(
        pool,
        "DELETE FROM push_subscriptions WHERE endpoint = $1 AND ($2::text IS NULL OR username = $2)",
        [endpoint, username ?? null],
      )) > 0,
  };
}
