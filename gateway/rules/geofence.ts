import { z } from "zod";
import type { ZoneRefusal } from "../errors.ts";
import {
  findSelfIntersection,
  type LonLat,
  ringAreaM2,
  signedDistanceM,
  signedDistanceToPolygonM,
} from "./geometry.ts";
import { isInForce } from "./schedule.ts";

// Pure and free of zod, so the page measures a tag against its zone the same way.
export { isInForce, signedDistanceM };

const lon = z
  .number()
  .min(-180, "longitude must be within -180..180")
  .max(180, "longitude must be within -180..180");
const lat = z.number().min(-90, "latitude must be within -90..90").max(90, "latitude must be within -90..90");
const position = z.tuple([lon, lat]);

/**
 * A school or a compound needs tens of positions, a traced boundary a few hundred. The crossing
 * check compares pairs of edges: unbounded, one 770 kB request held the event loop for two minutes.
 */
const MAX_POLYGON_POSITIONS = 1000;

const isClosed = (r: unknown[][]) => {
  const [first, last] = [r[0], r.at(-1)];
  return !!first && !!last && first[0] === last[0] && first[1] === last[1];
};

const ring = z
  .array(position)
  .min(4, "a ring needs at least 4 positions (a triangle, closed)")
  .refine(isClosed, "a ring must end where it starts");

const HOLE_TOUCH_M = 1;

/** GeoJSON Polygon coordinates: the outer ring, then holes; each ring simple and enclosing an area. */
const rings = z
  .array(ring)
  .min(1)
  .superRefine((rs, ctx) => {
    const positions = rs.reduce((n, r) => n + r.length, 0);
    if (positions > MAX_POLYGON_POSITIONS) {
      ctx.addIssue({
        code: "custom",
        params: { reason: "zone_too_many_positions" },
        message: `a polygon may have at most ${MAX_POLYGON_POSITIONS} positions (it has ${positions})`,
      });
      return;
    }
    const outer = rs[0] as LonLat[];
    rs.forEach((r, k) => {
      if (r.length < 4 || !isClosed(r)) return;
      // A hole outside the zone would carve nothing out, and says the zone is not what was meant.
      // It may touch the outer ring (GeoJSON allows it): within a metre counts as on it.
      if (k > 0 && r.some((p) => signedDistanceToPolygonM(p as LonLat, [outer]) > HOLE_TOUCH_M)) {
        ctx.addIssue({
          code: "custom",
          path: [k],
          params: { reason: "zone_hole_outside" },
          message: "a hole must lie inside the outer ring",
        });
        return;
      }
      const crossing = findSelfIntersection(r as LonLat[]);
      if (crossing) {
        const message = `the ring crosses itself (edges ${crossing[0]} and ${crossing[1]})`;
        ctx.addIssue({ code: "custom", path: [k], params: { reason: "zone_self_intersecting" }, message });
      } else if (!(ringAreaM2(r as LonLat[]) >= 1)) {
        // Positions on one line (or all the same) enclose nothing: every fix would be outside.
        const message = "the ring encloses no area (its positions are on one line)";
        ctx.addIssue({ code: "custom", path: [k], params: { reason: "zone_no_area" }, message });
      }
    });
  });

export const geofenceShapeSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("Circle"),
    center: position,
    radiusM: z.number().min(10, "radius must be at least 10 m").max(50_000, "radius must be at most 50 km"),
  }),
  /** A GeoJSON Polygon: outer ring, then holes; [lon, lat] order. */
  z.strictObject({ type: z.literal("Polygon"), coordinates: rings }),
]);
export type GeofenceShape = z.infer<typeof geofenceShapeSchema>;

const clock = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, "use HH:MM, 24-hour");
/** A window may end at 24:00, the end of the day: 00:00-24:00 is the whole day, its last minute too. */
const endClock = z.string().regex(/^(([01]\d|2[0-3]):[0-5]\d|24:00)$/, "use HH:MM, 24-hour, or 24:00");
export const scheduleSchema = z.strictObject({
  timeZone: z.string().refine((tz) => {
    try {
      new Intl.DateTimeFormat("en", { timeZone: tz });
      return true;
    } catch {
      return false;
    }
  }, "unknown time zone"),
  /** When the zone applies; days 1 = Monday .. 7 = Sunday, `from` < `to` local time. */
  windows: z
    .array(
      z
        .strictObject({
          days: z
            .array(z.number().int().min(1).max(7))
            .min(1)
            .max(7)
            .refine((d) => new Set(d).size === d.length, "name each day once"),
          from: clock,
          to: endClock,
        })
        .refine((w) => w.from < w.to, {
          message: "a window must end after it starts",
          params: { reason: "zone_window_backwards" },
        }),
    )
    .min(1)
    .max(28, "at most 28 windows (four a day)"),
});
export type Schedule = z.infer<typeof scheduleSchema>;

