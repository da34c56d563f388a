import { describe, expect, it } from "vitest";
import { en } from "../../dashboard/src/messages/en.ts";
import { zhCN } from "../../dashboard/src/messages/zh-CN.ts";
import { Errors, zoneRefusals } from "../../gateway/errors.ts";
import { type AlertSummary, compose } from "../../gateway/notify/messages.ts";
import {
  type Fix,
  type GeofenceShape,
  geofenceShapeSchema,
  isInForce,
  judgeFix,
  newZoneTrack,
  signedDistanceM,
  type ZoneRules,
  type ZoneTrack,
  zoneRefusalOf,
} from "../../gateway/rules/geofence.ts";
import { haversineM } from "../../gateway/rules/geometry.ts";

// Around the Potala Palace, Lhasa. A degree of latitude is about 111 km; of longitude here, about 97 km.
const C: [number, number] = [91.1172, 29.6578];
const M_PER_DEG = (6_371_008.8 * Math.PI) / 180;
const at = (dEastM: number, dNorthM: number): [number, number] => [
  C[0] + dEastM / (M_PER_DEG * Math.cos((C[1] * Math.PI) / 180)),
  C[1] + dNorthM / M_PER_DEG,
];
const square = (halfM: number): GeofenceShape => {
  const [a, b, c, d] = [at(-halfM, -halfM), at(halfM, -halfM), at(halfM, halfM), at(-halfM, halfM)];
  return { type: "Polygon", coordinates: [[a, b, c, d, a]] };
};
// An L shape: the square's north-east quarter is cut out.
const ell: GeofenceShape = {
  type: "Polygon",
  coordinates: [
    [at(-100, -100), at(100, -100), at(100, 0), at(0, 0), at(0, 100), at(-100, 100), at(-100, -100)],
  ],
};

describe("geofence geometry", () => {
  it("measures distances like a map does", () => {
    expect(haversineM(at(0, 0), at(300, 400))).toBeCloseTo(500, -1);
  });

  it("gives a signed distance to a circle's edge", () => {
    const circle: GeofenceShape = { type: "Circle", center: C, radiusM: 200 };
    expect(signedDistanceM(circle, at(0, 0))).toBeCloseTo(-200, 0);
    expect(signedDistanceM(circle, at(150, 0))).toBeCloseTo(-50, 0);
    expect(signedDistanceM(circle, at(0, 260))).toBeCloseTo(60, 0);
  });

  it("gives a signed distance to a polygon's nearest edge", () => {
    expect(signedDistanceM(square(100), at(0, 0))).toBeCloseTo(-100, 0);
    expect(signedDistanceM(square(100), at(90, 0))).toBeCloseTo(-10, 0);
    expect(signedDistanceM(square(100), at(130, 0))).toBeCloseTo(30, 0);
    expect(signedDistanceM(square(100), at(130, 140))).toBeCloseTo(50, 0); // past a corner
  });

  it("handles a concave polygon: the notch is outside", () => {
    expect(signedDistanceM(ell, at(-50, 50))).toBeLessThan(0);
    expect(signedDistanceM(ell, at(50, -50))).toBeLessThan(0);
    expect(signedDistanceM(ell, at(50, 50))).toBeCloseTo(50, 0);
    expect(signedDistanceM(ell, at(5, 5))).toBeCloseTo(5, 0);
  });

  it("treats a hole as outside", () => {
    const [a, b, c, d] = [at(-20, -20), at(20, -20), at(20, 20), at(-20, 20)];
    const withHole: GeofenceShape = {
      type: "Polygon",
      coordinates: [...(square(100) as { coordinates: [number, number][][] }).coordinates, [a, d, c, b, a]],
    };
    expect(signedDistanceM(withHole, at(0, 0))).toBeCloseTo(20, 0);
    expect(signedDistanceM(withHole, at(50, 0))).toBeLessThan(0);
  });

  it("is exact enough a metre from the edge", () => {
    expect(signedDistanceM(square(100), at(99, 0))).toBeCloseTo(-1, 0);
    expect(signedDistanceM(square(100), at(101, 0))).toBeCloseTo(1, 0);
  });
});

