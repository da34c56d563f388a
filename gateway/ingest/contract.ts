import { z } from "zod";

/** Device contract v1. The one place that says which topics exist and what their payloads are. */

/** Earliest believable device time: anything before is a device with an unset clock. */
const EARLIEST_TS = Date.UTC(2020, 0, 1);
const timestamp = z.number().int().min(EARLIEST_TS, "ts is before 2020: device clock not set");
const seq = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const deviceEventSchema = z.strictObject({
  type: z.enum(["press", "cancel", "sos", "fall"]),
  ts: timestamp,
  seq,
});
export type DeviceEvent = z.infer<typeof deviceEventSchema>;

const coordinate = z.custom<number>((v) => typeof v === "number", "must be a number");

/**
 * A heartbeat with an impossible position is still a heartbeat (the device is alive, its battery
 * is known): the fix itself is judged, and stored as rejected, by the position rules.
 */
export const heartbeatSchema = z.strictObject({
  ts: timestamp,
  seq,
  battery: z.number().min(0).max(100),
  // Any number, even one JSON cannot hold (1e999 parses as Infinity): the position rules reject it.
  lat: coordinate.optional(),
  lon: coordinate.optional(),
  accuracy: z.union([z.number().min(0), z.literal(Number.POSITIVE_INFINITY)]).optional(),
  source: z.enum(["gps", "lbs", "wifi"]).optional(),
});
export type Heartbeat = z.infer<typeof heartbeatSchema>;

const HEARTBEAT_KEYS = new Set(Object.keys(heartbeatSchema.shape));
const SOURCES = new Set<unknown>(heartbeatSchema.shape.source.unwrap().options);

/**
 * `heartbeatSchema`'s verdict, checked by hand: heartbeats are most of what a gateway receives,
 * and walking the schema cost several times this. A message it refuses goes to the schema, which
 * says what is wrong; a property test holds the two to the same verdict.
 */
export function isHeartbeat(json: unknown): json is Heartbeat {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return false;
  for (const key in json) if (!HEARTBEAT_KEYS.has(key)) return false;
  const h = json as Record<string, unknown>;
  const { ts, seq, battery, lat, lon, accuracy, source } = h;
  return (
    Number.isSafeInteger(ts) &&
    (ts as number) >= EARLIEST_TS &&
    Number.isSafeInteger(seq) &&
    (seq as number) >= 0 &&
    typeof battery === "number" &&
    battery >= 0 &&
    battery <= 100 &&
    (lat === undefined || typeof lat === "number") &&
    (lon === undefined || typeof lon === "number") &&
    // Infinity included, as the schema takes it.
    (accuracy === undefined || (typeof accuracy === "number" && accuracy >= 0)) &&
    (source === undefined || SOURCES.has(source))
  );
}

export const deviceCommandSchema = z.strictObject({
  type: z.enum(["received", "accepted", "resolved"]),
  alertId: z.string(),
  message: z.string().optional(),
});
export type DeviceCommand = z.infer<typeof deviceCommandSchema>;

/** Topics a device publishes to, under `devices/<its id>/`. */
export const deviceTopics = {
  event: deviceEventSchema,
  heartbeat: heartbeatSchema,
} as const;
export type DeviceChannel = keyof typeof deviceTopics;

export type DeviceMessage =
  | { channel: "event"; message: DeviceEvent }
  | { channel: "heartbeat"; message: Heartbeat };

export const topicFor = (deviceId: string, channel: DeviceChannel | "command") =>
  `devices/${deviceId}/${channel}`;

/** The only subscription a device may hold. */
export const commandTopic = (deviceId: string) => topicFor(deviceId, "command");

export type RefusalReason = "acl" | "oversized" | "bad-json" | "schema" | "timestamp";

export type Parsed =
  | { ok: true; value: DeviceMessage }
  | { ok: false; reason: RefusalReason; detail: string };

export interface ParseLimits {
  maxPayloadBytes: number;
  /** How far ahead of the gateway's clock a device timestamp may be. */
  maxClockSkewMs: number;
}

/** Checks one publish against the contract: topic ownership, size, JSON, schema, timestamp. */
export function parseDeviceMessage(
  deviceId: string,
  topic: string,
  payload: Buffer,
  now: number,
  limits: ParseLimits,
): Parsed {
  const prefix = `devices/${deviceId}/`;
  const channel = topic.startsWith(prefix) ? topic.slice(prefix.length) : undefined;
  if (channel !== "event" && channel !== "heartbeat") {
    return { ok: false, reason: "acl", detail: `device may not publish to '${topic}'` };
  }
  if (payload.length > limits.maxPayloadBytes) {
    return { ok: false, reason: "oversized", detail: `${payload.length} bytes > ${limits.maxPayloadBytes}` };
  }
  let json: unknown;
  try {
    json = JSON.parse(payload.toString("utf8"));
  } catch {
    return { ok: false, reason: "bad-json", detail: "payload is not JSON" };
  }
  if (channel === "heartbeat" && isHeartbeat(json)) return judgedClock(channel, json, now, limits);
  const result = deviceTopics[channel].safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    const path = issue?.path.join(".") || "(payload)";
    // Too early or too late is the device's clock, however far off (a ts past 2^53 fails as too_big).
    const outOfRange = issue?.code === "too_small" || issue?.code === "too_big";
    const reason = issue?.path[0] === "ts" && outOfRange ? "timestamp" : "schema";
    return { ok: false, reason, detail: `${path}: ${issue?.message}` };
  }
  return judgedClock(channel, result.data, now, limits);
}

/** The last check of a message its schema took: how far ahead of the gateway's clock it is. */
function judgedClock(
  channel: DeviceChannel,
  message: DeviceEvent | Heartbeat,
  now: number,
  limits: ParseLimits,
): Parsed {
  if (message.ts > now + limits.maxClockSkewMs) {
    return { ok: false, reason: "timestamp", detail: `ts is ${message.ts - now} ms in the future` };
  }
  return { ok: true, value: { channel, message } as DeviceMessage };
}
