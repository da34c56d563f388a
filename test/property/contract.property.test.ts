import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../gateway/config/index.ts";
import {
  type DeviceChannel,
  deviceTopics,
  heartbeatSchema,
  isHeartbeat,
  type Parsed,
  parseDeviceMessage,
  topicFor,
} from "../../gateway/ingest/contract.ts";
import { checkProperty, propertyTimeoutMs } from "./fuzz.ts";

const NOW = Date.UTC(2026, 10, 25, 12);
const EARLIEST = Date.UTC(2020, 0, 1);
const config = loadConfig({ WEBHOOK_SECRET: "test-webhook-secret-0123456789" });
const limits = { maxPayloadBytes: config.MAX_PAYLOAD_BYTES, maxClockSkewMs: config.MAX_CLOCK_SKEW_MS };
const LATEST = NOW + limits.maxClockSkewMs;
const reasons = ["acl", "oversized", "bad-json", "schema", "timestamp"];

type Json = Record<string, unknown>;
type Channel = DeviceChannel;

const parse = (deviceId: string, topic: string, payload: Buffer | string): Parsed =>
  parseDeviceMessage(deviceId, topic, Buffer.from(payload), NOW, limits);

/** Device ids as the registry accepts them. */
const deviceId = fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/);
/** JSON has no -0: `JSON.stringify(-0)` is `0`. */
const finite = (c: { min?: number; max?: number } = {}) =>
  fc.double({ ...c, noNaN: true, noDefaultInfinity: true }).map((d) => (d === 0 ? 0 : d));
const ts = fc.integer({ min: EARLIEST, max: LATEST });
const seq = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });

const validEvent = fc.record({ type: fc.constantFrom("press", "cancel", "sos", "fall"), ts, seq });
const validHeartbeat = fc.record(
  {
    ts,
    seq,
    battery: finite({ min: 0, max: 100 }),
    // The contract takes any number here; the position rules judge the fix afterwards.
    lat: finite(),
    lon: finite(),
    accuracy: finite({ min: 0 }),
    source: fc.constantFrom("gps", "lbs", "wifi"),
  },
  { requiredKeys: ["ts", "seq", "battery"] },
);
const validMessage: fc.Arbitrary<{ channel: Channel; message: Json }> = fc.oneof(
  validEvent.map((message) => ({ channel: "event" as const, message })),
  validHeartbeat.map((message) => ({ channel: "heartbeat" as const, message })),
);

/** The same object in any key order and layout, as devices' JSON encoders write it. */
const encoded = (message: Json) =>
  fc
    .tuple(
      fc.shuffledSubarray(Object.keys(message), { minLength: Object.keys(message).length }),
      fc.constantFrom(undefined, 0, 1, 2, "\t"),
    )
    .map(([keys, space]) => JSON.stringify(message, keys, space));

/** Values of a JSON type or range no field of the contract takes, and literals that are not JSON at all. */
const RAW = "\u0000raw\u0000";
const wrongValue = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }).map(JSON.stringify),
  fc.constantFrom("true", "false", "null", "[]", "{}", "[1]", '{"x":1}', '""', '"1"', '"press "'),
  fc.constantFrom('"PRESS"', '"ｐｒｅｓｓ"', '"press\\u0000"', '"\\ud800"', '"NaN"', '"Infinity"'),
  fc.constantFrom("NaN", "Infinity", "-Infinity", "1e999", "-1e999", "0x10", "01", "1.", ".5", "+1", "--1"),
  fc.constantFrom(
    "-1",
    "-0.5",
    "1.5",
    "9007199254740992",
    "18446744073709551616",
    "1e308",
    "-1e308",
    "5e-324",
  ),
  fc.integer({ min: 1, max: 3000 }).map((depth) => "[".repeat(depth) + "]".repeat(depth)),
  fc.integer({ min: 1, max: 400 }).map((depth) => `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`),
  fc.integer({ min: 100, max: 3000 }).map((n) => JSON.stringify("é".repeat(n))),
);
const withRaw = (message: Json, key: string, raw: string) =>
  JSON.stringify({ ...message, [key]: RAW }).replace(JSON.stringify(RAW), () => raw);

