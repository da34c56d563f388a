/** Geodesy for safe zones: small areas (a school, a compound), so a local flat projection is exact enough. */

import type { GeofenceShape } from "./geofence.ts";

export type LonLat = [lon: number, lat: number];

const EARTH_RADIUS_M = 6_371_008.8;
const rad = (deg: number) => (deg * Math.PI) / 180;

/** Great-circle distance in metres. */
export function haversineM(a: LonLat, b: LonLat): number {
  const dLat = rad(b[1] - a[1]);
  const dLon = rad(b[0] - a[0]);
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(rad(a[1])) * Math.cos(rad(b[1])) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(h)));
}

/**
 * Projects onto a plane in metres centred on `origin` (equirectangular). Longitudes are taken the
 * short way round, so a zone astride the antimeridian (Fiji, Chukotka) keeps its shape.
 */
function project(origin: LonLat, p: LonLat): [number, number] {
  const dLon = ((((p[0] - origin[0] + 180) % 360) + 360) % 360) - 180;
  const x = rad(dLon) * Math.cos(rad(origin[1])) * EARTH_RADIUS_M;
  const y = rad(p[1] - origin[1]) * EARTH_RADIUS_M;
  return [x, y];
}

function distanceToSegment(p: [number, number], a: [number, number], b: [number, number]): number {
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  const lengthSq = dx * dx + dy * dy;
  const t =
    lengthSq === 0 ? 0 : Math.max(0, Math.min(1, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / lengthSq));
  return Math.hypot(p[0] - (a[0] + t * dx), p[1] - (a[1] + t * dy));
}

/** Even-odd ray casting on a closed ring. */
function inRing(p: [number, number], ring: [number, number][]): boolean {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i] as [number, number];
    const [xj, yj] = ring[j] as [number, number];
    if (yi > p[1] !== yj > p[1] && p[0] < ((xj - xi) * (p[1] - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/**
 * Signed distance in metres from a point to a polygon's boundary: negative inside, positive
 * outside. `rings` is GeoJSON: the outer ring, then holes.
 */
export function signedDistanceToPolygonM(point: LonLat, rings: LonLat[][]): number {
  const projected = rings.map((ring) => ring.map((q) => project(point, q)));
  const origin: [number, number] = [0, 0];
  let nearest = Number.POSITIVE_INFINITY;
  for (const ring of projected) {
    for (let i = 1; i < ring.length; i++) {
      nearest = Math.min(
        nearest,
        distanceToSegment(origin, ring[i - 1] as [number, number], ring[i] as [number, number]),
      );
    }
  }
  const [outer, ...holes] = projected;
  const inside = outer !== undefined && inRing(origin, outer) && !holes.some((h) => inRing(origin, h));
  return inside ? -nearest : nearest;
}

export function signedDistanceToCircleM(point: LonLat, center: LonLat, radiusM: number): number {
  return haversineM(point, center) - radiusM;
}

/** Metres from a zone's edge: negative inside, positive outside (a point in a hole is outside). */
export function signedDistanceM(shape: GeofenceShape, point: LonLat): number {
  return shape.type === "Circle"
    ? signedDistanceToCircleM(point, shape.center, shape.radiusM)
    : signedDistanceToPolygonM(point, shape.coordinates as LonLat[][]);
}

type Point = [number, number];

function segmentsCross(a: Point, b: Point, c: Point, d: Point): boolean {
  const orient = (p: Point, q: Point, r: Point) =>
    Math.sign((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]));
  const onSegment = (p: Point, q: Point, r: Point) =>
    Math.min(p[0], r[0]) <= q[0] &&
    q[0] <= Math.max(p[0], r[0]) &&
    Math.min(p[1], r[1]) <= q[1] &&
    q[1] <= Math.max(p[1], r[1]);
  const o1 = orient(a, b, c);
  const o2 = orient(a, b, d);
  const o3 = orient(c, d, a);
  const o4 = orient(c, d, b);
  if (o1 !== o2 && o3 !== o4) return true;
  return (
    (o1 === 0 && onSegment(a, c, b)) ||
    (o2 === 0 && onSegment(a, d, b)) ||
    (o3 === 0 && onSegment(c, a, d)) ||
    (o4 === 0 && onSegment(c, b, d))
  );
}

/** The first pair of edges of a closed ring that cross each other, or undefined. */
export function findSelfIntersection(ring: LonLat[]): [number, number] | undefined {
  const first = ring[0];
  if (!first) return undefined;
  const points = ring.map((q) => project(first, q));
  const edges = points.length - 1;
  // Edges whose bounding boxes are apart cannot cross: this skips nearly every pair cheaply.
  const box = Array.from({ length: edges }, (_, i) => {
    const [a, b] = [points[i], points[i + 1]] as [Point, Point];
    return [Math.min(a[0], b[0]), Math.max(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[1], b[1])];
  }) as [number, number, number, number][];
  for (let i = 0; i < edges; i++) {
    const [minX, maxX, minY, maxY] = box[i] as [number, number, number, number];
    for (let j = i + 1; j < edges; j++) {
      // Neighbouring edges share a vertex by construction (and so do the first and last).
      if (j === i + 1 || (i === 0 && j === edges - 1)) continue;
      const other = box[j] as [number, number, number, number];
      if (other[0] > maxX || other[1] < minX || other[2] > maxY || other[3] < minY) continue;
      const [a, b, c, d] = [points[i], points[i + 1], points[j], points[j + 1]] as Point[];
      if (a && b && c && d && segmentsCross(a, b, c, d)) return [i, j];
    }
  }
  return undefined;
}

/** The area a closed ring encloses, in square metres (shoelace formula on the local plane). */
export function ringAreaM2(ring: LonLat[]): number {
  const first = ring[0];
  if (!first) return 0;
  const points = ring.map((q) => project(first, q));
  let twice = 0;
  for (let i = 1; i < points.length; i++) {
    const [[x1, y1], [x2, y2]] = [points[i - 1], points[i]] as [Point, Point];
    twice += x1 * y2 - x2 * y1;
  }
  return Math.abs(twice) / 2;
}
