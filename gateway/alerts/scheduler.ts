import type { Logger } from "pino";
import type { Clock, Timer } from "../clock/index.ts";
import type { DeadlineClaims } from "../store/types.ts";

/**
 * How the alert service learns that a deadline is due: one way per store. With SQLite the one
 * gateway owns every deadline (`DeadlineScheduler`); with PostgreSQL gateways claim them
 * (`ClaimedDeadlines`). Either calls back `fire(alertId, at)`, which fires it if the alert's
 * deadline is still `at` when its turn comes.
 */
export interface Deadlines {
  /** Fires what fell due while no gateway was watching, then keeps watching. */
  start(): Promise<void>;
  /** Stops watching; fires nothing more. */
  stop(): void;
  /** After a transition committed: the alert's deadline is now `at` (null: none). */
  set(alertId: string, at: number | null): void;
}

interface Due {
  /** The deadline as stored (wall-clock ms). */
  at: number;
  /** When it is due on the monotonic clock: a wall clock stepped back or forward does not move it. */
  dueMono: number;
  /** Failed attempts to handle it in a row; the next waits longer. */
  failures: number;
}

/**
 * What both ways share: a copy of deadlines keyed by alert, each with when it is due on the
 * monotonic clock, and one timer, set for the earliest of them or the next sweep, whichever
 * comes first (so never further ahead than the sweep interval: no wait overflows `setTimeout`).
 */
abstract class Sweeper<Entry extends { dueMono: number }> implements Deadlines {
  protected readonly due = new Map<string, Entry>();
  protected lastSweep = Number.NEGATIVE_INFINITY;
  protected stopped = true;
  private timer: Timer | undefined;

  constructor(
    protected readonly clock: Clock,
    protected readonly sweepMs: number,
  ) {}

  start(): Promise<void> {
    this.stopped = false;
    return this.sweep();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.due.clear();
  }

  abstract set(alertId: string, at: number | null): void;

  protected abstract sweep(): Promise<void>;

  /** When `at` (wall clock) falls due on the monotonic clock. */
  protected dueMono(at: number): number {
    return this.clock.monotonic() + (at - this.clock.now());
  }

  protected arm(): void {
    if (this.stopped) return;
    let next = this.lastSweep + this.sweepMs;
    for (const d of this.due.values()) next = Math.min(next, d.dueMono);
    if (this.timer) this.clock.clearTimer(this.timer);
    this.timer = this.clock.setTimer(() => {
      this.timer = undefined;
      void this.sweep();
    }, next - this.clock.monotonic());
  }
}

export interface DeadlineSchedulerDeps {
  clock: Clock;
  log: Logger;
  /** Every alert deadline in the database: the truth this copy is reconciled with. */
  load(): Promise<{ id: string; deadlineAt: number | null }[]>;
  /** Handles one due deadline; throws if it could not (it is retried). */
  fire(alertId: string, at: number): Promise<void>;
  onRetry(): void;
}

const MAX_BACKOFF_MS = 30_000;

/**
 * Wakes the alert service when a deadline is due. The database holds every deadline (the alert's
 * `deadline_at`); this keeps a copy with the monotonic time each is due, and one timer, never set
 * further ahead than the sweep interval. Each sweep reloads the deadlines from the database (a
 * restart, a deadline it does not hold yet) and fires what is due. A deadline whose handling
 * fails (a locked database) stays due in the database and is tried again with backoff, so it is
 * neither lost nor fired twice: it fires when the transition that replaces it commits.
 */
export class DeadlineScheduler extends Sweeper<Due> {
  /** Sweeps run one at a time: the last one queued. */
  private sweeping: Promise<void> = Promise.resolve();

  constructor(
    private readonly deps: DeadlineSchedulerDeps,
    sweepMs: number,
  ) {
    super(deps.clock, sweepMs);
  }

  /** After a transition committed: the alert's deadline is now `at` (null: none). */
  set(alertId: string, at: number | null): void {
    if (this.stopped) return;
    const known = this.due.get(alertId);
    if (at === null) this.due.delete(alertId);
    else if (known?.at !== at) this.due.set(alertId, this.entry(at));
    this.arm();
  }

  protected sweep(): Promise<void> {
    this.sweeping = this.sweeping.catch(() => undefined).then(() => this.tick());
    return this.sweeping;
  }

  private entry(at: number): Due {
    return { at, dueMono: this.dueMono(at), failures: 0 };
  }

