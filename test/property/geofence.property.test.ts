import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type Fix,
  type GeofenceShape,
  geofenceShapeSchema,
  isInForce,
  judgeFix,
  newZoneTrack,
  type Schedule,
  scheduleSchema,
  signedDistanceM,
  type ZoneRules,
} from "../../gateway/rules/geofence.ts";
import { findSelfIntersection, type LonLat, ringAreaM2 } from "../../gateway/rules/geometry.ts";
import { checkProperty, propertyTimeoutMs } from "./fuzz.ts";

const EARTH_RADIUS_M = 6_371_008.8;
const M_PER_DEG = (EARTH_RADIUS_M * Math.PI) / 180;
const rad = (deg: number) => (deg * Math.PI) / 180;
const deg = (r: number) => (r * 180) / Math.PI;
const wrapLon = (lon: number) => ((((lon + 180) % 360) + 360) % 360) - 180;
const T0 = Date.UTC(2026, 10, 25, 12);

/** A point `eastM`, `northM` from `c` on a local flat map (the scale of a school or a compound). */
const offset = (c: LonLat, eastM: number, northM: number): LonLat => [
  wrapLon(c[0] + eastM / (M_PER_DEG * Math.cos(rad(c[1])))),
  c[1] + northM / M_PER_DEG,
];

/** The point `distanceM` from `from` along the great circle leaving it at `bearing` (radians from north). */
function destination(from: LonLat, bearing: number, distanceM: number): LonLat {
  const d = distanceM / EARTH_RADIUS_M;
  const [lon1, lat1] = [rad(from[0]), rad(from[1])];
  const lat2 = Math.asin(Math.sin(lat1) * Math.cos(d) + Math.cos(lat1) * Math.sin(d) * Math.cos(bearing));
  const lon2 =
    lon1 +
    Math.atan2(
      Math.sin(bearing) * Math.sin(d) * Math.cos(lat1),
      Math.cos(d) - Math.sin(lat1) * Math.sin(lat2),
    );
  return [wrapLon(deg(lon2)), deg(lat2)];
}

/** Every issue of a refusal names where it is and what is wrong. */
function expectReadableIssues(result: { success: boolean; error?: { issues: unknown[] } }) {
  if (result.success) return;
  const issues = result.error?.issues ?? [];
  expect(issues.length).toBeGreaterThan(0);
  for (const issue of issues as { path: unknown; message: unknown }[]) {
    expect(Array.isArray(issue.path)).toBe(true);
    for (const key of issue.path as unknown[]) expect(["string", "number"]).toContain(typeof key);
    expect(issue.message).toEqual(expect.stringMatching(/\S/));
  }
}

// Fix accuracy is not what these properties are about: count every fix, exit or return at once.
const eager = (marginM: number): ZoneRules => ({
  maxAccuracyM: Number.MAX_VALUE,
  marginM,
  exitFixes: 1,
  returnFixes: 1,
});
const fixAt = ([lon, lat]: LonLat, accuracy = 0): Fix => ({ ts: T0, lat, lon, accuracy });

const anyNumber = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.constantFrom(-180, 180, -90, 90, 10, 50_000, 1e-300, -0),
);
const position = fc.oneof(
  fc.tuple(fc.double({ min: -180, max: 180, noNaN: true }), fc.double({ min: -90, max: 90, noNaN: true })),
  fc.array(anyNumber, { maxLength: 4 }),
);
const ringish = fc.oneof(
  fc.array(position, { maxLength: 12 }),
  fc.array(position, { minLength: 3, maxLength: 12 }).map((r) => [...r, r[0]]),
);
const nearValidShape = fc.oneof(
  fc.record(
    {
      type: fc.constantFrom("Circle", "circle", "Polygon", "Point"),
      center: fc.oneof(position, fc.jsonValue()),
      radiusM: fc.oneof(anyNumber, fc.jsonValue()),
      extra: fc.jsonValue(),
    },
    { requiredKeys: ["type"] },
  ),
  fc.record(
    {
      type: fc.constantFrom("Polygon", "Circle", "MultiPolygon"),
      coordinates: fc.oneof(fc.array(ringish, { maxLength: 3 }), fc.jsonValue()),
    },
    { requiredKeys: ["type"] },
  ),
);

