import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeClock } from "../support/fake-clock.ts";
import {
  connectDevice,
  metric,
  registerDevice,
  seedCommunity,
  startGateway,
  type TestDevice,
  type TestGateway,
} from "../support/gateway.ts";
import { waitFor } from "../support/wait.ts";

/**
 * What a heartbeat changes is counted off the Prometheus client and handed to it when scraped:
 * the operator's /metrics must read as before, however often it is scraped.
 */
describe("/metrics for heartbeats", () => {
  let clock: FakeClock;
  let gw: TestGateway;
  let tag: TestDevice;
  let seq = 0;

  // QoS 1: the PUBACK comes once the heartbeat is handled, so the metrics already show it.
  const beat = (battery = 80) =>
    tag.publish(
      "devices/tag-1/heartbeat",
      JSON.stringify({ ts: clock.now(), seq: ++seq, battery, lat: 29.65, lon: 91.13, accuracy: 8 }),
      1,
    );
  const scrape = async () => (await fetch(`${gw.http}/metrics`)).text();

  beforeAll(async () => {
    clock = new FakeClock();
    gw = await startGateway({ clock, env: { TELEMETRY_FLUSH_MS: "1000" } });
    await seedCommunity(gw, () => "http://127.0.0.1:9/unused");
    tag = await connectDevice(gw, await registerDevice(gw, "tag-1", "dondrub", "locator-tag"));
  });
  afterAll(async () => {
    await tag.close();
    await gw.stop();
  });

  it("counts accepted heartbeats once, however often scraped, and never a refused one", async () => {
    for (let i = 0; i < 3; i++) await beat();
    await beat(140); // refused: battery out of range
    const text = await scrape();
    expect(text).toContain("# HELP gateway_messages_in_total Device messages accepted, by channel\n");
    expect(text).toContain("# TYPE gateway_messages_in_total counter\n");
    expect(text).toContain('gateway_messages_in_total{channel="heartbeat"} 3\n');
    expect(await metric(gw, 'gateway_messages_in_total{channel="heartbeat"}')).toBe(3);
    await beat();
    expect(await metric(gw, 'gateway_messages_in_total{channel="heartbeat"}')).toBe(4);
    expect(await metric(gw, 'gateway_messages_refused_total{reason="schema"}')).toBe(1);
  });

  it("shows the points waiting for the telemetry store, and none once written", async () => {
    const text = await scrape();
    expect(text).toContain("# TYPE gateway_telemetry_buffered_points gauge\n");
    expect(text).toContain("gateway_telemetry_buffered_points 4\n");
    await clock.advance(1000);
    await waitFor(async () => (await metric(gw, "gateway_telemetry_points_written_total")) === 4);
    expect(await metric(gw, "gateway_telemetry_buffered_points")).toBe(0);
    await beat();
    expect(await metric(gw, "gateway_telemetry_buffered_points")).toBe(1);
  });

  it("times every flush of the database's log, which a press waits for", async () => {
    const flushes = await metric(gw, "gateway_store_flushes_total");
    await tag.event("sos");
    await waitFor(async () => (await metric(gw, "gateway_store_flushes_total")) > flushes);
    expect(await scrape()).toContain("# TYPE gateway_store_flush_seconds histogram\n");
    // Each flush is timed once done: those still running are counted, not yet timed.
    await waitFor(
      async () =>
        (await metric(gw, "gateway_store_flush_seconds_count")) ===
        (await metric(gw, "gateway_store_flushes_total")),
    );
    expect(await metric(gw, "gateway_store_flush_seconds_sum")).toBeGreaterThan(0);
  });
});
