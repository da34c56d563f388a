import { describe, expect, it } from "vitest";
import { DeadlineScheduler } from "../../gateway/alerts/scheduler.ts";
import { FakeClock } from "../support/fake-clock.ts";

describe("deadline scheduler", () => {
  it("fires deadlines in order with a single timer, and forgets cleared ones", async () => {
    const clock = new FakeClock(0);
    const fired: string[] = [];
    const scheduler = new DeadlineScheduler(clock, (id) => fired.push(`${id}@${clock.now()}`));
    scheduler.set("b", 2000);
    scheduler.set("a", 1000);
    scheduler.set("c", 3000);
    scheduler.set("c", null);
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(5000);
    expect(fired).toEqual(["a@1000", "b@2000"]);
    expect(clock.pendingTimers).toBe(0);
  });

  it("fires an overdue deadline on the next tick", async () => {
    const clock = new FakeClock(10_000);
    const fired: string[] = [];
    const scheduler = new DeadlineScheduler(clock, (id) => fired.push(id));
    scheduler.set("late", 5_000);
    await clock.advance(0);
    expect(fired).toEqual(["late"]);
    scheduler.stop();
  });
});
