import type Database from "better-sqlite3";
import type { Geofence, ZoneTrack } from "../rules/geofence.ts";
import { type Row, toTelemetryPoint } from "./rows.ts";
import type { TelemetryPoint, TelemetrySpool, TelemetryStore } from "./telemetry.ts";
import type { DeviceState, GeofenceRepository, TrackingRepository } from "./types.ts";

/**
 * The schema of `telemetry.db`: what the heartbeats tell (the embedded telemetry and its spool,
 * each device's state, its zone tracks), written in batches that never hold the lock a press
 * needs, and never carried by a press's flush. A district's state (10,000 devices every 10 s)
 * written into gateway.db's log made the next press's flush write megabytes.
 */
export function createTelemetrySchema(db: Database.Database): void {
  db.exec(`
CREATE TABLE IF NOT EXISTS telemetry (
  device_id TEXT NOT NULL,
  ts INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  battery REAL NOT NULL,
  lat REAL,
  lon REAL,
  accuracy REAL,
  source TEXT,
  fix TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS telemetry_device_ts ON telemetry(device_id, ts);
CREATE INDEX IF NOT EXISTS telemetry_received ON telemetry(received_at);
CREATE TABLE IF NOT EXISTS telemetry_spool (id INTEGER PRIMARY KEY AUTOINCREMENT, point TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS device_state (device_id TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS zone_tracks (
  device_id TEXT NOT NULL,
  geofence_id TEXT NOT NULL,
  status TEXT NOT NULL,
  streak INTEGER NOT NULL,
  last_ts INTEGER NOT NULL,
  PRIMARY KEY (device_id, geofence_id)
);
`);
}

/** What an older version kept in `gateway.db`, with the columns both databases have. */
const MOVED_TABLES: Record<string, string> = {
  telemetry: "rowid, device_id, ts, received_at, battery, lat, lon, accuracy, source, fix",
  telemetry_spool: "id, point",
  device_state: "device_id, state",
  zone_tracks: "device_id, geofence_id, status, streak, last_ts",
};

/**
 * Moves to `telemetry.db` what an older version kept in `gateway.db` (telemetry, then device
 * state and zone tracks), and drops it there. The copy is on disk before the drop: SQLite commits
 * each file of a transaction over WAL databases on its own, so one transaction could drop the rows
 * and lose their copy. Rows keep their keys, so a move cut short is simply done again at the next
 * start, and a row already copied is kept as telemetry.db has it.
 */
export function moveToTelemetryDb(db: Database.Database, telemetryFile: string): void {
  const here = (
    db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[]
  ).filter((name) => name in MOVED_TABLES);
  if (here.length === 0) return;
  db.prepare("ATTACH DATABASE ? AS moved").run(telemetryFile);
  try {
    db.pragma("moved.synchronous = FULL");
    db.transaction(() => {
      for (const table of here) {
        const columns = MOVED_TABLES[table];
        db.exec(`INSERT OR IGNORE INTO moved.${table} (${columns}) SELECT ${columns} FROM main.${table}`);
      }
    })();
    db.transaction(() => {
      for (const table of here) db.exec(`DROP TABLE main.${table}`);
    })();
  } finally {
    db.exec("DETACH DATABASE moved");
  }
}

/** Rows written between two turns of the event loop. */
const CHUNK = 500;
const yieldToPresses = () => new Promise((resolve) => setImmediate(resolve));

/**
 * Batch writes on the telemetry connection: each batch is one transaction (all or nothing, so a
 * retried batch is never half stored twice), written a chunk at a time with the event loop free
 * in between, so a batch of thousands never holds up a press. Batches on one connection (the
 * telemetry's, the spool's, the device states' and zone tracks') run one after another.
 */
const lastBatch = new WeakMap<Database.Database, Promise<void>>();
/**
 * Runs `write` on the connection once its batches before are done: a write made while one is open
 * would join its transaction, and be rolled back with it. Every write on the connection goes here.
 */
function afterBatches<T>(db: Database.Database, write: () => Promise<T>): Promise<T> {
  const done = (lastBatch.get(db) ?? Promise.resolve()).then(write);
  lastBatch.set(
    db,
    done.then(
      () => {},
      () => {},
    ),
  );
  return done;
}
function chunkedWriter<T>(db: Database.Database, writeOne: (point: T) => void) {
  const writeAll = async (points: T[]) => {
    db.exec("BEGIN IMMEDIATE");
    try {
      for (let i = 0; i < points.length; i += CHUNK) {
        if (i > 0) await yieldToPresses();
        for (const p of points.slice(i, i + CHUNK)) writeOne(p);
      }
      db.exec("COMMIT");
    } catch (err) {
      if (db.inTransaction) db.exec("ROLLBACK");
      throw err;
    }
  };
  return (points: T[]): Promise<void> => afterBatches(db, () => writeAll(points));
}