const knownZones = Intl.supportedValuesOf("timeZone");
const timeZone = fc.oneof(
  fc.constantFrom(...knownZones),
  fc.constantFrom(...knownZones).map((tz) => tz.toLowerCase()),
  fc.constantFrom("UTC", "utc", "Etc/GMT+12", "Etc/GMT-14", "EST5EDT", "Z", "", " UTC", "+05:30", "GMT+8"),
  fc.constantFrom("Asia/Shanghai\u0000", "Mars/Olympus", "../../etc/passwd", "Europe/Lon don", "Ω"),
  fc.string({ unit: "binary", maxLength: 30 }),
);
const clockTime = fc
  .tuple(fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 }))
  .map(([h, m]) => `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}`);
const window = fc
  .record({
    days: fc.uniqueArray(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 7 }),
    from: clockTime,
    to: clockTime,
  })
  .filter((w) => w.from < w.to);
const nearValidSchedule = fc.record(
  {
    timeZone: fc.oneof(timeZone, fc.jsonValue()),
    windows: fc.oneof(
      fc.array(window, { maxLength: 3 }),
      fc.array(
        fc.record(
          {
            days: fc.oneof(fc.array(anyNumber, { maxLength: 8 }), fc.jsonValue()),
            from: fc.oneof(clockTime, fc.string({ maxLength: 6 }), fc.constantFrom("24:00", "7:00", "08:60")),
            to: fc.oneof(clockTime, fc.string({ maxLength: 6 }), fc.jsonValue()),
          },
          { requiredKeys: [] },
        ),
        { maxLength: 3 },
      ),
      fc.jsonValue(),
    ),
  },
  { requiredKeys: [] },
);
/** Device times a fix may carry: after 2020, up to the end of the century. */
const deviceTime = fc.integer({ min: Date.UTC(2020, 0, 1), max: Date.UTC(2100, 0, 1) });

/** `count` angles around a circle, in order, at least 5 degrees apart; the polygon through them is convex. */
const convexAngles = (min: number, max: number) =>
  fc
    .uniqueArray(fc.integer({ min: 0, max: 71 }), { minLength: min, maxLength: max })
    .chain((slots) =>
      fc.tuple(
        ...slots
          .sort((a, b) => a - b)
          .map((slot) => fc.double({ min: slot * 5, max: slot * 5 + 2, noNaN: true }).map(rad)),
      ),
    );
/** Anywhere people live, the antimeridian (Fiji, Chukotka) included. */
const site = fc.record({
  center: fc.tuple(
    fc.oneof(
      fc.double({ min: -180, max: 180, noNaN: true }),
      fc.constantFrom(-180, 180, 179.9999, -179.9999),
    ),
    fc.double({ min: -80, max: 80, noNaN: true }),
  ),
  radiusM: fc.double({ min: 20, max: 20_000, noNaN: true }),
});
/** Whether the polygon through these angles (in order) holds the centre of their circle. */
const surroundsCentre = (angles: number[]) =>
  angles.every((a, i) => (angles[i + 1] ?? (angles[0] as number) + 2 * Math.PI) - a < rad(170));
const vertexAt = (c: LonLat, radiusM: number, angle: number) =>
  offset(c, radiusM * Math.cos(angle), radiusM * Math.sin(angle));
const polygon = (ring: LonLat[]): GeofenceShape => ({
  type: "Polygon",
  coordinates: [[...ring, ring[0] as LonLat]],
});

describe("geofence input, for any JSON", () => {
  it(
    "never throws validating a shape, and a refusal says where and what",
    () => {
      const input = fc.oneof(fc.jsonValue(), fc.anything(), nearValidShape);
      checkProperty("geofence/any-shape", input, (value) => {
        const result = geofenceShapeSchema.safeParse(value);
        expectReadableIssues(result);
        if (!result.success) return;
        // Whatever is accepted is a shape the rules can measure against.
        const shape = result.data;
        if (shape.type === "Polygon") {
          for (const ring of shape.coordinates) {
            expect(ring.length).toBeGreaterThanOrEqual(4);
            expect(ring.at(-1)).toEqual(ring[0]);
            expect(findSelfIntersection(ring as LonLat[])).toBeUndefined();
            expect(ringAreaM2(ring as LonLat[])).toBeGreaterThanOrEqual(1);
          }
        }
        const anchor = shape.type === "Circle" ? shape.center : (shape.coordinates[0]?.[0] as LonLat);
        expect(Number.isNaN(signedDistanceM(shape, anchor))).toBe(false);
      });
    },
    propertyTimeoutMs(),
  );

  it(
    "never throws validating a schedule; an accepted one answers for any time",
    () => {
      const input = fc.tuple(fc.oneof(fc.jsonValue(), fc.anything(), nearValidSchedule), deviceTime);
      checkProperty("geofence/any-schedule", input, ([value, ts]) => {
        const result = scheduleSchema.safeParse(value);
        expectReadableIssues(result);
        if (result.success) expect(typeof isInForce(result.data, ts)).toBe("boolean");
      });
    },
    propertyTimeoutMs(),
  );
});

