import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  call,
  connectDevice,
  metric,
  registerDevice,
  seedCommunity,
  startGateway,
  type TestDevice,
  type TestGateway,
} from "../support/gateway.ts";
import { waitFor } from "../support/wait.ts";

const refused = (gw: TestGateway, reason: string) =>
  metric(gw, `gateway_messages_refused_total{reason="${reason}"}`);

function tryConnect(gw: TestGateway, clientId: string, username: string, password: string) {
  return mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, {
    clientId,
    username,
    password,
    reconnectPeriod: 0,
    protocolVersion: 4,
  });
}

describe("bad input is refused, counted, and leaves other devices alone", () => {
  let gw: TestGateway;
  let bad: TestDevice;
  let good: TestDevice;
  let goodCreds: { id: string; secret: string };

  beforeAll(async () => {
    gw = await startGateway();
    await seedCommunity(gw, () => "http://127.0.0.1:9/unused");
    bad = await connectDevice(gw, await registerDevice(gw, "btn-bad"));
    goodCreds = await registerDevice(gw, "btn-good");
    good = await connectDevice(gw, goodCreds);
  });
  afterAll(async () => {
    await bad.close();
    await good.close();
    await gw.stop();
  });

  it("refuses a wrong secret, an unknown device and a client id that is not the device id at CONNECT", async () => {
    await expect(tryConnect(gw, "btn-good", "btn-good", "not-the-secret")).rejects.toMatchObject({ code: 4 });
    await expect(tryConnect(gw, "btn-nobody", "btn-nobody", goodCreds.secret)).rejects.toMatchObject({
      code: 4,
    });
    await expect(tryConnect(gw, "someone-else", "btn-good", goodCreds.secret)).rejects.toMatchObject({
      code: 2,
    });
    expect(await refused(gw, "connect")).toBe(3);
    // The real btn-good was not kicked out by the impostors.
    expect(good.client.connected).toBe(true);
  });

  it("refuses publishing on another device's topics, and never delivers it", async () => {
    const before = await refused(gw, "acl");
    await bad.publish("devices/btn-good/event", JSON.stringify({ type: "press", ts: Date.now(), seq: 1 }));
    await bad.publish("devices/btn-good/command", JSON.stringify({ type: "accepted", alertId: "forged" }));
    await bad.publish("devices/btn-bad/command", JSON.stringify({ type: "accepted", alertId: "self" }));
    await bad.publish("elsewhere/topic", "hello");
    expect(await refused(gw, "acl")).toBe(before + 4);
    await new Promise((r) => setTimeout(r, 100));
    expect(good.commands).toEqual([]);
    expect(bad.commands).toEqual([]);
    expect((await call(gw, "GET", "/api/alerts")).body).toEqual([]);
  });

  it("refuses subscriptions other than the device's own command topic", async () => {
    // SUBACK return code 0x80 for each; mqtt.js reports that as an error carrying the SUBACK.
    await expect(
      bad.client.subscribeAsync(["devices/btn-good/command", "#", "devices/+/command"], { qos: 1 }),
    ).rejects.toMatchObject({ packet: { granted: [128, 128, 128] } });
    expect(bad.client.connected).toBe(true);
    expect(await refused(gw, "subscribe")).toBe(3);
  });

  it.each([
    ["bad-json", "{not json"],
    ["bad-json", Buffer.from([0xff, 0xfe, 0x00])],
    ["schema", JSON.stringify({ type: "press", ts: "yesterday", seq: 1 })],
    ["schema", JSON.stringify({ type: "explode", ts: Date.now(), seq: 1 })],
    ["schema", JSON.stringify({ type: "press", ts: Date.now() })],
    ["schema", JSON.stringify({ type: "press", ts: Date.now(), seq: -1 })],
    ["schema", JSON.stringify({ type: "press", ts: Date.now(), seq: 1, extra: true })],
    ["schema", JSON.stringify([1, 2, 3])],
    [
      "oversized",
      Buffer.from(JSON.stringify({ type: "press", ts: Date.now(), seq: 1, pad: "x".repeat(2000) })),
    ],
    ["timestamp", JSON.stringify({ type: "press", ts: Date.now() + 24 * 3600_000, seq: 1 })],
    ["timestamp", JSON.stringify({ type: "press", ts: 1000, seq: 1 })],
  ])("refuses an event payload as %s: %s", async (reason, payload) => {
    const before = await refused(gw, reason);
    await bad.publish("devices/btn-bad/event", payload);
    expect(await refused(gw, reason)).toBe(before + 1);
    expect(bad.client.connected).toBe(true);
    expect((await call(gw, "GET", "/api/alerts")).body).toEqual([]);
  });

  it("refuses a heartbeat with an out-of-range battery", async () => {
    const before = await refused(gw, "schema");
    await bad.publish(
      "devices/btn-bad/heartbeat",
      JSON.stringify({ ts: Date.now(), seq: 1, battery: 140 }),
      0,
    );
    await waitFor(async () => (await refused(gw, "schema")) === before + 1);
  });

  it("still serves the well-behaved device after all of that", async () => {
    await good.event("press");
    const received = await good.waitForCommand("received");
    const [alert] = (await call(gw, "GET", "/api/alerts")).body;
    expect(alert).toMatchObject({ id: received.alertId, deviceId: "btn-good" });
    expect(bad.commands).toEqual([]);
    expect(await metric(gw, 'gateway_messages_in_total{channel="event"}')).toBe(1);
    expect(await metric(gw, "gateway_devices_connected")).toBe(2);
  });
});
