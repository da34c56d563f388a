import type { Clock, Timer } from "../../gateway/clock/index.ts";

/** A clock that only moves when told to. `advance` fires due timers in order, letting async work settle. */
export class FakeClock implements Clock {
  private timers: { at: number; fn: () => void; timer: Timer }[] = [];

  constructor(private current = Date.now()) {}

  now(): number {
    return this.current;
  }

  setTimer(fn: () => void, ms: number): Timer {
    const timer = { id: Symbol("timer") };
    this.timers.push({ at: this.current + Math.max(0, ms), fn, timer });
    return timer;
  }

  clearTimer(timer: Timer): void {
    this.timers = this.timers.filter((t) => t.timer !== timer);
  }

  get pendingTimers(): number {
    return this.timers.length;
  }

  async advance(ms: number): Promise<void> {
    const target = this.current + ms;
    for (;;) {
      await settle();
      const next = this.timers.filter((t) => t.at <= target).sort((a, b) => a.at - b.at)[0];
      if (!next) break;
      this.timers = this.timers.filter((t) => t !== next);
      this.current = Math.max(this.current, next.at);
      next.fn();
    }
    this.current = target;
    await settle();
  }
}

/** Lets promise chains and I/O callbacks queued so far run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}
