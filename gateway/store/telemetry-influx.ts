import { FieldType, InfluxDB, escape as influxQl } from "influx";
import type { TelemetryPoint, TelemetryStore } from "./telemetry.ts";

export interface InfluxOptions {
  url: string;
  database: string;
  /** InfluxDB 2.x through its v1-compatible API: a token with write/read on the mapped bucket. */
  token?: string;
  username?: string;
  password?: string;
  timeoutMs: number;
  /** How long InfluxDB keeps positions: set on the database's default retention policy. */
  retentionDays: number;
}

const MEASUREMENT = "telemetry";

/**
 * Telemetry in InfluxDB over the v1 HTTP API through the `influx` client: InfluxDB 1.6 to 1.8 as
 * Debian and the official 1.x images ship it, and 2.x through its v1 compatibility endpoints.
 */
export function influxTelemetry(o: InfluxOptions): TelemetryStore & { ensureDatabase(): Promise<void> } {
  const url = new URL(o.url);
  // null, not undefined: the client fills an undefined username with root:root and sends it as
  // Basic auth, which would also override the token.
  const noUser = null as unknown as string;
  const db = new InfluxDB({
    host: url.hostname,
    port: Number(url.port) || (url.protocol === "https:" ? 443 : 80),
    protocol: url.protocol === "https:" ? "https" : "http",
    path: url.pathname.replace(/\/$/, ""),
    database: o.database,
    username: o.token || !o.username ? noUser : o.username,
    password: o.password,
    options: o.token ? { headers: { authorization: `Token ${o.token}` } } : undefined,
    // The telemetry writer retries and spools on its own; the client only reports the failure.
    pool: { requestTimeout: o.timeoutMs, maxRetries: 0 },
    // Field types as the first releases wrote them: a point never meets a field type conflict.
    schema: [
      {
        measurement: MEASUREMENT,
        tags: ["device"],
        fields: {
          battery: FieldType.FLOAT,
          received_at: FieldType.INTEGER,
          fix: FieldType.STRING,
          lat: FieldType.FLOAT,
          lon: FieldType.FLOAT,
          accuracy: FieldType.FLOAT,
          source: FieldType.STRING,
        },
      },
    ],
  });

  return {
    name: "influxdb",
    ensureDatabase: async () => {
      await db.createDatabase(o.database);
      // Positions say where a child has been: they are kept no longer than the retention period.
      await db.alterRetentionPolicy("autogen", {
        database: o.database,
        duration: `${o.retentionDays}d`,
        replication: 1,
        isDefault: true,
      });
    },
    write: async (points) => {
      if (points.length === 0) return;
      await db.writePoints(
        points.map((p) => ({
          measurement: MEASUREMENT,
          tags: { device: p.deviceId },
          fields: {
            battery: p.battery,
            received_at: p.receivedAt,
            fix: p.fix,
            ...(p.lat !== undefined && p.lon !== undefined ? { lat: p.lat, lon: p.lon } : {}),
            ...(p.accuracy !== undefined ? { accuracy: p.accuracy } : {}),
            ...(p.source !== undefined ? { source: p.source } : {}),
          },
          timestamp: p.ts,
        })),
        { precision: "ms" },
      );
    },
    track: async (deviceId, from, to, limit) => {
      const rows = await db.query<Record<string, unknown>>(
        `SELECT battery, received_at, fix, lat, lon, accuracy, source FROM ${MEASUREMENT}
         WHERE device = ${influxQl.stringLit(deviceId)} AND time >= ${Math.floor(from)}ms AND time <= ${Math.floor(to)}ms
         ORDER BY time ASC LIMIT ${Math.floor(limit)}`,
        { precision: "ms" },
      );
      return rows.map((r) => {
        const point: TelemetryPoint = {
          deviceId,
          ts: (r.time as Date).getTime(),
          receivedAt: r.received_at as number,
          battery: r.battery as number,
          fix: r.fix as TelemetryPoint["fix"],
        };
        if (r.lat !== null && r.lat !== undefined) Object.assign(point, { lat: r.lat, lon: r.lon });
        if (r.accuracy !== null && r.accuracy !== undefined) point.accuracy = r.accuracy as number;
        if (r.source !== null && r.source !== undefined) point.source = r.source as string;
        return point;
      });
    },
  };
}
