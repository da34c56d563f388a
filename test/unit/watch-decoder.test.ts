import { describe, expect, it } from "vitest";
import { loadConfig } from "../../gateway/config/index.ts";
import {
  answerFor,
  defaultAlarmBits,
  encodeFrame,
  judgeAlarm,
  parseContent,
  utf16beHex,
  WatchFrameDecoder,
} from "../../gateway/protocols/watch/index.ts";

/** A frame as a watch sends it, its length computed as vendors do (content bytes, 4 hex digits). */
const frame = (content: string, id = "8800000015", maker = "3G") =>
  encodeFrame({ maker, deviceId: id }, content).toString("latin1");

const decode = (...chunks: (string | Buffer)[]) => {
  const decoder = new WatchFrameDecoder(1024);
  const frames = [];
  const problems = [];
  for (const chunk of chunks) {
    const out = decoder.push(typeof chunk === "string" ? Buffer.from(chunk, "latin1") : chunk);
    frames.push(...out.frames);
    problems.push(...out.problems);
  }
  return { frames, problems, buffered: decoder.buffered };
};

// Written from the vendors' protocol document: date, time, A/V, lat, N/S, lon, E/W, speed, course,
// altitude, satellites, GSM signal, battery, steps, tumbles, status, cells (count, TA, MCC, MNC,
// then LAC, CID, RSSI each), access points (count, then SSID, MAC, RSSI each), accuracy.
const UD =
  "UD,220414,134652,A,29.652470,N,91.132080,E,0.1,0.0,3650,7,60,90,1000,50,00000000,2,1,460,0,9360,4082,131,9360,4092,148,2,home,1c:fa:68:13:a5:b4,-61,office,1c:fa:68:13:a5:b5,-87,15.0";
const SOS_AL =
  "AL,220414,134700,A,29.652470,N,91.132080,E,0.0,0.0,3650,7,60,88,1000,50,00010000,1,1,460,0,9360,4082,131,0";

describe("watch frames", () => {
  it("reads a link frame and one with steps, tumbles and battery", () => {
    const { frames } = decode(frame("LK") + frame("LK,1200,3,87"));
    expect(frames.map((f) => f.content.toString())).toEqual(["LK", "LK,1200,3,87"]);
    expect(frames[0]).toMatchObject({ maker: "3G", deviceId: "8800000015" });
    expect(parseContent(frames[1]?.content ?? Buffer.alloc(0))).toEqual({
      type: "LK",
      kind: "link",
      battery: 87,
      steps: 1200,
    });
  });

  it("takes a 15-digit id, other maker codes and lower-case hex lengths", () => {
    const { frames, problems } = decode("[SG*356789012345678*000a*LK,0,0,55]");
    expect(problems).toEqual([]);
    expect(frames[0]).toMatchObject({ maker: "SG", deviceId: "356789012345678" });
  });

  it("reads the ZJ variant's index after the id", () => {
    const { frames } = decode("[ZJ*8800000015*0A1B*0002*LK]");
    expect(frames[0]).toMatchObject({ maker: "ZJ", deviceId: "8800000015", index: "0A1B" });
    expect(encodeFrame({ maker: "ZJ", deviceId: "8800000015", index: "0A1B" }, "LK").toString()).toBe(
      "[ZJ*8800000015*0A1B*0002*LK]",
    );
  });

  it("joins a frame split over segments, even byte by byte", () => {
    const whole = frame(UD);
    const bytes = [...whole].map((c) => c);
    const { frames, buffered } = decode(...bytes);
    expect(frames).toHaveLength(1);
    expect(frames[0]?.content.toString()).toBe(UD);
    expect(buffered).toBe(0);
  });

  it("cuts merged frames apart and skips garbage between and around them", () => {
    const { frames, problems } = decode(`\r\nnoise${frame("LK")}\x00\xff junk [ ${frame(SOS_AL)}tail`);
    expect(frames.map((f) => f.content.toString().split(",")[0])).toEqual(["LK", "AL"]);
    // A stray `[` before a frame is garbage like the rest: the frame starts at the last `[` before its `]`.
    expect(problems).toEqual([]);
  });

  it("unescapes binary content: 7D 01..05 are } [ ] , *", () => {
    const content = Buffer.concat([
      Buffer.from("TK,"),
      Buffer.from([0x7d, 0x01, 0x7d, 0x02, 0x7d, 0x03, 0x7d, 0x04, 0x7d, 0x05, 0x41]),
    ]);
    const raw = Buffer.concat([Buffer.from("[3G*8800000015*0009*"), content, Buffer.from("]")]);
    const { frames } = decode(raw);
    expect([...(frames[0]?.content ?? [])]).toEqual([
      ...Buffer.from("TK,"),
      0x7d,
      0x5b,
      0x5d,
      0x2c,
      0x2a,
      0x41,
    ]);
  });

  it("refuses malformed headers and keeps reading", () => {
    const { frames, problems } = decode(
      "[3G*12345*0002*LK]", // id of 5 digits
      "[3G*8800000015*00G2*LK]", // length not hex
      "[3G*8800000015*0002*]", // no content
      "[]",
      frame("LK"),
    );
    expect(problems.map((p) => p.kind)).toEqual(["malformed", "malformed", "malformed", "malformed"]);
    expect(frames).toHaveLength(1);
  });

  it("reports a frame over the limit, ended or not, and holds no more than the limit", () => {
    const decoder = new WatchFrameDecoder(64);
    const open = decoder.push(Buffer.from(`[3G*8800000015*0100*UD,${"1".repeat(100)}`));
    expect(open.problems).toEqual([{ kind: "oversized", bytes: 123 }]);
    const ended = new WatchFrameDecoder(64).push(Buffer.from(`[3G*8800000015*0100*UD,${"1".repeat(100)}]`));
    expect(ended.problems[0]?.kind).toBe("oversized");
    expect(ended.frames).toEqual([]);
  });

  it("reads a frame whose Wi-Fi names hold [ and ] by its declared length, whole or split before them", () => {
    const withBrackets = UD.replace("home", "TP-LINK_[5G]").replace("office", "]office[");
    const whole = frame(withBrackets);
    const cut = whole.indexOf("TP-LINK");
    for (const chunks of [[whole], [whole.slice(0, cut), whole.slice(cut)], [`junk[${whole}`]]) {
      const { frames, problems } = decode(...chunks);
      expect(problems).toEqual([]);
      expect(frames.map((f) => f.content.toString("latin1"))).toEqual([withBrackets]);
    }
    // Firmware that counts characters, not bytes: the first ] ends it, as before.
    const miscounted = `[3G*8800000015*0001*LK,0,0,80]${frame("LK")}`;
    expect(decode(miscounted).frames.map((f) => f.content.toString())).toEqual(["LK,0,0,80", "LK"]);
  });

  it("drops bytes that can never start a frame", () => {
    expect(decode("x".repeat(5000)).buffered).toBe(0);
  });
});

