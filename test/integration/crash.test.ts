/**
 * Crash safety with the gateway in its own process: `kill -9` in the middle of escalations under
 * load, and a graceful SIGTERM. The data directory is seeded with the store before the process
 * starts and read straight from SQLite afterwards, so nothing here depends on the HTTP API.
 */

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import mqtt, { type MqttClient } from "mqtt";
import { afterEach, describe, expect, it } from "vitest";
import { hashSecret, newDeviceSecret } from "../../gateway/broker/secrets.ts";
import { SHUTDOWN_LIMIT_MS } from "../../gateway/main.ts";
import { openSqliteStore } from "../../gateway/store/sqlite.ts";
import type { Person } from "../../gateway/store/types.ts";
import { WEBHOOK_SECRET } from "../support/gateway.ts";
import { type GatewayProcess, spawnGateway } from "../support/process.ts";
import { waitFor } from "../support/wait.ts";
import { startWebhookServer } from "../support/webhook-server.ts";

const DEVICES = 150;
/** Level 1 times out in 1 s, so deadlines fall due while the gateway is down; level 2 waits long. */
const POLICY = {
  call: {
    levels: [
      { notify: ["doctor"], acceptWithinSec: 1 },
      { notify: ["family"], acceptWithinSec: 600 },
    ],
    repeatLast: false,
  },
};
/** First presses are spread over this long, longer than level 1, so that some escalate before the kill. */
const PRESS_SPREAD_MS = 3000;
const SECOND_PRESS_AFTER_MS = 400;

interface Creds {
  id: string;
  secret: string;
}

/** One community: a doctor and a family member (each with a webhook), a resident per button. */
async function seed(dataDir: string, webhookUrl: (path: string) => string): Promise<Creds[]> {
  const store = openSqliteStore(dataDir);
  try {
    const { registry } = store;
    await registry.createCommunity({ id: "chongsaikang", name: "冲赛康社区 Chongsaikang" });
    await registry.createGrid({ id: "grid-1", communityId: "chongsaikang", name: "第一网格 Grid 1" });
    const person = (id: string, role: Person["role"], contacts: Person["contacts"] = []): Person => ({
      id,
      name: id,
      role,
      communityId: "chongsaikang",
      gridId: "grid-1",
      phone: null,
      address: null,
      locale: "zh-CN",
      contacts,
    });
    await registry.createPerson(
      person("dr-tsering", "doctor", [
        { kind: "webhook", address: webhookUrl("/doctor"), alertKinds: null, minLevel: 1 },
      ]),
    );
    await registry.createPerson(
      person("pema", "family", [
        { kind: "webhook", address: webhookUrl("/family"), alertKinds: null, minLevel: 1 },
      ]),
    );
    const creds: Creds[] = [];
    for (let i = 0; i < DEVICES; i++) {
      const resident = `resident-${i}`;
      await registry.createPerson(person(resident, "resident"));
      await registry.createAssignment({ residentId: resident, personId: "dr-tsering", relation: "doctor" });
      await registry.createAssignment({ residentId: resident, personId: "pema", relation: "family" });
      const id = `btn-${i}`;
      const secret = newDeviceSecret();
      await registry.createDevice(
        { id, kind: "call-button", ownerId: resident, createdAt: Date.now() },
        await hashSecret(secret),
      );
      creds.push({ id, secret });
    }
    return creds;
  } finally {
    await store.close();
  }
}

interface Press {
  deviceId: string;
  seq: number;
  ts: number;
  /** The PUBACK came back (publishAsync resolved). Only these must exist after a crash. */
  acked: boolean;
  settled: boolean;
}

/**
 * An SMS bridge that takes `state.delayMs` to answer: while it is slow, some webhook requests are
 * under way and more wait for a connection to it (the gateway keeps a few per endpoint).
 */
