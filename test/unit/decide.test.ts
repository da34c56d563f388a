import { describe, expect, it } from "vitest";
import {
  type Actor,
  type AlertInput,
  type Audience,
  type DecideContext,
  decide,
  mayAct,
} from "../../gateway/alerts/decide.ts";
import type { Alert } from "../../gateway/alerts/model.ts";
import { defaultPolicies, type EscalationPolicies } from "../../gateway/alerts/policy.ts";
import { GatewayError } from "../../gateway/errors.ts";

const T0 = 1_800_000_000_000;
const MIN = 60_000;
const press: AlertInput = {
  type: "trigger",
  alertId: "a1",
  kind: "call",
  deviceId: "btn-1",
  subjectId: "r1",
  seq: 1,
};
const sos: AlertInput = { ...press, alertId: "a2", kind: "sos", seq: 2 };
const doctor: Actor = { id: "dr", name: "李医生", role: "doctor" };
const family: Actor = { id: "fam", name: "Pema", role: "family" };
const staff: Actor = { id: "st", name: "Yang", role: "staff" };

/** Everyone reachable: doctor, family, grid worker, staff. */
const everyone: Audience = {
  byRole: {
    doctor: [{ id: "dr", reachable: true }],
    family: [{ id: "fam", reachable: true }],
    "grid-worker": [{ id: "gw", reachable: true }],
    staff: [{ id: "st", reachable: true }],
  },
  catchAll: ["st"],
};
const ctx = (
  audience: Audience = everyone,
  policies: EscalationPolicies = defaultPolicies,
): DecideContext => ({
  policies,
  audience,
});

function run(steps: [AlertInput, number, DecideContext?][]): Alert {
  let alert: Alert | undefined;
  for (const [input, at, c] of steps) alert = decide(alert, input, at, c ?? ctx()).next;
  if (!alert) throw new Error("no alert");
  return alert;
}
const pages = (d: ReturnType<typeof decide>) => d.effects.filter((e) => e.type === "page");
const followUps = (d: ReturnType<typeof decide>) =>
  d.effects.flatMap((e) => (e.type === "follow-up" ? [`${e.event}->${e.recipients.join("+")}`] : []));
const deviceCommands = (d: ReturnType<typeof decide>) =>
  d.effects.flatMap((e) => (e.type === "device" ? [`${e.command}:${e.phrase}`] : []));

