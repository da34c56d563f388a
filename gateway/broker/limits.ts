/**
 * Rate limits of the device side. Pure: the caller passes the time (ms, monotonic), so these
 * read no clock and start no timer.
 */

export interface Rate {
  /** Tokens added per second; 0 turns the limit off. */
  perSecond: number;
  /** Tokens held at most: how many may come at once after a quiet spell. */
  burst: number;
}

/** Refusals closer together than this belong to one episode, which is logged once. */
const EPISODE_GAP_MS = 10_000;

/**
 * A device is disconnected when more than this many of its publishes are refused within
 * `FLOOD_WINDOW_MS`: with the defaults (5/s, burst 50) over 200 messages in 10 s beyond the at
 * most 100 allowed, at least 25/s, five times the rate. A slightly fast firmware is only throttled.
 */
export const FLOOD_REFUSALS = 200;
export const FLOOD_WINDOW_MS = 10_000;

class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly rate: Rate,
    now: number,
  ) {
    this.tokens = rate.burst;
    this.updatedAt = now;
  }

  take(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Full again: forgetting the bucket would change nothing. */
  isFull(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.rate.burst;
  }

  private refill(now: number): void {
    this.tokens = Math.min(
      this.rate.burst,
      this.tokens + ((now - this.updatedAt) / 1000) * this.rate.perSecond,
    );
    this.updatedAt = now;
  }
}

/** Refusals grouped into episodes, so that a flood is logged once, not once per message. */
class RefusalEpisode {
  private lastAt = Number.NEGATIVE_INFINITY;

  /** Records a refusal; true when it starts a new episode. */
  refuse(now: number): boolean {
    const starts = now - this.lastAt > EPISODE_GAP_MS;
    this.lastAt = now;
    return starts;
  }
}

export type PublishVerdict = "accept" | "throttle" | "throttle-starts" | "flood";

/**
 * One connected device's publish allowance. Events (presses, SOS, falls) draw from a bucket of
 * their own, so heartbeats, even a flood of them, never use up the tokens a press needs.
 */
export class PublishAllowance {
  private readonly events: TokenBucket;
  private readonly others: TokenBucket;
  private readonly episode = new RefusalEpisode();
  private windowStartedAt = Number.NEGATIVE_INFINITY;
  private refusedInWindow = 0;

  constructor(rate: Rate, now: number) {
    this.events = new TokenBucket(rate, now);
    this.others = new TokenBucket(rate, now);
  }

  take(isEvent: boolean, now: number): PublishVerdict {
    if ((isEvent ? this.events : this.others).take(now)) return "accept";
    if (now - this.windowStartedAt > FLOOD_WINDOW_MS) {
      this.windowStartedAt = now;
      this.refusedInWindow = 0;
    }
    if (++this.refusedInWindow > FLOOD_REFUSALS) return "flood";
    return this.episode.refuse(now) ? "throttle-starts" : "throttle";
  }
}

export type ConnectVerdict = "admit" | "refuse" | "refuse-starts";

/** New connections per source address; addresses whose bucket has refilled are forgotten. */
export class ConnectionRateLimit {
  private readonly sources = new Map<string, { bucket: TokenBucket; episode: RefusalEpisode }>();

  constructor(private readonly rate: Rate) {}

  get enabled(): boolean {
    return this.rate.perSecond > 0;
  }

  check(address: string, now: number): ConnectVerdict {
    let source = this.sources.get(address);
    if (!source) {
      source = { bucket: new TokenBucket(this.rate, now), episode: new RefusalEpisode() };
      this.sources.set(address, source);
    }
    if (source.bucket.take(now)) return "admit";
    return source.episode.refuse(now) ? "refuse-starts" : "refuse";
  }

  /** Keeps the map as small as the set of addresses still being limited. */
  forgetIdle(now: number): void {
    for (const [address, { bucket }] of this.sources) if (bucket.isFull(now)) this.sources.delete(address);
  }
}