describe("geofence input", () => {
  const issues = (shape: unknown) => {
    const r = geofenceShapeSchema.safeParse(shape);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
  };
  it("refuses a self-intersecting polygon, saying which edges cross", () => {
    const bowtie = [at(-100, -100), at(100, 100), at(100, -100), at(-100, 100), at(-100, -100)];
    expect(issues({ type: "Polygon", coordinates: [bowtie] })).toEqual([
      "coordinates.0: the ring crosses itself (edges 0 and 2)",
    ]);
  });
  it("refuses open rings, too few points, bad coordinates and silly radii", () => {
    expect(issues({ type: "Polygon", coordinates: [[at(0, 0), at(10, 0), at(0, 10), at(5, 5)]] })).toEqual([
      "coordinates.0: a ring must end where it starts",
    ]);
    expect(issues({ type: "Polygon", coordinates: [[at(0, 0), at(10, 0), at(0, 0)]] })[0]).toMatch(
      /at least 4/,
    );
    expect(issues({ type: "Circle", center: [191, 29], radiusM: 100 })).toEqual([
      "center.0: longitude must be within -180..180",
    ]);
    expect(issues({ type: "Circle", center: C, radiusM: 1 })).toEqual([
      "radiusM: radius must be at least 10 m",
    ]);
    expect(issues({ type: "Hexagon" })).toHaveLength(1);
  });
  it("names what a person drew wrong by a code the page translates", () => {
    const reason = (shape: unknown) =>
      zoneRefusalOf(geofenceShapeSchema.safeParse(shape).error?.issues ?? [])?.reason;
    const bowtie = [at(-100, -100), at(100, 100), at(100, -100), at(-100, 100), at(-100, -100)];
    expect(reason({ type: "Polygon", coordinates: [bowtie] })).toBe("zone_self_intersecting");
    expect(reason({ type: "Polygon", coordinates: [[at(0, 0), at(10, 0), at(0, 0)]] })).toBe(
      "zone_too_few_corners",
    );
    const line = [at(0, 0), at(10, 0), at(20, 0), at(0, 0)];
    expect(reason({ type: "Polygon", coordinates: [line] })).toBe("zone_no_area");
    const far = [at(500, 500), at(520, 500), at(520, 520), at(500, 500)];
    expect(
      reason({
        type: "Polygon",
        coordinates: [...(square(100) as { coordinates: [number, number][][] }).coordinates, far],
      }),
    ).toBe("zone_hole_outside");
    // A mistyped coordinate is no drawing mistake: the schema's own refusal says what it is.
    expect(reason({ type: "Circle", center: [191, 29], radiusM: 100 })).toBeUndefined();
    expect(reason(ell)).toBeUndefined();
  });
  it("has each refusal's code said on the page in Chinese and English", () => {
    for (const reason of zoneRefusals) {
      const key = `error.${Errors.badZone(reason, "").code}` as keyof typeof en;
      expect(en[key], reason).toBeTruthy();
      expect(zhCN[key], reason).toBeTruthy();
    }
  });
  it("accepts a concave polygon and a circle", () => {
    expect(issues(ell)).toEqual([]);
    expect(issues({ type: "Circle", center: C, radiusM: 300 })).toEqual([]);
  });
});

describe("school hours", () => {
  const school = {
    timeZone: "Asia/Shanghai",
    windows: [{ days: [1, 2, 3, 4, 5], from: "08:00", to: "17:00" }],
  };
  it("applies Monday to Friday 08:00-17:00 Beijing time only", () => {
    // 2026-11-25 is a Wednesday. 00:30 UTC is 08:30 in Beijing.
    expect(isInForce(school, Date.UTC(2026, 10, 25, 0, 30))).toBe(true);
    expect(isInForce(school, Date.UTC(2026, 10, 24, 23, 59))).toBe(false); // 07:59
    expect(isInForce(school, Date.UTC(2026, 10, 25, 9, 0))).toBe(false); // 17:00
    expect(isInForce(school, Date.UTC(2026, 10, 28, 2, 0))).toBe(false); // Saturday 10:00
    expect(isInForce(null, 0)).toBe(true);
  });
  it("ends school hours at 16:30 sharp, and a window may run to 24:00", () => {
    const schoolDay = {
      timeZone: "Asia/Shanghai",
      windows: [{ days: [1, 2, 3, 4, 5], from: "08:00", to: "16:30" }],
    };
    expect(isInForce(schoolDay, Date.UTC(2026, 10, 25, 8, 29))).toBe(true); // 16:29
    expect(isInForce(schoolDay, Date.UTC(2026, 10, 25, 8, 30))).toBe(false); // 16:30
    const evenings = { timeZone: "Asia/Shanghai", windows: [{ days: [3], from: "20:00", to: "24:00" }] };
    expect(isInForce(evenings, Date.UTC(2026, 10, 25, 15, 59))).toBe(true); // Wednesday 23:59
    expect(isInForce(evenings, Date.UTC(2026, 10, 25, 16, 0))).toBe(false); // Thursday 00:00
  });
});