describe("decide: opening and escalating", () => {
  it("opens a call at level 1 with the policy in force: tells the device, pages the doctor, 60 s to accept", () => {
    const d = decide(undefined, press, T0, ctx());
    expect(d.next).toMatchObject({ id: "a1", state: "open", level: 1, presses: 1, deadlineAt: T0 + 60_000 });
    expect(d.next.policy).toEqual(defaultPolicies.call);
    expect(d.next.notified).toEqual(["dr"]);
    expect(d.events.map((e) => e.type)).toEqual(["opened", "notified"]);
    expect(d.effects).toEqual([
      { type: "device", command: "received", phrase: "received", name: undefined },
      { type: "page", level: 1, recipients: ["dr"], repeat: false },
    ]);
  });

  it("keeps its own policy: a policy changed later does not move an open alert", () => {
    const open = run([[press, T0]]);
    const oneLevel: EscalationPolicies = {
      ...defaultPolicies,
      call: { ...defaultPolicies.call, levels: [{ notify: ["staff"], acceptWithinSec: 10 }] },
    };
    const d = decide(open, { type: "deadline" }, T0 + MIN, ctx(everyone, oneLevel));
    expect(d.next).toMatchObject({ level: 2, deadlineAt: T0 + MIN + 120_000 });
    expect(pages(d)).toEqual([{ type: "page", level: 2, recipients: ["fam"], repeat: false }]);
  });

  it("escalates doctor -> family -> grid worker and staff, repeats the last level 6 times, then is exhausted", () => {
    let alert = run([[press, T0]]);
    const seen: string[] = [];
    let at = T0;
    while (alert.deadlineAt !== null) {
      at = alert.deadlineAt;
      const d = decide(alert, { type: "deadline" }, at, ctx());
      alert = d.next;
      seen.push(d.events.map((e) => e.type).join("+"));
    }
    expect(seen).toEqual([
      "notified",
      "notified",
      ...Array(6).fill("notified"),
      "escalation-exhausted+notified",
    ]);
    expect(alert).toMatchObject({ state: "open", exhausted: true, repeats: 6, level: 3, deadlineAt: null });
    expect(at).toBe(T0 + 60_000 + 120_000 + 7 * 300_000);
  });

  it("skips a level nobody can be reached on at once, the last one too, and repeats the last level reached", () => {
    const onlyDoctor: Audience = {
      byRole: { doctor: [{ id: "dr", reachable: true }], family: [{ id: "fam", reachable: false }] },
      catchAll: [],
    };
    const open = decide(undefined, press, T0, ctx(onlyDoctor));
    const d = decide(open.next, { type: "deadline" }, T0 + MIN, ctx(onlyDoctor));
    expect(d.events.map((e) => [e.type, e.data.level])).toEqual([
      ["level-empty", 2],
      ["notified", 2], // paged anyway: a channel thought broken may work
      ["level-empty", 3],
      ["notified", 1],
    ]);
    expect(d.next).toMatchObject({ level: 1, repeats: 1, deadlineAt: T0 + 2 * MIN, unreached: false });
  });

  it("skips a level whose people keep their contacts for later levels (a phone call from level 2)", () => {
    const callsFromTwo: Audience = {
      byRole: {
        doctor: [{ id: "dr", reachable: true, reachableFrom: 2 }],
        family: [{ id: "fam", reachable: true }],
      },
      catchAll: [],
    };
    const d = decide(undefined, press, T0, ctx(callsFromTwo));
    expect(d.events.map((e) => [e.type, e.data.level])).toEqual([
      ["opened", undefined],
      ["level-empty", 1],
      ["notified", 1],
      ["notified", 2],
    ]);
    expect(d.next).toMatchObject({ level: 2, deadlineAt: T0 + 2 * MIN });
  });

  it("pages the next level at once when every message of the current one failed, and only then", () => {
    const open = decide(undefined, press, T0, ctx(everyone));
    const failed = decide(open.next, { type: "level-failed", level: 1 }, T0 + 1000, ctx(everyone));
    expect(failed.events.map((e) => [e.type, e.data.level])).toEqual([
      ["level-failed", 1],
      ["notified", 2],
    ]);
    expect(failed.next).toMatchObject({ level: 2, deadlineAt: T0 + 1000 + 2 * MIN });
    // A report about a level already passed, or an alert someone accepted, changes nothing.
    expect(decide(failed.next, { type: "level-failed", level: 1 }, T0 + 2000, ctx(everyone)).events).toEqual(
      [],
    );
    const accepted = decide(open.next, { type: "accept", by: doctor }, T0 + 500, ctx(everyone)).next;
    expect(decide(accepted, { type: "level-failed", level: 1 }, T0 + 1000, ctx(everyone)).events).toEqual([]);
  });

  it("pages the catch-all and marks the alert unreached when no level reaches anyone", () => {
    const nobody: Audience = { byRole: { doctor: [{ id: "dr", reachable: false }] }, catchAll: ["admin-1"] };
    const d = decide(undefined, press, T0, ctx(nobody));
    expect(d.events.map((e) => e.type)).toEqual([
      "opened",
      "level-empty",
      "notified",
      "level-empty",
      "level-empty",
      "unreached",
      "notified",
    ]);
    expect(pages(d).at(-1)).toEqual({ type: "page", level: 0, recipients: ["admin-1"], repeat: false });
    expect(d.next).toMatchObject({ unreached: true, level: 3, deadlineAt: T0 + 300_000 });
    // The catch-all is paged again like a last level, a bounded number of times.
    let alert = d.next;
    let n = 0;
    while (alert.deadlineAt !== null && n++ < 20)
      alert = decide(alert, { type: "deadline" }, alert.deadlineAt, ctx(nobody)).next;
    expect(alert).toMatchObject({ exhausted: true, repeats: 6 });
  });

  it("stops after the last level when the policy does not repeat, paging the catch-all", () => {
    const offline: AlertInput = { ...press, kind: "device-offline" };
    const open = decide(undefined, offline, T0, ctx());
    expect(deviceCommands(open)).toEqual([]); // the device did not raise it
    const d = decide(open.next, { type: "deadline" }, T0 + 3600_000, ctx());
    expect(d.next).toMatchObject({ exhausted: true, deadlineAt: null, state: "open" });
    expect(pages(d)).toEqual([{ type: "page", level: 0, recipients: ["st"], repeat: false }]);
  });
});