describe("watch messages", () => {
  const parse = (content: string) => parseContent(Buffer.from(content));

  it("reads a live position with its cells, access points and accuracy", () => {
    const m = parse(UD);
    expect(m).toMatchObject({ type: "UD", kind: "position", late: false });
    if (m.kind !== "position") throw new Error("not a position");
    expect(m.report).toEqual({
      ts: Date.UTC(2014, 3, 22, 13, 46, 52), // ddmmyy hhmmss, UTC
      fixValid: true,
      lat: 29.65247,
      lon: 91.13208,
      speedKmh: 0.1,
      battery: 90,
      status: 0,
      cells: [
        { mcc: 460, mnc: 0, lac: 9360, cid: 4082, rssi: 131 },
        { mcc: 460, mnc: 0, lac: 9360, cid: 4092, rssi: 148 },
      ],
      accessPoints: [
        { ssid: "home", mac: "1c:fa:68:13:a5:b4", rssi: -61 },
        { ssid: "office", mac: "1c:fa:68:13:a5:b5", rssi: -87 },
      ],
      accuracy: 15,
    });
  });

  it("drops the NUL padding some watches leave in Wi-Fi names (PostgreSQL stores no NUL)", () => {
    const m = parse(UD.replace(",home,", ",home\0\0,"));
    if (m.kind !== "position") throw new Error("not a position");
    expect(m.report.accessPoints?.[0]?.ssid).toBe("home");
  });

  it("reads UD_LTE and UD_WCDMA as live, UD2 as late, south and west as negative", () => {
    const fields = UD.replace(",N,", ",S,").replace(",E,", ",W,").split(",").slice(1).join(",");
    for (const type of ["UD_LTE", "UD_WCDMA"])
      expect(parse(`${type},${fields}`)).toMatchObject({ kind: "position", late: false });
    const late = parse(`UD2,${fields}`);
    expect(late).toMatchObject({ kind: "position", late: true, report: { lat: -29.65247, lon: -91.13208 } });
  });

  it("reads a position without a fix, and one with an impossible date, without inventing either", () => {
    const m = parse(
      "UD,320414,250000,V,0.000000,N,0.000000,E,0,0,0,0,40,75,0,0,00000000,1,1,460,0,9360,4082,131,0",
    );
    expect(m).toMatchObject({ kind: "position", report: { ts: undefined, fixValid: false, battery: 75 } });
    // Month 13, minute 60, second 60: each rolls over in Date.UTC, and each is refused.
    for (const [date, time] of [
      ["011326", "120000"],
      ["010126", "126000"],
      ["010126", "120060"],
    ])
      expect(parse(`UD,${date},${time},A,29.6,N,91.1,E,0,0,0,0,40,75,0,0,00000000,0,0`)).toMatchObject({
        report: { ts: undefined },
      });
    expect(parse("UD,010126,235959,A,29.6,N,91.1,E,0,0,0,0,40,75,0,0,00000000,0,0")).toMatchObject({
      report: { ts: Date.UTC(2026, 0, 1, 23, 59, 59) },
    });
  });

  it("reads alarms, AL_LTE and vendor variants alike", () => {
    for (const type of ["AL", "AL_LTE", "ALCUSTOMER1"]) {
      const m = parse(SOS_AL.replace(/^AL/, type));
      expect(m).toMatchObject({ kind: "alarm", report: { status: 0x00010000 } });
      expect(answerFor(type)).toBe("AL");
    }
  });

  it("reads health frames as named values", () => {
    expect(parse("bphrt,128,82,71,,,,")).toEqual({
      type: "bphrt",
      kind: "health",
      values: { systolic: 128, diastolic: 82, heartRate: 71 },
    });
    expect(parse("heart,74")).toMatchObject({ values: { heartRate: 74 } });
    expect(parse("oxygen,97")).toMatchObject({ values: { spo2: 97 } });
    expect(parse("btemp2,1,36.6")).toMatchObject({ values: { mode: 1, bodyTempC: 36.6 } });
  });

  it("answers the frames a watch waits for, and only those", () => {
    for (const type of ["LK", "TKQ", "TKQ2", "CONFIG", "bphrt", "heart", "oxygen", "btemp2"])
      expect(answerFor(type)).toBe(type);
    expect(answerFor("INIT")).toBe("INIT,1");
    for (const type of ["UD", "UD2", "UD_LTE", "CR", "MESSAGE", "XYZ"])
      expect(answerFor(type)).toBeUndefined();
  });

  it("encodes a MESSAGE text as UTF-16BE hex", () => {
    expect(utf16beHex("医生")).toBe("533B751F");
    expect(utf16beHex("Hi")).toBe("00480069");
  });
});

