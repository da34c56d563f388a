import { describe, expect, it } from "vitest";
import { seededRandom } from "../../device-sim/random.ts";
import { type Behaviour, Walk } from "../../device-sim/walks.ts";
import { signedDistanceM } from "../../gateway/rules/geofence.ts";

const HOME = { lat: 29.6545, lon: 91.1345 };
const RADIUS = 250;
const zone = { type: "Circle" as const, center: [HOME.lon, HOME.lat] as [number, number], radiusM: RADIUS };

/** Three hours of 30 s heartbeats: each fix's signed distance to the zone's edge. */
function walk(behaviour: Behaviour, seed: number) {
  const w = new Walk(HOME, RADIUS, behaviour, seededRandom(seed));
  const out: { d: number; accuracy: number; transmitting: boolean }[] = [];
  for (let i = 0; i < 360; i++) {
    const fix = w.step(30);
    out.push({
      d: signedDistanceM(zone, [fix.lon, fix.lat]),
      accuracy: fix.accuracy,
      transmitting: w.transmitting,
    });
  }
  return out;
}

describe("simulated tag walks", () => {
  it("replays exactly with the same seed", () => {
    expect(walk("wanders", 7)).toEqual(walk("wanders", 7));
    expect(walk("wanders", 7)).not.toEqual(walk("wanders", 8));
  });

  it("keeps a 'stays' tag well inside its zone", () => {
    expect(Math.max(...walk("stays", 1).map((f) => f.d))).toBeLessThan(-50);
  });

  it("takes a 'wanders' tag out of its zone and back", () => {
    const d = walk("wanders", 3).map((f) => f.d);
    const firstOut = d.findIndex((x) => x > 100);
    expect(firstOut).toBeGreaterThan(0);
    expect(d.slice(firstOut).some((x) => x < 0)).toBe(true);
  });

  it("keeps a 'jitters' tag at the fence, with some poor fixes", () => {
    const fixes = walk("jitters", 5);
    expect(fixes.some((f) => f.d > 0)).toBe(true);
    expect(Math.max(...fixes.map((f) => f.d))).toBeLessThan(150);
    expect(fixes.some((f) => f.accuracy > 100)).toBe(true);
  });

  it("silences a 'goes-silent' tag after ten minutes", () => {
    const fixes = walk("goes-silent", 2);
    expect(fixes[18]?.transmitting).toBe(true);
    expect(fixes[20]?.transmitting).toBe(false);
  });
});
