import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CLAIM_LEASE_MS } from "../../gateway/alerts/scheduler.ts";
import type { Clock, Timer } from "../../gateway/clock/index.ts";
import { ConfigError, loadConfig } from "../../gateway/config/index.ts";
import { openPostgresStore } from "../../gateway/store/postgres.ts";
import { FakeClock, settle } from "../support/fake-clock.ts";
import {
  call,
  connectDevice,
  registerDevice,
  seedCommunity,
  signIn,
  startGateway,
  type TestGateway,
  WEBHOOK_SECRET,
} from "../support/gateway.ts";
import { startPostgres, type TestPostgres } from "../support/postgres.ts";
import { waitFor } from "../support/wait.ts";
import { startWebhookServer } from "../support/webhook-server.ts";

const MIN = 60_000;
const SWEEP_MS = 1000;
type Hooks = Awaited<ReturnType<typeof startWebhookServer>>;
type TrailEvent = { id: number; type: string; data: { level?: number } };

describe("DEADLINE_SWEEP_MS", () => {
  it.each([
    ["50", "DEADLINE_SWEEP_MS: must be at least 100: each sweep is a query to PostgreSQL"],
    ["120000", "DEADLINE_SWEEP_MS: must be at most 60000: a dead gateway's deadlines wait this long"],
    ["1.5", "DEADLINE_SWEEP_MS:"],
    ["soon", "DEADLINE_SWEEP_MS:"],
  ])("refuses %s with a clear message", (value, message) => {
    const load = () => loadConfig({ WEBHOOK_SECRET, DEADLINE_SWEEP_MS: value });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(message);
  });

  it("is a second by default", () => {
    expect(loadConfig({ WEBHOOK_SECRET }).DEADLINE_SWEEP_MS).toBe(1000);
    expect(loadConfig({ WEBHOOK_SECRET, DEADLINE_SWEEP_MS: "250" }).DEADLINE_SWEEP_MS).toBe(250);
  });
});

/**
 * One time for several gateways, as on machines whose clocks agree: unlike FakeClock, which runs
 * its due timers one at a time and lets each one's work settle, `advance` calls every timer due at
 * the same instant together, so two gateways waking for one deadline race for it as they would.
 */
class SharedClock implements Clock {
  private timers: { at: number; fn: () => void; timer: Timer }[] = [];
  private steady = 0;
  constructor(private current: number) {}
  now = () => this.current;
  monotonic = () => this.steady;
  setTimer(fn: () => void, ms: number): Timer {
    const timer = { id: Symbol("timer") };
    this.timers.push({ at: this.steady + Math.max(0, ms), fn, timer });
    return timer;
  }
  clearTimer(timer: Timer): void {
    this.timers = this.timers.filter((t) => t.timer !== timer);
  }
  async advance(ms: number): Promise<void> {
    const target = this.steady + ms;
    for (;;) {
      await settle();
      const at = Math.min(...this.timers.map((t) => t.at));
      if (at > target) break;
      const due = this.timers.filter((t) => t.at === at);
      this.timers = this.timers.filter((t) => t.at !== at);
      this.current += at - this.steady;
      this.steady = at;
      for (const t of due) t.fn();
    }
    this.current += target - this.steady;
    this.steady = target;
    await settle();
  }
}

/**
 * Two gateways on one PostgreSQL database, A and B, on one shared clock or on two fake clocks set
 * to the same time. A gateway whose own clock no longer moves is one that died: it fires nothing
 * more, and the other must.
 */