describe("circles", () => {
  it(
    "hold their centre and nearer points inside, and a point beyond radius and margin outside",
    () => {
      const input = fc.record({
        center: fc.tuple(
          fc.double({ min: -180, max: 180, noNaN: true }),
          fc.double({ min: -90, max: 90, noNaN: true }),
        ),
        radiusM: fc.double({ min: 10, max: 50_000, noNaN: true }),
        marginM: fc.double({ min: 0, max: 1000, noNaN: true }),
        bearing: fc.double({ min: 0, max: 2 * Math.PI, noNaN: true }),
        inward: fc.double({ min: 0, max: 1, noNaN: true }),
        beyondM: fc.double({ min: 1, max: 5_000_000, noNaN: true }),
        accuracyShare: fc.double({ min: 0, max: 0.5, noNaN: true }),
      });
      checkProperty("geofence/circle", input, (c) => {
        const shape = geofenceShapeSchema.parse({ type: "Circle", center: c.center, radiusM: c.radiusM });
        const zone = { shape, schedule: null };
        const rules = eager(c.marginM);
        expect(signedDistanceM(shape, c.center)).toBeCloseTo(-c.radiusM, 3);
        const nearer = destination(c.center, c.bearing, c.inward * (c.radiusM - 0.1));
        expect(signedDistanceM(shape, nearer)).toBeLessThan(0);
        const returned = judgeFix({ status: "outside", streak: 0, lastTs: 0 }, zone, fixAt(nearer), rules);
        expect(returned.change).toBe("return");

        const far = destination(c.center, c.bearing, c.radiusM + c.marginM + c.beyondM);
        expect(signedDistanceM(shape, far)).toBeGreaterThan(c.marginM);
        // Even allowing for the fix's accuracy, it is surely outside.
        const exited = judgeFix(newZoneTrack(), zone, fixAt(far, c.accuracyShare * c.beyondM), rules);
        expect(exited.change).toBe("exit");
      });
    },
    propertyTimeoutMs(),
  );
});

describe("convex polygons", () => {
  it(
    "are accepted in either direction, hold their centroid inside, and a far point outside",
    () => {
      const input = fc.record({
        site,
        angles: convexAngles(3, 24).filter(surroundsCentre),
        clockwise: fc.boolean(),
        start: fc.nat(),
        marginM: fc.double({ min: 0, max: 1000, noNaN: true }),
        bearing: fc.double({ min: 0, max: 2 * Math.PI, noNaN: true }),
        beyondM: fc.double({ min: 10, max: 50_000, noNaN: true }),
      });
      checkProperty("geofence/convex-polygon", input, (p) => {
        const { center, radiusM } = p.site;
        let ring = p.angles.map((a) => vertexAt(center, radiusM, a));
        if (p.clockwise) ring.reverse();
        const k = p.start % ring.length;
        ring = [...ring.slice(k), ...ring.slice(0, k)];
        const shape = polygon(ring);
        expect(geofenceShapeSchema.safeParse(shape)).toMatchObject({ success: true });

        // The average of the vertices, taken on the local map, lies inside a convex polygon.
        const mean = (f: (a: number) => number) => p.angles.reduce((s, a) => s + f(a), 0) / p.angles.length;
        const centroid = offset(center, radiusM * mean(Math.cos), radiusM * mean(Math.sin));
        expect(signedDistanceM(shape, centroid)).toBeLessThan(0);
        expect(signedDistanceM(shape, center)).toBeLessThan(0);
        const zone = { shape, schedule: null };
        const rules = eager(p.marginM);
        const outside = { status: "outside" as const, streak: 0, lastTs: 0 };
        expect(judgeFix(outside, zone, fixAt(centroid), rules).change).toBe("return");

        // The polygon lies within `radiusM` of the centre; allow 20% for the flat-map approximation.
        const distanceM = 1.2 * (radiusM + p.marginM) + p.beyondM;
        const far = offset(center, distanceM * Math.sin(p.bearing), distanceM * Math.cos(p.bearing));
        expect(signedDistanceM(shape, far)).toBeGreaterThan(p.marginM);
        expect(judgeFix(newZoneTrack(), zone, fixAt(far), rules).change).toBe("exit");
      });
    },
    propertyTimeoutMs(),
  );
});

