import { createServer, type Server } from "node:http";
import { type AddressInfo, connect } from "node:net";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { utf16beHex } from "../../gateway/protocols/watch/index.ts";
import { FakeClock } from "../support/fake-clock.ts";
import { call, metric, seedCommunity, signIn, startGateway, type TestGateway } from "../support/gateway.ts";
import { waitFor } from "../support/wait.ts";
import { connectWatch, freePort, watchTime } from "../support/watch-client.ts";
import { startWebhookServer } from "../support/webhook-server.ts";

const WATCH = "8800000015";
const LHASA = { lat: 29.65247, lon: 91.13208 };

/** A position report's fields after the date and time (vendor order), with a status word and cells. */
const report = (o: {
  valid?: boolean;
  lat?: number;
  lon?: number;
  battery?: number;
  status?: string;
  cells?: boolean;
}) =>
  [
    o.valid === false ? "V" : "A",
    (o.lat ?? LHASA.lat).toFixed(6),
    "N",
    (o.lon ?? LHASA.lon).toFixed(6),
    "E",
    "0.0,0.0,3650,7,60",
    o.battery ?? 80,
    "0,0",
    o.status ?? "00000000",
    o.cells ? "2,1,460,0,9360,4082,131,9360,4092,148,1,home,1c:fa:68:13:a5:b4,-61" : "0,0",
    "10",
  ].join(",");

