import { describe, expect, it } from "vitest";
import { parseDeviceMessage } from "../../gateway/ingest/contract.ts";

const NOW = Date.UTC(2026, 10, 25, 12);
const limits = { maxPayloadBytes: 256, maxClockSkewMs: 60_000 };
const parse = (topic: string, payload: unknown) =>
  parseDeviceMessage(
    "btn-1",
    topic,
    Buffer.from(typeof payload === "string" ? payload : JSON.stringify(payload)),
    NOW,
    limits,
  );

describe("device contract v1", () => {
  it("accepts each event type and a heartbeat with or without a position", () => {
    for (const type of ["press", "cancel", "sos", "fall"]) {
      expect(parse("devices/btn-1/event", { type, ts: NOW, seq: 3 })).toEqual({
        ok: true,
        value: { channel: "event", message: { type, ts: NOW, seq: 3 } },
      });
    }
    expect(parse("devices/btn-1/heartbeat", { ts: NOW, seq: 1, battery: 80 })).toMatchObject({ ok: true });
    const fix = { ts: NOW, seq: 2, battery: 55.5, lat: 29.65, lon: 91.13, accuracy: 12, source: "gps" };
    expect(parse("devices/btn-1/heartbeat", fix)).toEqual({
      ok: true,
      value: { channel: "heartbeat", message: fix },
    });
  });

  it.each([
    ["devices/btn-2/event", { type: "press", ts: NOW, seq: 1 }, "acl"],
    ["devices/btn-1/command", { type: "received", alertId: "x" }, "acl"],
    ["devices/btn-1/event/extra", { type: "press", ts: NOW, seq: 1 }, "acl"],
    ["devices/btn-1", { type: "press", ts: NOW, seq: 1 }, "acl"],
    ["devices/btn-1/event", "not json", "bad-json"],
    ["devices/btn-1/event", { type: "press", ts: NOW, seq: 1, note: "x".repeat(300) }, "oversized"],
    ["devices/btn-1/event", { type: "press", ts: NOW, seq: 1.5 }, "schema"],
    ["devices/btn-1/event", { type: "PRESS", ts: NOW, seq: 1 }, "schema"],
    ["devices/btn-1/event", null, "schema"],
    ["devices/btn-1/heartbeat", { ts: NOW, seq: 1, battery: -1 }, "schema"],
    ["devices/btn-1/heartbeat", { ts: NOW, seq: 1, battery: 50, lat: "29.6", lon: 91.1 }, "schema"],
    ["devices/btn-1/heartbeat", { ts: NOW, seq: 1, battery: 50, source: "psychic" }, "schema"],
    ["devices/btn-1/event", { type: "press", ts: NOW + 60_001, seq: 1 }, "timestamp"],
    ["devices/btn-1/event", { type: "press", ts: 0, seq: 1 }, "timestamp"],
  ])("refuses %s %j as %s", (topic, payload, reason) => {
    expect(parse(topic, payload)).toMatchObject({ ok: false, reason, detail: expect.any(String) });
  });

  it("accepts an alarm that was buffered on the device and arrives late", () => {
    expect(parse("devices/btn-1/event", { type: "sos", ts: NOW - 6 * 3600_000, seq: 9 })).toMatchObject({
      ok: true,
    });
  });

  it("names the field that is wrong", () => {
    expect(parse("devices/btn-1/event", { type: "press", ts: NOW, seq: "1" })).toMatchObject({
      detail: expect.stringMatching(/^seq: /),
    });
  });
});
