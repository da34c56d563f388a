import { z } from "zod";
import { roles } from "../store/types.ts";
import { alertKinds } from "./model.ts";

export const escalationLevelSchema = z.strictObject({
  notify: z.array(z.enum(roles)).min(1, "a level must notify at least one role"),
  /** Seconds the level has to accept before the next level is notified. */
  acceptWithinSec: z.number().int().positive(),
});

export const escalationPolicySchema = z.strictObject({
  levels: z.array(escalationLevelSchema).min(1, "a policy needs at least one level").max(10),
  /** After the last level: notify the last level reached again every `acceptWithinSec`, or stop. */
  repeatLast: z.boolean(),
  /** How many times the last level is paged again before the alert is `exhausted` (PagerDuty's num_loops). */
  maxRepeats: z.number().int().min(0).max(100).default(6),
  /** After accepting: time to resolve before the accepter is reminded, and as long again before it re-opens. */
  resolveWithinSec: z.number().int().positive().default(1800),
});
export type EscalationPolicy = z.infer<typeof escalationPolicySchema>;

/** A policy file may name only the kinds it changes; unknown kinds are refused. */
export const escalationPoliciesSchema = z.partialRecord(z.enum(alertKinds), escalationPolicySchema);
export type EscalationPolicies = Record<(typeof alertKinds)[number], EscalationPolicy>;

const level = (notify: EscalationPolicy["levels"][number]["notify"], acceptWithinSec: number) => ({
  notify,
  acceptWithinSec,
});

/** Defaults; a policy file given in configuration replaces them kind by kind. */
export const defaultPolicies: EscalationPolicies = {
  call: {
    levels: [level(["doctor"], 60), level(["family"], 120), level(["grid-worker", "staff"], 300)],
    repeatLast: true,
    maxRepeats: 6,
    resolveWithinSec: 1800,
  },
  fall: {
    levels: [level(["doctor", "family"], 60), level(["grid-worker", "staff"], 300)],
    repeatLast: true,
    maxRepeats: 6,
    resolveWithinSec: 1200,
  },
  sos: {
    levels: [level(["family", "grid-worker"], 60), level(["staff"], 300)],
    repeatLast: true,
    maxRepeats: 6,
    resolveWithinSec: 1200,
  },
  "geofence-exit": {
    levels: [level(["family", "grid-worker"], 120), level(["staff"], 600)],
    repeatLast: true,
    maxRepeats: 6,
    resolveWithinSec: 1800,
  },
  "device-offline": {
    levels: [level(["grid-worker", "staff"], 3600)],
    repeatLast: false,
    maxRepeats: 0,
    resolveWithinSec: 86_400,
  },
  "low-battery": {
    levels: [level(["family", "grid-worker", "staff"], 3600)],
    repeatLast: false,
    maxRepeats: 0,
    resolveWithinSec: 86_400,
  },
};