describe("off-the-shelf watches over TCP", () => {
  let clock: FakeClock;
  let gw: TestGateway;
  let hooks: Awaited<ReturnType<typeof startWebhookServer>>;
  let port: number;

  beforeEach(async () => {
    clock = new FakeClock();
    hooks = await startWebhookServer();
    port = await freePort();
    gw = await startGateway({ clock, env: { WATCH_PORT: String(port) } });
    await seedCommunity(gw, hooks.url);
  });
  afterEach(async () => {
    await gw.stop();
    await hooks.close();
  });

  const register = async (id = WATCH, kind = "locator-tag") => {
    const res = await call(gw, "POST", "/api/devices", { id, kind, ownerId: "dondrub", protocol: "watch" });
    expect(res.status).toBe(201);
    return res.body;
  };

  it("registers a watch by its id alone, and refuses an id a watch cannot have", async () => {
    expect(await register()).toEqual({ id: WATCH });
    const bad = await call(gw, "POST", "/api/devices", {
      id: "watch-1",
      kind: "locator-tag",
      ownerId: "dondrub",
      protocol: "watch",
    });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain("10 or 15 digits");
    expect((await call(gw, "GET", "/api/devices/watch-1")).status).toBe(404);
    const device = await call(gw, "GET", `/api/devices/${WATCH}`);
    expect(device.body).toMatchObject({ protocol: "watch", connected: false });
  });

  it("answers LK, raises one sos alert with its position for an alarm sent twice, and tells the watch who accepted", async () => {
    await register();
    const watch = await connectWatch(port, WATCH);
    watch.send("LK,1200,0,80");
    await watch.waitFor((c) => c === "LK", "LK answer");
    expect((await call(gw, "GET", `/api/devices/${WATCH}`)).body).toMatchObject({
      connected: true,
      state: { battery: 80 },
    });

    const at = clock.now() - 2_000;
    const sos = `AL,${watchTime(at)},${report({ status: "00010000", battery: 78 })}`;
    watch.send(sos);
    await watch.waitFor((c) => c === "AL", "AL answer");
    // Answered only once stored, as a PUBACK is: a crash now would not lose it.
    const ts = Math.floor(at / 1000) * 1000;
    expect(await gw.store.deviceEvents.find(WATCH, 1, ts)).toMatchObject({ message: { type: "sos" } });

    // Level 1 of an SOS: the family and the grid worker.
    const toFamily = await waitFor(() => hooks.received.find((h) => h.path === "/pema"), 5000, "family page");
    expect(toFamily.json).toMatchObject({ kind: "sos", level: 1, deviceId: WATCH });
    const [alert] = (await call(gw, "GET", "/api/alerts?state=open")).body;
    expect(alert).toMatchObject({ kind: "sos", deviceId: WATCH });
    const opened = (await call(gw, "GET", `/api/alerts/${alert.id}`)).body.events[0];
    expect(opened.data).toMatchObject({
      positionStatus: "fresh",
      position: { ...LHASA, source: "gps" },
      watchAlarms: ["sos"],
      watchFrame: "AL",
    });

    // The watch repeats an alarm it thinks unanswered: answered again, still one alert.
    const answers = watch.received.length;
    watch.send(sos);
    await watch.waitFor((c) => c === "AL", "second AL answer", answers);
    expect((await call(gw, "GET", "/api/alerts?state=open")).body).toHaveLength(1);
    expect(await metric(gw, "gateway_duplicate_events_total")).toBe(1);

    // The alert opened: the watch is asked for a fix now (CR), then hears who accepted, in zh-CN.
    await watch.waitFor((c) => c === "CR", "CR command");
    const family = await signIn(gw, "pema");
    expect((await call(gw, "POST", `/api/alerts/${alert.id}/accept`, {}, family)).status).toBe(200);
    const message = await watch.waitFor((c) => c.startsWith("MESSAGE,"), "MESSAGE command");
    expect(message).toBe(`MESSAGE,${utf16beHex("白玛 Pema已接单，正在赶来")}`);
    // The watch confirms each command by repeating its word: the outbox marks them delivered.
    for (const c of watch.received.filter((c) => c === "CR" || c.startsWith("MESSAGE,")))
      watch.send(c.split(",")[0] ?? "");
    await waitFor(
      async () => {
        const { attempts } = (await call(gw, "GET", `/api/alerts/${alert.id}`)).body;
        const toWatch = attempts.filter((a: { channel: string }) => a.channel === "device");
        return toWatch.length >= 2 && toWatch.every((a: { status: string }) => a.status === "delivered");
      },
      5000,
      "commands delivered",
    );
    watch.close();
  });

  it("a fall bit is a fall; an alarm with no known bit is an sos all the same", async () => {
    await register("356789012345678", "call-button");
    const watch = await connectWatch(port, "356789012345678", "SG");
    watch.send(`AL_LTE,${watchTime(clock.now())},${report({ status: "00200000" })}`);
    await watch.waitFor((c) => c === "AL", "AL answer");
    await waitFor(async () => (await call(gw, "GET", "/api/alerts?state=open")).body[0]);
    expect((await call(gw, "GET", "/api/alerts?state=open")).body[0]).toMatchObject({ kind: "fall" });
    watch.close();

    await register("8800000016", "call-button");
    const other = await connectWatch(port, "8800000016");
    other.send(`AL,${watchTime(clock.now())},${report({ status: "00800000" })}`);
    await other.waitFor((c) => c === "AL", "AL answer");
    const sos = await waitFor(async () =>
      (await call(gw, "GET", "/api/alerts?state=open")).body.find(
        (a: { deviceId: string }) => a.deviceId === "8800000016",
      ),
    );
    expect(sos).toMatchObject({ kind: "sos" });
    other.close();

    // Taken off the wrist: an sos whose alert says why.
    await register("8800000017", "call-button");
    const removed = await connectWatch(port, "8800000017");
    removed.send(`AL,${watchTime(clock.now())},${report({ status: "00100000" })}`);
    await removed.waitFor((c) => c === "AL", "AL answer");
    const alert = await waitFor(async () =>
      (await call(gw, "GET", "/api/alerts?state=open")).body.find(
        (a: { deviceId: string }) => a.deviceId === "8800000017",
      ),
    );
    const opened = (await call(gw, "GET", `/api/alerts/${alert.id}`)).body.events[0];
    expect(alert.kind).toBe("sos");
    expect(opened.data).toMatchObject({ watchAlarms: ["removed"] });
    removed.close();
  });

  it("an alarm with only cells and access points fires with the position unknown, the last trusted fix and its age", async () => {
    await register();
    const watch = await connectWatch(port, WATCH);
    const fixAt = clock.now() - 600_000;
    watch.send(`UD,${watchTime(fixAt)},${report({})}`);
    const alarmAt = clock.now();
    watch.send(
      `AL,${watchTime(alarmAt)},${report({ valid: false, lat: 0, lon: 0, status: "00010000", cells: true })}`,
    );
    await watch.waitFor((c) => c === "AL", "AL answer");
    const alert = await waitFor(async () => (await call(gw, "GET", "/api/alerts?state=open")).body[0]);
    const opened = (await call(gw, "GET", `/api/alerts/${alert.id}`)).body.events[0];
    expect(opened.data).toMatchObject({
      positionStatus: "stale",
      position: LHASA,
      positionAgeMs: Math.floor(alarmAt / 1000) * 1000 - Math.floor(fixAt / 1000) * 1000,
    });
    const readings = (await call(gw, "GET", `/api/devices/${WATCH}/watch-readings`)).body;
    expect(readings[0]).toMatchObject({
      type: "AL",
      data: {
        fix: null,
        alarms: ["sos"],
        cells: [{ mcc: 460, mnc: 0, lac: 9360, cid: 4082, rssi: 131 }, { cid: 4092 }],
        accessPoints: [{ ssid: "home", mac: "1c:fa:68:13:a5:b4", rssi: -61 }],
      },
    });
    watch.close();
  });

  it("a UD2 buffered through a gap is stored, flagged late, and never moves the watch back", async () => {
    await register();
    const watch = await connectWatch(port, WATCH);
    const now = clock.now();
    watch.send(`UD,${watchTime(now)},${report({ lat: 29.66, lon: 91.14 })}`);
    watch.send(`UD2,${watchTime(now - 3_600_000)},${report({ lat: 29.6, lon: 91.1 })}`);
    watch.send("LK,0,0,80");
    await watch.waitFor((c) => c === "LK", "LK answer");
    const [late] = (await call(gw, "GET", `/api/devices/${WATCH}/watch-readings`)).body;
    expect(late).toMatchObject({ type: "UD2", late: true, data: { fix: { lat: 29.6, lon: 91.1 } } });
    expect((await call(gw, "GET", `/api/devices/${WATCH}`)).body.state.position).toMatchObject({
      lat: 29.66,
      lon: 91.14,
    });
    watch.close();
  });

  it("refuses an unknown id and closes, counts it; the same id twice keeps the newer connection", async () => {
    const stranger = await connectWatch(port, "1234567890");
    stranger.send("LK");
    await stranger.waitClosed();
    expect(stranger.received).toEqual([]);
    expect(await metric(gw, 'gateway_messages_refused_total{reason="watch-unknown"}')).toBe(1);

    await register();
    const first = await connectWatch(port, WATCH);
    first.send("LK");
    await first.waitFor((c) => c === "LK", "first LK answer");
    const second = await connectWatch(port, WATCH);
    second.send("LK");
    await second.waitFor((c) => c === "LK", "second LK answer");
    await first.waitClosed();
    expect(second.closed).toBe(false);
    expect((await call(gw, "GET", `/api/devices/${WATCH}`)).body.connected).toBe(true);
    second.close();
  });

  it("survives garbage and malformed frames, and closes a connection over the frame limit", async () => {
    await register();
    const watch = await connectWatch(port, WATCH);
    watch.sendRaw("\x00\xffGET / HTTP/1.1\r\n[3G*12*zz*LK][[[");
    watch.sendRaw("[3G*8800000015*000c*LK,0,0,");
    watch.sendRaw("77]");
    await watch.waitFor((c) => c === "LK", "LK answer");
    expect(watch.closed).toBe(false);
    expect(await metric(gw, 'gateway_messages_refused_total{reason="watch-malformed"}')).toBeGreaterThan(0);
    watch.sendRaw(`[3G*8800000015*FFFF*UD,${"9".repeat(20_000)}`);
    await watch.waitClosed();
    expect(await metric(gw, 'gateway_messages_refused_total{reason="watch-oversized"}')).toBe(1);
  });

  it("stores health readings and answers them and the frames a watch waits for", async () => {
    await register();
    const watch = await connectWatch(port, WATCH);
    for (const content of [
      "bphrt,128,82,71,,,,",
      "heart,74",
      "oxygen,97",
      "btemp2,1,36.6",
      "TKQ",
      "TKQ2",
      "CONFIG,TY:g",
      "INIT,1",
    ])
      watch.send(content);
    await watch.waitFor((c) => c === "INIT,1", "INIT answer");
    expect(watch.received).toEqual(["bphrt", "heart", "oxygen", "btemp2", "TKQ", "TKQ2", "CONFIG", "INIT,1"]);
    const readings = (await call(gw, "GET", `/api/devices/${WATCH}/watch-readings`)).body;
    expect(readings.map((r: { type: string; data: unknown }) => [r.type, r.data])).toEqual([
      ["btemp2", { mode: 1, bodyTempC: 36.6 }],
      ["oxygen", { spo2: 97 }],
      ["heart", { heartRate: 74 }],
      ["bphrt", { systolic: 128, diastolic: 82, heartRate: 71 }],
    ]);
    watch.close();
  });
});