describe("watch alarm bits", () => {
  it("SOS at bit 16, fall at 21 outranks it, removed is an SOS, low battery noted", () => {
    expect(judgeAlarm(1 << 16, defaultAlarmBits)).toEqual({
      event: "sos",
      alarms: ["sos"],
      lowBattery: false,
    });
    expect(judgeAlarm((1 << 16) | (1 << 21), defaultAlarmBits).event).toBe("fall");
    expect(judgeAlarm(1 << 20, defaultAlarmBits)).toMatchObject({ event: "sos", alarms: ["removed"] });
    expect(judgeAlarm(1 << 17, defaultAlarmBits)).toEqual({
      event: undefined,
      alarms: ["low-battery"],
      lowBattery: true,
    });
    expect(judgeAlarm(1 << 18, defaultAlarmBits).event).toBeUndefined();
  });

  it("an alarm with no known bit is an SOS: a watch that says alarm is never dropped", () => {
    expect(judgeAlarm(0, defaultAlarmBits).event).toBe("sos");
    expect(judgeAlarm((1 << 23) | 1, defaultAlarmBits).event).toBe("sos");
  });

  it("a model's override can silence a bit it misuses and name another", () => {
    const model = { ...defaultAlarmBits, 16: "ignore", 22: "sos" } as const;
    expect(judgeAlarm(1 << 16, model).event).toBeUndefined();
    expect(judgeAlarm(1 << 22, model).event).toBe("sos");
  });
});

describe("watch settings", () => {
  const load = (env: Record<string, string>) =>
    loadConfig({ WEBHOOK_SECRET: "test-webhook-secret-0123456789", ...env });

  it("reads a per-model bit map, and says what is wrong with a bad one", () => {
    expect(load({ WATCH_ALARM_BITS: '{"SG": {"16": "ignore", "22": "sos"}}' }).WATCH_ALARM_BITS).toEqual({
      SG: { 16: "ignore", 22: "sos" },
    });
    expect(() => load({ WATCH_ALARM_BITS: "{" })).toThrow("WATCH_ALARM_BITS: must be JSON");
    expect(() => load({ WATCH_ALARM_BITS: '{"SG": {"40": "sos"}}' })).toThrow("a bit number 0-31");
    expect(() => load({ WATCH_ALARM_BITS: '{"SG": {"16": "panic"}}' })).toThrow("WATCH_ALARM_BITS");
  });

  it("takes addresses and ranges as the allow-list, never host names", () => {
    expect(load({ WATCH_ALLOW_FROM: "10.0.0.0/8, 192.168.1.7" }).WATCH_ALLOW_FROM).toEqual([
      "10.0.0.0/8",
      "192.168.1.7",
    ]);
    expect(() => load({ WATCH_ALLOW_FROM: "watches.example.org" })).toThrow(
      "WATCH_ALLOW_FROM: 'watches.example.org' is not an IP address or a CIDR range",
    );
  });

  it("is off unless a port is given", () => {
    expect(load({}).WATCH_PORT).toBe(0);
  });
});
