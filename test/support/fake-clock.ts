import type { Clock, Timer } from "../../gateway/clock/index.ts";
import { WalFlusher } from "../../gateway/store/durability.ts";
import { postgresBusy } from "../../gateway/store/postgres-db.ts";

/**
 * A clock that only moves when told to. `advance` moves wall and monotonic time together and fires
 * due timers in order, letting async work settle; `jump` steps the wall clock alone, as NTP or an
 * operator would, and fires nothing.
 */
export class FakeClock implements Clock {
  private timers: { at: number; fn: () => void; timer: Timer }[] = [];
  private steady = 0;

  constructor(private current = Date.now()) {}

  now(): number {
    return this.current;
  }

  monotonic(): number {
    return this.steady;
  }

  setTimer(fn: () => void, ms: number): Timer {
    const timer = { id: Symbol("timer") };
    this.timers.push({ at: this.steady + Math.max(0, ms), fn, timer });
    return timer;
  }

  clearTimer(timer: Timer): void {
    this.timers = this.timers.filter((t) => t.timer !== timer);
  }

  get pendingTimers(): number {
    return this.timers.length;
  }

  async advance(ms: number): Promise<void> {
    const target = this.steady + ms;
    for (;;) {
      await settle();
      const next = this.timers.filter((t) => t.at <= target).sort((a, b) => a.at - b.at)[0];
      if (!next) break;
      this.timers = this.timers.filter((t) => t !== next);
      this.current += Math.max(0, next.at - this.steady);
      this.steady = Math.max(this.steady, next.at);
      next.fn();
    }
    this.current += target - this.steady;
    this.steady = target;
    await settle();
  }

  /** Steps the wall clock by `ms` (negative: back); monotonic time and timers stay put. */
  jump(ms: number): void {
    this.current += ms;
  }
}

/**
 * Lets promise chains and I/O callbacks queued so far run, including writes waiting for their
 * flush to disk (in the thread pool) and queries to PostgreSQL: the gateway is settled once it
 * stays quiet for a few turns.
 */
export async function settle(): Promise<void> {
  for (let quiet = 0; quiet < 5; ) {
    await new Promise((resolve) => setImmediate(resolve));
    quiet = WalFlusher.inFlight > 0 || postgresBusy() ? 0 : quiet + 1;
  }
}
