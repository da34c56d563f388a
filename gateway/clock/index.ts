/** Time as the gateway sees it. Injected everywhere so tests can drive time instead of sleeping. */
export interface Clock {
  /** Wall-clock time in ms since the epoch: what is stored and shown. It may be stepped by NTP or by hand. */
  now(): number;
  /** Milliseconds on a clock that only moves forward at a steady rate: what waits are measured in. */
  monotonic(): number;
  /** Calls `fn` after `ms` of monotonic time, however long. */
  setTimer(fn: () => void, ms: number): Timer;
  clearTimer(timer: Timer): void;
}

export type Timer = { readonly id: unknown };

/** setTimeout fires at once for delays beyond 2^31-1 ms (24.8 days); longer waits are chained. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimer: (fn, ms) => {
    const timer: { id: NodeJS.Timeout } = { id: undefined as unknown as NodeJS.Timeout };
    const wait = (left: number) => {
      timer.id = setTimeout(
        () => (left > MAX_TIMEOUT_MS ? wait(left - MAX_TIMEOUT_MS) : fn()),
        Math.min(Math.max(0, left), MAX_TIMEOUT_MS),
      );
      timer.id.unref();
    };
    wait(ms);
    return timer;
  },
  clearTimer: (timer) => clearTimeout(timer.id as NodeJS.Timeout),
};