describe("watch positions from cell towers and Wi-Fi", () => {
  let gw: TestGateway;
  let resolver: Server;
  const asked: Record<string, unknown>[] = [];
  let answer: { status: number; body: string };
  /** While set, the resolver keeps its answers until the test lets them go. */
  let hold = false;
  const held: (() => void)[] = [];

  beforeEach(async () => {
    asked.length = 0;
    hold = false;
    answer = { status: 200, body: JSON.stringify({ location: { lat: 29.651, lng: 91.131 }, accuracy: 120 }) };
    // A local stand-in for a geolocation service: never a real one in tests.
    resolver = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => {
        body += c;
      });
      req.on("end", () => {
        asked.push(JSON.parse(body));
        const reply = () =>
          res.writeHead(answer.status, { "content-type": "application/json" }).end(answer.body);
        if (hold) held.push(reply);
        else reply();
      });
    });
    await new Promise<void>((resolve) => resolver.listen(0, "127.0.0.1", resolve));
    const { port: resolverPort } = resolver.address() as AddressInfo;
    const watchPort = await freePort();
    gw = await startGateway({
      env: {
        WATCH_PORT: String(watchPort),
        WATCH_GEOLOCATION_URL: `http://127.0.0.1:${resolverPort}/geolocate`,
        // Longer than any wait in these tests: an answer that waited for a held lookup would time them out.
        WATCH_GEOLOCATION_TIMEOUT_MS: "30000",
      },
    });
    await seedCommunity(gw, () => "http://127.0.0.1:9/unused");
    await call(gw, "POST", "/api/devices", {
      id: WATCH,
      kind: "locator-tag",
      ownerId: "dondrub",
      protocol: "watch",
    });
  });
  afterEach(async () => {
    await gw.stop();
    await new Promise<void>((resolve) => resolver.close(() => resolve()));
  });

  it("asks the resolver in the common geolocation format and uses its answer as a Wi-Fi fix", async () => {
    const watch = await connectWatch(gw.ports.watch, WATCH);
    watch.send(`UD_LTE,${watchTime(Date.now())},${report({ valid: false, lat: 0, lon: 0, cells: true })}`);
    watch.send("LK,0,0,80");
    await watch.waitFor((c) => c === "LK", "LK answer");
    expect(asked).toEqual([
      {
        considerIp: false,
        cellTowers: [
          {
            mobileCountryCode: 460,
            mobileNetworkCode: 0,
            locationAreaCode: 9360,
            cellId: 4082,
            signalStrength: 131,
          },
          {
            mobileCountryCode: 460,
            mobileNetworkCode: 0,
            locationAreaCode: 9360,
            cellId: 4092,
            signalStrength: 148,
          },
        ],
        wifiAccessPoints: [{ macAddress: "1c:fa:68:13:a5:b4", signalStrength: -61 }],
      },
    ]);
    expect((await call(gw, "GET", `/api/devices/${WATCH}`)).body.state.position).toMatchObject({
      lat: 29.651,
      lon: 91.131,
      accuracy: 120,
      source: "wifi",
    });
    watch.close();
  });

  it("an alarm with only cells is stored and answered before the resolver answers, and its position follows", async () => {
    hold = true;
    const watch = await connectWatch(gw.ports.watch, WATCH);
    watch.send(
      `AL,${watchTime(Date.now())},${report({ valid: false, lat: 0, lon: 0, status: "00010000", cells: true })}`,
    );
    await watch.waitFor((c) => c === "AL", "AL answer while the resolver holds its answer");
    const alert = await waitFor(async () => (await call(gw, "GET", "/api/alerts?state=open")).body[0]);
    expect(alert).toMatchObject({ kind: "sos", deviceId: WATCH });
    await waitFor(() => held.length === 1, 5000, "the lookup under way");
    for (const reply of held.splice(0)) reply();
    await waitFor(
      async () => (await call(gw, "GET", `/api/devices/${WATCH}`)).body.state?.position?.source === "wifi",
      5000,
      "the looked-up position",
    );
    watch.close();
  });

  it("a resolver that fails leaves the position unknown, and the report still counts", async () => {
    answer = { status: 500, body: "{}" };
    const watch = await connectWatch(gw.ports.watch, WATCH);
    watch.send(
      `UD,${watchTime(Date.now())},${report({ valid: false, lat: 0, lon: 0, battery: 64, cells: true })}`,
    );
    watch.send("LK");
    await watch.waitFor((c) => c === "LK", "LK answer");
    const { state } = (await call(gw, "GET", `/api/devices/${WATCH}`)).body;
    expect(state).toMatchObject({ battery: 64, position: null });
    expect(await metric(gw, "gateway_watch_positions_unresolved_total")).toBe(1);
    watch.close();
  });
});

