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
const escapeTag = (v: string) => v.replace(/[,= \\]/g, (c) => `\\${c}`);
const quote = (v: string) => `"${v.replace(/["\\]/g, (c) => `\\${c}`)}"`;

/** One point in line protocol; device time in ms, the device as a tag. */
export function toLine(p: TelemetryPoint): string {
  const fields = [`battery=${p.battery}`, `received_at=${p.receivedAt}i`, `fix=${quote(p.fix)}`];
  if (p.lat !== undefined && p.lon !== undefined) fields.push(`lat=${p.lat}`, `lon=${p.lon}`);
  if (p.accuracy !== undefined) fields.push(`accuracy=${p.accuracy}`);
  if (p.source !== undefined) fields.push(`source=${quote(p.source)}`);
  return `${MEASUREMENT},device=${escapeTag(p.deviceId)} ${fields.join(",")} ${p.ts}`;
}

/**
 * Telemetry in InfluxDB over the v1 HTTP API (`/write`, `/query`): InfluxDB 1.6 to 1.8 as Debian
 * and the official 1.x images ship it, and 2.x through its v1 compatibility endpoints.
 */
export function influxTelemetry(o: InfluxOptions): TelemetryStore & { ensureDatabase(): Promise<void> } {
  const base = o.url.replace(/\/$/, "");
  const headers: Record<string, string> = {};
  if (o.token) headers.authorization = `Token ${o.token}`;
  else if (o.username)
    headers.authorization = `Basic ${Buffer.from(`${o.username}:${o.password ?? ""}`).toString("base64")}`;

  const request = async (path: string, init: RequestInit = {}) => {
    const res = await fetch(`${base}${path}`, {
      ...init,
      headers: { ...headers, ...(init.headers as Record<string, string>) },
      signal: AbortSignal.timeout(o.timeoutMs),
    });
    if (!res.ok)
      throw new Error(
        `InfluxDB ${path.split("?")[0]} answered ${res.status}: ${(await res.text()).slice(0, 200)}`,
      );
    return res;
  };
  const query = async (q: string, method: "GET" | "POST" = "GET") => {
    const params = new URLSearchParams({ db: o.database, q, epoch: "ms" });
    const res = await request(`/query?${params}`, { method });
    const body = (await res.json()) as {
      results?: { error?: string; series?: { columns: string[]; values: unknown[][] }[] }[];
    };
    const error = body.results?.find((r) => r.error)?.error;
    if (error) throw new Error(`InfluxDB query failed: ${error}`);
    return body.results?.[0]?.series?.[0];
  };

  return {
    name: "influxdb",
    ensureDatabase: async () => {
      const db = `"${o.database.replace(/"/g, "")}"`;
      await query(`CREATE DATABASE ${db}`, "POST");
      // Positions say where a child has been: they are kept no longer than the retention period.
      await query(`ALTER RETENTION POLICY "autogen" ON ${db} DURATION ${o.retentionDays}d`, "POST");
    },
    write: async (points) => {
      if (points.length === 0) return;
      const params = new URLSearchParams({ db: o.database, precision: "ms" });
      await request(`/write?${params}`, { method: "POST", body: points.map(toLine).join("\n") });
    },
    track: async (deviceId, from, to, limit) => {
      const id = deviceId.replace(/['\\]/g, "");
      const series = await query(
        `SELECT battery, received_at, fix, lat, lon, accuracy, source FROM ${MEASUREMENT} WHERE device = '${id}' AND time >= ${Math.floor(from)}ms AND time <= ${Math.floor(to)}ms ORDER BY time ASC LIMIT ${Math.floor(limit)}`,
      );
      if (!series) return [];
      return series.values.map((row) => {
        const r = Object.fromEntries(series.columns.map((c, i) => [c, row[i]]));
        const point: TelemetryPoint = {
          deviceId,
          ts: r.time as number,
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
