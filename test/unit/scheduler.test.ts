import pino from "pino";
import { describe, expect, it } from "vitest";
import { DeadlineScheduler } from "../../gateway/alerts/scheduler.ts";
import { FakeClock } from "../support/fake-clock.ts";

/** A scheduler over an in-memory "database" of deadlines; `fire` moves a deadline on, like a transition. */
function setup(clock: FakeClock, failWhile: () => boolean = () => false, sweepMs = 5000) {
  const db = new Map<string, number | null>();
  const fired: string[] = [];
  let retries = 0;
  const scheduler: DeadlineScheduler = new DeadlineScheduler(
    {
      clock,
      log: pino({ level: "silent" }),
      load: async () => [...db].map(([id, deadlineAt]) => ({ id, deadlineAt })),
      fire: async (id, at) => {
        if (failWhile()) throw new Error("SQLITE_BUSY: database is locked");
        fired.push(`${id}@${at}`);
        db.set(id, null);
        scheduler.set(id, null);
      },
      onRetry: () => retries++,
    },
    sweepMs,
  );
  /** A transition committed: the database and then the scheduler learn the new deadline. */
  const commit = (id: string, at: number | null) => {
    db.set(id, at);
    scheduler.set(id, at);
  };
  return { db, fired, scheduler, commit, retries: () => retries };
}

describe("deadline scheduler", () => {
  it("fires deadlines in order with a single timer, and forgets cleared ones", async () => {
    const clock = new FakeClock(0);
    const { fired, scheduler, commit } = setup(clock);
    await scheduler.start();
    commit("b", 2000);
    commit("a", 1000);
    commit("c", 3000);
    commit("c", null);
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(1000);
    expect(fired).toEqual(["a@1000"]);
    await clock.advance(5000);
    expect(fired).toEqual(["a@1000", "b@2000"]);
    expect(clock.pendingTimers).toBe(1); // the sweep's
    scheduler.stop();
    expect(clock.pendingTimers).toBe(0);
  });

  it("picks up at start, and at each sweep, deadlines the database holds, overdue ones at once", async () => {
    const clock = new FakeClock(10_000);
    const { db, fired, scheduler } = setup(clock);
    db.set("late", 5_000);
    await scheduler.start();
    expect(fired).toEqual(["late@5000"]);
    db.set("written-elsewhere", 12_000);
    await clock.advance(5000);
    expect(fired).toEqual(["late@5000", "written-elsewhere@12000"]);
    scheduler.stop();
  });

  it("waits on the monotonic clock: a wall clock stepped back or forward moves no deadline", async () => {
    const clock = new FakeClock(1_000_000);
    const { fired, scheduler, commit } = setup(clock);
    await scheduler.start();
    commit("a", 1_060_000);
    clock.jump(-3600_000);
    await clock.advance(60_000);
    expect(fired).toEqual(["a@1060000"]);
    commit("b", clock.now() + 60_000);
    clock.jump(+3600_000);
    await clock.advance(59_000);
    expect(fired).toHaveLength(1);
    await clock.advance(1_000);
    expect(fired).toHaveLength(2);
    scheduler.stop();
  });

  it("retries a deadline whose handling fails, with backoff, and fires it exactly once when it can", async () => {
    const clock = new FakeClock(0);
    let locked = true;
    const { fired, scheduler, commit, retries } = setup(clock, () => locked);
    await scheduler.start();
    commit("a", 1000);
    await clock.advance(1000 + 1000 + 2000 + 4000); // fails at 1 s, 2 s, 4 s and 8 s
    expect(fired).toEqual([]);
    expect(retries()).toBe(4);
    locked = false;
    await clock.advance(8000);
    expect(fired).toEqual(["a@1000"]);
    await clock.advance(60_000);
    expect(fired).toEqual(["a@1000"]);
    scheduler.stop();
  });

  it("never sets a timer further ahead than the sweep interval, however far the deadline", async () => {
    const clock = new FakeClock(0);
    const { fired, scheduler, commit } = setup(clock, undefined, 3600_000);
    await scheduler.start();
    commit("month", 30 * 86_400_000);
    await clock.advance(30 * 86_400_000 - 1);
    expect(fired).toEqual([]);
    await clock.advance(1);
    expect(fired).toEqual([`month@${30 * 86_400_000}`]);
    scheduler.stop();
  });
});
