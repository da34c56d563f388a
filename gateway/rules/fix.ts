import type { Heartbeat } from "../ingest/contract.ts";

export type FixVerdict = "ok" | "none" | "null-island" | "out-of-range" | "inaccurate";

/**
 * Whether a heartbeat's position can be trusted at all. Rejected fixes are still stored (with
 * their verdict) but never move a tag on the map nor count for a safe zone.
 */
export function judgePosition(h: Heartbeat, maxAccuracyM: number): FixVerdict {
  if (h.lat === undefined || h.lon === undefined) return "none";
  if (!Number.isFinite(h.lat) || !Number.isFinite(h.lon) || Math.abs(h.lat) > 90 || Math.abs(h.lon) > 180) {
    return "out-of-range";
  }
  // (0, 0) is where a GPS module with no fix reports itself.
  if (Math.abs(h.lat) < 1e-6 && Math.abs(h.lon) < 1e-6) return "null-island";
  if (h.accuracy === undefined || h.accuracy > maxAccuracyM) return "inaccurate";
  return "ok";
}
