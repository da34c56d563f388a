import { afterEach, describe, expect, it } from "vitest";
import { readDeviceFile, runSimulation } from "../../device-sim/simulator.ts";
import { seedDemo } from "../../gateway/demo-seed.ts";
import { call, metric, startGateway, type TestGateway } from "../support/gateway.ts";
import { waitFor } from "../support/wait.ts";

describe("device simulator on the seeded demo district", () => {
  let gw: TestGateway;
  let stopSim: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await stopSim?.();
    await gw.stop();
  });

  it("seeds the district and plays a scenario with the devices' real credentials", async () => {
    gw = await startGateway();
    const file = await seedDemo(gw, gw.dataDir, { buttons: 6, tags: 2 }, Date.now());
    const devices = readDeviceFile(file);
    expect(devices.map((d) => d.id)).toEqual([
      ...["btn-0001", "btn-0002", "btn-0003", "btn-0004", "btn-0005", "btn-0006"],
      ...["tag-0001", "tag-0002"],
    ]);
    // The tags' wearers are children, the buttons' elders.
    const residents = (await call(gw, "GET", "/api/people?role=resident")).body as {
      id: string;
      category: string;
    }[];
    const owners = (await call(gw, "GET", "/api/devices")).body as { id: string; ownerId: string }[];
    const wearer = (id: string) =>
      residents.find((p) => p.id === owners.find((d) => d.id === id)?.ownerId)?.category;
    expect([wearer("btn-0001"), wearer("tag-0001")]).toEqual(["elderly", "child"]);
    const communities = (await call(gw, "GET", "/api/communities")).body;
    expect(communities.map((c: { name: string }) => c.name)).toEqual(
      expect.arrayContaining([expect.stringContaining("冲赛康社区")]),
    );

    const lines: string[] = [];
    const sim = await runSimulation({
      url: `mqtt://127.0.0.1:${gw.ports.mqtt}`,
      devices,
      buttons: 2,
      tags: 1,
      pressesPerMinute: 0,
      buttonHeartbeatMs: 60_000,
      tagHeartbeatMs: 200,
      seed: 3,
      scenario: {
        steps: [
          { at: 50, device: "btn-0001", event: "press" },
          { at: 100, device: "btn-0002", event: "disconnect" },
          { at: 300, device: "btn-0002", event: "reconnect" },
          { at: 400, device: "tag-0001", event: "sos" },
          { at: 600, device: "btn-0001", event: "cancel" },
          { at: 700, device: "btn-0009", event: "press" },
        ],
      },
      log: (line) => lines.push(line),
    });
    stopSim = sim.stop;
    expect(
      (await call(gw, "GET", "/api/devices")).body.filter((d: { connected: boolean }) => d.connected),
    ).toHaveLength(3);

    await waitFor(() => lines.some((l) => l.startsWith("btn-0001 <- resolved")), 5000, "btn-0001 resolved");
    expect(lines.some((l) => l.startsWith("btn-0001 <- received"))).toBe(true);
    expect(sim.devices.get("btn-0001")?.state).toBe("idle");
    await waitFor(() => sim.devices.get("tag-0001")?.state === "received");
    expect(lines).toContain("scenario: unknown device btn-0009, step skipped");
    const alerts = (await call(gw, "GET", "/api/alerts")).body;
    expect(alerts.map((a: { kind: string; state: string }) => `${a.kind} ${a.state}`).sort()).toEqual([
      "call cancelled",
      "sos open",
    ]);
    // The tag heartbeats (with a position the contract accepts); the disconnected button came back.
    await waitFor(async () => (await metric(gw, 'gateway_messages_in_total{channel="heartbeat"}')) >= 2);
    expect(await metric(gw, 'gateway_messages_refused_total{reason="schema"}')).toBe(0);
    await waitFor(async () => (await call(gw, "GET", "/api/devices/btn-0002")).body.connected);
  });
});
