import type { Logger } from "pino";
import type { Clock, Timer } from "../clock/index.ts";

interface Due {
  /** The deadline as stored (wall-clock ms). */
  at: number;
  /** When it is due on the monotonic clock: a wall clock stepped back or forward does not move it. */
  dueMono: number;
  /** Failed attempts to handle it in a row; the next waits longer. */
  failures: number;
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
export class DeadlineScheduler {
  private readonly due = new Map<string, Due>();
  private timer: Timer | undefined;
  private lastSweep = Number.NEGATIVE_INFINITY;
  private stopped = true;
  /** Sweeps run one at a time: the last one queued. */
  private sweeping: Promise<void> = Promise.resolve();

  constructor(
    private readonly deps: DeadlineSchedulerDeps,
    private readonly sweepMs: number,
  ) {}

  start(): Promise<void> {
    this.stopped = false;
    return this.sweep();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) this.deps.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.due.clear();
  }

  /** After a transition committed: the alert's deadline is now `at` (null: none). */
  set(alertId: string, at: number | null): void {
    if (this.stopped) return;
    const known = this.due.get(alertId);
    if (at === null) this.due.delete(alertId);
    else if (known?.at !== at) this.due.set(alertId, this.entry(at));
    this.arm();
  }

  private sweep(): Promise<void> {
    this.sweeping = this.sweeping.catch(() => undefined).then(() => this.tick());
    return this.sweeping;
  }

  private entry(at: number): Due {
    const { clock } = this.deps;
    return { at, dueMono: clock.monotonic() + (at - clock.now()), failures: 0 };
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

  private arm(): void {
    if (this.stopped) return;
    const { clock } = this.deps;
    const now = clock.monotonic();
    let next = this.lastSweep + this.sweepMs;
    for (const d of this.due.values()) next = Math.min(next, d.dueMono);
    if (this.timer) clock.clearTimer(this.timer);
    this.timer = clock.setTimer(() => {
      this.timer = undefined;
      void this.sweep();
    }, next - now);
  }
}
