import { randomBytes } from "node:crypto";
import { cpSync } from "node:fs";
import { afterAll, expect, it } from "vitest";
import type { DeviceCommand } from "../../gateway/ingest/contract.ts";
import { FakeClock } from "../support/fake-clock.ts";
import {
  call,
  connectPersistent,
  registerDevice,
  seedCommunity,
  signIn,
  startGateway,
  type TestGateway,
  tempDataDir,
  WEBHOOK_SECRET,
} from "../support/gateway.ts";
import { startPostgres } from "../support/postgres.ts";
import { type GatewayProcess, spawnGateway } from "../support/process.ts";
import { startRedis } from "../support/redis.ts";
import { waitFor } from "../support/wait.ts";
import { startWebhookServer } from "../support/webhook-server.ts";

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
  // B learns of the subscription through Redis, a moment after A acknowledged it: only then do its
  // publishes queue for the device (a publish before that reaches no one, as on any aedes cluster).
  const { persistence } = b.broker.aedes as unknown as {
    persistence: { subscriptionsByTopic(topic: string): Promise<{ clientId: string }[]> };
  };
  await waitFor(
    async () =>
      (await persistence.subscriptionsByTopic(`devices/${creds.id}/command`)).some(
        (sub) => sub.clientId === creds.id,
      ),
    10_000,
    "B to know the device's subscription",
  );
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
  await waitFor(() => onB.commands.length >= 3, 10_000, "the queued commands on B");
  expect(onB.commands).toEqual(sent);
  // And it keeps hearing B afterwards.
  const later: DeviceCommand = { type: "accepted", alertId: "alert-2" };
  await b.broker.publishCommand(creds.id, JSON.stringify(later));
  await waitFor(() => onB.commands.length > 3, 5000, "a later command");
  expect(onB.commands.slice(3)).toEqual([later]);
}, 120_000);

it("kill -9 the instance holding a device mid-escalation, on a shared store: the next level is paged once, by another, and the device hears it out there", async () => {
  const postgres = await startPostgres();
  cleanup.push(() => postgres.destroy());
  const redis = await startRedis();
  cleanup.push(redis.stop);
  const hooks = await startWebhookServer();
  cleanup.push(hooks.close);
  const env = {
    WEBHOOK_SECRET,
    DATABASE_URL: await postgres.createDatabase(),
    REDIS_URL: redis.url,
    DEVICE_SECRET_KEY: randomBytes(32).toString("hex"),
  };
  // B's time is a fake one, for the level-1 minute to pass at once; A lives on the real one.
  const clockB = new FakeClock(Date.now());
  const b: TestGateway = await startGateway({ clock: clockB, env });
  cleanup.push(() => b.stop());
  await seedCommunity(b, hooks.url);
  const creds = await registerDevice(b, "btn-midway");
  const a: GatewayProcess = await spawnGateway({
    dataDir: tempDataDir(),
    env: { ...env, LOG_LEVEL: "warn" },
  });
  cleanup.push(() => a.kill("SIGKILL"));

  // The device talks to A, and moves to B when A is gone.
  const device = await connectPersistent([a.ports.mqtt, b.ports.mqtt], creds);
  cleanup.push(() => device.client.endAsync(true));
  await device.client.subscribeAsync(`devices/${creds.id}/command`, { qos: 1 });
  await device.client.publishAsync(
    `devices/${creds.id}/event`,
    JSON.stringify({ type: "press", ts: Date.now(), seq: 1 }),
    { qos: 1 },
  );
  const { alertId } = await waitFor(
    () => device.commands.find((c) => c.type === "received"),
    10_000,
    "received",
  );
  const heard = (who: string) =>
    hooks.received.filter((h) => h.path === `/${who}`).map((h) => `${h.json.event}@${h.json.level}`);
  await waitFor(
    () => heard("dr-tsering").includes("paged@1") && hooks.load.open === 0,
    10_000,
    "level 1 paged",
  );
  // ...and A has stored that it was delivered (killed before that, A's page would go out again:
  // at least once).
  await waitFor(
    async () =>
      (await call(b, "GET", `/api/alerts/${alertId}`)).body.attempts.some(
        (t: { personId: string; event: string; status: string }) =>
          t.personId === "dr-tsering" && t.event === "paged" && t.status === "delivered",
      ),
    10_000,
    "the page's delivery stored",
  );

  expect((await a.kill("SIGKILL")).signal).toBe("SIGKILL");
  await waitFor(() => device.client.connected, 10_000, "the device back, on B");
  // The level-1 minute passes: B claims the deadline A held and pages the family, once.
  const { deadlineAt } = (await call(b, "GET", `/api/alerts/${alertId}`)).body;
  await clockB.advance(deadlineAt - clockB.now() + 10_000);
  await waitFor(() => heard("pema").includes("paged@2"), 10_000, "level 2 paged by B");
  await clockB.advance(30_000);
  expect(heard("pema")).toEqual(["paged@2"]);
  // A's page to the doctor had reached them: B took it over and sent nothing again.
  expect(heard("dr-tsering")).toEqual(["paged@1"]);

  const accepted = await call(b, "POST", `/api/alerts/${alertId}/accept`, {}, await signIn(b, "pema"));
  expect(accepted.status).toBe(200);
  await waitFor(() => device.commands.some((c) => c.type === "accepted"), 10_000, "accepted at the device");
  expect(device.commands.map((c) => [c.type, c.alertId])).toEqual([
    ["received", alertId],
    ["accepted", alertId],
  ]);
}, 120_000);

it("queues in Redis, at start, the commands of a press the last run left undecided, before taking connections", async () => {
  const redis = await startRedis();
  cleanup.push(redis.stop);
  const dataDir = tempDataDir();
  let gw = await startGateway({ dataDir, env: { REDIS_URL: redis.url } });
  await seedCommunity(gw, (path) => `http://127.0.0.1:9${path}`);
  const creds = await registerDevice(gw, "btn-leftover");
  const first = await connectPersistent(gw.ports.mqtt, creds);
  await first.client.subscribeAsync(`devices/${creds.id}/command`, { qos: 1 });
  await first.client.endAsync();
  // The last run stored (and acknowledged) a press, and stopped before deciding it.
  await gw.store.deviceEvents.record(creds.id, { type: "press", ts: Date.now(), seq: 1 }, Date.now());
  await gw.stop();

  const logs: string[] = [];
  gw = await startGateway({
    dataDir,
    env: { REDIS_URL: redis.url, LOG_LEVEL: "warn" },
    logTo: { write: (line: string) => void logs.push(line) },
  });
  cleanup.push(() => gw.stop());
  expect(logs.some((line) => line.includes("left over from the last run"))).toBe(true);
  // Decided at start, before any device could connect: its `received` waited in Redis.
  const { client, commands } = await connectPersistent(gw.ports.mqtt, creds);
  cleanup.push(() => client.endAsync(true));
  const received = await waitFor(() => commands.find((c) => c.type === "received"), 5000, "'received'");
  expect((await call(gw, "GET", `/api/alerts/${received.alertId}`)).body).toMatchObject({ presses: 1 });
  // Nothing failed on the way (nobody is reachable at port 9: that is logged, not failed).
  expect(logs.filter((line) => JSON.parse(line).level >= 50 && JSON.parse(line).err)).toEqual([]);
}, 120_000);
