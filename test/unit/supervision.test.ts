import { describe, expect, it } from "vitest";
import { judgePosition } from "../../gateway/rules/fix.ts";
import { judgeBattery, SilenceWatch } from "../../gateway/rules/supervision.ts";
import { FakeClock } from "../support/fake-clock.ts";

describe("silence watch", () => {
  it("reports a device once its allowance runs out, and again only after it was heard", async () => {
    const clock = new FakeClock(0);
    const silent: string[] = [];
    const watch = new SilenceWatch(clock, (id) => silent.push(`${id}@${clock.now() / 1000}`));
    watch.start();
    watch.heard("btn", 300_000);
    watch.heard("tag", 60_000);
    await clock.advance(50_000);
    watch.heard("tag", 60_000); // heartbeat: allowance restarts
    await clock.advance(60_000);
    expect(silent).toEqual(["tag@110"]);
    expect(watch.heard("tag", 60_000)).toBe(true); // it was silent
    expect(watch.heard("tag", 60_000)).toBe(false);
    await clock.advance(200_000);
    expect(silent).toEqual(["tag@110", "tag@170", "btn@300"]);
    expect(clock.pendingTimers).toBe(1); // one tick timer, whatever the number of devices
    watch.stop();
  });
});

describe("battery", () => {
  const rules = { lowPercent: 20, recoveredPercent: 30 };
  it("is low once per episode, with hysteresis", () => {
    let low = false;
    const changes: string[] = [];
    for (const level of [50, 25, 19, 18, 21, 25, 19, 29, 31, 19]) {
      const r = judgeBattery(low, level, rules);
      low = r.low;
      if (r.change) changes.push(`${r.change}@${level}`);
    }
    expect(changes).toEqual(["low@19", "recovered@31", "low@19"]);
  });
});

describe("fix validity", () => {
  const h = { ts: 1, seq: 1, battery: 50 };
  it("rejects what cannot be a position", () => {
    expect(judgePosition({ ...h }, 100)).toBe("none");
    expect(judgePosition({ ...h, lat: 0, lon: 0, accuracy: 5 }, 100)).toBe("null-island");
    expect(judgePosition({ ...h, lat: 95, lon: 91, accuracy: 5 }, 100)).toBe("out-of-range");
    expect(judgePosition({ ...h, lat: 29.6, lon: 91.1, accuracy: 500 }, 100)).toBe("inaccurate");
    expect(judgePosition({ ...h, lat: 29.6, lon: 91.1 }, 100)).toBe("inaccurate");
    expect(judgePosition({ ...h, lat: 29.6, lon: 91.1, accuracy: 12 }, 100)).toBe("ok");
  });
});