async function startSlowBridge(delayMs: number) {
  const received: { path: string; alertId: string; level: number }[] = [];
  const state = { delayMs, open: 0 };
  const server = createServer((req, res) => {
    state.open++;
    let body = "";
    req.on("data", (chunk) => {
      body += chunk;
    });
    req.on("end", () => {
      const { alertId, level } = JSON.parse(body);
      received.push({ path: req.url ?? "", alertId, level });
      setTimeout(() => {
        state.open--;
        res.writeHead(200).end();
      }, state.delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    received,
    state,
    url: (path: string) => `http://127.0.0.1:${port}${path}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Every alert in the database has had its level-1 webhook, to the doctor. */
const everyAlertNotified = (dataDir: string, doctorWasTold: string[]) => {
  const told = new Set(doctorWasTold);
  return readDb(dataDir).alerts.every((a) => told.has(a.id));
};

const pressKey = (p: { deviceId: string; seq: number; ts: number }) => `${p.deviceId}|${p.seq}|${p.ts}`;

/**
 * Call buttons that press (some twice, some re-sending a press with the same seq), heartbeat in the
 * background, and reconnect by themselves when the gateway goes away, as real devices do.
 */
class Fleet {
  readonly presses: Press[] = [];
  /** Same seq and ts as an earlier press: must never count twice. */
  readonly resends: Press[] = [];
  private readonly clients = new Map<string, MqttClient>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly url: string,
    private readonly creds: Creds[],
  ) {}

  async connect(): Promise<void> {
    await Promise.all(
      this.creds.map(async (c) => {
        const client = await mqtt.connectAsync(this.url, {
          clientId: c.id,
          username: c.id,
          password: c.secret,
          protocolVersion: 4,
          reconnectPeriod: 100,
          connectTimeout: 5000,
        });
        client.on("error", () => undefined);
        await client.subscribeAsync(`devices/${c.id}/command`, { qos: 1 });
        this.clients.set(c.id, client);
      }),
    );
  }

  get connected(): number {
    return [...this.clients.values()].filter((c) => c.connected).length;
  }

  /** Heartbeats every 250 ms from every connected device, at QoS 0 and 1 alternately. */
  heartbeat(): void {
    let n = 0;
    const timer = setInterval(() => {
      for (const [id, client] of this.clients) {
        if (!client.connected) continue;
        n++;
        const payload = JSON.stringify({ ts: Date.now(), seq: n, battery: 80 });
        client
          .publishAsync(`devices/${id}/heartbeat`, payload, { qos: (n % 2) as 0 | 1 })
          .catch(() => undefined);
      }
    }, 250);
    this.timers.add(timer);
  }

  /** Every device presses once within PRESS_SPREAD_MS; every third presses again; every fifth re-sends its first press. */
  pressAll(): void {
    for (const [i, c] of this.creds.entries()) {
      const at = ((i * 37) % this.creds.length) * (PRESS_SPREAD_MS / this.creds.length);
      this.later(at, () => {
        const first = this.press(c.id, 1, Date.now());
        if (i % 5 === 0) this.later(50, () => this.resend(first));
        if (i % 3 === 0) this.later(SECOND_PRESS_AFTER_MS, () => this.press(c.id, 2, Date.now()));
      });
    }
  }

  press(deviceId: string, seq: number, ts: number): Press {
    const press: Press = { deviceId, seq, ts, acked: false, settled: false };
    this.presses.push(press);
    this.publish(press);
    return press;
  }

  /** A device replaying a press it already sent (its own retry queue, or a firmware replay after reconnect). */
  resend(of: Press): void {
    const copy: Press = { ...of, acked: false, settled: false };
    this.resends.push(copy);
    this.publish(copy);
  }

  private publish(p: Press): void {
    const client = this.clients.get(p.deviceId);
    if (!client) throw new Error(`no client for ${p.deviceId}`);
    client
      .publishAsync(`devices/${p.deviceId}/event`, JSON.stringify({ type: "press", ts: p.ts, seq: p.seq }), {
        qos: 1,
      })
      .then(
        () => {
          p.acked = true;
        },
        () => undefined,
      )
      .finally(() => {
        p.settled = true;
      });
  }

  get acked(): Press[] {
    return [...this.presses, ...this.resends].filter((p) => p.acked);
  }

  get unsettled(): number {
    return [...this.presses, ...this.resends].filter((p) => !p.settled).length;
  }

  private later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await Promise.all([...this.clients.values()].map((c) => c.endAsync(true)));
  }
}

/** What the database holds, read straight from SQLite (read-only; fine while the gateway runs too). */
function readDb(dataDir: string) {
  const db = new Database(join(dataDir, "gateway.db"), { readonly: true, fileMustExist: true });
  try {
    const events = db
      .prepare("SELECT device_id AS deviceId, seq, ts, type, handled FROM device_events")
      .all() as { deviceId: string; seq: number; ts: number; type: string; handled: number }[];
    const alerts = db
      .prepare(
        "SELECT id, device_id AS deviceId, kind, state, level, presses, deadline_at AS deadlineAt FROM alerts",
      )
      .all() as {
      id: string;
      deviceId: string;
      kind: string;
      state: string;
      level: number;
      presses: number;
      deadlineAt: number | null;
    }[];
    const pendingWebhooks = (
      db
        .prepare(
          "SELECT COUNT(*) AS n FROM notification_attempts WHERE channel = 'webhook' AND status = 'pending'",
        )
        .get() as {
        n: number;
      }
    ).n;
    return { events, alerts, pendingWebhooks };
  } finally {
    db.close();
  }
}

const byDevice = <T extends { deviceId: string }>(xs: T[]) => {
  const map = new Map<string, T[]>();
  for (const x of xs) map.set(x.deviceId, [...(map.get(x.deviceId) ?? []), x]);
  return map;
};

/** The checks every scenario ends with, once the gateway has stopped. */
function expectEveryAckedPressOnce(dataDir: string, fleet: Fleet) {
  const { events, alerts } = readDb(dataDir);
  const stored = new Map(events.map((e) => [pressKey(e), e]));
  const acked = fleet.acked;
  expect(acked.filter((p) => !stored.has(pressKey(p))).map(pressKey), "acknowledged presses lost").toEqual(
    [],
  );
  expect(events.filter((e) => !e.handled).length, "stored events never handled").toBe(0);
  const calls = alerts.filter((a) => a.kind === "call");
  const alertsOf = byDevice(calls);
  const pressesOf = byDevice(events.filter((e) => e.type === "press"));
  for (const deviceId of new Set(acked.map((p) => p.deviceId))) {
    // One alert per device (nobody accepts, so every later press joins it) counting each stored press once.
    const mine = alertsOf.get(deviceId) ?? [];
    expect(mine.length, `alerts of ${deviceId}`).toBe(1);
    expect(mine[0]?.presses, `presses joined on ${deviceId}'s alert`).toBe(pressesOf.get(deviceId)?.length);
  }
  // No alert without a stored press, and no device with two active call alerts.
  for (const deviceId of alertsOf.keys()) expect(pressesOf.has(deviceId)).toBe(true);
  const active = calls.filter((a) => a.state === "open" || a.state === "accepted");
  expect(active.length).toBe(new Set(active.map((a) => a.deviceId)).size);
  return { events, alerts: calls };
}

describe("crash safety (gateway in its own process)", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  /** A seeded data directory whose people's webhooks point at `webhookUrl`, and how to start a gateway on it. */
  async function setUp(webhookUrl: (path: string) => string, extraEnv: Record<string, string> = {}) {
    const dataDir = mkdtempSync(join(tmpdir(), "gateway-crash-"));
    cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const policyFile = join(dataDir, "policy.json");
    writeFileSync(policyFile, JSON.stringify(POLICY));
    const creds = await seed(dataDir, webhookUrl);
    const env = {
      WEBHOOK_SECRET,
      ESCALATION_POLICY_FILE: policyFile,
      WEBHOOK_RETRY_DELAYS_MS: "200,500",
      // The whole fleet connects from 127.0.0.1, which a real deployment never sees.
      MQTT_CONNECT_RATE_PER_IP: "0",
      ...extraEnv,
    };
    const start = async (ports?: GatewayProcess["ports"]) => {
      const gw = await spawnGateway({ dataDir, env, ports });
      cleanup.push(() => gw.kill("SIGKILL"));
      return gw;
    };
    return { dataDir, creds, start };
  }

  it("keeps every acknowledged press, fires overdue escalations once and duplicates nothing after kill -9", async () => {
    const hooks = await startWebhookServer();
    cleanup.push(hooks.close);
    const { dataDir, creds, start } = await setUp(hooks.url);
    let gw = await start();
    const fleet = new Fleet(gw.mqttUrl, creds);
    cleanup.push(() => fleet.close());
    await fleet.connect();
    fleet.heartbeat();
    fleet.pressAll();

    // Mid-way: presses still coming, the first alerts escalating to level 2, webhooks under way.
    await waitFor(() => hooks.received.some((h) => h.path === "/family"), 10_000, "the first escalation");
    const { signal } = await gw.kill("SIGKILL");
    expect(signal).toBe("SIGKILL");
    const ackedBeforeKill = fleet.acked.map(pressKey);

    // While it is down: what was acknowledged is on disk, and level-1 deadlines fall due.
    const down = readDb(dataDir);
    const storedWhileDown = new Set(down.events.map(pressKey));
    expect(ackedBeforeKill.filter((k) => !storedWhileDown.has(k))).toEqual([]);
    const overdue = down.alerts.filter((a) => a.state === "open" && a.level === 1 && a.deadlineAt !== null);
    expect(overdue.length).toBeGreaterThan(0);
    const lastDeadline = Math.max(...overdue.map((a) => a.deadlineAt ?? 0));
    await waitFor(() => Date.now() > lastDeadline + 100, 10_000, "level-1 deadlines to pass while down");

    const restartedAt = performance.now();
    gw = await start(gw.ports);
    // Devices reconnect by themselves and re-send what was not acknowledged; some replay acknowledged ones too.
    await waitFor(() => fleet.connected === DEVICES, 10_000, "devices to reconnect");
    for (const p of fleet.presses.filter((_, i) => i % 7 === 0)) fleet.resend(p);
    await waitFor(() => fleet.unsettled === 0, 10_000, "every press to be acknowledged");

    // Each deadline that passed while down fires after the restart: level 2 (family) is told once.
    const levelTwo = (alertId: string) =>
      hooks.received.filter((h) => h.path === "/family" && h.json.alertId === alertId);
    await waitFor(
      () => overdue.every((a) => levelTwo(a.id).length > 0),
      10_000,
      "overdue alerts to escalate to level 2",
    );
    expect(overdue.flatMap((a) => levelTwo(a.id)).every((h) => h.at > restartedAt)).toBe(true);

    // Every alert reached its level-1 responder, including those opened just before the kill.
    const doctorWasTold = () =>
      hooks.received.filter((h) => h.path === "/doctor").map((h) => h.json.alertId as string);
    await waitFor(
      () => everyAlertNotified(dataDir, doctorWasTold()),
      10_000,
      "a level-1 webhook for every alert",
    );

    const stopped = await gw.kill("SIGTERM");
    expect(stopped.code).toBe(0);
    const { alerts } = expectEveryAckedPressOnce(dataDir, fleet);
    for (const a of overdue) {
      expect(levelTwo(a.id)).toHaveLength(1);
      expect(alerts.find((x) => x.id === a.id)?.level).toBe(2);
    }
    if (process.env.CRASH_STATS)
      console.info(
        JSON.stringify({
          scenario: "SIGKILL",
          ackedBeforeKill: ackedBeforeKill.length,
          webhooksCutOff: down.pendingWebhooks,
          acked: fleet.acked.length,
          overdue: overdue.length,
          alerts: alerts.length,
        }),
      );
  }, 60_000);

  it("drains on SIGTERM: exits 0 in time, every acknowledged press handled, no webhook lost", async () => {
    const bridge = await startSlowBridge(500);
    cleanup.push(bridge.close);
    // One request at a time to a bridge that takes 500 ms: at the stop, most notifications are still waiting.
    const { dataDir, creds, start } = await setUp(bridge.url, { WEBHOOK_CONCURRENCY: "1" });
    let gw = await start();
    const fleet = new Fleet(gw.mqttUrl, creds);
    cleanup.push(() => fleet.close());
    await fleet.connect();
    fleet.heartbeat();
    fleet.pressAll();

    await waitFor(() => fleet.acked.length >= DEVICES / 3, 10_000, "a third of the presses acknowledged");
    const t0 = performance.now();
    const stopped = await gw.kill("SIGTERM");
    const drainMs = performance.now() - t0;
    expect(stopped.code).toBe(0);
    expect(drainMs).toBeLessThan(SHUTDOWN_LIMIT_MS);
    const ackedBeforeStop = fleet.acked.map(pressKey);

    // Every acknowledged press is stored and was handled before the exit; no webhook request was cut off.
    const down = readDb(dataDir);
    const storedWhileDown = new Set(down.events.map(pressKey));
    expect(ackedBeforeStop.filter((k) => !storedWhileDown.has(k))).toEqual([]);
    const unhandledAtStop = down.events.filter((e) => !e.handled).length;
    expect(unhandledAtStop).toBe(0);
    expect(down.pendingWebhooks).toBe(0);
    expect(bridge.state.open).toBe(0);
    const notifiedAtStop = new Set(bridge.received.map((h) => h.alertId)).size;
    expect(notifiedAtStop).toBeLessThan(down.alerts.length);

    bridge.state.delayMs = 0;
    gw = await start(gw.ports);
    await waitFor(() => fleet.connected === DEVICES, 10_000, "devices to reconnect");
    await waitFor(() => fleet.unsettled === 0, 10_000, "every press to be acknowledged");
    await waitFor(() => readDb(dataDir).events.every((e) => e.handled), 10_000, "every stored event handled");
    // Deliveries that were still waiting for the bridge at the stop are sent by the next run.
    const doctorWasTold = () => bridge.received.filter((h) => h.path === "/doctor").map((h) => h.alertId);
    await waitFor(
      () => everyAlertNotified(dataDir, doctorWasTold()),
      10_000,
      "a level-1 webhook for every alert",
    );

    expect((await gw.kill("SIGTERM")).code).toBe(0);
    const { alerts } = expectEveryAckedPressOnce(dataDir, fleet);
    if (process.env.CRASH_STATS)
      console.info(
        JSON.stringify({
          scenario: "SIGTERM",
          drainMs: Math.round(drainMs),
          ackedBeforeStop: ackedBeforeStop.length,
          alertsAtStop: down.alerts.length,
          notifiedAtStop,
          acked: fleet.acked.length,
          alerts: alerts.length,
        }),
      );
  }, 60_000);
});
