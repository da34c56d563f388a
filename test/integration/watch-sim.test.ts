import { afterEach, describe, expect, it } from "vitest";
import { readDeviceFile } from "../../device-sim/simulator.ts";
import { runWatchSimulation } from "../../device-sim/watch.ts";
import { seedDemo } from "../../gateway/demo-seed.ts";
import { call, startGateway, type TestGateway } from "../support/gateway.ts";
import { waitFor } from "../support/wait.ts";
import { freePort } from "../support/watch-client.ts";

describe("watch simulator on the seeded demo district", () => {
  let gw: TestGateway;
  let stopSim: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await stopSim?.();
    await gw.stop();
  });

  it("seeds watches by id, and its watches raise an sos and a fall, report indoors, and catch up with UD2", async () => {
    gw = await startGateway({ env: { WATCH_PORT: String(await freePort()) } });
    const file = await seedDemo(gw, gw.dataDir, { buttons: 1, tags: 0, watches: 3 }, Date.now());
    const watches = readDeviceFile(file).filter((d) => d.protocol === "watch");
    expect(watches.map((d) => [d.id, d.kind])).toEqual([
      ["8800000001", "locator-tag"],
      ["8800000002", "call-button"],
      ["8800000003", "locator-tag"],
    ]);
    const lines: string[] = [];
    const sim = await runWatchSimulation({
      host: "127.0.0.1",
      port: gw.ports.watch,
      watches,
      heartbeatMs: 100,
      alarmsPerMinute: 0,
      gapEveryMs: 0,
      seed: 1,
      log: (line) => lines.push(line),
    });
    stopSim = sim.stop;
    const [child, pendant, indoors] = sim.watches;
    await waitFor(async () => (await call(gw, "GET", "/api/devices/8800000001")).body.connected);

    pendant?.fall();
    child?.sos();
    const open = await waitFor(async () => {
      const alerts = (await call(gw, "GET", "/api/alerts?state=open")).body;
      return alerts.length >= 2 && alerts;
    });
    expect(open.map((a: { deviceId: string; kind: string }) => [a.deviceId, a.kind]).sort()).toEqual([
      ["8800000001", "sos"],
      ["8800000002", "fall"],
    ]);

    // Indoors: cells and Wi-Fi, no fix; stored with them for a resolver or a person to read.
    const seen = await waitFor(async () =>
      (await call(gw, "GET", "/api/devices/8800000003/watch-readings")).body.find(
        (r: { type: string }) => r.type === "UD",
      ),
    );
    expect(seen.data).toMatchObject({ fix: null, cells: [{ mcc: 460 }, { mcc: 460 }] });
    expect(indoors).toBeDefined();

    // Out of coverage for a few heartbeats: what it saw meanwhile arrives late, as UD2.
    child?.gap(350);
    const late = await waitFor(async () =>
      (await call(gw, "GET", "/api/devices/8800000001/watch-readings")).body.find(
        (r: { type: string }) => r.type === "UD2",
      ),
    );
    expect(late).toMatchObject({ late: true });
    expect(lines.some((l) => l.includes("out of coverage"))).toBe(true);
  });
});