/** Embedded telemetry: one row per heartbeat, trimmed to the retention period. */
export function sqliteTelemetry(
  db: Database.Database,
): TelemetryStore & { prune(before: number): Promise<number> } {
  const insert = db.prepare(
    `INSERT INTO telemetry (device_id, ts, received_at, battery, lat, lon, accuracy, source, fix)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const write = chunkedWriter<TelemetryPoint>(db, (p) =>
    insert.run(
      p.deviceId,
      p.ts,
      p.receivedAt,
      p.battery,
      p.lat ?? null,
      p.lon ?? null,
      p.accuracy ?? null,
      p.source ?? null,
      p.fix,
    ),
  );
  return {
    name: "sqlite",
    write,
    track: async (deviceId, from, to, limit) =>
      (
        db
          .prepare("SELECT * FROM telemetry WHERE device_id = ? AND ts >= ? AND ts <= ? ORDER BY ts LIMIT ?")
          .all(deviceId, from, to, limit) as Row[]
      ).map(toTelemetryPoint),
    prune: (before) =>
      afterBatches(
        db,
        async () => db.prepare("DELETE FROM telemetry WHERE received_at < ?").run(before).changes,
      ),
  };
}

export function sqliteSpool(db: Database.Database): TelemetrySpool {
  const insert = db.prepare("INSERT INTO telemetry_spool (point) VALUES (?)");
  return {
    push: chunkedWriter<TelemetryPoint>(db, (p) => insert.run(JSON.stringify(p))),
    peek: async (limit) => {
      const rows = db
        .prepare("SELECT id, point FROM telemetry_spool ORDER BY id LIMIT ?")
        .all(limit) as Row[];
      return {
        upTo: (rows.at(-1)?.id as number) ?? 0,
        points: rows.map((r) => JSON.parse(r.point as string)),
      };
    },
    remove: (upTo) =>
      afterBatches(db, async () => {
        db.prepare("DELETE FROM telemetry_spool WHERE id <= ?").run(upTo);
      }),
    count: async () => (db.prepare("SELECT COUNT(*) AS n FROM telemetry_spool").get() as Row).n as number,
  };
}

/** Device states and zone tracks, on the telemetry connection (see createTelemetrySchema). */
export function sqliteTracking(db: Database.Database): TrackingRepository {
  const saveState = db.prepare(
    "INSERT INTO device_state (device_id, state) VALUES (?, ?) ON CONFLICT (device_id) DO UPDATE SET state = excluded.state",
  );
  const saveTrack = db.prepare(
    `INSERT INTO zone_tracks (device_id, geofence_id, status, streak, last_ts) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (device_id, geofence_id) DO UPDATE SET status = excluded.status, streak = excluded.streak, last_ts = excluded.last_ts`,
  );
  const saveStates = chunkedWriter<DeviceState>(db, (s) => saveState.run(s.deviceId, JSON.stringify(s)));
  const saveTracks = chunkedWriter<{ deviceId: string; geofenceId: string; track: ZoneTrack }>(db, (t) =>
    saveTrack.run(t.deviceId, t.geofenceId, t.track.status, t.track.streak, t.track.lastTs),
  );
  return {
    loadStates: async () =>
      (db.prepare("SELECT state FROM device_state").all() as Row[]).map((r) => JSON.parse(r.state as string)),
    loadZoneTracks: async () =>
      (db.prepare("SELECT * FROM zone_tracks").all() as Row[]).map((r) => ({
        deviceId: r.device_id as string,
        geofenceId: r.geofence_id as string,
        track: {
          status: r.status as ZoneTrack["status"],
          streak: r.streak as number,
          lastTs: r.last_ts as number,
        },
      })),
    // Both queued at once: a geofence's removal asked for meanwhile deletes its tracks after them.
    save: async (states, tracks) => {
      await Promise.all([states.length > 0 && saveStates(states), tracks.length > 0 && saveTracks(tracks)]);
    },
  };
}

/** Geofences in gateway.db; `heartbeatDb`, telemetry.db's connection, holds their zone tracks. */
export function sqliteGeofences(db: Database.Database, heartbeatDb: Database.Database): GeofenceRepository {
  const toGeofence = (r: Row): Geofence => ({
    id: r.id as string,
    name: r.name as string,
    shape: JSON.parse(r.shape as string),
    schedule: r.schedule ? JSON.parse(r.schedule as string) : null,
    deviceIds: JSON.parse(r.device_ids as string),
  });
  const params = (g: Geofence) => [
    g.name,
    JSON.stringify(g.shape),
    g.schedule ? JSON.stringify(g.schedule) : null,
    JSON.stringify(g.deviceIds),
    g.id,
  ];
  return {
    list: async () => (db.prepare("SELECT * FROM geofences ORDER BY id").all() as Row[]).map(toGeofence),
    get: async (id) => {
      const r = db.prepare("SELECT * FROM geofences WHERE id = ?").get(id) as Row | undefined;
      return r && toGeofence(r);
    },
    create: async (g) => {
      db.prepare("INSERT INTO geofences (name, shape, schedule, device_ids, id) VALUES (?, ?, ?, ?, ?)").run(
        ...params(g),
      );
      return g;
    },
    update: async (g) => {
      db.prepare("UPDATE geofences SET name = ?, shape = ?, schedule = ?, device_ids = ? WHERE id = ?").run(
        ...params(g),
      );
      return g;
    },
    // The geofence before any wait, so that the flush the store asks for covers it; its tracks
    // then. Tracks of no geofence (a crash in between) are forgotten when the tracker loads them.
    remove: async (id) => {
      db.prepare("DELETE FROM geofences WHERE id = ?").run(id);
      await afterBatches(heartbeatDb, async () => {
        heartbeatDb.prepare("DELETE FROM zone_tracks WHERE geofence_id = ?").run(id);
      });
    },
  };
}
