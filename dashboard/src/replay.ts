import L from "leaflet";
import { api, gatewayNow, type TrackPoint } from "./api.ts";
import { h } from "./dom.ts";
import { formatTime, type MessageKey, t } from "./i18n.ts";

type Located = TrackPoint & { lat: number; lon: number };
const located = (p: TrackPoint): p is Located => p.lat !== undefined && p.lon !== undefined;

/** Arrows along a long track would hide it: about this many at most. */
const MAX_ARROWS = 40;
const HOUR = 3600_000;

/** Degrees clockwise from east, on screen (north up), from one fix to the next. */
function heading(a: Located, b: Located): number {
  const east = (b.lon - a.lon) * Math.cos((a.lat * Math.PI) / 180);
  return (-Math.atan2(b.lat - a.lat, east) * 180) / Math.PI;
}

/** A `datetime-local` value for a time, in the browser's zone. */
function localInput(ms: number): string {
  return new Date(ms - new Date(ms).getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
}

/**
 * A tag's track over the last 1 / 6 / 24 hours or a chosen range: the line with arrows for the
 * direction, each fix with its time on hover, rejected fixes grey and hollow with why, and a
 * slider that walks a marker along the trusted fixes.
 */
export class TrackReplay {
  readonly element = h("section", { class: "replay" });
  readonly layer = L.layerGroup();
  private readonly head = L.circleMarker([0, 0], { radius: 10, className: "replay-head", weight: 3 });
  private readonly slider = h("input", {
    type: "range",
    id: "replay-slider",
    min: "0",
    max: "0",
    value: "0",
    disabled: true,
    "aria-label": t("replay.slider"),
  });
  private readonly at = h("p", { id: "replay-time", "aria-live": "polite" });
  private readonly summary = h("p", { id: "track-summary" });
  private readonly from = h("input", { type: "datetime-local", id: "track-from" });
  private readonly to = h("input", { type: "datetime-local", id: "track-to" });
  private deviceId: string | null = null;
  private fixes: Located[] = [];
  /** Whether a track has been loaded for the tag. */
  private loaded = false;

  private rejected = 0;

  constructor(private readonly fit: (bounds: L.LatLngBounds) => void) {
    this.slider.addEventListener("input", () => this.moveTo(Number(this.slider.value)));
    this.relabel();
    this.showFor(null);
  }

  /** Writes the controls' words in the page's language; what was chosen and loaded stays. */
  relabel(): void {
    const last = (hours: number, key: MessageKey) =>
      h(
        "button",
        {
          type: "button",
          dataset: { hours },
          disabled: !this.deviceId,
          onclick: () => void this.showLast(hours),
        },
        t(key),
      );
    this.slider.setAttribute("aria-label", t("replay.slider"));
    this.element.replaceChildren(
      h("h2", {}, t("replay.title")),
      h(
        "div",
        { class: "replay-ranges" },
        last(1, "replay.last1h"),
        last(6, "replay.last6h"),
        last(24, "replay.last24h"),
      ),
      h(
        "details",
        { class: "replay-custom" },
        h("summary", {}, t("replay.custom")),
        h("label", { for: "track-from" }, t("map.from")),
        this.from,
        h("label", { for: "track-to" }, t("map.to")),
        this.to,
        h(
          "button",
          {
            type: "button",
            class: "primary",
            disabled: !this.deviceId,
            onclick: () =>
              void this.load(new Date(this.from.value).getTime(), new Date(this.to.value).getTime()),
          },
          t("map.showTrack"),
        ),
      ),
      h("label", { for: "replay-slider" }, t("replay.slider")),
      this.slider,
      this.at,
      this.summary,
    );
    this.describe();
    this.moveTo(Number(this.slider.value));
  }

  private describe(): void {
    this.summary.textContent = !this.deviceId
      ? t("map.pickTag")
      : !this.loaded
        ? ""
        : [
            this.fixes.length > 0 ? t("map.trackPoints", { count: this.fixes.length }) : t("replay.none"),
            this.rejected > 0 && t("replay.rejected", { count: this.rejected }),
          ]
            .filter(Boolean)
            .join(" · ");
  }

  /** The tag whose track the buttons load; the old track goes. */
  showFor(deviceId: string | null): void {
    if (deviceId === this.deviceId) return;
    this.deviceId = deviceId;
    this.layer.clearLayers();
    this.fixes = [];
    this.rejected = 0;
    this.loaded = false;
    this.slider.disabled = true;
    this.slider.value = "0";
    const now = gatewayNow();
    this.from.value = localInput(now - 6 * HOUR);
    this.to.value = localInput(now + 60_000);
    this.relabel();
  }

  private showLast(hours: number): Promise<void> {
    const now = gatewayNow();
    return this.load(now - hours * HOUR, now + 60_000);
  }

  private async load(from: number, to: number): Promise<void> {
    const deviceId = this.deviceId;
    if (!deviceId || !(from < to)) return;
    const track: TrackPoint[] = await api.track(deviceId, from, to).catch(() => []);
    const points = track.filter(located);
    if (deviceId !== this.deviceId) return; // another tag was picked meanwhile
    this.layer.clearLayers();
    this.fixes = points.filter((p) => p.fix === "ok");
    const rejected = points.filter((p) => p.fix !== "ok");
    const line = this.fixes.map((p) => [p.lat, p.lon] as [number, number]);
    L.polyline(line, { color: "#7c3aed", weight: 3, className: "track-line" }).addTo(this.layer);
    const every = Math.max(1, Math.ceil(this.fixes.length / MAX_ARROWS));
    for (let i = every; i < this.fixes.length; i += every) {
      const [a, b] = [this.fixes[i - 1], this.fixes[i]] as [Located, Located];
      if (a.lat === b.lat && a.lon === b.lon) continue;
      const arrow = h("span", {}, "➤");
      arrow.style.transform = `rotate(${heading(a, b).toFixed(0)}deg)`;
      L.marker([(a.lat + b.lat) / 2, (a.lon + b.lon) / 2], {
        icon: L.divIcon({ className: "track-arrow", html: arrow, iconSize: [16, 16] }),
        interactive: false,
        keyboard: false,
      }).addTo(this.layer);
    }
    for (const p of this.fixes) this.point(p, "track-point", formatTime(p.ts));
    for (const p of rejected)
      this.point(
        p,
        "track-point rejected",
        `${formatTime(p.ts)} · ${t(`replay.fix.${p.fix}` as MessageKey)}`,
      );
    this.rejected = rejected.length;
    this.loaded = true;
    this.describe();
    this.slider.max = String(Math.max(0, this.fixes.length - 1));
    this.slider.disabled = this.fixes.length === 0;
    if (line.length > 0) {
      this.head.addTo(this.layer);
      this.fit(L.latLngBounds(line).pad(0.2));
    }
    this.slider.value = "0";
    this.moveTo(0);
  }

  /** Hovered, a fix says when it was taken (and, if rejected, why). */
  private point(p: Located, className: string, label: string): void {
    L.circleMarker([p.lat, p.lon], {
      radius: className.includes("rejected") ? 5 : 4,
      className,
      dashArray: className.includes("rejected") ? "2 3" : undefined,
      fillOpacity: 0.9,
    })
      .bindTooltip(h("span", {}, label))
      .addTo(this.layer);
  }

  private moveTo(index: number): void {
    const p = this.fixes[index];
    if (!p) {
      this.at.textContent = "";
      return;
    }
    this.head.setLatLng([p.lat, p.lon]);
    this.at.textContent = t("replay.at", {
      time: formatTime(p.ts),
      index: index + 1,
      count: this.fixes.length,
    });
  }
}
