import type { Clock, Timer } from "../clock/index.ts";

/**
 * Notices devices that fell silent, at the cost of the devices that actually expire: each device
 * sits in the bucket of the second its silence allowance runs out; a heartbeat moves it to a later
 * bucket; one tick a second empties the buckets that are due. No per-device timers, no scans.
 */
export class SilenceWatch {
  private readonly buckets = new Map<number, Set<string>>();
  private readonly bucketOf = new Map<string, number>();
  private readonly silent = new Set<string>();
  private nextBucket = 0;
  private timer: Timer | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly onSilent: (deviceId: string) => void,
    private readonly resolutionMs = 1000,
  ) {}

  start(): void {
    this.nextBucket = Math.floor(this.clock.now() / this.resolutionMs);
    const tick = () => {
      this.expire();
      this.timer = this.clock.setTimer(tick, this.resolutionMs);
    };
    this.timer = this.clock.setTimer(tick, this.resolutionMs);
  }

  stop(): void {
    if (this.timer) this.clock.clearTimer(this.timer);
    this.timer = undefined;
  }

  /** Records a sign of life; returns true when the device had been reported silent. */
  heard(deviceId: string, allowedSilenceMs: number, at = this.clock.now()): boolean {
    // A bucket already past would never be emptied: expire it on the next tick instead.
    const bucket = Math.max(this.nextBucket, Math.ceil((at + allowedSilenceMs) / this.resolutionMs));
    const previous = this.bucketOf.get(deviceId);
    if (previous !== undefined) this.buckets.get(previous)?.delete(deviceId);
    let set = this.buckets.get(bucket);
    if (!set) {
      set = new Set();
      this.buckets.set(bucket, set);
    }
    set.add(deviceId);
    this.bucketOf.set(deviceId, bucket);
    return this.silent.delete(deviceId);
  }

  isSilent(deviceId: string): boolean {
    return this.silent.has(deviceId);
  }

  private expire(): void {
    const due = Math.floor(this.clock.now() / this.resolutionMs);
    for (; this.nextBucket <= due; this.nextBucket++) {
      const set = this.buckets.get(this.nextBucket);
      if (!set) continue;
      this.buckets.delete(this.nextBucket);
      for (const deviceId of set) {
        this.bucketOf.delete(deviceId);
        this.silent.add(deviceId);
        this.onSilent(deviceId);
      }
    }
  }
}

export interface BatteryRules {
  lowPercent: number;
  /** Battery must climb back above this before a new low-battery episode can start. */
  recoveredPercent: number;
}

/** Once per episode: `low` when it first drops below the threshold, `recovered` once charged again. */
export function judgeBattery(
  wasLow: boolean,
  battery: number,
  rules: BatteryRules,
): { low: boolean; change?: "low" | "recovered" } {
  if (!wasLow && battery < rules.lowPercent) return { low: true, change: "low" };
  if (wasLow && battery >= rules.recoveredPercent) return { low: false, change: "recovered" };
  return { low: wasLow };
}
