import { describe, expect, it } from "vitest";
import { dueAt, formatCountdown, laneOf, triageOrder } from "../../dashboard/src/triage.ts";
import type { Alert, AlertKind } from "../../gateway/alerts/model.ts";
import { defaultPolicies } from "../../gateway/alerts/policy.ts";

const alert = (id: string, kind: AlertKind, over: Partial<Alert> = {}): Alert => ({
  id,
  kind,
  deviceId: `dev-${id}`,
  subjectId: "dondrub",
  state: "open",
  level: 1,
  presses: 1,
  openedAt: 1000,
  acceptedBy: null,
  acceptedAt: null,
  closedBy: null,
  closedAt: null,
  outcome: null,
  deadlineAt: 61_000,
  policy: defaultPolicies[kind],
  repeats: 0,
  reminders: 0,
  notified: [],
  unreached: false,
  exhausted: false,
  lastActivityAt: 1000,
  ...over,
});

describe("triage", () => {
  it("puts SOS, fall, call, safe zone, then device health; then who waited longest, then level", () => {
    const alerts = [
      alert("battery", "low-battery", { openedAt: 1 }),
      alert("offline", "device-offline", { openedAt: 2 }),
      alert("zone", "geofence-exit", { openedAt: 3 }),
      alert("call-new", "call", { openedAt: 500 }),
      alert("call-old", "call", { openedAt: 100 }),
      alert("call-old-l3", "call", { openedAt: 100, level: 3 }),
      alert("fall", "fall", { openedAt: 900 }),
      alert("sos", "sos", { openedAt: 999 }),
    ];
    expect(alerts.sort(triageOrder).map((a) => a.id)).toEqual([
      "sos",
      "fall",
      "call-old-l3",
      "call-old",
      "call-new",
      "zone",
      "battery", // device health is one level: the one waiting longer first
      "offline",
    ]);
    expect(["low-battery", "device-offline", "call"].map((k) => laneOf(k as AlertKind))).toEqual([
      "health",
      "health",
      "urgent",
    ]);
  });

  it("names what happens at the deadline: the next level, a repeat, a reminder, a re-open", () => {
    expect(dueAt(alert("a", "call", { level: 1 }))?.due).toEqual({ what: "next", roles: ["family"] });
    expect(dueAt(alert("b", "call", { level: 3 }))?.due).toEqual({
      what: "repeat",
      roles: ["grid-worker", "staff"],
    });
    expect(dueAt(alert("c", "call", { state: "accepted" }))?.due).toEqual({ what: "remind" });
    expect(dueAt(alert("d", "call", { state: "accepted", reminders: 1 }))?.due).toEqual({ what: "reopen" });
    expect(dueAt(alert("e", "call", { state: "resolved", deadlineAt: null }))).toBeNull();
    expect(dueAt(alert("f", "device-offline", { level: 1 }))).toBeNull(); // one level, no repeats
  });

  it("counts down in minutes and seconds, never below zero", () => {
    expect(formatCountdown(42_000)).toBe("0:42");
    expect(formatCountdown(41_200)).toBe("0:42");
    expect(formatCountdown(725_000)).toBe("12:05");
    expect(formatCountdown(3_600_000)).toBe("1:00:00");
    expect(formatCountdown(-5000)).toBe("0:00");
  });
});
