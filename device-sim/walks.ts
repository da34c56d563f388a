/**
 * How simulated locator tags move around Chengguan, Lhasa. Each tag has a home (its safe zone's
 * centre) and a behaviour; all randomness comes from the seeded generator, so a seed replays.
 */

export type Behaviour = "stays" | "wanders" | "jitters" | "goes-silent";
export const behaviours: Behaviour[] = ["stays", "wanders", "jitters", "goes-silent"];

export interface LatLon {
  lat: number;
  lon: number;
}

/** Places a child or an elder might walk to. */
export const LANDMARKS: (LatLon & { name: string })[] = [
  { name: "Potala Palace 布达拉宫", lat: 29.6578, lon: 91.1172 },
  { name: "Jokhang Temple 大昭寺", lat: 29.653, lon: 91.1331 },
  { name: "Barkhor Street 八廓街", lat: 29.6519, lon: 91.1347 },
  { name: "Zongjiao Lukang Park 宗角禄康公园", lat: 29.6607, lon: 91.1178 },
  { name: "Ramoche Temple 小昭寺", lat: 29.6587, lon: 91.1328 },
  { name: "Lhasa River bank 拉萨河", lat: 29.6455, lon: 91.1311 },
];

const M_PER_DEG = 111_195;
const WALK_MPS = 1.2;

export const offset = (from: LatLon, eastM: number, northM: number): LatLon => ({
  lat: from.lat + northM / M_PER_DEG,
  lon: from.lon + eastM / (M_PER_DEG * Math.cos((from.lat * Math.PI) / 180)),
});

function distanceM(a: LatLon, b: LatLon): number {
  const dy = (b.lat - a.lat) * M_PER_DEG;
  const dx = (b.lon - a.lon) * M_PER_DEG * Math.cos((a.lat * Math.PI) / 180);
  return Math.hypot(dx, dy);
}

function toward(from: LatLon, to: LatLon, metres: number): LatLon {
  const d = distanceM(from, to);
  if (d <= metres) return { ...to };
  const f = metres / d;
  return { lat: from.lat + (to.lat - from.lat) * f, lon: from.lon + (to.lon - from.lon) * f };
}

export interface Fix extends LatLon {
  accuracy: number;
}

/** A tag's walk: call `step` once per heartbeat with the seconds since the last one. */
export class Walk {
  private position: LatLon;
  private target: LatLon | undefined;
  private phase: "home" | "out" | "back" = "home";
  private elapsedS = 0;

  constructor(
    private readonly home: LatLon,
    private readonly zoneRadiusM: number,
    readonly behaviour: Behaviour,
    private readonly random: () => number,
  ) {
    this.position = offset(home, (random() - 0.5) * zoneRadiusM * 0.5, (random() - 0.5) * zoneRadiusM * 0.5);
  }

  /** Whether the tag still sends heartbeats (a `goes-silent` tag stops after 10 minutes). */
  get transmitting(): boolean {
    return this.behaviour !== "goes-silent" || this.elapsedS < 600;
  }

  step(seconds: number): Fix {
    this.elapsedS += seconds;
    const r = this.random;
    const gpsNoise = (m: number) => offset(this.position, (r() - 0.5) * m, (r() - 0.5) * m);
    switch (this.behaviour) {
      case "wanders":
        return { ...this.wander(seconds), accuracy: Math.round(6 + r() * 12) };
      case "jitters": {
        // Lives right at the fence: a fix now and then lands outside, or is poor.
        this.position = offset(this.home, 0, this.zoneRadiusM * 0.92);
        const poor = r() < 0.2;
        return {
          ...gpsNoise(poor ? 120 : 40),
          accuracy: poor ? Math.round(60 + r() * 100) : Math.round(8 + r() * 10),
        };
      }
      default: {
        // Pottering about well inside the zone.
        const next = offset(
          this.position,
          (r() - 0.5) * WALK_MPS * seconds,
          (r() - 0.5) * WALK_MPS * seconds,
        );
        if (distanceM(next, this.home) < this.zoneRadiusM * 0.6) this.position = next;
        return { ...gpsNoise(10), accuracy: Math.round(5 + r() * 10) };
      }
    }
  }

  /** Stays home for a while, walks to a landmark outside the zone, lingers, and comes back. */
  private wander(seconds: number): LatLon {
    const r = this.random;
    if (this.phase === "home" && r() < seconds / 600) {
      const far = LANDMARKS.filter((l) => distanceM(l, this.home) > this.zoneRadiusM * 1.5);
      const pick = far[Math.floor(r() * far.length)];
      this.target = pick ?? offset(this.home, this.zoneRadiusM * 2, 0);
      this.phase = "out";
    }
    if (this.phase === "out" && this.target) {
      this.position = toward(this.position, this.target, WALK_MPS * seconds);
      if (distanceM(this.position, this.target) < 5 && r() < seconds / 300) this.phase = "back";
    } else if (this.phase === "back") {
      this.position = toward(this.position, this.home, WALK_MPS * seconds);
      if (distanceM(this.position, this.home) < 10) this.phase = "home";
    }
    return this.position;
  }
}