describe("deadlines claimed, not owned, by gateways sharing PostgreSQL", { timeout: 40_000 }, () => {
  let postgres: TestPostgres;
  const cleanups: (() => Promise<unknown>)[] = [];
  beforeAll(async () => {
    postgres = await startPostgres();
  }, 60_000);
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(async () => {
    await postgres?.destroy();
  });

  type TestClock = Clock & { advance(ms: number): Promise<void> };
  async function twoGateways<C extends TestClock>(
    clocks: (start: number) => [C, C],
    moreEnv: Record<string, string> = {},
  ) {
    const hooks = await startWebhookServer();
    cleanups.push(() => hooks.close());
    const env = {
      DATABASE_URL: await postgres.createDatabase(),
      DEVICE_SECRET_KEY: randomBytes(32).toString("hex"),
      DEADLINE_SWEEP_MS: String(SWEEP_MS),
      ...moreEnv,
    };
    const start = Date.now();
    const [clockA, clockB] = clocks(start);
    const a = await startGateway({ clock: clockA, env });
    cleanups.push(() => a.stop());
    const b = await startGateway({ clock: clockB, env });
    cleanups.push(() => b.stop());
    await seedCommunity(a, hooks.url);
    const device = await connectDevice(a, await registerDevice(a, "btn-dondrub"));
    cleanups.push(() => device.close());
    await device.event("press", 1, start);
    const { alertId } = await device.waitForCommand("received");
    /** Time moves on for both: both gateways are alive. */
    const advanceBoth = async (ms: number) => {
      await Promise.all(clockA === clockB ? [clockA.advance(ms)] : [clockA.advance(ms), clockB.advance(ms)]);
    };
    return { hooks, env, a, b, clockA, clockB, alertId, advanceBoth };
  }

  const sharedClock = (start: number): [SharedClock, SharedClock] => {
    const clock = new SharedClock(start);
    return [clock, clock];
  };
  const ownClocks = (start: number): [FakeClock, FakeClock] => [new FakeClock(start), new FakeClock(start)];

  /** Webhooks that reached `who`, as "event@level". */
  const heard = (hooks: Hooks, who: string) =>
    hooks.received.filter((h) => h.path === `/${who}`).map((h) => `${h.json.event}@${h.json.level}`);
  const trail = async (gw: TestGateway, id: string): Promise<TrailEvent[]> =>
    (await call(gw, "GET", `/api/alerts/${id}`)).body.events;
  const pagedLevels = async (gw: TestGateway, id: string) =>
    (await trail(gw, id)).filter((e) => e.type === "notified").map((e) => e.data.level);

  it("escalates once when the level-1 deadline passes on both, and the next level once too", async () => {
    const { hooks, a, b, alertId, advanceBoth } = await twoGateways(sharedClock);
    // Up to the deadline, then onto it on both at once: both wake for it together.
    await advanceBoth(MIN - 1);
    expect(heard(hooks, "pema")).toEqual([]);
    await advanceBoth(1);
    await waitFor(() => heard(hooks, "pema").includes("paged@2"), 5000, "the family paged at level 2");
    // Half-way to the next deadline: nothing else happened, on either gateway.
    await advanceBoth(MIN);
    expect(heard(hooks, "pema")).toEqual(["paged@2"]);
    expect(await pagedLevels(b, alertId)).toEqual([1, 2]);

    await advanceBoth(MIN - 1);
    await advanceBoth(1);
    await waitFor(() => heard(hooks, "staff-yang").includes("paged@3"), 5000, "staff paged at level 3");
    await advanceBoth(MIN / 2);
    expect(heard(hooks, "staff-yang")).toEqual(["paged@3"]);
    expect(heard(hooks, "pema")).toEqual(["paged@2"]);
    expect(await pagedLevels(a, alertId)).toEqual([1, 2, 3]);
  });

  it("fires the next deadline on B within one sweep when A dies mid-escalation, once", async () => {
    const { hooks, a, b, clockB, alertId, advanceBoth } = await twoGateways(ownClocks);
    await advanceBoth(MIN);
    await waitFor(() => heard(hooks, "pema").includes("paged@2"), 5000, "level 2");
    const { deadlineAt } = (await call(b, "GET", `/api/alerts/${alertId}`)).body;

    // A dies: its clock stops, so its timers (its own copy of the level-2 deadline among them)
    // never fire. B lives on.
    await clockB.advance(deadlineAt - clockB.now() - 1);
    expect(await pagedLevels(b, alertId)).toEqual([1, 2]);
    await clockB.advance(1 + SWEEP_MS);
    await waitFor(() => heard(hooks, "staff-yang").includes("paged@3"), 5000, "B paging level 3");
    await clockB.advance(MIN / 2);
    expect(heard(hooks, "staff-yang")).toEqual(["paged@3"]);
    expect(await pagedLevels(a, alertId)).toEqual([1, 2, 3]);
  });

  it("waits out the claim of a gateway that died holding a deadline, then fires it once", async () => {
    const { hooks, env, b, clockA, clockB, alertId } = await twoGateways(ownClocks);
    // A dies before the deadline, and another gateway claims it and dies before firing it.
    const { deadlineAt } = (await call(b, "GET", `/api/alerts/${alertId}`)).body;
    await clockB.advance(deadlineAt - clockB.now() - 1);
    const dying = await openPostgresStore(env.DATABASE_URL);
    const claimed = await dying.deadlineClaims.claimDue(deadlineAt, CLAIM_LEASE_MS, 10);
    await dying.close();
    expect(claimed.map((x) => x.id)).toEqual([alertId]);
    expect(clockA.now()).toBeLessThan(deadlineAt);

    await clockB.advance(CLAIM_LEASE_MS);
    expect(heard(hooks, "pema")).toEqual([]);
    await clockB.advance(1 + SWEEP_MS);
    await waitFor(() => heard(hooks, "pema").includes("paged@2"), 5000, "B paging level 2");
    await clockB.advance(MIN / 2);
    expect(heard(hooks, "pema")).toEqual(["paged@2"]);
    expect(await pagedLevels(b, alertId)).toEqual([1, 2]);
  });

  it("lets an accept on B win over A escalating at the same moment: no escalation after it", async () => {
    const { hooks, a, b, clockA, clockB, alertId, advanceBoth } = await twoGateways(ownClocks);
    const doctor = await signIn(b, "dr-tsering");
    const [accepted] = await Promise.all([
      call(b, "POST", `/api/alerts/${alertId}/accept`, {}, doctor),
      clockA.advance(MIN),
    ]);
    expect(accepted.status).toBe(200);
    expect(accepted.body).toMatchObject({ state: "accepted", acceptedBy: "dr-tsering" });
    await clockB.advance(MIN);
    await advanceBoth(5 * MIN);

    const events = await trail(a, alertId);
    const acceptedAt = events.findIndex((e) => e.type === "accepted");
    expect(events.filter((e) => e.type === "accepted")).toHaveLength(1);
    expect(events.slice(acceptedAt).filter((e) => e.type === "notified")).toEqual([]);
    expect((await call(a, "GET", `/api/alerts/${alertId}`)).body).toMatchObject({
      state: "accepted",
      acceptedBy: "dr-tsering",
    });
    // Whichever came first, nobody was paged after the accept, and everyone paged hears of it: the
    // family, if A's page to them went out first.
    const familyPaged = (await pagedLevels(a, alertId)).includes(2);
    const toFamily = familyPaged ? ["paged@2", "accepted@2"] : [];
    await waitFor(() => heard(hooks, "pema").length >= toFamily.length, 5000, "the family told");
    expect(heard(hooks, "pema")).toEqual(toFamily);
    expect(heard(hooks, "staff-yang")).toEqual([]);
  });

  it("decides an accept again when another gateway's step lands between its read and its commit", async () => {
    const { hooks, env, b, alertId } = await twoGateways(ownClocks);
    // Another gateway is committing a step on the alert: it holds the row until its commit.
    const other = new pg.Client({ connectionString: env.DATABASE_URL });
    await other.connect();
    cleanups.push(() => other.end());
    await other.query("BEGIN");
    await other.query("SELECT id FROM alerts WHERE id = $1 FOR UPDATE", [alertId]);
    const accepting = call(b, "POST", `/api/alerts/${alertId}/accept`, {}, await signIn(b, "dr-tsering"));
    // B read the open alert, decided, and now waits for the row to commit its accept.
    await waitFor(
      async () =>
        (
          await other.query(
            "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
          )
        ).rowCount,
      5000,
      "B's commit to wait for the row",
    );
    // The other gateway's step: the family paged at level 2.
    await other.query(
      `UPDATE alerts SET level = 2, notified = notified || '["pema"]'::jsonb, deadline_at = deadline_at + 120000
       WHERE id = $1`,
      [alertId],
    );
    await other.query("COMMIT");

    const accepted = await accepting;
    expect(accepted.status).toBe(200);
    // Decided again on the alert as it is now: accepted, the other step kept, the family told.
    expect(accepted.body).toMatchObject({ state: "accepted", acceptedBy: "dr-tsering", level: 2 });
    expect(accepted.body.notified).toEqual(["dr-tsering", "pema"]);
    await waitFor(() => heard(hooks, "pema").includes("accepted@2"), 5000, "the family told of the accept");
    expect((await trail(b, alertId)).filter((e) => e.type === "accepted")).toHaveLength(1);
  });

  it("sends a dead gateway's unsent page once, from another; a gateway starting while it lives sends nothing twice", async () => {
    // A request the webhook holds stays pending: no timeout of the real clock settles it meanwhile.
    const { hooks, env, clockA, clockB } = await twoGateways(ownClocks, { WEBHOOK_TIMEOUT_MS: "600000" });
    // The doctor's page answered first: it reached them.
    await waitFor(
      () => heard(hooks, "dr-tsering").includes("paged@1") && hooks.load.open === 0,
      5000,
      "the doctor paged",
    );
    hooks.state.hang = true;
    // Only A's time reaches the deadline: A pages the family, and the request hangs.
    await clockA.advance(MIN);
    await waitFor(() => heard(hooks, "pema").includes("paged@2"), 5000, "the family's page under way");

    // A third gateway starts while A lives: the page is A's, not sent again.
    const clockC = new FakeClock(clockA.now());
    const c = await startGateway({ clock: clockC, env });
    cleanups.push(() => c.stop());
    await clockC.advance(2 * SWEEP_MS);
    expect(heard(hooks, "pema")).toEqual(["paged@2"]);

    // A dies with its request open (its clock stops); B and C live on past its lease.
    hooks.state.hang = false;
    const pastLease = CLAIM_LEASE_MS + 2 * SWEEP_MS;
    await Promise.all([clockB.advance(MIN + pastLease), clockC.advance(pastLease)]);
    await waitFor(() => heard(hooks, "pema").length === 2, 5000, "the family paged again");
    await Promise.all([clockB.advance(5 * SWEEP_MS), clockC.advance(5 * SWEEP_MS)]);
    expect(heard(hooks, "pema")).toEqual(["paged@2", "paged@2"]);
    // The doctor's page had reached them: taken over with the rest of A's, not sent again.
    expect(heard(hooks, "dr-tsering")).toEqual(["paged@1"]);
    hooks.dropOpen(); // so that A can stop
  });

  it("decides the presses a dead gateway stored and acknowledged but never decided, and leaves the living's alone", async () => {
    const { env, b, clockB, alertId } = await twoGateways(ownClocks);
    const db = new pg.Client({ connectionString: env.DATABASE_URL });
    await db.connect();
    cleanups.push(() => db.end());
    // Two other gateways stored a press of the device each, acknowledged it, and did not decide it
    // yet: one has died, the other lives on (it renews its life).
    await db.query("INSERT INTO gateways (id, alive_until) VALUES ('dead', $1), ('living', $2)", [
      clockB.now() - 1,
      clockB.now() + 3_600_000,
    ]);
    for (const [seq, gateway] of [
      [2, "dead"],
      [3, "living"],
    ])
      await db.query(
        `INSERT INTO device_events (device_id, seq, ts, type, received_at, gateway_id)
         VALUES ('btn-dondrub', $1, $2, 'press', $2, $3)`,
        [seq, clockB.now(), gateway],
      );
    const unhandled = async () =>
      (await db.query("SELECT seq FROM device_events WHERE NOT handled ORDER BY seq")).rows.map((r) =>
        Number(r.seq),
      );
    const presses = async () => (await call(b, "GET", `/api/alerts/${alertId}`)).body.presses;
    // B takes nothing over before it has lived a whole life itself (after an outage, every
    // gateway renews first).
    await clockB.advance(2 * SWEEP_MS);
    expect(await unhandled()).toEqual([2, 3]);
    await clockB.advance(CLAIM_LEASE_MS + SWEEP_MS);
    await waitFor(async () => (await unhandled()).length === 1, 5000, "B deciding the dead one's press");
    expect(await unhandled()).toEqual([3]);
    expect(await presses()).toBe(2);
    // The other dies too: its press is decided at the next sweep.
    await db.query("UPDATE gateways SET alive_until = 0 WHERE id = 'living'");
    await clockB.advance(2 * SWEEP_MS);
    await waitFor(async () => (await unhandled()).length === 0, 5000, "B deciding the other's press");
    expect(await presses()).toBe(3);
    const trail = (await call(b, "GET", `/api/alerts/${alertId}`)).body.events as TrailEvent[];
    expect(trail.filter((e) => e.type === "joined")).toHaveLength(2);
  });
});
