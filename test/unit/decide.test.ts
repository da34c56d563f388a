import { describe, expect, it } from "vitest";
import { type AlertInput, decide } from "../../gateway/alerts/decide.ts";
import type { Alert } from "../../gateway/alerts/model.ts";
import { defaultPolicies, type EscalationPolicy } from "../../gateway/alerts/policy.ts";
import { GatewayError } from "../../gateway/errors.ts";

const call = defaultPolicies.call;
const T0 = 1_800_000_000_000;
const press: AlertInput = {
  type: "trigger",
  alertId: "a1",
  kind: "call",
  deviceId: "btn-1",
  subjectId: "r1",
  seq: 1,
};

function run(inputs: [AlertInput, number][], policy: EscalationPolicy = call): Alert {
  let alert: Alert | undefined;
  for (const [input, at] of inputs) alert = decide(alert, input, at, policy).next;
  if (!alert) throw new Error("no alert");
  return alert;
}

describe("decide", () => {
  it("opens a call at level 1: tells the device, notifies the doctor, sets a 60 s deadline", () => {
    const d = decide(undefined, press, T0, call);
    expect(d.next).toMatchObject({ id: "a1", state: "open", level: 1, presses: 1, deadlineAt: T0 + 60_000 });
    expect(d.events.map((e) => e.type)).toEqual(["opened", "notified"]);
    expect(d.effects).toEqual([
      { type: "command", deviceId: "btn-1", command: { type: "received", alertId: "a1" } },
      { type: "notify", level: 1, roles: ["doctor"] },
    ]);
  });

  it("joins a press to the open alert instead of opening another, and keeps its deadline", () => {
    const open = run([[press, T0]]);
    const d = decide(open, { ...press, alertId: "a2" }, T0 + 5_000, call);
    expect(d.next).toMatchObject({ id: "a1", presses: 2, deadlineAt: T0 + 60_000 });
    expect(d.events.map((e) => e.type)).toEqual(["joined"]);
    expect(d.effects).toEqual([
      { type: "command", deviceId: "btn-1", command: { type: "received", alertId: "a1" } },
    ]);
  });

  it("opens a new alert when the previous one is closed", () => {
    const closed = run([
      [press, T0],
      [{ type: "cancel", by: "btn-1", reason: "device" }, T0 + 1],
    ]);
    expect(decide(closed, { ...press, alertId: "a2" }, T0 + 2, call).next).toMatchObject({
      id: "a2",
      presses: 1,
    });
  });

  it("escalates doctor -> family -> grid worker and staff, then repeats the last level every 5 minutes", () => {
    let alert = run([[press, T0]]);
    const steps: unknown[] = [];
    for (let i = 0; i < 4; i++) {
      const at = alert.deadlineAt ?? 0;
      const d = decide(alert, { type: "deadline" }, at, call);
      alert = d.next;
      steps.push([alert.level, d.effects, alert.deadlineAt && alert.deadlineAt - at]);
    }
    expect(steps).toEqual([
      [2, [{ type: "notify", level: 2, roles: ["family"] }], 120_000],
      [3, [{ type: "notify", level: 3, roles: ["grid-worker", "staff"] }], 300_000],
      [3, [{ type: "notify", level: 3, roles: ["grid-worker", "staff"] }], 300_000],
      [3, [{ type: "notify", level: 3, roles: ["grid-worker", "staff"] }], 300_000],
    ]);
  });

  it("stops after the last level when the policy does not repeat", () => {
    const policy: EscalationPolicy = {
      levels: [{ notify: ["staff"], acceptWithinSec: 10 }],
      repeatLast: false,
    };
    const open = run([[press, T0]], policy);
    const d = decide(open, { type: "deadline" }, T0 + 10_000, policy);
    expect(d.next).toMatchObject({ state: "open", deadlineAt: null, level: 1 });
    expect(d.events.map((e) => e.type)).toEqual(["escalation-exhausted"]);
    expect(d.effects).toEqual([]);
  });

  it("moves on at once from a level with nobody in it, recording why", () => {
    const open = run([[press, T0]]);
    const d = decide(open, { type: "level-empty" }, T0 + 3, call);
    expect(d.next).toMatchObject({ level: 2, deadlineAt: T0 + 3 + 120_000 });
    expect(d.events.map((e) => e.type)).toEqual(["level-empty", "notified"]);
  });

  it("accepts: stops escalation and tells the device who is coming", () => {
    const open = run([[press, T0]]);
    const d = decide(open, { type: "accept", by: "dr-1", byName: "Dr Tsering" }, T0 + 20_000, call);
    expect(d.next).toMatchObject({
      state: "accepted",
      acceptedBy: "dr-1",
      acceptedAt: T0 + 20_000,
      deadlineAt: null,
    });
    expect(d.effects).toEqual([
      {
        type: "command",
        deviceId: "btn-1",
        command: { type: "accepted", alertId: "a1", message: "Dr Tsering accepted your call" },
      },
    ]);
    // A deadline racing the accept changes nothing.
    expect(decide(d.next, { type: "deadline" }, T0 + 60_000, call)).toMatchObject({
      events: [],
      effects: [],
    });
  });

  it("treats a second accept by the same person as done, and by another as a conflict", () => {
    const accepted = run([
      [press, T0],
      [{ type: "accept", by: "dr-1", byName: "Dr" }, T0 + 1],
    ]);
    expect(decide(accepted, { type: "accept", by: "dr-1", byName: "Dr" }, T0 + 2, call).events).toEqual([]);
    expect(() => decide(accepted, { type: "accept", by: "pema", byName: "Pema" }, T0 + 2, call)).toThrow(
      /already accepted by 'dr-1'/,
    );
  });

  it("resolves with an outcome note and refuses any further transition", () => {
    const resolved = run([
      [press, T0],
      [{ type: "accept", by: "dr-1", byName: "Dr" }, T0 + 1],
      [{ type: "resolve", by: "dr-1", note: "checked blood pressure" }, T0 + 2],
    ]);
    expect(resolved).toMatchObject({
      state: "resolved",
      outcome: "checked blood pressure",
      closedBy: "dr-1",
    });
    for (const input of [
      { type: "accept", by: "x", byName: "X" },
      { type: "resolve", by: "x", note: "n" },
      { type: "cancel", by: "x", reason: "false-alarm" },
    ] as AlertInput[]) {
      expect(() => decide(resolved, input, T0 + 3, call)).toThrow(GatewayError);
    }
  });

  it("records a responder's false alarm and a resident's cancel differently", () => {
    const falseAlarm = run([
      [press, T0],
      [{ type: "cancel", by: "lhakpa", reason: "false-alarm" }, T0 + 1],
    ]);
    expect(falseAlarm).toMatchObject({ state: "cancelled", outcome: "false alarm", closedBy: "lhakpa" });
    const byResident = run([
      [press, T0],
      [{ type: "cancel", by: "btn-1", reason: "device" }, T0 + 1],
    ]);
    expect(byResident.outcome).toBe("cancelled by the resident");
  });
});
