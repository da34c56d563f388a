import { describe, expect, it } from "vitest";
import { parseCpuList } from "../bench/cores.ts";
import type { LatencySummary } from "../bench/stats.ts";
import { type IngestStep, judgeTargets, microsPerMessage, sustainedRate } from "../bench/targets.ts";

const latency = (p99: number, lost = 0): LatencySummary => ({
  count: 100,
  lost,
  p50: 1,
  p99,
  p999: p99,
  max: p99,
});
const step = (offered: number, over: Partial<IngestStep> = {}): IngestStep => ({
  offered,
  sent: offered * 10,
  seconds: 10,
  received: offered * 10,
  stored: offered * 10,
  catchUpS: 0.5,
  countLagS: 0,
  cpu: 0.5,
  netCpuS: 1,
  ...over,
});
const point = (devices: number) => ({
  devices,
  connected: devices,
  connectS: 2,
  rssPerDeviceKB: 15,
  rssUncollectedPerDeviceKB: 21,
  received: latency(4),
  sse: latency(12),
});

describe("the benchmark's targets", () => {
  it("judges figures measured at the target's scale", () => {
    const lines = judgeTargets({ point: point(10_000) });
    expect(lines).toEqual([
      "- press -> device `received` p99 < 10 ms at 10,000 devices: **met**, p99 4.0 ms",
      "- press -> SSE p99 < 10 ms at 10,000 devices: **missed**, p99 12.0 ms",
      "- <= 16 KB RSS per connected device: **met**, 15.0 KB retained at 10,000 devices (21.0 KB before a garbage collection)",
      "- 10,000 connects < 3 s: **met**, 10,000 of 10,000 in 2.0 s",
    ]);
  });

  it("never judges a figure measured below the target's scale", () => {
    const lines = judgeTargets({
      point: point(1000),
      ingest: { devices: 1000, gateway: [step(10_000)], mosquitto: [step(10_000)] },
    });
    expect(lines).toHaveLength(5);
    for (const line of lines) {
      expect(line).toContain("not at the target's scale");
      expect(line).not.toMatch(/\*\*(met|missed)\*\*/);
    }
  });

  it("misses a latency target when a press never arrived, whatever the p99 of the rest", () => {
    const [received] = judgeTargets({ point: { ...point(10_000), received: latency(4, 1) } });
    expect(received).toContain("**missed**");
    expect(received).toContain("1 of 101 never arrived");
  });

  it("counts a rate as sustained only when nothing was lost and the broker caught up", () => {
    const steps = [step(40_000), step(60_000, { stored: 599_999 }), step(80_000, { catchUpS: 3.2 })];
    expect(sustainedRate(steps)).toBe(40_000);
    // Mosquitto's counters are published once a second: that much staleness is not falling behind.
    expect(sustainedRate([step(80_000, { catchUpS: 2.6, countLagS: 1, stored: undefined })])).toBe(80_000);
    expect(sustainedRate([step(10_000, { received: 5 })])).toBeUndefined();
  });

  it("judges the ingest rate and gives its share of Mosquitto's", () => {
    const [line] = judgeTargets({
      ingest: {
        devices: 10_000,
        gateway: [step(60_000), step(80_000, { catchUpS: 5 })],
        mosquitto: [step(60_000), step(80_000, { stored: undefined })],
      },
    });
    expect(line).toContain("**met**, kept up with 60,000/s sent");
    expect(line).toContain("75% of Mosquitto's 80,000/s");
    expect(line).toContain("its ceiling is higher, so this share is an upper bound");
  });

  it("takes CPU per message over all steps together", () => {
    expect(microsPerMessage([step(1000, { netCpuS: 0.2 }), step(3000, { netCpuS: 0.2 })])).toBe(10);
  });
});

describe("the benchmark's CPU lists", () => {
  it("reads the kernel's list format", () => {
    expect(parseCpuList("0-1\n")).toEqual([0, 1]);
    expect(parseCpuList("0,2-4,7")).toEqual([0, 2, 3, 4, 7]);
    expect(parseCpuList("")).toEqual([]);
  });
});
