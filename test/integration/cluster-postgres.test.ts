import { randomBytes } from "node:crypto";
import mqtt from "mqtt";
import { afterAll, expect, it } from "vitest";
import type { DeviceCommand } from "../../gateway/ingest/contract.ts";
import {
  call,
  connectPersistent,
  registerDevice,
  seedCommunity,
  signIn,
  startGateway,
} from "../support/gateway.ts";
import { startPostgres } from "../support/postgres.ts";
import { startRedis } from "../support/redis.ts";
import { waitFor } from "../support/wait.ts";

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** Two gateways on one PostgreSQL database and one Redis, the community seeded through A. */
async function twoGateways() {
  const postgres = await startPostgres();
  cleanup.push(() => postgres.destroy());
  const redis = await startRedis();
  cleanup.push(redis.stop);
  const env = {
    DATABASE_URL: await postgres.createDatabase(),
    REDIS_URL: redis.url,
    DEVICE_SECRET_KEY: randomBytes(32).toString("hex"),
  };
  const a = await startGateway({ env });
  cleanup.push(() => a.stop());
  const b = await startGateway({ env });
  cleanup.push(() => b.stop());
  await seedCommunity(a, (path) => `http://127.0.0.1:9${path}`);
  return { a, b };
}

/** The closed loop across instances. */
it("a press on B is accepted on A, and the device on B hears it; every command is recorded delivered", async () => {
  const { a, b } = await twoGateways();
  const creds = await registerDevice(a, "btn-across");

  const { client: device, commands } = await connectPersistent(b.ports.mqtt, creds);
  cleanup.push(() => device.endAsync(true));
  await device.subscribeAsync(`devices/${creds.id}/command`, { qos: 1 });
  const heard = (type: DeviceCommand["type"]) =>
    waitFor(() => commands.find((c) => c.type === type), 5000, `'${type}' at the device`);

  await device.publishAsync(
    `devices/${creds.id}/event`,
    JSON.stringify({ type: "press", ts: Date.now(), seq: 1 }),
    {
      qos: 1,
    },
  );
  const received = await heard("received");
  const doctor = await signIn(a, "dr-tsering");
  expect((await call(a, "POST", `/api/alerts/${received.alertId}/accept`, undefined, doctor)).status).toBe(
    200,
  );
  expect((await heard("accepted")).alertId).toBe(received.alertId);
  // B took the PUBACK of what A sent, and recorded it in the shared outbox.
  await waitFor(
    async () =>
      (await a.store.attempts.pendingCommands(`devices/${creds.id}/command`, Date.now())).length === 0,
    5000,
    "no command left pending",
  );
}, 120_000);

it("a device revoked on A is cut off on B, where it is connected, and refused there until a new secret", async () => {
  const { a, b } = await twoGateways();
  const creds = await registerDevice(a, "btn-lost");
  const { client: device } = await connectPersistent(b.ports.mqtt, creds);
  cleanup.push(() => device.endAsync(true));

  expect((await call(a, "POST", `/api/devices/${creds.id}/revoke`)).status).toBe(200);
  await waitFor(() => !device.connected, 10_000, "the device cut off on B");
  await expect(
    mqtt.connectAsync(
      `mqtt://127.0.0.1:${b.ports.mqtt}`,
      {
        clientId: creds.id,
        username: creds.id,
        password: creds.secret,
        protocolVersion: 4,
        reconnectPeriod: 0,
      },
      false,
    ),
  ).rejects.toMatchObject({ code: 5 });
}, 120_000);
