import { once } from "node:events";
import { fdatasync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import Database from "better-sqlite3";
import mqtt, { type MqttClient } from "mqtt";
import { afterEach, describe, expect, it } from "vitest";
import { FakeClock } from "../support/fake-clock.ts";
import {
  call,
  connectDevice,
  metric,
  registerDevice,
  seedCommunity,
  signIn,
  startGateway,
  type TestGateway,
  tempDataDir,
} from "../support/gateway.ts";
import { openSse } from "../support/sse.ts";
import { waitFor } from "../support/wait.ts";
import { startWebhookServer } from "../support/webhook-server.ts";

/**
 * Everything a test started, stopped after it whatever happened: webhook servers first, so that
 * no gateway waits out a request hanging on one.
 */
const servers: (() => Promise<void>)[] = [];
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((close) => close()));
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Log lines of the gateway, parsed, to check what an operator would read. */
function logSink() {
  const lines: { level: number; msg: string; [k: string]: unknown }[] = [];
  return { lines, write: (line: string) => void lines.push(JSON.parse(line)) };
}
const ERROR = 50;
const WARN = 40;

async function gateway(options: Parameters<typeof startGateway>[0] = {}) {
  const gw = await startGateway(options);
  const stop = gw.stop.bind(gw);
  let stopped: Promise<void> | undefined;
  gw.stop = () => {
    stopped ??= stop();
    return stopped;
  };
  cleanups.push(() => gw.stop());
  return gw;
}

async function webhookServer(options: Parameters<typeof startWebhookServer>[0] = {}) {
  const server = await startWebhookServer(options);
  servers.push(() => server.close());
  return server;
}

async function readyz(gw: TestGateway) {
  const res = await fetch(`${gw.http}/readyz`);
  return { status: res.status, body: (await res.json()) as { status: string; reason?: string } };
}

/** The ids of every audit event stored, in order: what a reader of the whole stream must get. */
async function storedEventIds(gw: TestGateway): Promise<number[]> {
  return (await gw.store.alerts.eventsAfter(0, 1_000_000)).map((e) => e.id);
}

/** SSE frames complete in `text` (a cut-off last one is left out), as event ids. */
function frameIds(text: string): number[] {
  const frames = text.split("\n\n").slice(0, -1);
  return frames.flatMap((f) => {
    const id = /^id: (\d+)$/m.exec(f)?.[1];
    return id ? [Number(id)] : [];
  });
}

/** The body of a chunked HTTP/1.1 response, up to where it was cut off. */
function dechunk(raw: Buffer): string {
  let at = raw.indexOf("\r\n\r\n") + 4;
  const parts: Buffer[] = [];
  for (;;) {
    const eol = raw.indexOf("\r\n", at);
    if (eol < 0) break;
    const size = Number.parseInt(raw.toString("latin1", at, eol), 16);
    if (!size) break;
    const start = eol + 2;
    parts.push(raw.subarray(start, Math.min(start + size, raw.length)));
    at = start + size + 2;
    if (at > raw.length) break;
  }
  return Buffer.concat(parts).toString("utf8");
}

/**
 * A dashboard that opens the live stream and then never reads: a frozen tab, a dead mobile link.
 * Node offers no way to shrink a TCP receive buffer, so the kernel's buffers (a few MB on
 * loopback) fill before the gateway's own does.
 */
async function stalledStreamClient(gw: TestGateway) {
  const socket: Socket = connect({ host: "127.0.0.1", port: gw.ports.http });
  await once(socket, "connect");
  // The gateway drops a reader this far behind; with unread bytes that may arrive as a reset.
  socket.on("error", () => {});
  socket.pause();
  socket.write(
    `GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nCookie: ${gw.cookie ?? ""}\r\n\r\n`,
  );
  cleanups.push(() => socket.destroy());
  return {
    /** Reads what the gateway managed to send before it closed the connection. */
    async readToEnd(): Promise<Buffer> {
      const chunks: Buffer[] = [];
      socket.on("data", (chunk: Buffer) => chunks.push(chunk));
      const closed = once(socket, "close");
      socket.resume();
      await closed;
      return Buffer.concat(chunks);
    },
  };
}