/** A valid message with one thing wrong with it, as text. */
const nearValid = validMessage.chain(({ channel, message }) => {
  const keys = Object.keys(message);
  const anyKey = fc.oneof(
    fc.constantFrom(...keys),
    fc.constantFrom("__proto__", "constructor", "prototype", "type", "battery", "extra", ""),
    fc.string({ unit: "binary", maxLength: 10 }),
  );
  const text = JSON.stringify(message);
  return fc
    .oneof(
      fc.tuple(anyKey, wrongValue).map(([key, raw]) => withRaw(message, key, raw)),
      fc.constantFrom(...keys).map((key) => JSON.stringify({ ...message, [key]: undefined })),
      fc.nat({ max: text.length - 1 }).map((n) => text.slice(0, n)),
      fc.string({ unit: "binary", maxLength: 10 }).map((junk) => text + junk),
      fc.constantFrom(
        `[${text}]`,
        JSON.stringify(text),
        `{"data":${text}}`,
        `\uFEFF${text}`,
        `${text}${text}`,
      ),
    )
    .map((payload) => ({ channel, payload }));
});

const payloadBytes: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 1500 }).map((bytes) => Buffer.from(bytes)),
  fc.string({ unit: "binary", maxLength: 300 }).map((s) => Buffer.from(s)),
  fc.jsonValue().map((value) => Buffer.from(JSON.stringify(value) ?? "")),
  nearValid.map(({ payload }) => Buffer.from(payload)),
  validMessage.chain(({ message }) => encoded(message)).map((s) => Buffer.from(s)),
);

/** Topics a device might try: its own, another's, near misses, and noise. */
const topicAttempt = (id: string) =>
  fc.oneof(
    fc.constantFrom("event", "heartbeat", "command").map((channel) => `devices/${id}/${channel}`),
    fc
      .tuple(deviceId, fc.constantFrom("event", "heartbeat", "command"))
      .map(([other, channel]) => `devices/${other}/${channel}`),
    fc
      .tuple(
        fc.constantFrom("", "/", "Devices/", "devices//", "devices/+/", "devices/#/", `devices/${id}/`),
        fc.constantFrom(id, "+", "#", "", `${id} `, `${id}\u0000`),
        fc.constantFrom(
          "/event",
          "/heartbeat",
          "/event/",
          "/Event",
          "/event/x",
          "/+",
          "/#",
          "",
          "/event\u0000",
        ),
      )
      .map((parts) => parts.join("")),
    fc.string({ unit: "binary", maxLength: 80 }),
  );

/** Checks one answer against everything the contract promises; `payload` and `topic` are what was sent. */
function expectWellFormed(result: Parsed, id: string, topic: string, payload: Buffer) {
  const channel = (["event", "heartbeat"] as const).find((c) => topic === topicFor(id, c));
  if (result.ok) {
    expect(result.value.channel).toBe(channel);
    expect(payload.length).toBeLessThanOrEqual(limits.maxPayloadBytes);
    expect(deviceTopics[result.value.channel].safeParse(result.value.message).success).toBe(true);
    expect(result.value.message.ts).toBeLessThanOrEqual(LATEST);
    // Accepted exactly as sent: nothing stripped, added or coerced.
    expect(result.value.message).toEqual(JSON.parse(payload.toString("utf8")));
    return;
  }
  expect(reasons).toContain(result.reason);
  expect(result.detail).toMatch(/\S/);
  expect(result.detail).not.toMatch(/: undefined$/);
  if (!channel) return expect(result.reason).toBe("acl");
  if (payload.length > limits.maxPayloadBytes) return expect(result.reason).toBe("oversized");
  let json: unknown;
  try {
    json = JSON.parse(payload.toString("utf8"));
  } catch {
    return expect(result.reason).toBe("bad-json");
  }
  expect(result.reason).not.toMatch(/acl|oversized|bad-json/);
  // Names the field that is wrong, or the payload as a whole.
  expect(result.detail).toMatch(/^(\(payload\)|[^:\s]+): \S/);
  // A message the schema takes can only be refused for its clock.
  if (deviceTopics[channel].safeParse(json).success) {
    expect(result.reason).toBe("timestamp");
    expect((json as { ts: number }).ts).toBeGreaterThan(LATEST);
  }
}