describe("polygons with a hole", () => {
  it(
    "count a point in the hole as outside, as far out as the hole's edge; the band around it inside",
    () => {
      const input = fc.record({
        site,
        angles: convexAngles(3, 24).filter(surroundsCentre),
        scale: fc.double({ min: 0.3, max: 0.8, noNaN: true }),
        pick: fc.nat(),
      });
      checkProperty("geofence/polygon-hole", input, ({ site: { center, radiusM }, angles, scale, pick }) => {
        const outer = polygon(angles.map((a) => vertexAt(center, radiusM, a))) as { coordinates: LonLat[][] };
        // The same outline shrunk around the centre, the other way round: a hole well inside.
        const hole = angles.map((a) => vertexAt(center, radiusM * scale, a)).reverse();
        const shape: GeofenceShape = {
          type: "Polygon",
          coordinates: [...outer.coordinates, [...hole, hole[0] as LonLat]],
        };
        expect(geofenceShapeSchema.safeParse(shape)).toMatchObject({ success: true });

        const toOuterEdge = -signedDistanceM(outer as GeofenceShape, center);
        expect(toOuterEdge).toBeGreaterThan(0);
        const inHole = signedDistanceM(shape, center);
        expect(inHole).toBeCloseTo(scale * toOuterEdge, 3);
        expect(judgeFix(newZoneTrack(), { shape, schedule: null }, fixAt(center), eager(0)).change).toBe(
          "exit",
        );

        // Halfway between the hole's corner and the outline's, on the ray from the centre: inside.
        const a = angles[pick % angles.length] as number;
        expect(signedDistanceM(shape, vertexAt(center, (radiusM * (1 + scale)) / 2, a))).toBeLessThan(0);
      });
    },
    propertyTimeoutMs(),
  );
});

describe("self-intersecting polygons", () => {
  it(
    "are refused, naming two edges that really cross",
    () => {
      // Points on a circle visited in any order but around it cross somewhere (a bow-tie at least).
      const input = fc
        .record({
          site,
          angles: convexAngles(4, 16),
        })
        .chain((p) =>
          fc.record({
            p: fc.constant(p),
            order: fc.shuffledSubarray(
              p.angles.map((_, i) => i),
              { minLength: p.angles.length },
            ),
          }),
        )
        .filter(({ order }) => !isAroundTheCircle(order));
      checkProperty("geofence/self-intersecting", input, ({ p, order }) => {
        const ring = order.map((i) => vertexAt(p.site.center, p.site.radiusM, p.angles[i] as number));
        const result = geofenceShapeSchema.safeParse(polygon(ring));
        expect(result.success).toBe(false);
        const issue = result.error?.issues[0];
        expect(issue?.path).toEqual(["coordinates", 0]);
        const named = /^the ring crosses itself \(edges (\d+) and (\d+)\)$/.exec(issue?.message ?? "");
        expect(named, issue?.message).not.toBeNull();
        const [i, j] = [Number(named?.[1]), Number(named?.[2])];
        const n = order.length;
        expect(i).toBeLessThan(j);
        expect(j).toBeLessThan(n);
        expect(j !== i + 1 && !(i === 0 && j === n - 1)).toBe(true);
        // Chords of a circle cross when their ends alternate around it.
        const ends = (e: number) => [order[e] as number, order[(e + 1) % n] as number] as const;
        const [a, b] = [...ends(i)].sort((x, y) => x - y) as [number, number];
        const between = (v: number) => a < v && v < b;
        const [c, d] = ends(j);
        expect(between(c) !== between(d)).toBe(true);
      });
    },
    propertyTimeoutMs(),
  );
});

