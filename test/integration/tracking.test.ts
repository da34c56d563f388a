import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FakeClock, settle } from "../support/fake-clock.ts";
import {
  call,
  connectDevice,
  registerDevice,
  seedCommunity,
  signIn,
  startGateway,
  type TestDevice,
  type TestGateway,
} from "../support/gateway.ts";
import { waitFor } from "../support/wait.ts";
import { startWebhookServer } from "../support/webhook-server.ts";

// A school in Chengguan; the zone is a 200 m circle around it.
const SCHOOL = { lat: 29.6525, lon: 91.1321 };
const north = (m: number) => ({ lat: SCHOOL.lat + m / 111_195, lon: SCHOOL.lon });
const zone = {
  id: "school",
  name: "拉萨市特殊教育学校 School",
  shape: { type: "Circle", center: [SCHOOL.lon, SCHOOL.lat], radiusM: 200 },
  deviceIds: ["tag-child"],
};

describe("locator tags", () => {
  let clock: FakeClock;
  let gw: TestGateway;
  let hooks: Awaited<ReturnType<typeof startWebhookServer>>;
  let tag: TestDevice;
  let seq = 0;

  const beat = async (fields: Record<string, unknown>, qos: 0 | 1 = 1) => {
    await tag.publish(
      "devices/tag-child/heartbeat",
      JSON.stringify({ ts: clock.now(), seq: ++seq, battery: 80, ...fields }),
      qos,
    );
  };
  const at = (m: number, extra: Record<string, unknown> = {}) =>
    beat({ ...north(m), accuracy: 10, source: "gps", ...extra });
  const alerts = async (query = "") =>
    (await call(gw, "GET", `/api/alerts${query}`)).body as Record<string, unknown>[];
  /** The alerts, once there is one. */
  const raised = (query = "") =>
    waitFor(async () => {
      const a = await alerts(query);
      return a.length > 0 && a;
    });
  const state = async () => (await call(gw, "GET", "/api/devices/tag-child")).body.state;

  beforeEach(async () => {
    clock = new FakeClock();
    hooks = await startWebhookServer();
    gw = await startGateway({ clock, env: { TELEMETRY_FLUSH_MS: "1000" } });
    await seedCommunity(gw, hooks.url);
    tag = await connectDevice(gw, await registerDevice(gw, "tag-child", "dondrub", "locator-tag"));
  });
  afterEach(async () => {
    await tag.close();
    await gw.stop();
    await hooks.close();
  });

  it("keeps the latest state, and an out-of-order fix never overwrites a newer one", async () => {
    await at(0, { battery: 77 });
    const t1 = clock.now();
    await clock.advance(30_000);
    await at(50, { battery: 76 });
    // A fix buffered on the tag, sent late with an older device time.
    await beat({ ts: t1 - 10_000, ...north(500), accuracy: 10, battery: 90 });
    const s = await waitFor(state);
    expect(s).toMatchObject({ battery: 76, online: true, batteryLow: false });
    expect(s.position.lat).toBeCloseTo(north(50).lat, 6);
    // Both are in the track, in device-time order; the late one is kept, not lost.
    await clock.advance(1_000);
    const track = (await call(gw, "GET", `/api/devices/tag-child/track?from=${t1 - 60_000}`)).body;
    expect(track.map((p: { battery: number }) => p.battery)).toEqual([90, 77, 76]);
  });

  it("saves a tag's state again after a save that failed, and before it stops, even with a save under way", async () => {
    const { tracking } = gw.store;
    const save = tracking.save.bind(tracking);
    const batteries: number[] = [];
    let failNext = false;
    let held: Promise<void> | undefined;
    tracking.save = async (states, tracks) => {
      if (failNext) {
        failNext = false;
        throw new Error("database is locked");
      }
      batteries.push(...states.filter((s) => s.deviceId === "tag-child").map((s) => s.battery ?? -1));
      // Only the save under way is held: one stop() started itself would go through.
      const gate = held;
      held = undefined;
      await gate;
      return save(states, tracks);
    };
    // The ten-second save fails: the next one saves the state all the same.
    await beat({ battery: 77 });
    failNext = true;
    await clock.advance(10_000);
    await clock.advance(10_000);
    expect(batteries).toEqual([77]);
    // A save under way (held) when the tracker stops: stopping waits for it, then saves what is left.
    let release = () => {};
    held = new Promise<void>((resolve) => {
      release = resolve;
    });
    await beat({ battery: 66 });
    await clock.advance(10_000);
    await beat({ battery: 55 });
    let stopped = false;
    const stopping = gw.tracker.stop().then(() => {
      stopped = true;
    });
    await settle();
    expect(stopped).toBe(false);
    release();
    await stopping;
    expect(batteries).toEqual([77, 66, 55]);
  });

  it("stores invalid fixes as rejected and never moves the tag with them", async () => {
    await at(10);
    await beat({ lat: 0, lon: 0, accuracy: 5 });
    await beat({ lat: 123, lon: 91, accuracy: 5 });
    await at(20, { accuracy: 900 });
    await clock.advance(1_000);
    const track = (await call(gw, "GET", "/api/devices/tag-child/track")).body;
    expect(track.map((p: { fix: string }) => p.fix)).toEqual([
      "ok",
      "null-island",
      "out-of-range",
      "inaccurate",
    ]);
    expect((await state()).position.lat).toBeCloseTo(north(10).lat, 6);
  });

  it("raises a geofence exit after jitter is ruled out, tells family and staff, and resolves it on return", async () => {
    expect((await call(gw, "POST", "/api/geofences", zone)).status).toBe(201);
    await at(0);
    await clock.advance(30_000);
    await at(400); // one wild fix: nothing
    await clock.advance(30_000);
    await at(20);
    for (let i = 0; i < 2; i++) {
      await clock.advance(30_000);
      await at(300 + i * 20);
    }
    expect(await alerts()).toEqual([]);
    await clock.advance(30_000);
    await at(360); // third consecutive fix surely outside
    const [exit] = await raised();
    expect(exit).toMatchObject({ kind: "geofence-exit", state: "open", deviceId: "tag-child" });
    const detail = (await call(gw, "GET", `/api/alerts/${exit?.id}`)).body;
    expect(detail.events[0].data).toMatchObject({ geofenceId: "school", geofence: zone.name });
    expect(detail.events[0].data.recentFixes).toHaveLength(5);
    // Family and staff are told at once, each by a request of its own: neither waits for the other.
    await waitFor(() => ["/pema", "/lhakpa"].every((path) => hooks.received.some((h) => h.path === path)));

    await clock.advance(30_000);
    await at(100);
    await clock.advance(30_000);
    await at(50);
    await waitFor(async () => (await alerts("?state=resolved")).length === 1);
    const closed = (await call(gw, "GET", `/api/alerts/${exit?.id}`)).body;
    expect(closed).toMatchObject({
      state: "resolved",
      closedBy: "gateway",
      outcome: `returned inside ${zone.name}`,
    });
  });

  it("starts a geofence made again with a removed one's id afresh, not from the removed one's count", async () => {
    expect((await call(gw, "POST", "/api/geofences", zone)).status).toBe(201);
    await at(0);
    for (const m of [300, 320]) {
      await clock.advance(30_000);
      await at(m); // two fixes surely outside: one short of an exit
    }
    await waitFor(async () => (await state()).position.lat.toFixed(6) === north(320).lat.toFixed(6));
    expect((await call(gw, "DELETE", "/api/geofences/school")).status).toBe(204);
    expect((await call(gw, "POST", "/api/geofences", zone)).status).toBe(201);
    let third = 0;
    for (const m of [340, 360, 380]) {
      await clock.advance(30_000);
      third = clock.now();
      await at(m);
    }
    const [exit] = await raised();
    // Raised at the third fix outside the new zone, not at its first (the removed zone's third).
    const detail = (await call(gw, "GET", `/api/alerts/${exit?.id}`)).body;
    expect(detail.events[0].data).toMatchObject({ geofenceId: "school", fixAt: third });
  });

  it("alarms for a tag out of its own zone though it stands in another tag's, naming zone, distance and fix", async () => {
    await registerDevice(gw, "tag-sibling", "dondrub", "locator-tag");
    const home = { ...zone, id: "home", name: "家 Home", deviceIds: ["tag-sibling"] };
    home.shape = { ...zone.shape, center: [north(600).lon, north(600).lat] };
    expect((await call(gw, "POST", "/api/geofences", zone)).status).toBe(201);
    expect((await call(gw, "POST", "/api/geofences", home)).status).toBe(201);
    await at(0);
    for (let i = 0; i < 3; i++) {
      await clock.advance(30_000);
      await at(600); // the middle of the sibling's zone: 400 m beyond the edge of its own
    }
    const [exit] = await raised();
    const opened = (await call(gw, "GET", `/api/alerts/${exit?.id}`)).body.events[0].data;
    expect(opened).toMatchObject({ geofenceId: "school", fixAt: clock.now(), accuracyM: 10 });
    expect(opened.distanceM).toBeGreaterThan(395);
    expect(opened.distanceM).toBeLessThan(405);
    await clock.advance(90_000);
    const paged = await waitFor(() => hooks.received.find((h) => h.path === "/pema"));
    const { zone: said } = paged.json as { zone: { fixAgeSec: number } };
    expect(said).toMatchObject({ id: "school", name: zone.name, distanceM: opened.distanceM });
    expect(said.fixAgeSec).toBeGreaterThanOrEqual(0);
  });

  it("honours a school-hours schedule and a hole: outside the window or in the hole as the rules say", async () => {
    // Monday 2026-11-30, 10:00 in Lhasa (Beijing time): school hours.
    clock.jump(Date.parse("2026-11-30T02:00:00Z") - clock.now());
    const ring = (m: number) => {
      const [s, n] = [north(-m).lat, north(m).lat];
      const dLon = m / (111_195 * Math.cos((SCHOOL.lat * Math.PI) / 180));
      const [w, e] = [SCHOOL.lon - dLon, SCHOOL.lon + dLon];
      return [
        [w, s],
        [e, s],
        [e, n],
        [w, n],
        [w, s],
      ];
    };
    const schoolHours = {
      timeZone: "Asia/Shanghai",
      windows: [{ days: [1, 2, 3, 4, 5], from: "08:00", to: "16:30" }],
    };
    // A 800 m square with a 200 m pond in the middle the children must not be near.
    const shape = { type: "Polygon", coordinates: [ring(400), ring(100)] };
    expect((await call(gw, "POST", "/api/geofences", { ...zone, shape, schedule: schoolHours })).status).toBe(
      201,
    );
    await at(250);
    for (let i = 0; i < 3; i++) {
      await clock.advance(30_000);
      await at(0); // in the pond
    }
    const [exit] = await raised("?state=open");
    const opened = (await call(gw, "GET", `/api/alerts/${exit?.id}`)).body.events[0].data;
    expect(opened.distanceM).toBeCloseTo(100, -1);
    for (let i = 0; i < 2; i++) {
      await clock.advance(30_000);
      await at(250);
    }
    await waitFor(async () => (await alerts("?state=resolved")).length === 1);
    // 17:00, after school: the pond and the whole town are out of the zone's hours.
    clock.jump(7 * 3600_000);
    for (let i = 0; i < 4; i++) {
      await clock.advance(30_000);
      await at(2_000);
    }
    await clock.advance(5_000);
    expect(await alerts("?state=open")).toEqual([]);
  });

  it.each([
    [
      "zone_self_intersecting",
      {
        type: "Polygon",
        coordinates: [
          [
            [91, 29],
            [91.01, 29.01],
            [91.01, 29],
            [91, 29.01],
            [91, 29],
          ],
        ],
      },
      null,
    ],
    [
      "zone_too_few_corners",
      {
        type: "Polygon",
        coordinates: [
          [
            [91, 29],
            [91.01, 29.01],
            [91, 29],
          ],
        ],
      },
      null,
    ],
    [
      "zone_hole_outside",
      {
        type: "Polygon",
        coordinates: [
          [
            [91.13, 29.65],
            [91.14, 29.65],
            [91.14, 29.66],
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
      null,
    ],
    ["zone_schedule_empty", zone.shape, { timeZone: "Asia/Shanghai", windows: [] }],
    [
      "zone_schedule_empty",
      zone.shape,
      { timeZone: "Asia/Shanghai", windows: [{ days: [], from: "08:00", to: "16:30" }] },
    ],
  ])("refuses a zone a person drew wrong with its own error code: %s", async (code, shape, schedule) => {
    const res = await call(gw, "POST", "/api/geofences", { ...zone, shape, schedule });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe(code);
    expect(res.body.error.message).toMatch(/^body\.(shape|schedule)/);
    // An existing zone is not changed by a refused edit either.
    expect((await call(gw, "POST", "/api/geofences", zone)).status).toBe(201);
    const edit = await call(gw, "PUT", "/api/geofences/school", { ...zone, id: undefined, shape, schedule });
    expect(edit.body.error.code).toBe(code);
    expect((await call(gw, "GET", "/api/geofences")).body).toEqual([{ ...zone, schedule: null }]);
  });

  it("opens an SOS with the last position, and one without a fix marks it unknown", async () => {
    await tag.event("sos");
    const [first] = await waitFor(async () => (await alerts()).length === 1 && alerts());
    const trail = (await call(gw, "GET", `/api/alerts/${first?.id}`)).body;
    expect(trail.events[0].data).toMatchObject({ positionStatus: "unknown", position: null, late: false });
    const pema = await signIn(gw, "pema");
    await call(gw, "POST", `/api/alerts/${first?.id}/accept`, {}, pema);
    await call(gw, "POST", `/api/alerts/${first?.id}/resolve`, { note: "found at home" }, pema);

    await at(30);
    await clock.advance(10_000);
    await tag.event("sos");
    await waitFor(async () => (await alerts("?state=open")).length === 1);
    const [second] = await alerts("?state=open");
    const data = (await call(gw, "GET", `/api/alerts/${second?.id}`)).body.events[0].data;
    expect(data).toMatchObject({ positionStatus: "fresh", late: false });
    expect(data.position.lat).toBeCloseTo(north(30).lat, 6);
  });

  it("still opens a buffered SOS that arrives after newer heartbeats, flagged late", async () => {
    const pressedAt = clock.now();
    await clock.advance(60_000);
    await at(10);
    await tag.event("sos", 99, pressedAt);
    const [sos] = await waitFor(async () => (await alerts()).length === 1 && alerts());
    expect((await call(gw, "GET", `/api/alerts/${sos?.id}`)).body.events[0].data).toMatchObject({
      late: true,
    });
  });

  it("reports a silent tag offline to staff, and clears it when heartbeats return", async () => {
    await at(0);
    await clock.advance(3 * 60_000 - 1_000); // three 60 s heartbeats missed, nearly
    expect(await alerts()).toEqual([]);
    await clock.advance(2_000);
    const [offline] = await waitFor(async () => (await alerts()).length === 1 && alerts());
    expect(offline).toMatchObject({ kind: "device-offline", deviceId: "tag-child" });
    expect((await state()).online).toBe(false);
    await at(0);
    await waitFor(async () => (await alerts("?state=resolved")).length === 1);
    expect((await state()).online).toBe(true);
  });

  it("raises low battery once per episode", async () => {
    for (const battery of [25, 19, 18, 15]) {
      await clock.advance(30_000);
      await beat({ battery });
    }
    await waitFor(async () => (await alerts()).length === 1);
    const [low] = await alerts();
    expect(low).toMatchObject({ kind: "low-battery", state: "open" });
    await clock.advance(30_000);
    await beat({ battery: 35 });
    await waitFor(async () => (await alerts("?state=resolved")).length === 1);
    await clock.advance(30_000);
    await beat({ battery: 12 });
    await waitFor(async () => (await alerts("?state=open")).length === 1);
    expect(await alerts()).toHaveLength(2);
  });

  it.each([
    [
      {
        ...zone,
        shape: {
          type: "Polygon",
          coordinates: [
            [
              [91, 29],
              [91.01, 29.01],
              [91.01, 29],
              [91, 29.01],
              [91, 29],
            ],
          ],
        },
      },
      /crosses itself/,
    ],
    [{ ...zone, shape: { type: "Circle", center: [91.1, 95], radiusM: 100 } }, /latitude must be within/],
    [{ ...zone, deviceIds: ["btn-nope"] }, /device 'btn-nope' does not exist/],
    [
      {
        ...zone,
        schedule: { timeZone: "Mars/Olympus", windows: [{ days: [1], from: "08:00", to: "17:00" }] },
      },
      /unknown time zone/,
    ],
    [
      {
        ...zone,
        schedule: { timeZone: "Asia/Shanghai", windows: [{ days: [1], from: "17:00", to: "08:00" }] },
      },
      /end after it starts/,
    ],
  ])("refuses a bad geofence with a clear message (%#)", async (body, message) => {
    const res = await call(gw, "POST", "/api/geofences", body);
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.body.error.message).toMatch(message);
    expect((await call(gw, "GET", "/api/geofences")).body).toEqual([]);
  });

  it("refuses a geofence for a call button", async () => {
    await registerDevice(gw, "btn-x");
    const res = await call(gw, "POST", "/api/geofences", { ...zone, deviceIds: ["btn-x"] });
    expect(res.body.error.message).toMatch(/not a locator tag/);
  });
});
