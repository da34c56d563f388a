import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  connectDevice,
  registerDevice,
  seedCommunity,
  startGateway,
  type TestDevice,
  type TestGateway,
} from "../support/gateway.ts";
import { startRedis } from "../support/redis.ts";
import { waitFor } from "../support/wait.ts";

/**
 * A device's messages end at the gateway that receives them: nobody may subscribe to them, so
 * they never travel over Redis to the other instances. Commands to devices still do.
 */
describe("what goes over Redis", () => {
  let redis: Awaited<ReturnType<typeof startRedis>>;
  let gw: TestGateway;
  let tag: TestDevice;
  let watcher: Redis;
  const channels: string[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    gw = await startGateway({
      env: { REDIS_URL: redis.url, DEVICE_SECRET_KEY: randomBytes(32).toString("base64") },
    });
    await seedCommunity(gw, (path) => `http://127.0.0.1:9${path}`);
    tag = await connectDevice(gw, await registerDevice(gw, "tag-1", "dondrub", "locator-tag"));
    watcher = new Redis(redis.url);
    watcher.on("pmessage", (_pattern, channel) => channels.push(channel));
    await watcher.psubscribe("devices/*", "$refused*");
  }, 60_000);
  afterAll(async () => {
    await tag?.close();
    await gw?.stop();
    watcher?.disconnect();
    await redis?.stop();
  });

  it("carries the command to the device, and none of the device's heartbeats, presses or refused messages", async () => {
    const beat = { ts: Date.now(), seq: 1, battery: 80, lat: 29.65, lon: 91.13, accuracy: 8 };
    await tag.publish("devices/tag-1/heartbeat", JSON.stringify(beat), 1);
    await tag.publish("devices/tag-1/heartbeat", "{not json", 1);
    await tag.event("press");
    // `received` goes out over Redis after all of them: Redis keeps the order of one connection.
    await tag.waitForCommand("received");
    await waitFor(() => channels.length > 0, 5000, "the command on Redis");
    expect(channels).toEqual(["devices/tag-1/command"]);
  });
});
