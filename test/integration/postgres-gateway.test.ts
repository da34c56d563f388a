import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../gateway/config/index.ts";
import {
  call,
  connectDevice,
  registerDevice,
  seedCommunity,
  signIn,
  startGateway,
  type TestGateway,
  WEBHOOK_SECRET,
} from "../support/gateway.ts";
import { startPostgres, type TestPostgres } from "../support/postgres.ts";
import { waitFor } from "../support/wait.ts";
import { startWebhookServer } from "../support/webhook-server.ts";

describe("DATABASE_URL", () => {
  it.each([
    "mysql://gateway:hunter2-password@127.0.0.1/gateway",
    "postgres://127.0.0.1:5432",
    "/var/lib/gateway.db",
  ])("refuses %s with a clear message", (url) => {
    const load = () => loadConfig({ WEBHOOK_SECRET, DATABASE_URL: url });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(
      "DATABASE_URL: must be a PostgreSQL URL: postgres://user:password@host:port/database",
    );
    // The URL may carry a password: the message does not repeat it.
    expect(load).not.toThrow(url);
  });

  it("takes postgres:// and postgresql:// URLs; without one, the store is SQLite", () => {
    for (const url of ["postgres://gw:secret@db:5432/gateway", "postgresql://db/gateway?sslmode=require"])
      expect(loadConfig({ WEBHOOK_SECRET, DATABASE_URL: url }).DATABASE_URL).toBe(url);
    expect(loadConfig({ WEBHOOK_SECRET }).DATABASE_URL).toBeUndefined();
  });
});

