import type pg from "pg";
import type { Geofence, ZoneTrack } from "../rules/geofence.ts";
import { changes, json, type Row, row, rows, transaction } from "./postgres-db.ts";
import { toTelemetryPoint } from "./rows.ts";
import type { TelemetryPoint, TelemetrySpool, TelemetryStore } from "./telemetry.ts";
import type { DeviceState, GeofenceRepository, TrackingRepository } from "./types.ts";

/** Rows per statement: a district's device states are saved in several, each its own transaction. */
const CHUNK = 500;

/**
 * Embedded telemetry in the PostgreSQL database (when no InfluxDB is configured): each batch is
 * one statement over arrays, so it is stored whole or not at all and a retried batch is never half
 * stored twice.
 */
export function postgresTelemetry(
  pool: pg.Pool,
): TelemetryStore & { prune(before: number): Promise<number> } {
  return {
    name: "postgres",
    write: async (points) => {
      await pool.query(
        `INSERT INTO telemetry (device_id, ts, received_at, battery, lat, lon, accuracy, source, fix)
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::float8[], $5::float8[], $6::float8[],
           $7::float8[], $8::text[], $9::text[])`,
        [
          points.map((p) => p.deviceId),
          points.map((p) => p.ts),
          points.map((p) => p.receivedAt),
          points.map((p) => p.battery),
          points.map((p) => p.lat ?? null),
          points.map((p) => p.lon ?? null),
          points.map((p) => p.accuracy ?? null),
          points.map((p) => p.source ?? null),
          points.map((p) => p.fix),
        ],
      );
    },
    track: async (deviceId, from, to, limit) =>
      (
        await rows(
          pool,
          "SELECT * FROM telemetry WHERE device_id = $1 AND ts >= $2 AND ts <= $3 ORDER BY ts LIMIT $4",
          [deviceId, from, to, limit],
        )
      ).map(toTelemetryPoint),
    prune: (before) => changes(pool, "DELETE FROM telemetry WHERE received_at < $1", [before]),
  };
}

export function postgresSpool(pool: pg.Pool): TelemetrySpool {
  return {
    push: async (points) => {
      await pool.query(
        `INSERT INTO telemetry_spool (point)
         SELECT p FROM unnest($1::jsonb[]) WITH ORDINALITY AS t(p, i) ORDER BY i`,
        [points.map((p) => JSON.stringify(p))],
      );
    },
    peek: async (limit) => {
      const spooled = await rows(pool, "SELECT id, point FROM telemetry_spool ORDER BY id LIMIT $1", [limit]);
      return {
        upTo: (spooled.at(-1)?.id as number | undefined) ?? 0,
        points: spooled.map((r) => r.point as TelemetryPoint),
      };
    },
    remove: async (upTo) => {
      await pool.query("DELETE FROM telemetry_spool WHERE id <= $1", [upTo]);
    },
    count: async () => (await row(pool, "SELECT COUNT(*) AS n FROM telemetry_spool"))?.n as number,
  };
}

export function postgresTracking(pool: pg.Pool): TrackingRepository {
  return {
    loadStates: async () =>
      (await rows(pool, "SELECT state FROM device_state")).map((r) => r.state as DeviceState),
    loadZoneTracks: async () =>
      (await rows(pool, "SELECT * FROM zone_tracks")).map((r) => ({
        deviceId: r.device_id as string,
        geofenceId: r.geofence_id as string,
        track: {
          status: r.status as ZoneTrack["status"],
          streak: r.streak as number,
          lastTs: r.last_ts as number,
        },
      })),
    // Device states are a cache of the heartbeats: each chunk is its own statement.
    save: async (states, tracks) => {
      for (let i = 0; i < states.length; i += CHUNK) {
        const chunk = states.slice(i, i + CHUNK);
        await pool.query(
          `INSERT INTO device_state (device_id, state) SELECT * FROM unnest($1::text[], $2::jsonb[])
           ON CONFLICT (device_id) DO UPDATE SET state = excluded.state`,
          [chunk.map((s) => s.deviceId), chunk.map((s) => JSON.stringify(s))],
        );
      }
      if (tracks.length === 0) return;
      await pool.query(
        `INSERT INTO zone_tracks (device_id, geofence_id, status, streak, last_ts)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[], $5::bigint[])
         ON CONFLICT (device_id, geofence_id) DO UPDATE SET status = excluded.status, streak = excluded.streak,
           last_ts = excluded.last_ts`,
        [
          tracks.map((t) => t.deviceId),
          tracks.map((t) => t.geofenceId),
          tracks.map((t) => t.track.status),
          tracks.map((t) => t.track.streak),
          tracks.map((t) => t.track.lastTs),
        ],
      );
    },
  };
}

export function postgresGeofences(pool: pg.Pool): GeofenceRepository {
  const toGeofence = (r: Row): Geofence => ({
    id: r.id as string,
    name: r.name as string,
    shape: r.shape as Geofence["shape"],
    schedule: (r.schedule as Geofence["schedule"] | null) ?? null,
    deviceIds: r.device_ids as string[],
  });
  const params = (g: Geofence) => [g.name, json(g.shape), json(g.schedule), json(g.deviceIds), g.id];
  return {
    list: async () => (await rows(pool, "SELECT * FROM geofences ORDER BY id")).map(toGeofence),
    get: async (id) => {
      const r = await row(pool, "SELECT * FROM geofences WHERE id = $1", [id]);
      return r && toGeofence(r);
    },
    create: async (g) => {
      await pool.query(
        "INSERT INTO geofences (name, shape, schedule, device_ids, id) VALUES ($1, $2, $3, $4, $5)",
        params(g),
      );
      return g;
    },
    update: async (g) => {
      await pool.query(
        "UPDATE geofences SET name = $1, shape = $2, schedule = $3, device_ids = $4 WHERE id = $5",
        params(g),
      );
      return g;
    },
    remove: (id) =>
      transaction(pool, async (tx) => {
        await tx.query("DELETE FROM zone_tracks WHERE geofence_id = $1", [id]);
        await tx.query("DELETE FROM geofences WHERE id = $1", [id]);
      }),
  };
}
