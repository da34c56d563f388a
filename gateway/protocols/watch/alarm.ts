import { z } from "zod";

/** What a bit of an `AL` frame's status word means. `ignore`: a model sets it for no alarm. */
export const alarmNames = [
  "sos",
  "fall",
  "removed",
  "low-battery",
  "fence-out",
  "fence-in",
  "ignore",
] as const;
export type AlarmName = (typeof alarmNames)[number];

/** Bit number (0-31) to meaning. */
export type AlarmBits = Record<string, AlarmName>;

/** The vendors' documents: alarms in the high 16 bits. */
export const defaultAlarmBits: AlarmBits = {
  16: "sos",
  17: "low-battery",
  18: "fence-out",
  19: "fence-in",
  20: "removed",
  21: "fall",
};

/**
 * `WATCH_ALARM_BITS`: per model, bits that differ from the default, the model named by its maker
 * code (`3G`, `SG`, `ZJ`...) or by a device id, e.g. `{"SG": {"16": "ignore", "22": "sos"}}`.
 */
export const alarmBitsOverrideSchema = z
  .record(z.string(), z.record(z.string(), z.enum(alarmNames)))
  .superRefine((models, ctx) => {
    for (const [model, bits] of Object.entries(models)) {
      if (!/^([0-9A-Za-z]{2}|\d{10}|\d{15})$/.test(model))
        ctx.addIssue({
          code: "custom",
          path: [model],
          message: "must be a maker code (2 letters or digits) or a watch id",
        });
      for (const bit of Object.keys(bits))
        if (!/^([0-9]|[12][0-9]|3[01])$/.test(bit))
          ctx.addIssue({ code: "custom", path: [model, bit], message: "must be a bit number 0-31" });
    }
  });
export type AlarmBitsOverrides = z.infer<typeof alarmBitsOverrideSchema>;

/** The bit map for one watch: its id's override, else its maker's, over the default. */
export function alarmBitsFor(overrides: AlarmBitsOverrides, maker: string, deviceId: string): AlarmBits {
  return { ...defaultAlarmBits, ...(overrides[deviceId] ?? overrides[maker] ?? {}) };
}

export interface AlarmVerdict {
  /** The device event it raises; undefined when its bits say no emergency (a fence, a low battery). */
  event: "sos" | "fall" | undefined;
  /** Every alarm the bits name (`ignore` left out). */
  alarms: AlarmName[];
  lowBattery: boolean;
}

/**
 * What an `AL` frame means. A fall outranks an SOS; a removed watch is an SOS. An `AL` whose set
 * bits name nothing known is an SOS all the same: a device that says "alarm" is never dropped.
 */
export function judgeAlarm(status: number, bits: AlarmBits): AlarmVerdict {
  const named: AlarmName[] = [];
  for (let bit = 0; bit < 32; bit++) {
    const name = bits[bit];
    if (name && (status >>> bit) & 1) named.push(name);
  }
  const alarms = named.filter((n) => n !== "ignore");
  const lowBattery = alarms.includes("low-battery");
  if (named.length === 0) return { event: "sos", alarms: ["sos"], lowBattery };
  if (alarms.includes("fall")) return { event: "fall", alarms, lowBattery };
  if (alarms.includes("sos") || alarms.includes("removed")) return { event: "sos", alarms, lowBattery };
  return { event: undefined, alarms, lowBattery };
}
