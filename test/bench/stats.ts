/** Nearest-rank percentile of already collected samples; `p` in 0..100. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? Number.NaN;
}

export interface LatencySummary {
  count: number;
  lost: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
}

/** Summarises latencies measured for `sent` operations; the ones that never arrived count as lost. */
export function summarise(latenciesMs: readonly number[], sent: number): LatencySummary {
  return {
    count: latenciesMs.length,
    lost: sent - latenciesMs.length,
    p50: percentile(latenciesMs, 50),
    p99: percentile(latenciesMs, 99),
    p999: percentile(latenciesMs, 99.9),
    max: latenciesMs.length ? Math.max(...latenciesMs) : Number.NaN,
  };
}
