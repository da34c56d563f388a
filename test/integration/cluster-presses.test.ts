import { randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import type { MqttClient } from "mqtt";
import pg from "pg";
import { afterAll, expect, it } from "vitest";
import type { DeviceCommand } from "../../gateway/ingest/contract.ts";
import {
  ADMIN_PASSWORD,
  call,
  connectPersistent,
  login,
  metric,
  registerDevice,
  seedCommunity,
  tempDataDir,
  WEBHOOK_SECRET,
} from "../support/gateway.ts";
import { startPostgres } from "../support/postgres.ts";
import { type GatewayProcess, spawnGateway } from "../support/process.ts";
import { startRedis } from "../support/redis.ts";
import { waitFor } from "../support/wait.ts";
import { startWebhookServer } from "../support/webhook-server.ts";

const DEVICES = 200;
/** Each resident presses this many times, each press once the last was confirmed (`received`). */
const PRESSES = 3;
/** The instance dies after acknowledging this many presses: about the first round of its devices'. */
const KILL_AFTER_ACKS = 40;
/** A press not confirmed is sent again (same seq and ts) this often, as device-sim does. */
const PRESS_RETRY_MS = 10_000;

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

interface Press {
  seq: number;
  payload: string;
  /** The MQTT port of the instance each PUBACK came from, in order. */
  acks: number[];
  /** How often MQTT.js replayed it unacknowledged on a new connection, and the device sent it again itself. */
  replayed: number;
  resentOnReconnect: number;
  resentOnTimer: number;
}

interface Resident {
  id: string;
  client: MqttClient;
  commands: DeviceCommand[];
  presses: Press[];
}

const received = (device: Resident) => device.commands.filter((c) => c.type === "received");
/** The instance a device is connected to now, by its MQTT port. */
const portOf = (client: MqttClient) => (client.stream as Socket).remotePort as number;

it("kill -9 an instance while 200 devices press: every acknowledged press is stored once, each device has one alert counting each press once, and hears `received`", async () => {
  const postgres = await startPostgres();
  cleanup.push(() => postgres.destroy());
  const redis = await startRedis();
  cleanup.push(redis.stop);
  const hooks = await startWebhookServer();
  cleanup.push(hooks.close);
  const databaseUrl = await postgres.createDatabase();
  const db = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  cleanup.push(() => db.end());
  const env = {
    DATABASE_URL: databaseUrl,
    REDIS_URL: redis.url,
    DEVICE_SECRET_KEY: randomBytes(32).toString("hex"),
    WEBHOOK_SECRET,
    ADMIN_PASSWORD,
    LOG_LEVEL: "warn",
  };
  const spawn = async () => {
    const gw = await spawnGateway({ dataDir: tempDataDir(), env, startTimeoutMs: 60_000 });
    cleanup.push(() => gw.kill("SIGTERM"));
    return gw;
  };
  const asAdmin = async (gw: GatewayProcess) => {
    const http = `http://127.0.0.1:${gw.ports.http}`;
    return { http, session: await login({ http }, "admin", ADMIN_PASSWORD) };
  };
  // The first creates the admin and the schema; the others find them.
  const gateways = [await spawn()];
  gateways.push(await spawn(), await spawn());
  const [doomed, b, c] = gateways as [GatewayProcess, GatewayProcess, GatewayProcess];
  const admin = await asAdmin(b);
  await seedCommunity(admin, hooks.url);

  // Device i connects to instance i % 3, and to the next ones in turn when its connection dies.
  const devices: Resident[] = [];
  for (let i = 0; i < DEVICES; i++) {
    const creds = await registerDevice(admin, `btn-${String(i).padStart(3, "0")}`);
    const ports = [0, 1, 2].map((k) => (gateways[(i + k) % 3] as GatewayProcess).ports.mqtt);
    const { client, commands } = await connectPersistent(ports, creds);
    cleanup.push(() => client.endAsync(true));
    await client.subscribeAsync(`devices/${creds.id}/command`, { qos: 1 });
    devices.push({ id: creds.id, client, commands, presses: [] });
  }

  let acksFromDoomed = 0;
  let inFlightAtKill = -1;
  const send = (device: Resident, press: Press) =>
    device.client.publish(`devices/${device.id}/event`, press.payload, { qos: 1 }, (err) => {
      if (err) return;
      // The callback runs as the PUBACK is read: the socket it came on is the instance's.
      const port = portOf(device.client);
      press.acks.push(port);
      if (port !== doomed.ports.mqtt || ++acksFromDoomed !== KILL_AFTER_ACKS) return;
      inFlightAtKill = devices.filter(
        (d) => portOf(d.client) === doomed.ports.mqtt && d.presses.at(-1)?.acks.length === 0,
      ).length;
      void doomed.kill("SIGKILL");
    });

  /** One resident: presses, and presses again once the device confirmed; re-sends what it was not confirmed. */
  const pressAll = async (device: Resident) => {
    for (let seq = 1; seq <= PRESSES; seq++) {
      const heard = received(device).length;
      const confirmed = () => received(device).length > heard;
      const press: Press = {
        seq,
        payload: JSON.stringify({ type: "press", ts: Date.now(), seq }),
        acks: [],
        replayed: 0,
        resentOnReconnect: 0,
        resentOnTimer: 0,
      };
      device.presses.push(press);
      // Connection lost: MQTT.js replays the press on the next instance if it was not acknowledged;
      // if it was, but not confirmed, the instance may have died before handling it: send it again.
      let ackedAtLoss = false;
      const onClose = () => {
        ackedAtLoss = press.acks.length > 0;
      };
      const onConnect = () => {
        if (confirmed()) return;
        if (!ackedAtLoss) press.replayed++;
        else {
          press.resentOnReconnect++;
          send(device, press);
        }
      };
      const retry = setInterval(() => {
        if (confirmed() || !device.client.connected) return;
        press.resentOnTimer++;
        send(device, press);
      }, PRESS_RETRY_MS);
      device.client.on("close", onClose).on("connect", onConnect);
      send(device, press);
      try {
        await waitFor(confirmed, 120_000, `'received' for ${device.id}'s press ${seq}`);
      } finally {
        clearInterval(retry);
        device.client.off("close", onClose).off("connect", onConnect);
      }
    }
  };
  const pressing = Promise.all(devices.map(pressAll));
  // Its failure is reported where it is awaited, below.
  void pressing.catch(() => undefined);

  // Mid-burst, once it has acknowledged KILL_AFTER_ACKS presses.
  await waitFor(() => inFlightAtKill >= 0, 120_000, `${KILL_AFTER_ACKS} PUBACKs from the instance to kill`);
  expect((await doomed.exited).signal).toBe("SIGKILL");
  // Presses were still on their way to it: the kill hit the burst, not its end.
  expect(inFlightAtKill).toBeGreaterThan(0);

  // Every press it acknowledged was stored before its PUBACK: it is there the moment it is dead.
  const key = (deviceId: string, seq: number, ts: number) => `${deviceId}/${seq}/${ts}`;
  const storedNow = new Set(
    (await db.query("SELECT device_id, seq, ts FROM device_events")).rows.map((r) =>
      key(r.device_id, Number(r.seq), Number(r.ts)),
    ),
  );
  const keyOf = (device: Resident, press: Press) => {
    const { seq, ts } = JSON.parse(press.payload) as { seq: number; ts: number };
    return key(device.id, seq, ts);
  };
  const ackedByDoomed = devices.flatMap((d) =>
    d.presses.filter((p) => p.acks.includes(doomed.ports.mqtt)).map((p) => keyOf(d, p)),
  );
  expect(ackedByDoomed.filter((k) => !storedNow.has(k))).toEqual([]);

  // Every device confirmed every press, wherever it ended up.
  await pressing;
  const survivors = [b, c].map((gw) => gw.ports.mqtt);
  for (const d of devices) {
    expect(survivors).toContain(portOf(d.client));
    expect(d.presses.map((p) => p.acks.length > 0)).toEqual(Array(PRESSES).fill(true));
  }

  // Stored once each, and each handled.
  const sent = devices.flatMap((d) => d.presses.map((p) => keyOf(d, p))).sort();
  const stored = async () =>
    (await db.query("SELECT device_id, seq, ts, handled FROM device_events")).rows as {
      device_id: string;
      seq: string;
      ts: string;
      handled: boolean;
    }[];
  expect((await stored()).map((r) => key(r.device_id, Number(r.seq), Number(r.ts))).sort()).toEqual(sent);
  await waitFor(async () => (await stored()).every((r) => r.handled), 30_000, "every stored press handled");

  // One alert per device, counting each of its presses once: opened by the first, joined by the others.
  const alerts = (await db.query("SELECT id, device_id, kind, state, presses FROM alerts ORDER BY device_id"))
    .rows as { id: string; device_id: string; kind: string; state: string; presses: number }[];
  expect(alerts.map((a) => a.device_id)).toEqual(devices.map((d) => d.id));
  for (const a of alerts) {
    expect(a.kind).toBe("call");
    expect(["open", "accepted"]).toContain(a.state);
    expect(a.presses).toBe(PRESSES);
  }
  const trail = (
    await db.query(
      `SELECT a.device_id, (e.data->>'seq')::int AS seq FROM alert_events e JOIN alerts a ON a.id = e.alert_id
       WHERE e.type IN ('opened', 'joined') ORDER BY a.device_id, e.id`,
    )
  ).rows as { device_id: string; seq: number }[];
  const seqsOf = (deviceId: string) => trail.filter((r) => r.device_id === deviceId).map((r) => r.seq);
  for (const d of devices) expect(seqsOf(d.id), d.id).toEqual([1, 2, 3].slice(0, PRESSES));

  // The API on a survivor says the same, and every `received` a device heard named its one alert.
  const listed = (await call(admin, "GET", "/api/alerts?limit=1000")).body as {
    id: string;
    deviceId: string;
    presses: number;
  }[];
  expect(listed.map((a) => [a.deviceId, a.presses]).sort()).toEqual(devices.map((d) => [d.id, PRESSES]));
  const alertOf = new Map(alerts.map((a) => [a.device_id, a.id]));
  for (const d of devices) {
    expect(new Set(received(d).map((r) => r.alertId))).toEqual(new Set([alertOf.get(d.id)]));
  }

  const all = devices.flatMap((d) => d.presses);
  const count = (f: (p: Press) => boolean) => all.filter(f).length;
  console.info(
    `cluster presses: ${DEVICES} devices x ${PRESSES}; killed after ${KILL_AFTER_ACKS} PUBACKs` +
      ` with ${inFlightAtKill} presses unacknowledged; acknowledged by the dead instance ${ackedByDoomed.length},` +
      ` replayed by MQTT.js ${count((p) => p.replayed > 0)}, re-sent on reconnecting ${count((p) => p.resentOnReconnect > 0)},` +
      ` re-sent after ${PRESS_RETRY_MS / 1000} s unconfirmed ${count((p) => p.resentOnTimer > 0)},` +
      ` duplicates dropped ${(await metric(admin, "gateway_duplicate_events_total")) + (await metric({ http: `http://127.0.0.1:${c.ports.http}` }, "gateway_duplicate_events_total"))}`,
  );
}, 300_000);
