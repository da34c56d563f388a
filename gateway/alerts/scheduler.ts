import type { Clock, Timer } from "../clock/index.ts";

/**
 * Escalation deadlines, kept in memory with one timer for the earliest (never one timer per
 * alert). The durable copy is the alert's `deadlineAt` column, from which the alert service
 * rebuilds this at start; deadlines already past fire at once.
 */
export class DeadlineScheduler {
  private readonly due = new Map<string, number>();
  private timer: Timer | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private stopped = false;

  constructor(
    private readonly clock: Clock,
    private readonly onDue: (alertId: string) => void,
  ) {}

  start(): void {
    this.stopped = false;
  }

  /** Ignored once stopped: a transition finishing during the drain must not arm a new timer. */
  set(alertId: string, at: number | null): void {
    if (this.stopped) return;
    if (at === null) this.due.delete(alertId);
    else this.due.set(alertId, at);
    this.arm();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    this.due.clear();
  }

  private arm(): void {
    let earliest = Number.POSITIVE_INFINITY;
    for (const at of this.due.values()) earliest = Math.min(earliest, at);
    if (earliest === this.timerAt) return;
    if (this.timer) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.timerAt = earliest;
    if (earliest === Number.POSITIVE_INFINITY) return;
    this.timer = this.clock.setTimer(() => this.fire(), earliest - this.clock.now());
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    const now = this.clock.now();
    const expired = [...this.due].filter(([, at]) => at <= now).sort((a, b) => a[1] - b[1]);
    for (const [alertId] of expired) {
      this.due.delete(alertId);
      this.onDue(alertId);
    }
    this.arm();
  }
}
