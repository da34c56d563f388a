import { z } from "zod";
import type { OutboundGuard } from "../../notify/outbound.ts";
import type { AccessPoint, Cell } from "./message.ts";

export interface ResolvedPosition {
  lat: number;
  lon: number;
  accuracy: number;
  source: "lbs" | "wifi";
}

/** Turns the cell towers and Wi-Fi access points a watch saw into a position. */
export interface PositionResolver {
  resolve(cells: Cell[], accessPoints: AccessPoint[]): Promise<ResolvedPosition | undefined>;
}

const answerSchema = z.object({
  location: z.object({ lat: z.number().min(-90).max(90), lng: z.number().min(-180).max(180) }),
  accuracy: z.number().min(0),
});

/**
 * A resolver at an HTTP URL speaking the common geolocation request format (the one Google's
 * Geolocation API, and services compatible with it, take): POST `{cellTowers, wifiAccessPoints}`,
 * answer `{location: {lat, lng}, accuracy}`. Called through the outbound guard, as webhooks are.
 */
export class GeolocationResolver implements PositionResolver {
  constructor(
    private readonly outbound: OutboundGuard,
    private readonly options: { url: string; timeoutMs: number },
  ) {}

  async resolve(cells: Cell[], accessPoints: AccessPoint[]): Promise<ResolvedPosition | undefined> {
    const request = {
      considerIp: false,
      cellTowers: cells.map((c) => ({
        mobileCountryCode: c.mcc,
        mobileNetworkCode: c.mnc,
        locationAreaCode: c.lac,
        cellId: c.cid,
        signalStrength: c.rssi,
      })),
      wifiAccessPoints: accessPoints.map((a) => ({ macAddress: a.mac, signalStrength: a.rssi })),
    };
    const res = await this.outbound.post(
      this.options.url,
      { "content-type": "application/json" },
      JSON.stringify(request),
      this.options.timeoutMs,
    );
    if (res.status !== 200) throw new Error(`geolocation answered ${res.status}`);
    const answer = answerSchema.safeParse(JSON.parse(res.body));
    if (!answer.success) throw new Error("geolocation answer is not {location: {lat, lng}, accuracy}");
    const { location, accuracy } = answer.data;
    return {
      lat: location.lat,
      lon: location.lng,
      accuracy,
      source: accessPoints.length > 0 ? "wifi" : "lbs",
    };
  }
}