  private async tick(): Promise<void> {
    const { clock, log } = this.deps;
    if (this.stopped) return;
    if (clock.monotonic() - this.lastSweep >= this.sweepMs) {
      this.lastSweep = clock.monotonic();
      try {
        const stored = await this.deps.load();
        const ids = new Set<string>();
        for (const { id, deadlineAt } of stored) {
          if (deadlineAt === null) continue;
          ids.add(id);
          if (this.due.get(id)?.at !== deadlineAt) this.due.set(id, this.entry(deadlineAt));
        }
        for (const id of this.due.keys()) if (!ids.has(id)) this.due.delete(id);
      } catch (err) {
        log.error({ err }, "could not read the deadlines; firing those already known");
      }
    }
    const now = clock.monotonic();
    const dueNow = [...this.due].filter(([, d]) => d.dueMono <= now).sort((a, b) => a[1].at - b[1].at);
    for (const [alertId, d] of dueNow) {
      if (this.stopped) return;
      try {
        await this.deps.fire(alertId, d.at);
      } catch (err) {
        d.failures++;
        d.dueMono = clock.monotonic() + Math.min(1000 * 2 ** (d.failures - 1), MAX_BACKOFF_MS);
        this.deps.onRetry();
        log.error(
          { err, alertId, failures: d.failures },
          "a due deadline could not be handled; it stays due and is retried",
        );
      }
    }
    this.arm();
  }
}

export interface ClaimedDeadlinesDeps {
  clock: Clock;
  log: Logger;
  claims: DeadlineClaims;
  /** Handles one claimed deadline; throws if it could not (its claim runs out and it is claimed again). */
  fire(alertId: string, at: number): Promise<void>;
  onRetry(): void;
  /** More of what the living do for the dead, at each sweep (their pages and presses taken over). */
  onSweep(): Promise<void>;
}

/**
 * How long a claim keeps a deadline from other gateways: long enough to fire it, short enough that
 * a gateway dying with a claim delays the deadline by a few seconds at most. Firing after the lease
 * ran out cannot fire twice: the commit is a compare-and-set (see AlertChange.previous).
 */
export const CLAIM_LEASE_MS = 5_000;
/** Deadlines claimed per query; a sweep claims again while it gets full batches. */
const CLAIM_BATCH = 100;

/**
 * Deadlines shared by every gateway on one database: none owns them. Every `sweepMs` each gateway
 * claims the deadlines due (`FOR UPDATE SKIP LOCKED`, with a lease) and fires those it got, so a
 * deadline fires once whichever gateways run, and one whose gateway died fires within a sweep.
 * A deadline this gateway set itself wakes it on time instead of at the next sweep; firing still
 * goes through the claim.
 */
export class ClaimedDeadlines extends Sweeper<{ at: number; dueMono: number }> {
  private sweeping: Promise<void> | undefined;

  constructor(
    private readonly deps: ClaimedDeadlinesDeps,
    sweepMs: number,
  ) {
    super(deps.clock, sweepMs);
  }

  /** A deadline this gateway set: it wakes for it on time, and fires it through a claim. */
  set(alertId: string, at: number | null): void {
    if (this.stopped) return;
    if (at === null) this.due.delete(alertId);
    else if (this.due.get(alertId)?.at !== at) this.due.set(alertId, { at, dueMono: this.dueMono(at) });
    if (!this.sweeping) this.arm();
  }

  /** One sweep at a time; a wake-up during one is served by it. */
  protected sweep(): Promise<void> {
    this.sweeping ??= this.claimAndFire().finally(() => {
      this.sweeping = undefined;
      this.arm();
    });
    return this.sweeping;
  }

  private async claimAndFire(): Promise<void> {
    const { clock, claims, log } = this.deps;
    this.lastSweep = clock.monotonic();
    for (const [id, d] of this.due) if (d.dueMono <= this.lastSweep) this.due.delete(id);
    try {
      for (let full = true; full && !this.stopped; ) {
        const claimed = await claims.claimDue(clock.now(), CLAIM_LEASE_MS, CLAIM_BATCH);
        full = claimed.length === CLAIM_BATCH;
        // Stopped meanwhile: the claims run out and another gateway fires them.
        if (this.stopped) return;
        await Promise.all(claimed.map((a) => this.fire(a.id, a.deadlineAt as number)));
      }
    } catch (err) {
      log.error({ err }, "could not claim due deadlines; trying again at the next sweep");
    }
    if (this.stopped) return;
    await this.deps
      .onSweep()
      .catch((err) => log.error({ err }, "could not take over what a stopped gateway left; trying again"));
  }

  private async fire(alertId: string, at: number): Promise<void> {
    try {
      await this.deps.fire(alertId, at);
    } catch (err) {
      this.deps.onRetry();
      this.deps.log.error(
        { err, alertId },
        "a claimed deadline could not be handled; it is claimed and tried again when its claim runs out",
      );
    }
  }
}
