import { afterEach, describe, expect, it } from "vitest";
import { FakeClock } from "../support/fake-clock.ts";
import {
  call,
  connectDevice,
  metric,
  registerDevice,
  seedCommunity,
  startGateway,
  type TestGateway,
  tempDataDir,
} from "../support/gateway.ts";
import { waitFor } from "../support/wait.ts";
import { startWebhookServer } from "../support/webhook-server.ts";

describe("durability across restarts", () => {
  const open: { stop(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const x of open.splice(0).reverse()) await x.stop();
  });

  async function gateway(dataDir: string, clock: FakeClock): Promise<TestGateway> {
    const gw = await startGateway({ dataDir, clock });
    open.push(gw);
    return gw;
  }

  it("opens one alert for a seq delivered twice, and again after a restart", async () => {
    const hooks = await startWebhookServer();
    open.push({ stop: hooks.close });
    const dataDir = tempDataDir();
    const clock = new FakeClock();
    let gw = await gateway(dataDir, clock);
    await seedCommunity(gw, hooks.url);
    const creds = await registerDevice(gw, "btn-dondrub");
    let device = await connectDevice(gw, creds);
    const ts = Date.now();
    await device.event("press", 7, ts);
    await device.event("press", 7, ts); // a QoS 1 re-delivery
    await device.waitForCommand("received");
    await waitFor(async () => (await metric(gw, "gateway_duplicate_events_total")) === 1);
    await device.close();
    await gw.stop();

    gw = await gateway(dataDir, clock);
    device = await connectDevice(gw, creds);
    await device.event("press", 7, ts); // replayed from the device's queue after the restart
    await waitFor(async () => (await metric(gw, "gateway_duplicate_events_total")) === 1);
    const alerts = (await call(gw, "GET", "/api/alerts")).body;
    expect(alerts).toHaveLength(1);
    expect(alerts[0].presses).toBe(1);
    // The same seq with a new timestamp is a new press (the device restarted its counter): it joins.
    await device.event("press", 7, ts + 1000);
    await device.waitForCommand("received");
    expect((await call(gw, "GET", "/api/alerts")).body[0].presses).toBe(2);
    await device.close();
  });

  it("fires an escalation that fell due while the gateway was down, and keeps later deadlines", async () => {
    const hooks = await startWebhookServer();
    open.push({ stop: hooks.close });
    const dataDir = tempDataDir();
    const clock = new FakeClock();
    let gw = await gateway(dataDir, clock);
    await seedCommunity(gw, hooks.url);
    await call(gw, "POST", "/api/people", {
      id: "norbu",
      name: "Norbu",
      role: "resident",
      communityId: "chongsaikang",
      gridId: "grid-1",
    });
    await call(gw, "POST", "/api/assignments", {
      residentId: "norbu",
      personId: "dr-tsering",
      relation: "doctor",
    });
    await call(gw, "POST", "/api/assignments", { residentId: "norbu", personId: "pema", relation: "family" });
    const first = await connectDevice(gw, await registerDevice(gw, "btn-dondrub"));
    await first.event("press");
    const { alertId: overdue } = await first.waitForCommand("received");
    await clock.advance(30_000);
    const second = await connectDevice(gw, await registerDevice(gw, "btn-norbu", "norbu"));
    await second.event("press");
    const { alertId: later } = await second.waitForCommand("received");
    await first.close();
    await second.close();
    await gw.stop();

    // 45 s of downtime: the first alert's 60 s deadline passed, the second's has 15 s left.
    await clock.advance(45_000);
    gw = await gateway(dataDir, clock);
    await clock.advance(0); // timers due "at once" run on the next tick
    const detail = async (id: string) => (await call(gw, "GET", `/api/alerts/${id}`)).body;
    // The level is stored before its page goes out: waiting for the page waits for both.
    const levelTwo = () => hooks.received.filter((h) => h.json.alertId === overdue && h.json.level === 2);
    await waitFor(() => levelTwo().length > 0, 5000, "overdue escalation paged");
    expect((await detail(overdue)).level).toBe(2);
    expect(levelTwo()).toHaveLength(1);
    expect((await detail(later)).level).toBe(1);
    await clock.advance(14_000);
    expect((await detail(later)).level).toBe(1);
    await clock.advance(1_000);
    await waitFor(async () => (await detail(later)).level === 2, 5000, "later escalation");
  });

  it("handles a press that was stored but not yet turned into an alert when the gateway stopped", async () => {
    const dataDir = tempDataDir();
    const clock = new FakeClock();
    let gw = await gateway(dataDir, clock);
    await seedCommunity(gw, () => "http://127.0.0.1:9/unused");
    await registerDevice(gw, "btn-dondrub");
    // Simulate the crash window: the event is durable, the rules never saw it.
    await gw.store.deviceEvents.record("btn-dondrub", { type: "press", ts: Date.now(), seq: 1 }, clock.now());
    await gw.stop();
    gw = await gateway(dataDir, clock);
    const [alert] = (await call(gw, "GET", "/api/alerts?state=open")).body;
    expect(alert).toMatchObject({ deviceId: "btn-dondrub", kind: "call", presses: 1 });
    expect(await gw.store.deviceEvents.unhandled()).toEqual([]);
  });
});