describe("a gateway on PostgreSQL", () => {
  let postgres: TestPostgres;
  const open: { stop(): Promise<void> }[] = [];
  beforeAll(async () => {
    postgres = await startPostgres();
  }, 60_000);
  afterEach(async () => {
    for (const x of open.splice(0).reverse()) await x.stop();
  });
  afterAll(async () => {
    await postgres?.destroy();
  });

  it("turns a press into an alert on the API, and keeps it, and the press's seq, across a restart", async () => {
    const hooks = await startWebhookServer();
    open.push({ stop: hooks.close });
    // Gateways sharing a database share the device-secret key, not a data directory.
    const env = {
      DATABASE_URL: await postgres.createDatabase(),
      DEVICE_SECRET_KEY: randomBytes(32).toString("hex"),
    };
    const start = async () => {
      const gw: TestGateway = await startGateway({ env });
      open.push(gw);
      return gw;
    };
    let gw = await start();
    await seedCommunity(gw, hooks.url);
    const creds = await registerDevice(gw, "btn-dondrub");
    let device = await connectDevice(gw, creds);
    const ts = Date.now();
    await device.event("press", 7, ts);
    const received = await device.waitForCommand("received");
    const [opened] = (await call(gw, "GET", "/api/alerts")).body;
    expect(opened).toMatchObject({ id: received.alertId, kind: "call", state: "open", subjectId: "dondrub" });
    expect(existsSync(join(gw.dataDir, "gateway.db"))).toBe(false);
    await device.close();
    await gw.stop();

    // Another data directory: everything the gateway knows comes from PostgreSQL.
    gw = await start();
    expect((await fetch(`${gw.http}/readyz`)).status).toBe(200);
    device = await connectDevice(gw, creds);
    await device.event("press", 7, ts); // replayed from the device's queue: not a second press
    const alerts = (await call(gw, "GET", "/api/alerts")).body;
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ id: received.alertId, state: "open", presses: 1 });
    const accepted = await call(
      gw,
      "POST",
      `/api/alerts/${received.alertId}/accept`,
      {},
      await signIn(gw, "dr-tsering"),
    );
    expect(accepted.body).toMatchObject({ state: "accepted", acceptedBy: "dr-tsering" });
    expect((await device.waitForCommand("accepted")).alertId).toBe(received.alertId);
    const trail = (await call(gw, "GET", `/api/alerts/${received.alertId}`)).body;
    expect(trail.events.map((e: { type: string }) => e.type)).toEqual(
      expect.arrayContaining(["opened", "notified", "accepted"]),
    );
    await device.close();
  });

  it("opens one alert when two gateways find the same condition for a device at the same moment", async () => {
    const hooks = await startWebhookServer();
    open.push({ stop: hooks.close });
    const env = {
      DATABASE_URL: await postgres.createDatabase(),
      DEVICE_SECRET_KEY: randomBytes(32).toString("hex"),
    };
    const [a, b] = [await startGateway({ env }), await startGateway({ env })];
    await seedCommunity(a, hooks.url);
    const devices = ["btn-dondrub", "btn-2", "btn-3", "btn-4", "btn-5", "btn-6"];
    for (const id of devices) await registerDevice(a, id);
    // Both decide on an empty database: each reads no alert open, each would open one.
    for (const deviceId of devices)
      for (const gw of [a, b]) gw.bus.emit("alert.raise", { kind: "low-battery", deviceId, data: {} });
    // Stopping finishes every decision under way.
    await Promise.all([a.stop(), b.stop()]);
    const db = new pg.Client({ connectionString: env.DATABASE_URL });
    await db.connect();
    try {
      const { rows } = await db.query(
        "SELECT device_id, COUNT(*)::int AS n FROM alerts WHERE kind = 'low-battery' GROUP BY device_id ORDER BY device_id",
      );
      expect(rows).toEqual([...devices].sort().map((device_id) => ({ device_id, n: 1 })));
    } finally {
      await db.end();
    }
  });

  it("refuses text holding the NUL character, which PostgreSQL cannot store, and stores nothing", async () => {
    const hooks = await startWebhookServer();
    open.push({ stop: hooks.close });
    const gw = await startGateway({
      env: {
        DATABASE_URL: await postgres.createDatabase(),
        DEVICE_SECRET_KEY: randomBytes(32).toString("hex"),
      },
    });
    open.push(gw);
    await seedCommunity(gw, hooks.url);
    const before = (await call(gw, "GET", "/api/people")).body;
    const refusals = [
      await call(gw, "POST", "/api/people", {
        id: "nul-person",
        name: "Lhamo\u0000",
        role: "resident",
        communityId: "chongsaikang",
      }),
      await call(gw, "PATCH", "/api/people/dondrub", { address: { "\u0000": 1 } }),
      await call(gw, "GET", "/api/audit?actor=a%00b"),
    ];
    expect(refusals.map((r) => [r.status, r.body.error.code, r.body.error.message])).toEqual([
      [400, "invalid_request", "body.name: text may not contain the NUL character (U+0000)"],
      [400, "invalid_request", "body.address: text may not contain the NUL character (U+0000)"],
      [400, "invalid_request", "querystring.actor: text may not contain the NUL character (U+0000)"],
    ]);
    expect((await call(gw, "GET", "/api/people")).body).toEqual(before);
  });

  it("is not ready while PostgreSQL is down, and ready again by itself when it is back", async () => {
    const gw = await startGateway({ env: { DATABASE_URL: await postgres.createDatabase() } });
    open.push(gw);
    const readyz = async () => (await fetch(`${gw.http}/readyz`)).status;
    expect(await readyz()).toBe(200);
    await postgres.stop();
    await waitFor(async () => (await readyz()) === 503, 15_000, "/readyz to answer 503");
    // The API says the database cannot serve now, and when to come back.
    const alerts = await fetch(`${gw.http}/api/alerts`, { headers: { cookie: gw.cookie } });
    expect(alerts.status).toBe(503);
    expect(alerts.headers.get("retry-after")).toBe("5");
    expect(((await alerts.json()) as { error: { code: string } }).error.code).toBe("not_ready");
    await postgres.start();
    await waitFor(async () => (await readyz()) === 200, 15_000, "/readyz to answer 200 again");
  });

  it("is not ready while PostgreSQL answers but refuses writes (a standby after a failover), ready again when it takes them", async () => {
    const url = await postgres.createDatabase();
    const gw = await startGateway({ env: { DATABASE_URL: url } });
    open.push(gw);
    const readyz = async () => (await fetch(`${gw.http}/readyz`)).status;
    expect(await readyz()).toBe(200);
    const server = new pg.Client({ connectionString: url });
    await server.connect();
    // This session stays writable to undo it; every other one, the gateway's pool too, turns read-only.
    await server.query("SET default_transaction_read_only = off");
    const readOnly = async (on: boolean) => {
      await server.query(`ALTER SYSTEM SET default_transaction_read_only = ${on ? "on" : "off"}`);
      await server.query("SELECT pg_reload_conf()");
    };
    try {
      await readOnly(true);
      await waitFor(async () => (await readyz()) === 503, 15_000, "/readyz to answer 503");
    } finally {
      await readOnly(false);
      await server.end();
    }
    await waitFor(async () => (await readyz()) === 200, 15_000, "/readyz to answer 200 again");
  });
});