describe("degenerate and oversized polygons", () => {
  it(
    "refuse a ring whose positions are all on one line, in any order",
    () => {
      const input = fc.record({
        site,
        bearing: fc.double({ min: 0, max: 2 * Math.PI, noNaN: true }),
        along: fc.uniqueArray(fc.integer({ min: -10_000, max: 10_000 }), { minLength: 1, maxLength: 12 }),
        repeat: fc.nat(),
      });
      checkProperty("geofence/collinear", input, ({ site: { center }, bearing, along, repeat }) => {
        const onLine = along.map((m) => offset(center, m * Math.sin(bearing), m * Math.cos(bearing)));
        // Pad to a triangle with repeats of one position if need be.
        while (onLine.length < 3) onLine.push(onLine[repeat % onLine.length] as LonLat);
        const result = geofenceShapeSchema.safeParse(polygon(onLine));
        expect(result.success).toBe(false);
        expect(result.error?.issues[0]?.message).toMatch(/^the ring (crosses itself|encloses no area)/);
      });
    },
    propertyTimeoutMs(),
  );

  it(
    "take up to 1000 positions in all (outer ring and holes), and refuse more, saying how many",
    () => {
      const input = fc.record({
        site,
        counts: fc.array(fc.integer({ min: 3, max: 700 }), { minLength: 1, maxLength: 4 }),
      });
      checkProperty(
        "geofence/oversized",
        input,
        ({ site: { center, radiusM }, counts }) => {
          const rings = counts.map((n, k) => {
            const ring = Array.from({ length: n }, (_, i) =>
              vertexAt(center, radiusM / (k + 1), (2 * Math.PI * i) / n),
            );
            return [...ring, ring[0] as LonLat];
          });
          const positions = rings.reduce((sum, r) => sum + r.length, 0);
          const result = geofenceShapeSchema.safeParse({ type: "Polygon", coordinates: rings });
          if (positions <= 1000) return expect(result.success).toBe(true);
          expect(result.error?.issues.map((i) => `${i.path.join(".")}: ${i.message}`)).toEqual([
            `coordinates: a polygon may have at most 1000 positions (it has ${positions})`,
          ]);
        },
        50,
      );
    },
    propertyTimeoutMs(),
  );
});

/** Whether visiting points on a circle in this order goes around it (either way), which does not cross. */
function isAroundTheCircle(order: number[]): boolean {
  const n = order.length;
  const step = (i: number) => ((order[(i + 1) % n] as number) - (order[i] as number) + n) % n;
  const first = step(0);
  return (first === 1 || first === n - 1) && order.every((_, i) => step(i) === first);
}

describe("schedules", () => {
  it(
    "accept every known time zone, and are in force exactly inside their windows, local time",
    () => {
      const input = fc.record({
        timeZone: fc.constantFrom(...knownZones),
        windows: fc.array(window, { minLength: 1, maxLength: 3 }),
        ts: deviceTime,
      });
      checkProperty("geofence/schedule-windows", input, ({ timeZone, windows, ts }) => {
        const schedule: Schedule = scheduleSchema.parse({ timeZone, windows });
        expect(isInForce(schedule, ts)).toBe(expectedInForce(schedule, ts));
      });
    },
    propertyTimeoutMs(),
  );

  it(
    "never throw judging a fix against a scheduled zone, whatever the time zone",
    () => {
      const input = fc.record({
        schedule: fc.record({ timeZone, windows: fc.array(window, { minLength: 1, maxLength: 3 }) }),
        ts: deviceTime,
        north: fc.double({ min: -1000, max: 1000, noNaN: true }),
      });
      checkProperty("geofence/scheduled-fix", input, ({ schedule, ts, north }) => {
        const parsed = scheduleSchema.safeParse(schedule);
        expectReadableIssues(parsed);
        if (!parsed.success) return;
        const shape: GeofenceShape = { type: "Circle", center: [91.1172, 29.6578], radiusM: 200 };
        const fix = fixAt(offset(shape.center, 0, north));
        const result = judgeFix(newZoneTrack(), { shape, schedule: parsed.data }, { ...fix, ts }, eager(20));
        expect(result.next.lastTs).toBe(ts);
        if (!isInForce(parsed.data, ts)) expect(result.change).toBeUndefined();
      });
    },
    propertyTimeoutMs(),
  );
});

/** The same question answered another way: the local date and time as Sweden writes it (ISO-like). */
function expectedInForce(schedule: Schedule, ts: number): boolean {
  const local = new Date(ts).toLocaleString("sv-SE", { timeZone: schedule.timeZone, hourCycle: "h23" });
  const [, y, mo, d, hm] = /^(\d+)-(\d+)-(\d+) (\d\d:\d\d)/.exec(local) ?? [];
  const day = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d))).getUTCDay() || 7;
  return schedule.windows.some((w) => w.days.includes(day) && w.from <= (hm ?? "") && (hm ?? "") < w.to);
}