/** A device as it really behaves: on a lost connection it reconnects and re-sends what was not acknowledged. */
async function reconnectingDevice(gw: TestGateway, creds: { id: string; secret: string }) {
  const client: MqttClient = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, {
    clientId: creds.id,
    username: creds.id,
    password: creds.secret,
    protocolVersion: 4,
    reconnectPeriod: 100,
  });
  cleanups.push(() => client.endAsync(true));
  let seq = 0;
  return {
    client,
    /** Publishes a press; the promise resolves on its PUBACK. */
    press: () => {
      const n = ++seq;
      const acked = { done: false, seq: n };
      const payload = JSON.stringify({ type: "press", ts: Date.now(), seq: n });
      const puback = client.publishAsync(`devices/${creds.id}/event`, payload, { qos: 1 }).then(() => {
        acked.done = true;
      });
      return Object.assign(acked, { puback });
    },
  };
}

describe("a dashboard client that stops reading", () => {
  it("is disconnected once too far behind, while a reading client gets every event at once; it then resumes losslessly", async () => {
    const log = logSink();
    const hooks = await webhookServer();
    const gw = await gateway({
      env: { STREAM_CLIENT_BUFFER_BYTES: "65536", DEVICE_PUBLISH_RATE: "0", LOG_LEVEL: "warn" },
      logTo: log,
    });
    await seedCommunity(gw, hooks.url);
    const doctor = await signIn(gw, "dr-tsering");
    const devices = await Promise.all(
      Array.from({ length: 8 }, async (_, i) => connectDevice(gw, await registerDevice(gw, `btn-${i}`))),
    );
    cleanups.push(() => Promise.all(devices.map((d) => d.close())));
    const reading = openSse(`${gw.http}/api/stream`, { cookie: gw.cookie ?? "" });
    cleanups.push(() => reading.close());
    const stalled = await stalledStreamClient(gw);
    await waitFor(() => gw.stream.size === 2, 5000, "both stream clients attached");

    // Resolution notes as doctors write them, long and in Chinese: each makes a ~12 KB event.
    const note = "血压正常，已嘱咐按时服药，明早再来复查。".repeat(100).slice(0, 2000);
    let rounds = 0;
    while ((await metric(gw, "gateway_stream_clients_dropped_total")) === 0) {
      // About 110 KB a round; 200 rounds (22 MB) is far past any kernel's socket buffers.
      expect(rounds++, "rounds before the stalled client is dropped").toBeLessThan(200);
      const alertIds = await Promise.all(
        devices.map(async (d) => {
          d.commands.length = 0;
          await d.event("press");
          return (await d.waitForCommand("received")).alertId;
        }),
      );
      const resolved = await Promise.all(
        alertIds.map((id) => call(gw, "POST", `/api/alerts/${id}/resolve`, { note }, doctor)),
      );
      expect(resolved.map((r) => r.status)).toEqual(alertIds.map(() => 200));
      const last = (await storedEventIds(gw)).at(-1) ?? 0;
      await waitFor(
        () => Number(reading.messages.at(-1)?.id) >= last,
        1000,
        `the reading client to have event ${last} (round ${rounds})`,
      );
    }

    expect(gw.stream.size).toBe(1);
    expect(await metric(gw, "gateway_stream_clients_dropped_total")).toBe(1);
    expect(
      log.lines.some((l) => l.level === WARN && l.msg.includes("live-stream client too far behind")),
    ).toBe(true);
    // The reading client has every event, in order, none missing.
    const all = await storedEventIds(gw);
    const last = all.at(-1) ?? 0;
    await waitFor(() => Number(reading.messages.at(-1)?.id) >= last, 1000, "the reading client to catch up");
    expect(reading.messages.map((m) => Number(m.id))).toEqual(all);

    // The stalled client got a gap-free prefix, and resumes from its last id with nothing lost.
    const got = frameIds(dechunk(await stalled.readToEnd()));
    expect(got.length).toBeGreaterThan(0);
    expect(got).toEqual(all.slice(0, got.length));
    expect(got.length).toBeLessThan(all.length);
    const resumed = openSse(`${gw.http}/api/stream`, {
      cookie: gw.cookie ?? "",
      "last-event-id": String(got.at(-1)),
    });
    cleanups.push(() => resumed.close());
    await waitFor(() => Number(resumed.messages.at(-1)?.id) >= last, 5000, "the resumed client to catch up");
    expect([...got, ...resumed.messages.map((m) => Number(m.id))]).toEqual(all);
  }, 120_000);
});

