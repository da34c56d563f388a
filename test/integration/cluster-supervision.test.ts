import { randomBytes } from "node:crypto";
import { afterAll, expect, it } from "vitest";
import { FakeClock } from "../support/fake-clock.ts";
import { call, connectDevice, registerDevice, seedCommunity, startGateway } from "../support/gateway.ts";
import { startPostgres } from "../support/postgres.ts";
import { startWebhookServer } from "../support/webhook-server.ts";

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

type Listed = { kind: string; deviceId: string };
const offlineAlerts = async (gw: { http: string }) =>
  ((await call(gw, "GET", "/api/alerts")).body as Listed[])
    .filter((a) => a.kind === "device-offline")
    .map((a) => a.deviceId);

/**
 * Two gateways on one database each hear only the devices connected to them: a tag talking to A
 * is not offline to B, and a tag that fell silent is; B's page shows the tag as A last heard it.
 */
it("raises no offline alarm on B for a tag heartbeating on A; a tag silent everywhere is offline", {
  timeout: 60_000,
}, async () => {
  const postgres = await startPostgres();
  cleanup.push(() => postgres.destroy());
  const hooks = await startWebhookServer();
  cleanup.push(hooks.close);
  const clock = new FakeClock(Date.now());
  const env = {
    DATABASE_URL: await postgres.createDatabase(),
    DEVICE_SECRET_KEY: randomBytes(32).toString("hex"),
    HEARTBEAT_SEC_LOCATOR_TAG: "60",
  };
  const a = await startGateway({ clock, env });
  cleanup.push(() => a.stop());
  await seedCommunity(a, hooks.url);
  const talking = await connectDevice(a, await registerDevice(a, "tag-talking", "dondrub", "locator-tag"));
  const quiet = await connectDevice(a, await registerDevice(a, "tag-quiet", "dondrub", "locator-tag"));
  cleanup.push(talking.close);
  await quiet.close();
  // A saves what it heard (every 10 s); B starts knowing both tags, and supervises them.
  await clock.advance(10_000);
  const b = await startGateway({ clock, env });
  cleanup.push(() => b.stop());

  // Ten minutes, a heartbeat a minute from the one tag: past three missed for both, on B's watch too.
  for (let minute = 1; minute <= 10; minute++) {
    const heartbeat = { ts: clock.now(), seq: minute, battery: 90 - minute };
    await talking.publish("devices/tag-talking/heartbeat", JSON.stringify(heartbeat), 0);
    await clock.advance(60_000);
  }
  for (const gw of [a, b]) {
    const offline = await offlineAlerts(gw);
    expect(offline).toContain("tag-quiet");
    expect(offline).not.toContain("tag-talking");
    // Either gateway's page shows the tag as A last heard it.
    const { body } = await call(gw, "GET", "/api/devices/tag-talking");
    expect(body.state).toMatchObject({ online: true, battery: 80 });
  }
});