describe("device contract, for any input", () => {
  it(
    "never throws on any topic and payload, and either accepts a valid message or says why not",
    () => {
      const input = deviceId.chain((id) =>
        fc.record({ id: fc.constant(id), topic: topicAttempt(id), payload: payloadBytes }),
      );
      checkProperty("contract/any-topic-any-payload", input, ({ id, topic, payload }) => {
        expectWellFormed(parse(id, topic, payload), id, topic, payload);
      });
    },
    propertyTimeoutMs(),
  );

  it(
    "answers every near-valid payload on the device's own topic",
    () => {
      const input = fc.tuple(deviceId, nearValid);
      checkProperty("contract/near-valid", input, ([id, { channel, payload }]) => {
        const topic = topicFor(id, channel);
        expectWellFormed(parse(id, topic, payload), id, topic, Buffer.from(payload));
      });
    },
    propertyTimeoutMs(),
  );

  it(
    "accepts every valid message, in any key order and layout, and keeps its fields",
    () => {
      const input = fc.tuple(
        deviceId,
        validMessage.chain((m) => encoded(m.message).map((text) => ({ ...m, text }))),
      );
      checkProperty("contract/valid-round-trip", input, ([id, { channel, message, text }]) => {
        expect(parse(id, topicFor(id, channel), text)).toEqual({ ok: true, value: { channel, message } });
      });
    },
    propertyTimeoutMs(),
  );

  it(
    "refuses a valid message on any other topic as acl",
    () => {
      const input = fc
        .tuple(deviceId, validMessage)
        .chain(([id, m]) => fc.tuple(fc.constant(id), fc.constant(m), topicAttempt(id)))
        .filter(([id, , topic]) => topic !== topicFor(id, "event") && topic !== topicFor(id, "heartbeat"));
      checkProperty("contract/foreign-topic", input, ([id, { message }, topic]) => {
        expect(parse(id, topic, JSON.stringify(message))).toMatchObject({ ok: false, reason: "acl" });
      });
    },
    propertyTimeoutMs(),
  );
});