type Issue = { code: string; path: PropertyKey[]; message: string; params?: Record<string, unknown> };

/** The first refusal of a zone's input that has its own error code, with the issue it stems from. */
export function zoneRefusalOf(issues: readonly Issue[]): { reason: ZoneRefusal; issue: Issue } | undefined {
  for (const issue of issues) {
    const at = issue.path.map(String);
    const reason =
      typeof issue.params?.reason === "string"
        ? (issue.params.reason as ZoneRefusal)
        : issue.code !== "too_small"
          ? undefined
          : at.includes("coordinates")
            ? "zone_too_few_corners"
            : at[0] === "schedule"
              ? "zone_schedule_empty"
              : at[0] === "deviceIds"
                ? "zone_no_tags"
                : undefined;
    if (reason) return { reason, issue };
  }
  return undefined;
}

export interface Geofence {
  id: string;
  name: string;
  shape: GeofenceShape;
  /** null: always in force. */
  schedule: Schedule | null;
  /** The tags this zone is for (one tag, or a group). */
  deviceIds: string[];
}

export interface ZoneRules {
  /** Fixes less accurate than this are not used at all. */
  maxAccuracyM: number;
  /** How far beyond the boundary (after allowing for the fix's accuracy) counts as outside. */
  marginM: number;
  /** Consecutive outside fixes before an exit is declared. */
  exitFixes: number;
  /** Consecutive inside fixes before a return is declared (hysteresis). */
  returnFixes: number;
}

/** Where a tag stands with one zone. Starts `inside`: a zone is set up around where the child belongs. */
export interface ZoneTrack {
  status: "inside" | "outside";
  /** Consecutive fixes pointing the other way. */
  streak: number;
  /** Device time of the last fix used; older fixes are ignored. */
  lastTs: number;
}

export const newZoneTrack = (): ZoneTrack => ({ status: "inside", streak: 0, lastTs: 0 });

export interface Fix {
  ts: number;
  lat: number;
  lon: number;
  accuracy: number;
}

/**
 * One fix against one zone, in device-time order. Pure: returns the next track and whether the
 * tag has now left (`exit`) or come back (`return`). A fix between the boundary and the margin
 * moves neither way, so jitter along the fence does not flap.
 */
export function judgeFix(
  track: ZoneTrack,
  zone: Pick<Geofence, "shape" | "schedule">,
  fix: Fix,
  rules: ZoneRules,
): { next: ZoneTrack; change?: "exit" | "return"; distanceM?: number } {
  if (fix.ts <= track.lastTs || fix.accuracy > rules.maxAccuracyM) return { next: track };
  if (!isInForce(zone.schedule, fix.ts)) return { next: { ...track, streak: 0, lastTs: fix.ts } };
  const distanceM = signedDistanceM(zone.shape, [fix.lon, fix.lat]);
  const surelyOutside = distanceM - fix.accuracy > rules.marginM;
  const inside = distanceM <= 0;
  const lastTs = fix.ts;
  if (track.status === "inside") {
    if (!surelyOutside)
      return { next: { status: "inside", streak: inside ? 0 : track.streak, lastTs }, distanceM };
    const streak = track.streak + 1;
    if (streak >= rules.exitFixes)
      return { next: { status: "outside", streak: 0, lastTs }, change: "exit", distanceM };
    return { next: { status: "inside", streak, lastTs }, distanceM };
  }
  if (!inside)
    return { next: { status: "outside", streak: surelyOutside ? 0 : track.streak, lastTs }, distanceM };
  const streak = track.streak + 1;
  if (streak >= rules.returnFixes)
    return { next: { status: "inside", streak: 0, lastTs }, change: "return", distanceM };
  return { next: { status: "outside", streak, lastTs }, distanceM };
}
