/**
 * Issue 15's targets, judged from what one benchmark run measured. A figure measured below the
 * target's scale (fewer devices, or lower rates offered) is printed but not judged, so that a
 * quick run is never read as meeting or missing a target.
 */
import type { LatencySummary } from "./stats.ts";

export const TARGET_DEVICES = 10_000;
const LATENCY_P99_MS = 10;
const HEARTBEATS_PER_S = 60_000;
const RSS_PER_DEVICE_KB = 16;
const CONNECT_S = 3;
/** A broker kept up with a rate when it had everything within this long after the burst's end (one telemetry flush and a little). */
export const CATCH_UP_S = 2;

/** One step of an ingest run: a burst of heartbeats at one offered rate, and what the broker made of it. */
export interface IngestStep {
  offered: number;
  sent: number;
  /** How long the burst took to send. */
  seconds: number;
  /** Counted by the broker itself. */
  received: number;
  /** Rows in the gateway's telemetry store; undefined for a broker that stores nothing. */
  stored?: number;
  /** From the burst's end until everything was received (and stored), or until the wait gave up. */
  catchUpS: number;
  /** How stale the broker's counters may be when read (Mosquitto's `$SYS` is updated every second). */
  countLagS: number;
  /** The broker's share of one core while the burst was sent. */
  cpu: number;
  /** The broker's CPU time from the burst's start to catch-up, less its idle CPU over that time. */
  netCpuS: number;
}

export const lostIn = (step: IngestStep) =>
  Math.max(0, step.sent - Math.min(step.received, step.stored ?? step.received));
export const keptUp = (step: IngestStep) =>
  lostIn(step) === 0 && step.catchUpS <= CATCH_UP_S + step.countLagS;
export const sentRate = (step: IngestStep) => step.sent / step.seconds;

/** The highest rate sent that the broker kept up with; undefined when it kept up with none. */
export function sustainedRate(steps: readonly IngestStep[]): number | undefined {
  const rates = steps.filter(keptUp).map(sentRate);
  return rates.length ? Math.max(...rates) : undefined;
}

/** Microseconds of broker CPU per message, over all the steps together. */
export function microsPerMessage(steps: readonly IngestStep[]): number {
  const received = steps.reduce((a, s) => a + s.received, 0);
  return received ? (steps.reduce((a, s) => a + s.netCpuS, 0) / received) * 1e6 : Number.NaN;
}

export interface Measured {
  /** The gateway's connect, memory and press figures, all at one number of devices. */
  point?: {
    devices: number;
    connected: number;
    connectS: number;
    /** Retained, after a full collection. */
    rssPerDeviceKB: number;
    /** Before a collection, the burst's garbage included; printed beside the target, not judged. */
    rssUncollectedPerDeviceKB?: number;
    received: LatencySummary;
    sse: LatencySummary;
  };
  ingest?: { devices: number; gateway: IngestStep[]; mosquitto: IngestStep[] };
}

const thousands = (n: number) => Math.round(n).toLocaleString("en-US");

/** One line per target: "met" or "missed" with the figure, or the figure marked as not at the target's scale. */
export function judgeTargets({ point, ingest }: Measured): string[] {
  const line = (target: string, atScale: boolean, scale: string, met: boolean, figure: string) =>
    `- ${target}: ${atScale ? (met ? "**met**," : "**missed**,") : `not at the target's scale (${scale}), not judged:`} ${figure}`;
  const devicesScale = (n: number) => `${thousands(n)} devices`;
  const lines: string[] = [];
  if (point) {
    const atScale = point.devices >= TARGET_DEVICES;
    for (const [what, s] of [
      ["press -> device `received`", point.received],
      ["press -> SSE", point.sse],
    ] as const) {
      const lost = s.lost ? `, ${s.lost} of ${s.count + s.lost} never arrived` : "";
      lines.push(
        line(
          `${what} p99 < ${LATENCY_P99_MS} ms at ${thousands(TARGET_DEVICES)} devices`,
          atScale,
          devicesScale(point.devices),
          s.lost === 0 && s.p99 < LATENCY_P99_MS,
          `p99 ${s.p99.toFixed(1)} ms${lost}`,
        ),
      );
    }
  }
  if (ingest) {
    const highest = Math.max(...ingest.gateway.map((s) => s.offered));
    const atScale = ingest.devices >= TARGET_DEVICES && highest >= HEARTBEATS_PER_S;
    const gateway = sustainedRate(ingest.gateway);
    const mosquitto = sustainedRate(ingest.mosquitto);
    const share =
      gateway && mosquitto
        ? `, ${((gateway / mosquitto) * 100).toFixed(0)}% of Mosquitto's ${thousands(mosquitto)}/s in the same run${ingest.mosquitto.every(keptUp) ? " (Mosquitto kept up with every rate offered: its ceiling is higher, so this share is an upper bound)" : ""}`
        : mosquitto
          ? ""
          : ", Mosquitto kept up with none of the rates offered";
    lines.push(
      line(
        `>= ${thousands(HEARTBEATS_PER_S)} heartbeats/s sustained with every rule and the embedded store, nothing lost`,
        atScale,
        `${devicesScale(ingest.devices)}, at most ${thousands(highest)}/s offered`,
        (gateway ?? 0) >= HEARTBEATS_PER_S,
        `${gateway ? `kept up with ${thousands(gateway)}/s sent` : "kept up with none of the rates offered"} (everything stored within ${CATCH_UP_S} s of the burst)${share}`,
      ),
    );
  }
  if (point) {
    const atScale = point.devices >= TARGET_DEVICES;
    lines.push(
      line(
        `<= ${RSS_PER_DEVICE_KB} KB RSS per connected device`,
        atScale,
        devicesScale(point.devices),
        point.rssPerDeviceKB <= RSS_PER_DEVICE_KB,
        `${point.rssPerDeviceKB.toFixed(1)} KB retained at ${thousands(point.devices)} devices${point.rssUncollectedPerDeviceKB === undefined ? "" : ` (${point.rssUncollectedPerDeviceKB.toFixed(1)} KB before a garbage collection)`}`,
      ),
      line(
        `${thousands(TARGET_DEVICES)} connects < ${CONNECT_S} s`,
        atScale,
        devicesScale(point.devices),
        point.connected === point.devices && point.connectS < CONNECT_S,
        `${thousands(point.connected)} of ${thousands(point.devices)} in ${point.connectS.toFixed(1)} s`,
      ),
    );
  }
  return lines;
}