describe("device contract, one field wrong", () => {
  it(
    "refuses a timestamp before 2020 or beyond the allowed clock skew as timestamp, however far off",
    () => {
      const badTs = fc.oneof(
        fc.integer({ min: Number.MIN_SAFE_INTEGER, max: EARLIEST - 1 }),
        fc.integer({ min: LATEST + 1, max: Number.MAX_SAFE_INTEGER }),
        fc.constantFrom(-1e300, -1e20, 2 ** 53, 1e20, 1e300),
        fc.double({ min: 2 ** 53, max: 1e308, noNaN: true, noDefaultInfinity: true }),
      );
      const input = fc.tuple(deviceId, validMessage, badTs);
      checkProperty("contract/bad-timestamp", input, ([id, { channel, message }, ts]) => {
        const result = parse(id, topicFor(id, channel), JSON.stringify({ ...message, ts }));
        expect(result).toMatchObject({ ok: false, reason: "timestamp", detail: expect.stringMatching(/ts/) });
      });
    },
    propertyTimeoutMs(),
  );

  it(
    "refuses an extra field as schema, whatever its name (including __proto__)",
    () => {
      const input = fc
        .tuple(
          deviceId,
          validMessage,
          fc.oneof(fc.string({ unit: "binary", maxLength: 20 }), fc.constantFrom("__proto__", "constructor")),
          fc.jsonValue({ maxDepth: 2 }),
        )
        .filter(([, { message }, key]) => !Object.keys(message).includes(key));
      checkProperty("contract/extra-field", input, ([id, { channel, message }, key, value]) => {
        const payload = withRaw(message, key, JSON.stringify(value) ?? "null");
        const result = parse(id, topicFor(id, channel), payload);
        const expected = Buffer.byteLength(payload) > limits.maxPayloadBytes ? "oversized" : "schema";
        expect(result).toMatchObject({ ok: false, reason: expected });
      });
    },
    propertyTimeoutMs(),
  );

  it(
    "refuses a missing field or a field of the wrong type as schema, naming the field",
    () => {
      const input = fc.tuple(deviceId, validMessage).chain(([id, m]) =>
        fc.record({
          id: fc.constant(id),
          m: fc.constant(m),
          key: fc.constantFrom(...Object.keys(m.message)),
          raw: fc.option(
            fc.constantFrom("null", "true", '"1"', "[]", "{}", '"press"', "[1,2]", '{"ts":1}', '""'),
            { nil: undefined },
          ),
        }),
      );
      checkProperty("contract/wrong-type", input, ({ id, m: { channel, message }, key, raw }) => {
        if (raw === '"press"' && key === "type") return;
        const payload =
          raw === undefined ? JSON.stringify({ ...message, [key]: undefined }) : withRaw(message, key, raw);
        // A missing optional heartbeat field is fine; everything else is refused.
        if (raw === undefined && channel === "heartbeat" && !["ts", "seq", "battery"].includes(key)) {
          expect(parse(id, topicFor(id, channel), payload)).toMatchObject({ ok: true });
          return;
        }
        expect(parse(id, topicFor(id, channel), payload)).toMatchObject({
          ok: false,
          reason: "schema",
          detail: expect.stringMatching(new RegExp(`^${key}: `)),
        });
      });
    },
    propertyTimeoutMs(),
  );
});

describe("the heartbeat check by hand", () => {
  it(
    "gives the schema's verdict on any value, and takes a valid heartbeat as it is",
    () => {
      /** Every kind of value a field could hold, right or wrong, and the edges of each range. */
      const fieldValue = fc.oneof(
        ts,
        seq,
        finite(),
        fc.double(),
        fc.integer(),
        fc.double({ min: -2, max: 102 }),
        fc.integer({ min: -2, max: 102 }),
        fc.constantFrom(0, -0, -1, -1e-300, 100, 100.000001, 101, EARLIEST - 1, EARLIEST, 1.5),
        fc.constantFrom(Number.MAX_SAFE_INTEGER, 2 ** 53, Number.POSITIVE_INFINITY, -Infinity, Number.NaN),
        fc.constantFrom("gps", "lbs", "wifi", "GPS", "", "80"),
        fc.jsonValue({ maxDepth: 1 }),
      );
      const keys = [...Object.keys(heartbeatSchema.shape), "extra", "__proto__", "constructor"];
      /** A valid heartbeat with one field set to anything, added or removed. */
      const oneFieldChanged = fc
        .tuple(validHeartbeat, fc.constantFrom(...keys), fc.option(fieldValue, { nil: undefined }))
        .map(([heartbeat, key, value]) => {
          const changed: Json = { ...heartbeat };
          if (value === undefined) delete changed[key];
          else Object.defineProperty(changed, key, { value, enumerable: true, writable: true });
          return changed;
        });
      const nearValidHeartbeat = nearValid
        .filter(({ channel }) => channel === "heartbeat")
        .map(({ payload }) => {
          try {
            return JSON.parse(payload) as unknown;
          } catch {
            return payload;
          }
        });
      const input = fc.oneof(
        validHeartbeat,
        { arbitrary: oneFieldChanged, weight: 6 },
        nearValidHeartbeat,
        fc.jsonValue(),
      );
      checkProperty("contract/heartbeat-by-hand", input, (value) => {
        const schema = heartbeatSchema.safeParse(value);
        expect(isHeartbeat(value)).toBe(schema.success);
        if (schema.success) expect(schema.data).toEqual(value);
      });
    },
    propertyTimeoutMs(),
  );
});
