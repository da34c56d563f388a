/** Time as the gateway sees it. Injected everywhere so tests can drive time instead of sleeping. */
export interface Clock {
  now(): number;
  setTimer(fn: () => void, ms: number): Timer;
  clearTimer(timer: Timer): void;
}

export type Timer = { readonly id: unknown };

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => {
    const handle = setTimeout(fn, Math.max(0, ms));
    handle.unref();
    return { id: handle };
  },
  clearTimer: (timer) => clearTimeout(timer.id as NodeJS.Timeout),
};
