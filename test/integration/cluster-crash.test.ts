import { cpSync } from "node:fs";
import { afterAll, expect, it } from "vitest";
import type { DeviceCommand } from "../../gateway/ingest/contract.ts";
import {
  connectPersistent,
  registerDevice,
  seedCommunity,
  startGateway,
  type TestGateway,
  tempDataDir,
  WEBHOOK_SECRET,
} from "../support/gateway.ts";
import { type GatewayProcess, spawnGateway } from "../support/process.ts";
import { startRedis } from "../support/redis.ts";
import { waitFor } from "../support/wait.ts";

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

it("kill -9 the instance holding a device: its session lives on in Redis, and commands given meanwhile arrive in order at another instance", async () => {
  const redis = await startRedis();
  cleanup.push(redis.stop);
  // One registry for both instances: seeded once, then copied (each keeps its own SQLite file).
  const dirA = tempDataDir();
  const seeding = await startGateway({ dataDir: dirA });
  await seedCommunity(seeding, (path) => `http://127.0.0.1:9${path}`);
  const creds = await registerDevice(seeding, "btn-crash");
  await seeding.stop();
  const dirB = tempDataDir();
  cpSync(dirA, dirB, { recursive: true });

  const a: GatewayProcess = await spawnGateway({
    dataDir: dirA,
    env: { WEBHOOK_SECRET, REDIS_URL: redis.url, LOG_LEVEL: "warn" },
  });
  cleanup.push(() => a.kill("SIGKILL"));
  const b: TestGateway = await startGateway({ dataDir: dirB, env: { REDIS_URL: redis.url } });
  cleanup.push(() => b.stop());

  const onA = await connectPersistent(a.ports.mqtt, creds);
  cleanup.push(() => onA.client.endAsync(true));
  await onA.client.subscribeAsync(`devices/${creds.id}/command`, { qos: 1 });
  const lost = new Promise<void>((resolve) => onA.client.once("close", () => resolve()));
  expect((await a.kill("SIGKILL")).signal).toBe("SIGKILL");
  await lost;

  // While the device is away, B is told to send it three commands.
  const sent = ["received", "accepted", "resolved"].map(
    (type) => ({ type, alertId: "alert-1" }) as DeviceCommand,
  );
  for (const command of sent)
    expect(await b.broker.publishCommand(creds.id, JSON.stringify(command))).toBeUndefined();

  // It comes back on B without subscribing again: the session A never closed is there, with the three.
  const onB = await connectPersistent(b.ports.mqtt, creds);
  cleanup.push(() => onB.client.endAsync(true));
  await waitFor(() => onB.commands.length >= 3, 5000, "the queued commands on B");
  expect(onB.commands).toEqual(sent);
  // And it keeps hearing B afterwards.
  const later: DeviceCommand = { type: "accepted", alertId: "alert-2" };
  await b.broker.publishCommand(creds.id, JSON.stringify(later));
  await waitFor(() => onB.commands.length > 3, 5000, "a later command");
  expect(onB.commands.slice(3)).toEqual([later]);
}, 120_000);
