import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DeviceCommand } from "../../gateway/ingest/contract.ts";
import {
  call,
  connectDevice,
  registerDevice,
  seedCommunity,
  startGateway,
  type TestGateway,
} from "../support/gateway.ts";
import { startRedis } from "../support/redis.ts";
import { waitFor } from "../support/wait.ts";
import { connectWatch, freePort } from "../support/watch-client.ts";

/**
 * Three real gateways whose brokers share one real Redis. Each still has its own SQLite store
 * (the shared PostgreSQL store is not here yet, and two gateways must not share one SQLite file:
 * each runs its own deadlines and keeps state in memory), so every device is registered on all
 * three with the same secret. What is tested is what the broker layer guarantees across instances.
 */
describe("several instances over one Redis", () => {
  let redis: Awaited<ReturnType<typeof startRedis>>;
  let a: TestGateway;
  let b: TestGateway;
  let c: TestGateway;
  const devices: MqttClient[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, DEVICE_SECRET_KEY: randomBytes(32).toString("base64") };
    const start = async () => startGateway({ env: { ...env, WATCH_PORT: String(await freePort()) } });
    [a, b, c] = [await start(), await start(), await start()];
    // Webhooks of the seeded people go nowhere: these tests are about devices.
    await Promise.all([a, b, c].map((gw) => seedCommunity(gw, (path) => `http://127.0.0.1:9${path}`)));
    // Three gateways and their accounts (scrypt) on a loaded 2-core machine: not a measure of anything.
  }, 120_000);

  afterAll(async () => {
    await Promise.all(devices.map((d) => d.endAsync(true)));
    await Promise.all([a, b, c].map((gw) => gw?.stop()));
    await redis?.stop();
  });

  /** The device on every instance, with one secret (the key is shared, as gateways sharing a store must). */
  async function registerEverywhere(id: string) {
    const creds = await registerDevice(a, id);
    const hash = await a.store.registry.getDeviceSecretHash(id);
    for (const gw of [b, c]) {
      await registerDevice(gw, id);
      await gw.store.registry.setDeviceSecret(id, hash as string);
    }
    return creds;
  }

  /** A device with a persistent session (clean: false), as the contract asks; subscribes unless told not to. */
  async function persistentDevice(gw: TestGateway, creds: { id: string; secret: string }, subscribe = true) {
    const client = mqtt.connect(`mqtt://127.0.0.1:${gw.ports.mqtt}`, {
      clientId: creds.id,
      username: creds.id,
      password: creds.secret,
      protocolVersion: 4,
      clean: false,
      reconnectPeriod: 0,
    });
    devices.push(client);
    const commands: DeviceCommand[] = [];
    client.on("message", (_topic, payload) => commands.push(JSON.parse(payload.toString())));
    await new Promise<void>((resolve, reject) => {
      client.once("connect", () => resolve());
      client.once("error", reject);
    });
    if (subscribe) await client.subscribeAsync(`devices/${creds.id}/command`, { qos: 1 });
    return { client, commands };
  }

  const command = (alertId: string): DeviceCommand => ({
    type: "accepted",
    alertId,
    message: "次仁医生已接单",
  });

  it("a command given on one instance reaches the device connected to another, once", async () => {
    const creds = await registerEverywhere("btn-relay");
    const device = await persistentDevice(b, creds);
    // Through A's outbox, as an accept on A would send it: the device is not connected to A.
    a.bus.emit("device.command", { deviceId: creds.id, command: command("alert-on-a") });
    await waitFor(() => device.commands.length > 0, 5000, "the command from A at the device on B");
    // A second command behind it: had the first been delivered twice, the copy would come first.
    a.bus.emit("device.command", { deviceId: creds.id, command: command("second-on-a") });
    await waitFor(() => device.commands.length > 1, 5000, "the second command");
    expect(device.commands).toEqual([command("alert-on-a"), command("second-on-a")]);
  });

  it("a command given on one instance reaches a watch connected to another", async () => {
    const id = "8800000099";
    for (const gw of [a, b, c]) {
      const res = await call(gw, "POST", "/api/devices", {
        id,
        kind: "locator-tag",
        ownerId: "dondrub",
        protocol: "watch",
      });
      expect(res.status).toBe(201);
    }
    const watch = await connectWatch(b.ports.watch, id);
    watch.send("LK,1200,0,80");
    await watch.waitFor((content) => content === "LK", "the answer to LK");
    a.bus.emit("device.command", { deviceId: id, command: command("alert-on-a") });
    const shown = await watch.waitFor((content) => content.startsWith("MESSAGE,"), "the phrase from A");
    // UTF-16BE hex of the phrase, as the watch shows it.
    expect(Buffer.from(shown.slice("MESSAGE,".length), "hex").swap16().toString("utf16le")).toBe(
      "次仁医生已接单",
    );
    watch.close();
  });

  it("a press is handled by the instance holding the connection only", async () => {
    const creds = await registerEverywhere("btn-press");
    const device = await connectDevice(b, creds);
    devices.push(device.client);
    await device.event("press");
    const received = await device.waitForCommand("received");
    const openOn = async (gw: TestGateway) =>
      ((await call(gw, "GET", "/api/alerts?state=open")).body as { id: string; deviceId: string }[])
        .filter((alert) => alert.deviceId === creds.id)
        .map((alert) => alert.id);
    expect(await openOn(b)).toEqual([received.alertId]);
    // The publish crossed Redis to A and C too; neither took it for a press.
    expect(await openOn(a)).toEqual([]);
    expect(await openOn(c)).toEqual([]);
    expect(device.commands.filter((cmd) => cmd.type === "received")).toHaveLength(1);
  });

  it("commands for an offline device wait in Redis and arrive in order at another instance", async () => {
    const creds = await registerEverywhere("btn-queued");
    const first = await persistentDevice(b, creds);
    await first.client.endAsync();
    await waitFor(() => !b.broker.isConnected(creds.id), 5000, "B to see the device gone");
    // Queued by A in the session B left in Redis; each publish resolves once it is stored there.
    for (const n of [1, 2, 3])
      expect(await a.broker.publishCommand(creds.id, JSON.stringify(command(`q${n}`)))).toBeUndefined();
    // Kept in Redis no longer than the outbox keeps a command (DEVICE_COMMAND_TTL_HOURS, 24).
    const db = new Redis(redis.url);
    const queued = await db.lrange(`outgoing:${creds.id}`, 0, -1);
    const ttls = await Promise.all(queued.map((key) => db.ttl(key)));
    await db.quit();
    expect(ttls).toHaveLength(3);
    for (const ttl of ttls) expect(ttl > 24 * 3600 - 60 && ttl <= 24 * 3600).toBe(true);
    // The device comes back on C without subscribing again: its session is restored there.
    const second = await persistentDevice(c, creds, false);
    await waitFor(() => second.commands.length >= 3, 5000, "the three queued commands on C");
    expect(second.commands).toEqual([command("q1"), command("q2"), command("q3")]);
    // Acknowledged on C, they left the shared queue: the next connection, on A, gets none again.
    await second.client.endAsync();
    await waitFor(() => !c.broker.isConnected(creds.id), 5000, "C to see the device gone");
    const third = await persistentDevice(a, creds, false);
    await a.broker.publishCommand(creds.id, JSON.stringify(command("after")));
    await waitFor(() => third.commands.length > 0, 5000, "a fresh command on A");
    expect(third.commands).toEqual([command("after")]);
  });

  it("a device connecting to a second instance closes its connection on the first", async () => {
    const creds = await registerEverywhere("btn-twice");
    const old = await persistentDevice(a, creds);
    const closed = new Promise<void>((resolve) => old.client.once("close", () => resolve()));
    const current = await persistentDevice(b, creds);
    await closed;
    await waitFor(() => !a.broker.isConnected(creds.id), 5000, "A to drop the old connection");
    expect(b.broker.isConnected(creds.id)).toBe(true);
    // Commands now go to the new connection only.
    await c.broker.publishCommand(creds.id, JSON.stringify(command("to-the-new-one")));
    await waitFor(() => current.commands.length > 0, 5000, "the command on the new connection");
    expect(current.commands).toEqual([command("to-the-new-one")]);
    expect(old.commands).toEqual([]);
  });

  it("says a device is connected on every instance's API, whichever holds it, and not once it left", async () => {
    const creds = await registerEverywhere("btn-where");
    const connectedOn = async (gw: TestGateway) =>
      (await call(gw, "GET", `/api/devices/${creds.id}`)).body.connected as boolean;
    const onC = await persistentDevice(c, creds);
    await waitFor(
      async () => (await connectedOn(a)) && (await connectedOn(b)),
      5000,
      "connected, on A and B",
    );
    expect(await connectedOn(c)).toBe(true);
    // Moved to A: C let go of it, and it is still connected everywhere.
    const onA = await persistentDevice(a, creds);
    await waitFor(() => !c.broker.isConnected(creds.id), 5000, "C to drop the old connection");
    expect(onC.client.connected).toBe(false);
    await waitFor(
      async () => (await connectedOn(c)) && (await connectedOn(b)),
      5000,
      "connected, on B and C",
    );
    await onA.client.endAsync();
    await waitFor(
      async () => !(await connectedOn(a)) && !(await connectedOn(b)) && !(await connectedOn(c)),
      5000,
      "not connected anywhere",
    );
  });

  it("Redis restarted: every instance is unready, a press still opens its alert, and all flows again by itself", async () => {
    const creds = await registerEverywhere("btn-outage");
    const device = await persistentDevice(b, creds);
    // A fourth instance, stopped during the outage, with a device of its own.
    const d = await startGateway({ env: { REDIS_URL: redis.url } });
    await seedCommunity(d, (path) => `http://127.0.0.1:9${path}`);
    const dCreds = await registerDevice(d, "btn-on-d");
    const onD = await connectDevice(d, dCreds);
    devices.push(onD.client);
    const readiness = async (gw: TestGateway) => {
      const res = await fetch(`${gw.http}/readyz`);
      return { status: res.status, body: await res.json() };
    };
    await redis.stop();
    for (const gw of [a, b, c]) {
      const unready = await waitFor(
        async () => {
          const r = await readiness(gw);
          return r.status === 503 && r;
        },
        10_000,
        "the gateway to report Redis down",
      );
      expect(unready.body).toEqual({ status: "unready", reason: "Redis unreachable" });
    }
    // A press during the outage is stored and opens its alert; its PUBACK and `received` wait for Redis.
    const press = device.client.publishAsync(
      `devices/${creds.id}/event`,
      JSON.stringify({ type: "press", ts: Date.now(), seq: 1 }),
      { qos: 1 },
    );
    const opened = await waitFor(
      async () =>
        ((await call(b, "GET", "/api/alerts?state=open")).body as { id: string; deviceId: string }[]).find(
          (alert) => alert.deviceId === creds.id,
        ),
      5000,
      "the alert opened on B while Redis is down",
    );
    // Closing a session writes to Redis; stopping must not wait for it: the device is cut off.
    const cutOff = new Promise<void>((resolve) => onD.client.once("close", () => resolve()));
    await d.stop();
    await cutOff;
    expect(device.commands).toEqual([]);
    // A fifth instance starting now waits for Redis before it listens, then starts by itself.
    const late = startGateway({ env: { REDIS_URL: redis.url } });
    await redis.start();
    for (const gw of [a, b, c])
      await waitFor(async () => (await readiness(gw)).status === 200, 10_000, "the gateway ready again");
    const e = await late;
    expect((await readiness(e)).status).toBe(200);
    await e.stop();
    await press;
    await waitFor(() => device.commands.length > 0, 5000, "received, once Redis is back");
    expect(device.commands).toEqual([expect.objectContaining({ type: "received", alertId: opened.id })]);
    // The device's link to B never dropped; B's subscription to Redis was restored.
    a.bus.emit("device.command", { deviceId: creds.id, command: command("after-restart") });
    await waitFor(() => device.commands.length > 1, 5000, "the command from A after the restart");
    expect(device.commands.slice(1)).toEqual([command("after-restart")]);
  }, 60_000);
});