describe("decide: accepted is not done", () => {
  const accepted = () =>
    run([
      [press, T0],
      [{ type: "deadline" }, T0 + MIN],
      [{ type: "accept", by: doctor }, T0 + 90_000],
    ]);

  it("accepts: tells the device who is coming, everyone paged hears it, resolve-within deadline set", () => {
    const open = run([
      [press, T0],
      [{ type: "deadline" }, T0 + MIN],
    ]);
    const d = decide(open, { type: "accept", by: doctor }, T0 + 90_000, ctx());
    expect(d.next).toMatchObject({
      state: "accepted",
      acceptedBy: "dr",
      deadlineAt: T0 + 90_000 + 30 * MIN,
      reminders: 0,
    });
    expect(d.effects).toContainEqual({
      type: "device",
      command: "accepted",
      phrase: "accepted",
      name: "李医生",
    });
    expect(followUps(d)).toEqual(["accepted->fam"]);
  });

  it("reminds the accepter when the time to resolve runs out, then re-opens and escalates, saying why", () => {
    const first = decide(accepted(), { type: "deadline" }, T0 + 90_000 + 30 * MIN, ctx());
    expect(first.next).toMatchObject({ state: "accepted", reminders: 1, deadlineAt: T0 + 90_000 + 60 * MIN });
    expect(followUps(first)).toEqual(["reminder->dr"]);
    const second = decide(first.next, { type: "deadline" }, T0 + 90_000 + 60 * MIN, ctx());
    expect(second.events.map((e) => e.type)).toEqual(["reopened", "notified"]);
    expect(second.events[0]?.data).toMatchObject({
      acceptedBy: "dr",
      reason: "not resolved within 60 min of accepting",
    });
    expect(second.next).toMatchObject({ state: "open", acceptedBy: null, level: 3 });
    expect(followUps(second)).toEqual(["reopened->dr+fam"]);
    expect(pages(second)).toEqual([{ type: "page", level: 3, recipients: ["gw", "st"], repeat: false }]);
  });

  it("tells the accepter at once when the resident presses again, and the device hears 'received'", () => {
    const d = decide(accepted(), { ...press, alertId: "x", seq: 2 }, T0 + 5 * MIN, ctx());
    expect(d.next).toMatchObject({ id: "a1", presses: 2, state: "accepted" });
    expect(followUps(d)).toEqual(["pressed-again->dr"]);
    expect(deviceCommands(d)).toEqual(["received:received"]);
  });

  it("a long press after accept tells the accepter the resident says they are fine, and leaves it open", () => {
    const d = decide(accepted(), { type: "resident-cancel" }, T0 + 5 * MIN, ctx());
    expect(d.next.state).toBe("accepted");
    expect(d.events.map((e) => e.type)).toEqual(["resident-ok"]);
    expect(followUps(d)).toEqual(["resident-ok->dr"]);
    expect(deviceCommands(d)).toEqual([]);
  });

  it("a long press before accept cancels, and everyone paged hears it", () => {
    const open = run([
      [press, T0],
      [{ type: "deadline" }, T0 + MIN],
    ]);
    const d = decide(open, { type: "resident-cancel" }, T0 + 70_000, ctx());
    expect(d.next).toMatchObject({ state: "cancelled", closedBy: "btn-1", deadlineAt: null });
    expect(followUps(d)).toEqual(["cancelled->dr+fam"]);
    expect(deviceCommands(d)).toEqual(["resolved:cancelled"]);
  });

  it("treats a second accept by the same person as done, and by another as a conflict", () => {
    const alert = accepted();
    expect(decide(alert, { type: "accept", by: doctor }, T0 + 100_000, ctx()).events).toEqual([]);
    expect(() => decide(alert, { type: "accept", by: family }, T0 + 100_000, ctx())).toThrow(GatewayError);
  });

  it("resolves with a note that never goes to the device, and refuses any further transition", () => {
    const d = decide(
      accepted(),
      { type: "resolve", by: doctor, note: "BP 180/110, taken to hospital" },
      T0 + 10 * MIN,
      ctx(),
    );
    expect(d.next).toMatchObject({
      state: "resolved",
      outcome: "BP 180/110, taken to hospital",
      deadlineAt: null,
    });
    expect(d.effects).toContainEqual({
      type: "device",
      command: "resolved",
      phrase: "resolved",
      name: undefined,
    });
    expect(JSON.stringify(d.effects)).not.toContain("BP 180");
    expect(followUps(d)).toEqual(["resolved->fam"]);
    for (const input of [{ type: "accept", by: doctor }, { type: "deadline" }] as AlertInput[]) {
      if (input.type === "deadline") expect(decide(d.next, input, T0 + 11 * MIN, ctx()).events).toEqual([]);
      else expect(() => decide(d.next, input, T0 + 11 * MIN, ctx())).toThrow(/already resolved/);
    }
  });
});

