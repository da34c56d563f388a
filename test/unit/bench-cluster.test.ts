import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { joinBenchmarks, singleNodeFigures, splitBenchmarks, spreadDevices } from "../bench/cluster.ts";

describe("the cluster benchmark's spread of devices", () => {
  it("gives each gateway an equal block, each over as few load workers as hold it", () => {
    const shares = spreadDevices(50_000, 3, 10_000);
    const on = (instance: number) => shares.filter((s) => s.instance === instance);
    expect(shares.map((s) => [s.instance, s.ids.length])).toEqual([
      [0, 8334],
      [0, 8333],
      [1, 8334],
      [1, 8333],
      [2, 8333],
      [2, 8333],
    ]);
    expect([0, 1, 2].map((k) => on(k).reduce((a, s) => a + s.ids.length, 0))).toEqual([
      16_667, 16_667, 16_666,
    ]);
    // Every device once, in order.
    const ids = shares.flatMap((s) => s.ids);
    expect(ids).toHaveLength(50_000);
    expect(new Set(ids).size).toBe(50_000);
    expect(ids[0]).toBe("dev-0");
    expect(ids.at(-1)).toBe("dev-49999");
  });

  it("gives a small run one worker per gateway", () => {
    expect(spreadDevices(3000, 3, 10_000).map((s) => [s.instance, s.ids.length])).toEqual([
      [0, 1000],
      [1, 1000],
      [2, 1000],
    ]);
  });
});

describe("BENCHMARKS.md's two parts", () => {
  const singleNode = "# Benchmarks, 2026-12-01: 2 cores\n\n| devices | connect |\n| 10 | x |\n";
  const cluster = "# Cluster: 3 gateways\n\n## Heartbeats\n\n| a | b |\n";

  it("replaces the cluster's section and keeps the single-node run's, and the other way round", () => {
    const both = joinBenchmarks({ singleNode, cluster });
    expect(splitBenchmarks(both)).toEqual({ singleNode: `${singleNode}\n`, cluster });
    const newCluster = "# Cluster: again\n";
    expect(joinBenchmarks({ ...splitBenchmarks(both), cluster: newCluster })).toBe(
      `${singleNode}\n${newCluster}`,
    );
    const newSingle = "# Benchmarks, later\n";
    expect(joinBenchmarks({ singleNode: newSingle, cluster: splitBenchmarks(both).cluster })).toBe(
      `${newSingle}\n${cluster}`,
    );
  });

  it("has no cluster section until one was written", () => {
    expect(splitBenchmarks(singleNode)).toEqual({ singleNode });
    expect(joinBenchmarks(splitBenchmarks(singleNode))).toBe(singleNode);
  });

  it("reads the single-node figures at the largest number of devices measured", () => {
    const figures = singleNodeFigures(readFileSync("BENCHMARKS.md", "utf8"));
    expect(figures?.devices).toBeGreaterThan(0);
    expect(figures?.connect).toMatch(/^\d+ of \d+ in [\d.]+ s$/);
    expect(figures?.rssPerDevice).toMatch(/^[\d.]+ KB$/);
    expect(figures?.received).toMatch(/^[\d.]+ \/ [\d.]+$/);
    expect(figures?.sse).toMatch(/^[\d.]+ \/ [\d.]+$/);
    expect(singleNodeFigures(cluster)).toBeUndefined();
  });
});