describe("a geofence alert's words", () => {
  const about = (fixAgeSec: number | null): AlertSummary => ({
    event: "paged",
    alertId: "a-1",
    kind: "geofence-exit",
    state: "open",
    level: 1,
    openedAt: new Date(0).toISOString(),
    presses: 1,
    deviceId: "tag-1",
    unreached: false,
    exhausted: false,
    outcome: null,
    subject: { id: "c-1", name: "卓玛", address: null, phone: null },
    device: null,
    zone: { id: "school", name: "特教学校", distanceM: 120, fixAgeSec },
    notified: [],
    acceptedBy: null,
    link: null,
  });
  it("say which zone, how far outside and how old the fix is, in Chinese and English", () => {
    expect(compose(about(130), "zh-CN").text).toBe(
      "卓玛离开安全区（第1级），离开「特教学校」约 120 米，定位于 2 分钟前",
    );
    expect(compose(about(130), "en").text).toBe(
      "卓玛: left safe zone (level 1), 120 m outside 特教学校, fix 2 min old",
    );
    expect(compose(about(null), "en").text).toBe("卓玛: left safe zone (level 1), 120 m outside 特教学校");
  });
});

describe("exit and return decisions", () => {
  const rules: ZoneRules = { maxAccuracyM: 50, marginM: 20, exitFixes: 3, returnFixes: 2 };
  const zone = { shape: { type: "Circle", center: C, radiusM: 200 } as GeofenceShape, schedule: null };
  const T0 = Date.UTC(2026, 10, 25, 2);
  const fix = (i: number, northM: number, accuracy = 10): Fix => {
    const [lon, lat] = at(0, northM);
    return { ts: T0 + i * 30_000, lat, lon, accuracy };
  };
  const run = (fixes: Fix[], track: ZoneTrack = newZoneTrack()) => {
    const changes: string[] = [];
    for (const f of fixes) {
      const r = judgeFix(track, zone, f, rules);
      track = r.next;
      if (r.change) changes.push(`${r.change}@${(f.ts - T0) / 30_000}`);
    }
    return { changes, track };
  };

  it("declares an exit only after three fixes surely outside", () => {
    expect(run([fix(0, 0), fix(1, 300), fix(2, 310), fix(3, 320)]).changes).toEqual(["exit@3"]);
  });

  it("ignores one wild fix outside (jitter), and inaccurate ones altogether", () => {
    expect(run([fix(0, 0), fix(1, 400), fix(2, 10), fix(3, 400), fix(4, 20)]).changes).toEqual([]);
    expect(run([fix(0, 0), fix(1, 400, 300), fix(2, 400, 300), fix(3, 400, 300)]).changes).toEqual([]);
  });

  it("does not count fixes within the margin (accuracy included) as outside", () => {
    // 228 m from the centre: 28 m out, but with 10 m accuracy only 18 m surely out, within the 20 m margin.
    expect(run([fix(1, 228), fix(2, 228), fix(3, 228), fix(4, 235)]).changes).toEqual([]);
  });

  it("needs two fixes back inside to declare a return", () => {
    const { changes } = run([
      fix(1, 300),
      fix(2, 300),
      fix(3, 300),
      fix(4, 100),
      fix(5, 300),
      fix(6, 100),
      fix(7, 90),
    ]);
    expect(changes).toEqual(["exit@3", "return@7"]);
  });

  it("decides in device-time order: an older fix arriving late is ignored", () => {
    const { changes } = run([fix(1, 300), fix(2, 300), fix(0, 300), fix(3, 0)]);
    expect(changes).toEqual([]);
  });

  it("only watches inside the zone's time window", () => {
    const school = {
      timeZone: "Asia/Shanghai",
      windows: [{ days: [1, 2, 3, 4, 5], from: "08:00", to: "17:00" }],
    };
    const evening = Date.UTC(2026, 10, 25, 11); // 19:00 in Beijing
    let track = newZoneTrack();
    for (let i = 0; i < 5; i++) {
      const r = judgeFix(
        track,
        { ...zone, schedule: school },
        { ...fix(0, 400), ts: evening + i * 30_000 },
        rules,
      );
      expect(r.change).toBeUndefined();
      track = r.next;
    }
  });
});