describe("decide: one emergency per device, at its highest severity", () => {
  it("upgrades an open call to SOS: new policy from level 1, only people not yet paged are paged", () => {
    const open = run([
      [press, T0],
      [{ type: "deadline" }, T0 + MIN],
    ]);
    expect(open.notified).toEqual(["dr", "fam"]);
    const d = decide(open, sos, T0 + 70_000, ctx());
    expect(d.next).toMatchObject({
      id: "a1",
      kind: "sos",
      policy: defaultPolicies.sos,
      level: 1,
      presses: 2,
    });
    expect(d.events.map((e) => e.type)).toEqual(["upgraded", "notified"]);
    expect(followUps(d)).toEqual(["upgraded->dr+fam"]);
    // SOS level 1 is family and grid worker: the family already knows, the grid worker is paged.
    expect(pages(d)).toEqual([{ type: "page", level: 1, recipients: ["gw"], repeat: false }]);
    expect(d.next.deadlineAt).toBe(T0 + 70_000 + 60_000);
  });

  it("joins a call to an open SOS instead of downgrading it", () => {
    const alert = run([[{ ...sos, alertId: "s1" }, T0]]);
    const d = decide(alert, { ...press, alertId: "x" }, T0 + 1000, ctx());
    expect(d.next).toMatchObject({ id: "s1", kind: "sos", presses: 2 });
  });

  it("upgrades an accepted call in place: the accepter hears it, resolve-within follows the new policy", () => {
    const alert = run([
      [press, T0],
      [{ type: "accept", by: doctor }, T0 + 10_000],
    ]);
    const d = decide(alert, { ...press, alertId: "f", kind: "fall" }, T0 + 20_000, ctx());
    expect(d.next).toMatchObject({ kind: "fall", state: "accepted", deadlineAt: T0 + 20_000 + 20 * MIN });
    expect(followUps(d)).toEqual(["upgraded->dr"]);
    expect(pages(d)).toEqual([]);
  });

  it("starts the repeats again when the resident presses on an exhausted alert", () => {
    let alert = run([[press, T0]]);
    while (alert.deadlineAt !== null)
      alert = decide(alert, { type: "deadline" }, alert.deadlineAt, ctx()).next;
    const d = decide(alert, { ...press, alertId: "x" }, T0 + 3600_000, ctx());
    expect(d.next).toMatchObject({ exhausted: false, repeats: 1, deadlineAt: T0 + 3600_000 + 300_000 });
    expect(pages(d)).toEqual([{ type: "page", level: 3, recipients: ["gw", "st"], repeat: true }]);
  });
});

describe("who may act", () => {
  const open = () => run([[press, T0]]);
  const acceptedByDoctor = () =>
    run([
      [press, T0],
      [{ type: "accept", by: doctor }, T0 + 1],
    ]);

  it("lets anyone in scope accept at any level", () => {
    expect(decide(open(), { type: "accept", by: family }, T0 + 1, ctx()).next.acceptedBy).toBe("fam");
  });

  it("lets the accepter or staff resolve, the doctor too while nobody accepted; the family accepts first", () => {
    expect(mayAct("resolve", acceptedByDoctor(), doctor)).toBeUndefined();
    expect(mayAct("resolve", acceptedByDoctor(), staff)).toBeUndefined();
    expect(mayAct("resolve", acceptedByDoctor(), family)).toMatch(/only dr/);
    expect(mayAct("resolve", open(), doctor)).toBeUndefined();
    const byFamily = run([
      [press, T0],
      [{ type: "accept", by: family }, T0 + 1],
    ]);
    expect(mayAct("resolve", byFamily, doctor)).toMatch(/only fam/);
    expect(() => decide(open(), { type: "resolve", by: family, note: "ok" }, T0 + 1, ctx())).toThrow(
      /accept the alert first/,
    );
  });

  it("lets the accepter, the doctor or staff mark a false alarm, not the family", () => {
    expect(mayAct("false-alarm", open(), doctor)).toBeUndefined();
    expect(mayAct("false-alarm", open(), staff)).toBeUndefined();
    expect(() => decide(open(), { type: "false-alarm", by: family }, T0 + 1, ctx())).toThrow(GatewayError);
    const byFamily = run([
      [press, T0],
      [{ type: "accept", by: family }, T0 + 1],
    ]);
    expect(decide(byFamily, { type: "false-alarm", by: family }, T0 + 2, ctx()).next.state).toBe("cancelled");
  });
});
