import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { influxTelemetry } from "../../gateway/store/telemetry-influx.ts";
import {
  call,
  connectDevice,
  metric,
  registerDevice,
  seedCommunity,
  startGateway,
  type TestDevice,
  type TestGateway,
} from "../support/gateway.ts";
import { startInfluxd } from "../support/influxd.ts";
import { waitFor } from "../support/wait.ts";

/** Telemetry through the gateway into a real InfluxDB (Debian's influxd 1.6), including an outage. */
describe("InfluxDB telemetry", () => {
  let influx: Awaited<ReturnType<typeof startInfluxd>>;
  let gw: TestGateway;
  let tag: TestDevice;
  let seq = 0;
  const DB = "gateway_test";
  const t0 = Date.now() - 60_000;

  const send = async (n: number) => {
    for (let i = 0; i < n; i++) {
      seq++;
      const fix = { lat: 29.65 + seq * 1e-5, lon: 91.13, accuracy: 8, source: "gps" };
      await tag.publish(
        "devices/tag-1/heartbeat",
        JSON.stringify({ ts: t0 + seq * 10, seq, battery: 90, ...fix }),
        1,
      );
    }
  };
  const countInInflux = async () => {
    const rows = await influx.query(DB, "SELECT COUNT(battery) FROM telemetry WHERE device = 'tag-1'");
    return Number(rows[0]?.[1] ?? 0);
  };

  beforeAll(async () => {
    influx = await startInfluxd();
    gw = await startGateway({
      env: {
        INFLUX_URL: influx.url,
        INFLUX_DB: DB,
        TELEMETRY_FLUSH_MS: "100",
        TELEMETRY_BATCH_SIZE: "50",
        TELEMETRY_MAX_BUFFERED: "100",
        // One test tag stands in for hundreds: it sends far faster than a tag's publish limit.
        DEVICE_PUBLISH_RATE: "0",
      },
    });
    await seedCommunity(gw, () => "http://127.0.0.1:9/unused");
    tag = await connectDevice(gw, await registerDevice(gw, "tag-1", "dondrub", "locator-tag"));
  }, 60_000);
  afterAll(async () => {
    await tag?.close();
    await gw?.stop();
    await influx?.stop();
  });

  it("keeps positions no longer than TELEMETRY_RETENTION_DAYS", async () => {
    const policies = await influx.query(DB, "SHOW RETENTION POLICIES");
    expect(policies.find((p) => p[0] === "autogen")?.[1]).toBe("720h0m0s");
  });

  it("writes heartbeats in batches and reads the track back from InfluxDB", async () => {
    await send(120);
    await waitFor(async () => (await countInInflux()) === 120, 10_000, "120 points in InfluxDB");
    expect(await metric(gw, "gateway_telemetry_points_written_total")).toBe(120);
    const track = (await call(gw, "GET", `/api/devices/tag-1/track?from=${t0}&to=${t0 + 10_000}`)).body;
    expect(track).toHaveLength(120);
    expect(track[0]).toMatchObject({ ts: t0 + 10, battery: 90, accuracy: 8, source: "gps", fix: "ok" });
    expect(track[0].lat).toBeCloseTo(29.65001, 6);
    // The embedded store is not used when InfluxDB is configured.
    expect(await gw.store.telemetry.track("tag-1", 0, Date.now(), 10)).toEqual([]);
  });

  it("writes each field with the type the first releases used (no field type conflict on upgrade)", async () => {
    const keys = await influx.query(DB, "SHOW FIELD KEYS FROM telemetry");
    expect(Object.fromEntries(keys.map((k) => [k[0], k[1]]))).toEqual({
      accuracy: "float",
      battery: "float",
      fix: "string",
      lat: "float",
      lon: "float",
      received_at: "integer",
      source: "string",
    });
  });

  it("loses no point while InfluxDB is down: buffers, spills to the embedded store, catches up", async () => {
    await influx.stop();
    await send(400);
    // More than the 100 kept in memory: the rest waits in the SQLite spool.
    await waitFor(async () => (await gw.store.spool.count()) > 0, 10_000, "points spilled to the spool");
    expect(await metric(gw, "gateway_telemetry_buffered_points")).toBe(400);
    expect(await metric(gw, "gateway_telemetry_write_failures_total")).toBeGreaterThan(0);
    expect((await call(gw, "GET", "/readyz")).status).toBe(200);

    await influx.start();
    await waitFor(async () => (await countInInflux()) === 520, 45_000, "all 520 points in InfluxDB");
    expect(await gw.store.spool.count()).toBe(0);
    // InfluxDB may show the last batch a moment before the gateway hears its write succeed.
    await waitFor(
      async () => (await metric(gw, "gateway_telemetry_buffered_points")) === 0,
      5000,
      "nothing buffered",
    );
  }, 90_000);
});

describe("InfluxDB 2.x through its v1 API", () => {
  it("sends the token as `Authorization: Token …` and the point in line protocol", async () => {
    const seen: { url: string; auth?: string; body: string }[] = [];
    const server = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => {
        body += c;
      });
      req.on("end", () => {
        seen.push({ url: req.url ?? "", auth: req.headers.authorization, body });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const store = influxTelemetry({
      url: `http://127.0.0.1:${port}`,
      database: "city",
      token: "s3cret-token",
      timeoutMs: 2000,
      retentionDays: 30,
    });
    await store.write([
      {
        deviceId: "tag 1",
        ts: 1700000000123,
        receivedAt: 1700000000200,
        battery: 80,
        fix: "ok",
        lat: 29.6,
        lon: 91.1,
      },
    ]);
    server.close();
    expect(seen).toHaveLength(1);
    expect(seen[0]?.auth).toBe("Token s3cret-token");
    expect(seen[0]?.url).toMatch(/^\/write\?/);
    expect(new URLSearchParams(seen[0]?.url.split("?")[1]).get("db")).toBe("city");
    expect(seen[0]?.body).toBe(
      'telemetry,device=tag\\ 1 battery=80,fix="ok",lat=29.6,lon=91.1,received_at=1700000000200i 1700000000123',
    );
  });
});
