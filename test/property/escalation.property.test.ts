import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Actor, type AlertInput, type Audience, decide, isActive } from "../../gateway/alerts/decide.ts";
import type { Alert } from "../../gateway/alerts/model.ts";
import { defaultPolicies } from "../../gateway/alerts/policy.ts";
import { GatewayError } from "../../gateway/errors.ts";
import { checkProperty, propertyTimeoutMs } from "./fuzz.ts";

const T0 = 1_800_000_000_000;
const actors: Actor[] = [
  { id: "dr", name: "Dr", role: "doctor" },
  { id: "fam", name: "Fam", role: "family" },
  { id: "gw", name: "Grid", role: "grid-worker" },
  { id: "st", name: "Staff", role: "staff" },
];

/** One step: something a device, a responder, the deadline or the clock does. */
type Step =
  | { t: "trigger"; kind: "call" | "sos" | "fall" }
  | { t: "accept" | "resolve" | "false-alarm"; by: number }
  | { t: "resident-cancel" }
  | { t: "wait"; ms: number }
  | { t: "jump"; ms: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    t: fc.constant("trigger" as const),
    kind: fc.constantFrom("call" as const, "sos" as const, "fall" as const),
  }),
  fc.record({
    t: fc.constantFrom("accept" as const, "resolve" as const, "false-alarm" as const),
    by: fc.nat(3),
  }),
  fc.constant({ t: "resident-cancel" as const }),
  fc.record({ t: fc.constant("wait" as const), ms: fc.integer({ min: 0, max: 3 * 3600_000 }) }),
  // The wall clock stepped back or forward by up to a day, as NTP or an operator might.
  fc.record({ t: fc.constant("jump" as const), ms: fc.integer({ min: -86_400_000, max: 86_400_000 }) }),
);

/** Who holds each role, and whether anything reaches them: changes between steps. */
const audience: fc.Arbitrary<Audience> = fc
  .tuple(fc.boolean(), fc.boolean(), fc.boolean(), fc.boolean(), fc.boolean(), fc.boolean())
  .map(([dr, fam, gw, st, hasFamily, hasStaff]) => ({
    byRole: {
      doctor: [{ id: "dr", reachable: dr }],
      family: hasFamily ? [{ id: "fam", reachable: fam }] : [],
      "grid-worker": [{ id: "gw", reachable: gw }],
      staff: hasStaff ? [{ id: "st", reachable: st }] : [],
    },
    catchAll: hasStaff && st ? ["st"] : ["admin"],
  }));

describe("escalation, for any sequence of presses, actions, deadlines and clock jumps", () => {
  it(
    "leaves every active alert with exactly one future deadline, unless its repeats ran out",
    () => {
      checkProperty(
        "escalation",
        fc.array(fc.tuple(step, audience), { minLength: 1, maxLength: 60 }),
        (steps) => {
          // Wall time (what decisions see and deadlines are stored in) and monotonic time (what the
          // scheduler waits on): a jump moves the first only. `dueMono` is when the deadline fires.
          let wall = T0;
          let mono = 0;
          let dueMono = Number.POSITIVE_INFINITY;
          let alert: Alert | undefined;
          let n = 0;
          const apply = (input: AlertInput, who: Audience) => {
            if (!alert && input.type !== "trigger") return;
            const before = { id: alert?.id, deadlineAt: alert?.deadlineAt ?? null };
            try {
              alert = decide(alert, input, wall, { policies: defaultPolicies, audience: who }).next;
            } catch (err) {
              // Refused (accepting a closed alert, a family member's false alarm): nothing changes.
              expect(err).toBeInstanceOf(GatewayError);
              return;
            }
            // As the scheduler: a deadline it holds stays put; a new one is due in (deadline - now) from now.
            if (alert.deadlineAt !== before.deadlineAt || alert.id !== before.id)
              dueMono =
                alert.deadlineAt === null ? Number.POSITIVE_INFINITY : mono + (alert.deadlineAt - wall);
            if (!isActive(alert)) {
              expect(alert.deadlineAt).toBeNull();
              return;
            }
            // Exactly one future deadline, unless the repeats ran out (open, red, no more pages).
            if (alert.state === "open" && alert.exhausted) expect(alert.deadlineAt).toBeNull();
            else expect(dueMono).toBeGreaterThan(mono);
            expect(alert.level).toBeGreaterThanOrEqual(1);
            expect(alert.level).toBeLessThanOrEqual(alert.policy.levels.length);
            expect(alert.repeats).toBeLessThanOrEqual(alert.policy.maxRepeats);
            expect(new Set(alert.notified).size).toBe(alert.notified.length);
          };
          for (const [s, who] of steps) {
            if (s.t === "jump") wall += s.ms;
            else if (s.t === "wait") {
              const target = mono + s.ms;
              // What the scheduler does meanwhile: fire each deadline when it is due.
              while (dueMono <= target) {
                wall += dueMono - mono;
                mono = dueMono;
                apply({ type: "deadline" }, who);
              }
              wall += target - mono;
              mono = target;
            } else if (s.t === "trigger")
              apply(
                { type: "trigger", alertId: `a${++n}`, kind: s.kind, deviceId: "btn", subjectId: "r" },
                who,
              );
            else if (s.t === "resident-cancel") apply({ type: "resident-cancel" }, who);
            else if (s.t === "resolve") apply({ type: "resolve", by: actors[s.by] as Actor, note: "n" }, who);
            else apply({ type: s.t, by: actors[s.by] as Actor }, who);
          }
        },
      );
    },
    propertyTimeoutMs(),
  );
});