describe("webhook endpoints down or slow", () => {
  /** Level 1 doctor and family within 60 s, then level 2 grid worker and staff. */
  function policyFile(dir: string): string {
    const file = join(dir, "policy.json");
    writeFileSync(
      file,
      JSON.stringify({
        call: {
          levels: [
            { notify: ["doctor", "family"], acceptWithinSec: 60 },
            { notify: ["grid-worker", "staff"], acceptWithinSec: 120 },
          ],
          repeatLast: false,
        },
      }),
    );
    return file;
  }

  async function attemptsOf(gw: TestGateway, alertId: string) {
    const res = await call(gw, "GET", `/api/alerts/${alertId}`);
    return res.body.attempts.filter((a: { channel: string }) => a.channel === "webhook") as {
      personId: string;
      attempt: number;
      at: number;
      status: string;
      detail: string;
    }[];
  }

  it("a hanging endpoint and a failing one hold up neither the next level nor another alert; every attempt is stored", async () => {
    const clock = new FakeClock();
    const hanging = await webhookServer({ hang: true });
    const failing = await webhookServer({ status: 500 });
    const healthy = await webhookServer();
    const dataDir = tempDataDir();
    const gw = await gateway({
      clock,
      dataDir,
      env: {
        ESCALATION_POLICY_FILE: policyFile(dataDir),
        WEBHOOK_TIMEOUT_MS: "3000",
        WEBHOOK_RETRY_DELAYS_MS: "1000,4000",
      },
    });
    // The doctor's WeChat bridge hangs, the family's SMS bridge answers 500, the rest work.
    await seedCommunity(gw, (path) =>
      path === "/dr-tsering" ? hanging.url(path) : path === "/pema" ? failing.url(path) : healthy.url(path),
    );
    // An unrelated resident whose doctor's bridge works.
    await call(gw, "POST", "/api/people", {
      id: "norbu",
      name: "诺布 Norbu",
      role: "resident",
      communityId: "chongsaikang",
      gridId: "grid-1",
    });
    await call(gw, "POST", "/api/people", {
      id: "dr-dawa",
      name: "达瓦医生 Dr Dawa",
      role: "doctor",
      communityId: "chongsaikang",
      gridId: "grid-1",
      contacts: [{ kind: "webhook", address: healthy.url("/dr-dawa") }],
    });
    await call(gw, "POST", "/api/assignments", {
      residentId: "norbu",
      personId: "dr-dawa",
      relation: "doctor",
    });
    const dondrub = await connectDevice(gw, await registerDevice(gw, "btn-dondrub"));
    const norbu = await connectDevice(gw, await registerDevice(gw, "btn-norbu", "norbu"));
    cleanups.push(() => Promise.all([dondrub.close(), norbu.close()]));

    await dondrub.event("press");
    const alertId = (await dondrub.waitForCommand("received")).alertId;
    await waitFor(() => hanging.load.open === 1, 2000, "the doctor's request to hang");
    const familyAttempts = (n: number) =>
      waitFor(
        async () => {
          const a = (await attemptsOf(gw, alertId)).filter((x) => x.personId === "pema");
          return a.length === n && a.every((x) => x.status !== "pending") && a;
        },
        2000,
        `family attempt ${n}`,
      );
    // The family's endpoint fails: retried after 1 s, then after 4 s more, then given up.
    await familyAttempts(1);
    await clock.advance(1000);
    await familyAttempts(2);
    await clock.advance(4000);
    const family = await familyAttempts(3);
    expect(family.map((a) => `${a.status} ${a.detail}`)).toEqual([
      "failed HTTP 500",
      "failed HTTP 500",
      "failed HTTP 500",
    ]);
    expect(family.map((a) => a.at - (family[0]?.at ?? 0))).toEqual([0, 1000, 5000]);

    // Another alert's notification goes out at once, though the doctor's bridge still hangs.
    await norbu.event("press");
    await waitFor(() => healthy.received.find((h) => h.path === "/dr-dawa"), 1000, "Dr Dawa's webhook");

    // The deadline passes: level 2 is notified at once, the doctor's request still hanging.
    await clock.advance(55_000);
    await waitFor(
      () => ["/lhakpa", "/staff-yang"].every((p) => healthy.received.some((h) => h.path === p)),
      1000,
      "level 2 webhooks",
    );
    expect(hanging.load.open).toBe(1);
    expect((await attemptsOf(gw, alertId)).find((a) => a.personId === "dr-tsering")?.status).toBe("pending");

    // The hanging request times out and is stored so; the retry, 1 s later, finds the bridge back.
    await waitFor(
      async () =>
        (await attemptsOf(gw, alertId)).some((a) => a.personId === "dr-tsering" && a.status === "failed"),
      6000,
      "the doctor's first attempt to time out",
    );
    hanging.state.hang = false;
    await clock.advance(1000);
    const doctor = await waitFor(
      async () => {
        const a = (await attemptsOf(gw, alertId)).filter((x) => x.personId === "dr-tsering");
        return a.length === 2 && a[1]?.status === "delivered" && a;
      },
      2000,
      "the doctor's second attempt",
    );
    expect(doctor.map((a) => `${a.status} ${a.detail}`)).toEqual([
      "failed timed out after 3000 ms",
      "delivered HTTP 200",
    ]);
    expect(await metric(gw, 'gateway_notification_attempts_total{channel="webhook",result="failed"}')).toBe(
      4,
    );
    // No fourth attempt for the family: its retries are spent.
    await clock.advance(60_000);
    expect((await attemptsOf(gw, alertId)).filter((a) => a.personId === "pema")).toHaveLength(3);
  }, 30_000);

  it("many alerts on a dead endpoint hold a bounded number of requests and timers", async () => {
    const clock = new FakeClock();
    const hanging = await webhookServer({ hang: true });
    const healthy = await webhookServer();
    const dataDir = tempDataDir();
    const gw = await gateway({
      clock,
      dataDir,
      env: {
        ESCALATION_POLICY_FILE: policyFile(dataDir),
        WEBHOOK_CONCURRENCY: "3",
        WEBHOOK_TIMEOUT_MS: "60000",
        WEBHOOK_RETRY_DELAYS_MS: "1000",
      },
    });
    await seedCommunity(gw, (path) => (path === "/dr-tsering" ? hanging.url(path) : healthy.url(path)));
    const devices = await Promise.all(
      Array.from({ length: 12 }, async (_, i) => connectDevice(gw, await registerDevice(gw, `btn-${i}`))),
    );
    cleanups.push(() => Promise.all(devices.map((d) => d.close())));

    await Promise.all(devices.map((d) => d.event("press")));
    // The family hears of all twelve at once; the doctor's bridge gets three requests, the rest wait.
    await waitFor(
      () => healthy.received.filter((h) => h.path === "/pema").length === 12,
      2000,
      "12 to family",
    );
    await waitFor(() => hanging.load.open === 3, 2000, "3 requests to the hanging bridge");
    expect(await metric(gw, "gateway_webhook_deliveries_waiting")).toBe(9);
    expect(hanging.received).toHaveLength(3);
    expect(hanging.load.maxOpen).toBe(3);

    // The bridge crashes and comes back: the three fail and wait for their retry, under one
    // timer; the nine waiting go through.
    const timersBefore = clock.pendingTimers;
    hanging.state.hang = false;
    hanging.dropOpen();
    await waitFor(() => hanging.received.length === 12, 2000, "the nine waiting deliveries");
    await waitFor(
      async () => (await metric(gw, "gateway_webhook_deliveries_waiting")) === 3,
      2000,
      "3 retries",
    );
    expect(clock.pendingTimers - timersBefore).toBe(1);
    await clock.advance(1000);
    await waitFor(() => hanging.received.length === 15, 2000, "the three retries");
    expect(hanging.load.maxOpen).toBe(3);
    expect(new Set(hanging.received.map((h) => h.json.alertId)).size).toBe(12);
    expect(await metric(gw, "gateway_webhook_deliveries_waiting")).toBe(0);
  }, 30_000);
});

