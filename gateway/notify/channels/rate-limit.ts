/** At most `max` sends in any `ms` window; `name` says which, in the reason given when refused. */
export interface RateWindow {
  ms: number;
  max: number;
  name: string;
}

/**
 * Sliding-window limits per key (a robot, a phone number), and blocks a provider imposes (a
 * throttled DingTalk robot waits 10 minutes). Held in memory: a restart forgets them, and the
 * provider's own refusal is then the limit.
 */
export class RateLimit {
  private readonly sent = new Map<string, number[]>();
  private readonly blockedUntil = new Map<string, number>();
  private readonly longest: number;

  constructor(private readonly windows: readonly RateWindow[]) {
    this.longest = Math.max(0, ...windows.map((w) => w.ms));
  }

  /** Why a send to `key` must wait; undefined when it may go, and then it is counted. */
  take(key: string, now: number): string | undefined {
    const until = this.blockedUntil.get(key);
    if (until !== undefined) {
      if (now < until) return `throttled by the provider until ${new Date(until).toISOString()}`;
      this.blockedUntil.delete(key);
    }
    const times = (this.sent.get(key) ?? []).filter((t) => now - t < this.longest);
    for (const w of this.windows)
      if (times.filter((t) => now - t < w.ms).length >= w.max) {
        this.sent.set(key, times);
        return `rate limit: at most ${w.max} ${w.name}`;
      }
    times.push(now);
    this.sent.set(key, times);
    return undefined;
  }

  block(key: string, until: number): void {
    this.blockedUntil.set(key, until);
  }
}

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;
