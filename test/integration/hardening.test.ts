import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openSqliteStore } from "../../gateway/store/sqlite.ts";
import { FakeClock } from "../support/fake-clock.ts";
import {
  call,
  connectDevice,
  registerDevice,
  seedCommunity,
  startGateway,
  tempDataDir,
} from "../support/gateway.ts";
import { waitFor } from "../support/wait.ts";
import { startWebhookServer } from "../support/webhook-server.ts";

describe("hardening", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  async function gateway(env: Record<string, string> = {}, dataDir = tempDataDir(), clock?: FakeClock) {
    const gw = await startGateway({ env, dataDir, clock });
    cleanups.push(() => gw.stop());
    return gw;
  }

  it("keeps the database private to its user: directory 0700, files 0600", async () => {
    const gw = await gateway();
    expect(statSync(gw.dataDir).mode & 0o777).toBe(0o700);
    for (const f of ["gateway.db", "gateway.db-wal", "gateway.db-shm"])
      expect(statSync(join(gw.dataDir, f)).mode & 0o777, f).toBe(0o600);
  });

  it("shows /metrics to this machine only, or to whoever has METRICS_TOKEN", async () => {
    const open = await gateway();
    expect((await fetch(`${open.http}/metrics`)).status).toBe(200);
    // Relayed by a proxy on this machine: from elsewhere, so refused.
    const relayed = await fetch(`${open.http}/metrics`, { headers: { "x-forwarded-for": "203.0.113.7" } });
    expect(relayed.status).toBe(403);
    const token = "metrics-token-0123456789abcdef";
    const locked = await gateway({ METRICS_TOKEN: token });
    expect((await fetch(`${locked.http}/metrics`)).status).toBe(403);
    const wrong = await fetch(`${locked.http}/metrics`, {
      headers: { authorization: "Bearer wrong-token-0123456789" },
    });
    expect(wrong.status).toBe(403);
    const right = await fetch(`${locked.http}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    expect(right.status).toBe(200);
    expect(await right.text()).toContain("gateway_alerts");
  });

  it("makes WEBHOOK_SECRET mandatory in docker-compose too", () => {
    expect(readFileSync("docker-compose.yml", "utf8")).toMatch(/WEBHOOK_SECRET: \$\{WEBHOOK_SECRET:\?/);
  });

  it("counts a heartbeat whose position JSON cannot even hold (1e999) as a heartbeat", async () => {
    const gw = await gateway();
    await seedCommunity(gw, (p) => `http://127.0.0.1:9${p}`);
    const tag = await connectDevice(gw, await registerDevice(gw, "tag-x", "dondrub", "locator-tag"));
    cleanups.push(() => tag.close());
    const ts = Date.now();
    await tag.publish(
      "devices/tag-x/heartbeat",
      `{"ts":${ts},"seq":1,"battery":64,"lat":1e999,"lon":91.1,"accuracy":5}`,
    );
    const device = await waitFor(async () => {
      const d = (await call(gw, "GET", "/api/devices/tag-x")).body;
      return d.state?.battery === 64 && d;
    });
    expect(device.state).toMatchObject({ battery: 64, lastTs: ts, position: null });
  });

  it("takes 24:00 as the end of an all-day window, and bounds what a safe zone may carry", async () => {
    const gw = await gateway();
    await seedCommunity(gw, (p) => `http://127.0.0.1:9${p}`);
    await registerDevice(gw, "tag-z", "dondrub", "locator-tag");
    const zone = (id: string, extra: Record<string, unknown>) =>
      call(gw, "POST", "/api/geofences", {
        id,
        name: id,
        shape: { type: "Circle", center: [91.13, 29.65], radiusM: 200 },
        deviceIds: ["tag-z"],
        ...extra,
      });
    const allDay = {
      timeZone: "Asia/Shanghai",
      windows: [{ days: [1, 2, 3, 4, 5, 6, 7], from: "00:00", to: "24:00" }],
    };
    expect((await zone("all-day", { schedule: allDay })).status).toBe(201);
    const many = {
      timeZone: "Asia/Shanghai",
      windows: Array(29).fill({ days: [1], from: "08:00", to: "09:00" }),
    };
    const tooMany = await zone("many", { schedule: many });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.error.message).toMatch(/at most 28 windows/);
    const repeated = {
      timeZone: "Asia/Shanghai",
      windows: [{ days: [1, 1, 1], from: "08:00", to: "09:00" }],
    };
    expect((await zone("repeated", { schedule: repeated })).body.error.message).toMatch(/name each day once/);
    const holeOutside = await call(gw, "POST", "/api/geofences", {
      id: "hole-outside",
      name: "hole outside",
      shape: {
        type: "Polygon",
        coordinates: [
          [
            [91.13, 29.65],
            [91.14, 29.65],
            [91.14, 29.66],
            [91.13, 29.66],
            [91.13, 29.65],
          ],
          [
            [91.2, 29.7],
            [91.21, 29.7],
            [91.21, 29.71],
            [91.2, 29.7],
          ],
        ],
      },
      deviceIds: ["tag-z"],
    });
    expect(holeOutside.status).toBe(400);
    expect(holeOutside.body.error.message).toMatch(/a hole must lie inside the outer ring/);
    const zones = (await call(gw, "GET", "/api/geofences")).body.map((z: { id: string }) => z.id);
    expect(zones).toEqual(["all-day"]);
  });

  it("does not send a webhook that failed for good again at every restart", async () => {
    const hooks = await startWebhookServer({ status: 400 });
    cleanups.push(() => hooks.close());
    const clock = new FakeClock();
    const dataDir = tempDataDir();
    const first = await gateway({}, dataDir, clock);
    await seedCommunity(first, hooks.url);
    const device = await connectDevice(first, await registerDevice(first, "btn-dondrub"));
    await device.event("press");
    // Every page fails, so each level hands on to the next at once, until nobody is left.
    const { alertId } = await device.waitForCommand("received");
    await waitFor(
      async () =>
        (await call(first, "GET", `/api/alerts/${alertId}`)).body.events.some(
          (e: { type: string }) => e.type === "unreached",
        ),
      5000,
      "every level tried",
    );
    const sent = hooks.received.length;
    expect(hooks.received.map((h) => h.path)).toContain("/dr-tsering");
    await device.close();
    await first.stop();
    cleanups.splice(0, cleanups.length - 1); // the receiver stays
    for (let i = 0; i < 2; i++) {
      const again = await startGateway({ dataDir, clock });
      await again.stop();
    }
    expect(hooks.received).toHaveLength(sent);
  });

  it("lists alerts for a scope of more people than SQLite has parameters", async () => {
    const store = openSqliteStore(tempDataDir());
    cleanups.push(() => store.close());
    const people = Array.from({ length: 40_000 }, (_, i) => `p-${i}`);
    await expect(store.alerts.list({ subjectIds: people, limit: 10 })).resolves.toEqual([]);
  });
});