describe("the database locked or full", () => {
  it("a locked database: the press is not acknowledged, unready, counted; once released the device re-sends and one alert opens", async () => {
    const log = logSink();
    const hooks = await webhookServer();
    const gw = await gateway({ env: { DB_BUSY_TIMEOUT_MS: "100", LOG_LEVEL: "info" }, logTo: log });
    await seedCommunity(gw, hooks.url);
    const device = await reconnectingDevice(gw, await registerDevice(gw, "btn-dondrub"));
    expect((await readyz(gw)).status).toBe(200);

    // A second connection (a backup tool, an operator's sqlite3 shell) holds the write lock.
    const other = new Database(join(gw.dataDir, "gateway.db"));
    cleanups.push(() => other.close());
    other.exec("BEGIN EXCLUSIVE");
    const press = device.press();

    const unready = await waitFor(
      async () => {
        const r = await readyz(gw);
        return r.status === 503 && r;
      },
      5000,
      "/readyz to turn unready",
    );
    expect(unready.body.reason).toContain("database is locked");
    // The device has re-sent at least once, and is still not acknowledged.
    await waitFor(
      async () => (await metric(gw, 'gateway_store_write_failures_total{code="SQLITE_BUSY"}')) >= 2,
      5000,
      "a re-sent press to fail too",
    );
    expect(press.done).toBe(false);
    expect(log.lines.some((l) => l.level === ERROR && l.msg.includes("database is locked"))).toBe(true);
    expect((await call(gw, "GET", "/api/alerts")).body).toEqual([]);
    // A change through the API is refused as "not now", not as a server fault, and not half-made.
    const write = await call(gw, "POST", "/api/communities", { id: "lugu", name: "Lugu" });
    expect(write).toMatchObject({ status: 503, body: { error: { code: "not_ready" } } });
    expect(write.body.error.message).toContain("database is locked");

    other.exec("ROLLBACK");
    await press.puback;
    const alerts = await waitFor(
      async () => {
        const list = (await call(gw, "GET", "/api/alerts")).body;
        return list.length > 0 && list;
      },
      2000,
      "the alert",
    );
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ deviceId: "btn-dondrub", state: "open", presses: 1 });
    expect((await call(gw, "GET", "/api/communities")).body.map((c: { id: string }) => c.id)).not.toContain(
      "lugu",
    );
    await waitFor(async () => (await readyz(gw)).status === 200, 2000, "/readyz to turn ready");
    expect(log.lines.some((l) => l.msg.includes("the database takes writes again"))).toBe(true);
  }, 30_000);

  it("a disk that fails to flush: the press is not acknowledged, unready, yet its doctor is paged; once it flushes again the re-sent press joins that alert", async () => {
    const hooks = await webhookServer();
    const disk = { failing: false };
    const gw = await gateway({
      flushToDisk: async (fd) => {
        if (disk.failing) throw Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" });
        await promisify(fdatasync)(fd);
      },
    });
    await seedCommunity(gw, hooks.url);
    const device = await reconnectingDevice(gw, await registerDevice(gw, "btn-dondrub"));
    const heard: string[] = [];
    device.client.on("message", (_topic, payload) => heard.push(JSON.parse(payload.toString()).type));
    await device.client.subscribeAsync("devices/btn-dondrub/command", { qos: 1 });
    disk.failing = true;
    const press = device.press();
    await waitFor(
      async () => (await metric(gw, 'gateway_store_write_failures_total{code="EIO"}')) >= 1,
      5000,
      "the flush to fail",
    );
    const unready = await readyz(gw);
    expect(unready.status).toBe(503);
    expect(unready.body.reason).toContain("EIO");
    expect(press.done).toBe(false);
    // The database holds the press and its alert: a person is told, though a power cut could lose them.
    await waitFor(() => hooks.received.some((h) => h.path === "/dr-tsering"), 5000, "the doctor's page");
    const [paged] = (await call(gw, "GET", "/api/alerts")).body;
    expect(paged).toMatchObject({ deviceId: "btn-dondrub", state: "open", presses: 1 });
    // Sent again (its connection closed without a PUBACK): still unacknowledged while the disk fails.
    await waitFor(
      async () => (await metric(gw, "gateway_duplicate_events_total")) >= 1,
      5000,
      "the press sent again",
    );
    expect(press.done).toBe(false);

    disk.failing = false;
    await press.puback;
    await waitFor(async () => (await readyz(gw)).status === 200, 2000, "/readyz to turn ready");
    const alerts = (await call(gw, "GET", "/api/alerts")).body;
    expect(alerts).toEqual([expect.objectContaining({ id: paged.id, presses: 1 })]);
    expect(hooks.received.filter((h) => h.path === "/dr-tsering")).toHaveLength(1);
    await waitFor(() => heard.includes("received"), 5000, "`received` once the press is on disk");
  }, 30_000);

  it("a press, its alert and the command back share one flush: no PUBACK and no `received` before it, both after it", async () => {
    const hooks = await webhookServer();
    const disk = { holding: false, held: [] as (() => void)[] };
    const gw = await gateway({
      flushToDisk: async (fd) => {
        if (disk.holding) await new Promise<void>((release) => disk.held.push(release));
        await promisify(fdatasync)(fd);
      },
    });
    await seedCommunity(gw, hooks.url);
    const device = await connectDevice(gw, await registerDevice(gw, "btn-dondrub"));
    cleanups.push(() => device.close());

    disk.holding = true;
    let acknowledged = false;
    const press = device.event("press").then(() => (acknowledged = true));
    // Decided and committed while the press's flush is held (reads do not wait for the disk).
    await waitFor(async () => (await call(gw, "GET", "/api/alerts?state=open")).body.length === 1);
    await waitFor(() => disk.held.length > 0, 5000, "the press's flush");
    expect([acknowledged, device.commands]).toEqual([false, []]);

    // The flushes asked for so far are let through, the press's among them, and none after.
    for (const release of disk.held.splice(0)) release();
    await press;
    expect((await device.waitForCommand("received")).type).toBe("received");
    disk.holding = false;
    for (const release of disk.held.splice(0)) release();
    await waitFor(() => hooks.received.some((h) => h.path === "/dr-tsering"), 5000, "the doctor's page");
  }, 30_000);

  it("an idle gateway turns ready again once the lock is released, without waiting for a write", async () => {
    const gw = await gateway({ env: { DB_BUSY_TIMEOUT_MS: "100" } });
    const other = new Database(join(gw.dataDir, "gateway.db"));
    cleanups.push(() => other.close());
    other.exec("BEGIN EXCLUSIVE");
    const refused = await call(gw, "POST", "/api/communities", { id: "c1", name: "Community 1" });
    expect(refused.status).toBeGreaterThanOrEqual(500);
    const unready = await readyz(gw);
    expect(unready.status).toBe(503);
    expect(unready.body.reason).toContain("database is locked");
    expect((await readyz(gw)).status).toBe(503);

    other.exec("ROLLBACK");
    expect((await readyz(gw)).status).toBe(200);
  }, 30_000);

  it("a full database (DB_MAX_SIZE_MB reached): presses wait unacknowledged, unready, counted; none is lost once there is room", async () => {
    const log = logSink();
    const hooks = await webhookServer();
    const dataDir = tempDataDir();
    const gw = await gateway({
      dataDir,
      env: { DB_MAX_SIZE_MB: "1", DEVICE_PUBLISH_RATE: "0", LOG_LEVEL: "warn" },
      logTo: log,
    });
    await seedCommunity(gw, hooks.url);
    const creds = await registerDevice(gw, "btn-dondrub");
    const device = await reconnectingDevice(gw, creds);

    // Something fills the database up to its cap (here a table of blobs, under the same cap).
    const other = new Database(join(dataDir, "gateway.db"));
    cleanups.push(() => other.close());
    other.pragma(
      `max_page_count = ${Math.floor((1024 * 1024) / (other.pragma("page_size", { simple: true }) as number))}`,
    );
    other.exec("CREATE TABLE filler (b BLOB)");
    const fill = other.prepare("INSERT INTO filler VALUES (zeroblob(3000))");
    expect(() => {
      for (;;) fill.run();
    }).toThrow("database or disk is full");

    // Presses until one cannot be stored: instead of acknowledging it, the gateway closes the
    // connection, and the device re-sends it after reconnecting, in vain while the database is full.
    let disconnects = 0;
    device.client.on("close", () => disconnects++);
    let press = device.press();
    for (;;) {
      const before = disconnects;
      await waitFor(
        () => press.done || disconnects > before,
        5000,
        `press ${press.seq} acknowledged or refused`,
      );
      if (!press.done) {
        await waitFor(() => disconnects >= before + 2, 5000, "the re-sent press to be refused too");
        break;
      }
      expect(press.seq, "presses before the database is full").toBeLessThan(500);
      press = device.press();
    }
    expect(press.done).toBe(false);
    const unready = await readyz(gw);
    expect(unready.status).toBe(503);
    expect(unready.body.reason).toContain("database or disk is full");
    expect(await metric(gw, 'gateway_store_write_failures_total{code="SQLITE_FULL"}')).toBeGreaterThan(0);
    expect(log.lines.some((l) => l.level === ERROR && l.msg.includes("database or disk is full"))).toBe(true);

    // Room again: the device's re-sent press is stored and acknowledged, the gateway is ready.
    other.exec("DROP TABLE filler");
    await press.puback;
    await waitFor(async () => (await readyz(gw)).status === 200, 5000, "/readyz to turn ready");

    // Every press is stored once; after a restart (which handles any stored event whose alert
    // update had failed) one alert counts them all.
    const seqs = other
      .prepare("SELECT seq FROM device_events WHERE device_id = ? ORDER BY seq")
      .pluck()
      .all("btn-dondrub");
    expect(seqs).toEqual(Array.from({ length: press.seq }, (_, i) => i + 1));
    await device.client.endAsync(true);
    await gw.stop();
    const again = await gateway({ dataDir });
    const alerts = (await call(again, "GET", "/api/alerts")).body;
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ deviceId: "btn-dondrub", presses: press.seq });
  }, 60_000);
});
