import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DeviceCommand } from "../../gateway/ingest/contract.ts";
import {
  registerDevice,
  seedCommunity,
  startGateway,
  type TestGateway,
  tempDataDir,
} from "../support/gateway.ts";
import { freePort } from "../support/process.ts";
import { startRedis } from "../support/redis.ts";
import { waitFor } from "../support/wait.ts";

const SHIPPED = "deploy/haproxy.cfg";

/** Replaces every `from` in the configuration; fails if there is none, so the test follows the file. */
function substitute(config: string, from: string, to: string): string {
  if (!config.includes(from)) throw new Error(`${SHIPPED} no longer has '${from}'`);
  return config.replaceAll(from, to);
}

describe("HAProxy in front (deploy/haproxy.cfg)", () => {
  it("the shipped configuration is valid, warning only that the compose services' names do not resolve here", () => {
    const check = spawnSync("haproxy", ["-c", "-f", SHIPPED], { encoding: "utf8" });
    expect(check.status).toBe(0);
    expect(check.stdout).toContain("Configuration file is valid");
    const warnings = check.stderr
      .split("\n")
      .filter((line) => line.includes("[WARNING]") && !/could not resolve address 'gateway-[ab]'/.test(line));
    expect(warnings).toEqual([]);
  });

  describe("running in front of two gateways sharing Redis", () => {
    let redis: Awaited<ReturnType<typeof startRedis>>;
    const gateways: TestGateway[] = [];
    const stopped = new Set<TestGateway>();
    let haproxy: ChildProcess;
    const front = { mqtt: 0, http: 0 };
    const devices: MqttClient[] = [];

    beforeAll(async () => {
      redis = await startRedis();
      // Behind a proxy every connection comes from its address: the per-address limit is HAProxy's.
      const env = {
        REDIS_URL: redis.url,
        DEVICE_SECRET_KEY: randomBytes(32).toString("base64"),
        MQTT_CONNECT_RATE_PER_IP: "0",
        TRUST_PROXY: "true",
      };
      for (let i = 0; i < 2; i++) {
        const gw = await startGateway({ env: { ...env, WATCH_PORT: String(await freePort()) } });
        await seedCommunity(gw, (path) => `http://127.0.0.1:9${path}`);
        gateways.push(gw);
      }
      const [a, b] = gateways as [TestGateway, TestGateway];
      Object.assign(front, { mqtt: await freePort(), http: await freePort() });
      // The shipped file, with loopback ports for its listeners and the two gateways' addresses.
      let config = readFileSync(SHIPPED, "utf8");
      // Two file descriptors a connection: the shipped limit needs more than this machine allows a process.
      config = substitute(config, "maxconn 100000", "maxconn 4000");
      config = substitute(config, "bind *:1883", `bind 127.0.0.1:${front.mqtt}`);
      config = substitute(config, "bind *:8080", `bind 127.0.0.1:${front.http}`);
      config = substitute(config, "bind *:5093", `bind 127.0.0.1:${await freePort()}`);
      config = substitute(config, "bind 127.0.0.1:8404", `bind 127.0.0.1:${await freePort()}`);
      for (const [name, gw] of [
        ["gateway-a", a],
        ["gateway-b", b],
      ] as const) {
        config = substitute(config, `${name}:1883`, `127.0.0.1:${gw.ports.mqtt}`);
        config = substitute(config, `${name}:8080`, `127.0.0.1:${gw.ports.http}`);
        config = substitute(config, `${name}:5093`, `127.0.0.1:${gw.ports.watch}`);
      }
      const file = join(tempDataDir(), "haproxy.cfg");
      writeFileSync(file, config);
      haproxy = spawn("haproxy", ["-db", "-f", file], { stdio: "ignore" });
      await waitFor(
        async () => (await fetch(`http://127.0.0.1:${front.http}/readyz`).catch(() => undefined))?.ok,
        10_000,
        "the gateways' /readyz through HAProxy",
      );
    }, 120_000);

    afterAll(async () => {
      await Promise.all(devices.map((d) => d.endAsync(true)));
      if (haproxy && haproxy.exitCode === null) {
        const exited = new Promise((resolve) => haproxy.once("exit", resolve));
        haproxy.kill("SIGTERM");
        await exited;
      }
      await Promise.all(gateways.filter((gw) => !stopped.has(gw)).map((gw) => gw.stop()));
      await redis?.stop();
    });

    /** Registered on both gateways with one secret (each has its own store here). */
    async function registerOnBoth(id: string) {
      const [a, b] = gateways as [TestGateway, TestGateway];
      const creds = await registerDevice(a, id);
      await registerDevice(b, id);
      await b.store.registry.setDeviceSecret(id, (await a.store.registry.getDeviceSecretHash(id)) as string);
      return creds;
    }

    /** A device that connects through HAProxy, with a persistent session, and reconnects by itself. */
    async function deviceThroughFrontDoor(creds: { id: string; secret: string }) {
      const client = mqtt.connect(`mqtt://127.0.0.1:${front.mqtt}`, {
        clientId: creds.id,
        username: creds.id,
        password: creds.secret,
        protocolVersion: 4,
        clean: false,
        reconnectPeriod: 200,
      });
      devices.push(client);
      const commands: DeviceCommand[] = [];
      client.on("message", (_topic, payload) => commands.push(JSON.parse(payload.toString())));
      await new Promise<void>((resolve) => client.once("connect", () => resolve()));
      await client.subscribeAsync(`devices/${creds.id}/command`, { qos: 1 });
      return { client, commands };
    }

    const holder = (id: string) => gateways.find((gw) => !stopped.has(gw) && gw.broker.isConnected(id));

    it("spreads devices over the gateways, carries the call loop, and moves devices off a gateway that stops", async () => {
      const first = await registerOnBoth("btn-front-1");
      const second = await registerOnBoth("btn-front-2");
      const one = await deviceThroughFrontDoor(first);
      await deviceThroughFrontDoor(second);
      // Least connections: the second device goes to the gateway the first is not on.
      const [holderOne, holderTwo] = [holder(first.id), holder(second.id)];
      expect(holderOne).toBeDefined();
      expect(holderTwo).toBeDefined();
      expect(holderOne).not.toBe(holderTwo);

      // A press through the front door is answered.
      await one.client.publishAsync(
        `devices/${first.id}/event`,
        JSON.stringify({ type: "press", ts: Date.now(), seq: 1 }),
        { qos: 1 },
      );
      await waitFor(() => one.commands.find((c) => c.type === "received"), 5000, "received through HAProxy");

      // The first device's gateway stops: the device reconnects through the front door to the other.
      const gone = holderOne as TestGateway;
      const other = holderTwo as TestGateway;
      await gone.stop();
      stopped.add(gone);
      await waitFor(
        () => other.broker.isConnected(first.id),
        10_000,
        "the device back, on the other gateway",
      );
      const accepted: DeviceCommand = { type: "accepted", alertId: "a-1", message: "次仁医生已接单" };
      other.bus.emit("device.command", { deviceId: first.id, command: accepted });
      await waitFor(() => one.commands.find((c) => c.type === "accepted"), 5000, "accepted after the move");

      // Every HTTP request is served by the gateway left, the stopped one taken out of rotation.
      for (let i = 0; i < 4; i++) {
        const res = await fetch(`http://127.0.0.1:${front.http}/readyz`);
        expect(res.status).toBe(200);
      }
    }, 60_000);
  });
});
