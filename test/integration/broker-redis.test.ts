import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BrokerRedis } from "../../gateway/broker/redis.ts";
import { startRedis } from "../support/redis.ts";
import { waitFor } from "../support/wait.ts";

describe("the broker's Redis connections", () => {
  let redis: Awaited<ReturnType<typeof startRedis>>;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it("lets aedes quit the emitter's connections after the gateway cut them, and nothing is thrown out of the process", async () => {
    const broker = new BrokerRedis(redis.url, { queuedTtlSec: 60 }, pino({ level: "silent" }));
    await waitFor(() => broker.isUp(), 5000, "the connections to Redis");
    const rejections: unknown[] = [];
    const onRejection = (reason: unknown) => rejections.push(reason);
    process.on("unhandledRejection", onRejection);
    try {
      // A gateway stopping while Redis is down cuts the connections without waiting for aedes,
      // whose close quits the emitter's later; a reconnect in flight ends them meanwhile. Here
      // they are ended for sure: Redis is up.
      await broker.close();
      await waitFor(() => !broker.isUp(), 5000, "the connections to end");
      broker.mq.close(() => undefined);
      // An unhandled rejection is reported once the turn that made it has ended.
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(rejections).toEqual([]);
    } finally {
      process.off("unhandledRejection", onRejection);
    }
  });
});
