import { describe, expect, it } from "vitest";
import { percentile, summarise } from "../bench/stats.ts";

describe("benchmark statistics", () => {
  it("takes nearest-rank percentiles", () => {
    const samples = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted
    expect(percentile(samples, 50)).toBe(50);
    expect(percentile(samples, 99)).toBe(99);
    expect(percentile(samples, 100)).toBe(100);
    expect(percentile(samples, 0)).toBe(1);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
  });

  it("counts operations that never completed as lost", () => {
    expect(summarise([1, 2, 3], 5)).toEqual({ count: 3, lost: 2, p50: 2, p99: 3, p999: 3, max: 3 });
  });
});