describe("watch connection limits", () => {
  let gw: TestGateway | undefined;
  afterEach(async () => {
    await gw?.stop().catch(() => undefined);
    gw = undefined;
  });

  const start = async (env: Record<string, string>) => {
    const port = await freePort();
    gw = await startGateway({ env: { WATCH_PORT: String(port), ...env } });
    await seedCommunity(gw, () => "http://127.0.0.1:9/unused");
    await call(gw, "POST", "/api/devices", {
      id: WATCH,
      kind: "locator-tag",
      ownerId: "dondrub",
      protocol: "watch",
    });
    return { gw, port };
  };

  it("closes a silent connection after WATCH_IDLE_TIMEOUT_SEC", async () => {
    const { port } = await start({ WATCH_IDLE_TIMEOUT_SEC: "1" });
    const watch = await connectWatch(port, WATCH);
    watch.send("LK");
    await watch.waitFor((c) => c === "LK", "LK answer");
    await watch.waitClosed();
  });

  it("closes a connection that keeps sending but never names a watch", async () => {
    const { port } = await start({ WATCH_IDLE_TIMEOUT_SEC: "1" });
    const socket = connect(port, "127.0.0.1");
    const closed = new Promise((resolve) => socket.once("close", resolve));
    // Closing on a peer that is still writing may reach it as a reset; the close is what counts.
    socket.on("error", () => {});
    // Bytes that never make a frame, often enough to keep the idle timer from ever firing.
    const noise = setInterval(() => socket.write("noise without a frame "), 200);
    await closed;
    clearInterval(noise);
  });

  it("an alarm re-sent to the next run of the gateway is still one alert", async () => {
    const { gw: first, port } = await start({});
    const at = Date.now();
    const sos = `AL,${watchTime(at)},${report({ status: "00010000" })}`;
    const watch = await connectWatch(port, WATCH);
    watch.send(sos);
    await watch.waitFor((c) => c === "AL", "AL answer");
    await waitFor(async () => (await call(first, "GET", "/api/alerts?state=open")).body.length === 1);
    await first.stop();
    gw = undefined;
    // The answer was lost with the connection: the watch sends the alarm again to the new run.
    gw = await startGateway({ dataDir: first.dataDir, env: { WATCH_PORT: String(port) } });
    const again = await connectWatch(port, WATCH);
    again.send(sos);
    await again.waitFor((c) => c === "AL", "AL answer from the next run");
    expect((await call(gw, "GET", "/api/alerts?state=open")).body).toHaveLength(1);
    expect(await metric(gw, "gateway_duplicate_events_total")).toBe(1);
    again.close();
  });

  it("stops at once with connections that never named a watch still open", async () => {
    const { gw, port } = await start({});
    const silent = await connectWatch(port, WATCH);
    const half = await connectWatch(port, WATCH);
    half.sendRaw("[3G*88000");
    await gw.stop();
    await silent.waitClosed();
    await half.waitClosed();
  });

  it("refuses connections from outside WATCH_ALLOW_FROM before reading a byte, and counts them", async () => {
    const { gw, port } = await start({ WATCH_ALLOW_FROM: "10.0.0.0/8, 192.168.1.7" });
    const watch = await connectWatch(port, WATCH);
    watch.send("LK");
    await watch.waitClosed();
    expect(watch.received).toEqual([]);
    expect(await metric(gw, 'gateway_messages_refused_total{reason="watch-source"}')).toBe(1);
  });

  it("closes new connections from an address over WATCH_CONNECT_RATE_PER_IP, and counts them", async () => {
    const { gw, port } = await start({ WATCH_CONNECT_RATE_PER_IP: "0.001", WATCH_CONNECT_BURST_PER_IP: "2" });
    const admitted = [await connectWatch(port, WATCH), await connectWatch(port, WATCH)];
    const third = await connectWatch(port, WATCH);
    third.send("LK");
    await third.waitClosed();
    expect(third.received).toEqual([]);
    expect(await metric(gw, 'gateway_messages_refused_total{reason="connect-rate"}')).toBe(1);
    for (const w of admitted) w.close();
  });

  it("throttles a watch over its frame rate, never its alarms", async () => {
    const { gw, port } = await start({ DEVICE_PUBLISH_RATE: "0.001", DEVICE_PUBLISH_BURST: "3" });
    const watch = await connectWatch(port, WATCH);
    for (let i = 0; i < 5; i++) watch.send("LK");
    watch.send(`AL,${watchTime(Date.now())},${report({ status: "00010000" })}`);
    await watch.waitFor((c) => c === "AL", "AL answer");
    expect(watch.received.filter((c) => c === "LK")).toHaveLength(3);
    expect(await metric(gw, 'gateway_messages_refused_total{reason="rate"}')).toBe(2);
    watch.close();
  });

  it("no bytes a client sends crash the gateway or disturb another watch", async () => {
    const { gw, port } = await start({});
    const watch = await connectWatch(port, WATCH);
    const noise = fc.sample(
      fc.array(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }),
          fc
            .constantFrom("[", "]", "[3G*8800000099*", "*0002*", "AL,", "\x7d\x03")
            .map((t) => Buffer.from(t, "latin1")),
        ),
        { maxLength: 30 },
      ),
      { numRuns: 40, seed: 13 },
    );
    const strangers = await Promise.all(noise.map(() => connectWatch(port, "1234567890")));
    for (const [i, parts] of noise.entries())
      for (const part of parts) strangers[i]?.sendRaw(Buffer.from(part));
    watch.send("LK,0,0,70");
    await watch.waitFor((c) => c === "LK", "LK answer among the noise");
    expect((await call(gw, "GET", `/api/devices/${WATCH}`)).body).toMatchObject({
      connected: true,
      state: { battery: 70 },
    });
    for (const s of strangers) s.close();
    watch.close();
  });

  it("revoking a watch closes it and refuses it; a frame for another id closes the connection", async () => {
    const { gw, port } = await start({});
    const watch = await connectWatch(port, WATCH);
    watch.send("LK");
    await watch.waitFor((c) => c === "LK", "LK answer");
    expect((await call(gw, "POST", `/api/devices/${WATCH}/revoke`)).status).toBe(200);
    await watch.waitClosed();
    const again = await connectWatch(port, WATCH);
    again.send("LK");
    await again.waitClosed();
    expect(again.received).toEqual([]);

    // Reinstated: a watch gets no secret back, and connects again by its id.
    expect((await call(gw, "POST", `/api/devices/${WATCH}/secret`)).body).toEqual({ id: WATCH });
    const back = await connectWatch(port, WATCH);
    back.send("LK");
    await back.waitFor((c) => c === "LK", "LK answer after reinstating");
    back.sendRaw("[3G*8800000099*0002*LK]");
    await back.waitClosed();
  });
});
