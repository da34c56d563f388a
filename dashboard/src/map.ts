import L from "leaflet";
import "leaflet/dist/leaflet.css";
import { api, type DeviceView, type Geofence, type Person, type UiConfig } from "./api.ts";
import { h, present } from "./dom.ts";
import { formatAgo, formatTime, t } from "./i18n.ts";

let config: UiConfig = { tileUrl: null, tileAttribution: "", tileMaxZoom: 19, center: [29.6525, 91.1321] };

export function configureMaps(c: UiConfig): void {
  config = c;
}

function baseMap(element: HTMLElement, center: [number, number], zoom: number): L.Map {
  // No tiles configured or reachable: the vectors still draw on the plain background.
  const map = L.map(element, { zoomControl: false, attributionControl: Boolean(config.tileUrl) }).setView(
    center,
    zoom,
  );
  // Leaflet's own titles are English: the page's language instead.
  L.control.zoom({ zoomInTitle: t("map.zoomIn"), zoomOutTitle: t("map.zoomOut") }).addTo(map);
  if (config.tileUrl)
    L.tileLayer(config.tileUrl, {
      attribution: config.tileAttribution,
      maxNativeZoom: config.tileMaxZoom,
      maxZoom: 19,
    }).addTo(map);
  return map;
}

export function drawMiniMap(element: HTMLElement, at: [number, number]): void {
  const map = baseMap(element, at, 16);
  L.circleMarker(at, { radius: 9, color: "#b00020", fillOpacity: 0.8 }).addTo(map);
}

function drawZone(zone: Geofence): L.Layer {
  const style = { color: "#1d4ed8", weight: 2, fillOpacity: 0.08 };
  if (zone.shape.type === "Circle") {
    return L.circle([zone.shape.center[1], zone.shape.center[0]], { ...style, radius: zone.shape.radiusM });
  }
  return L.polygon(
    zone.shape.coordinates.map((ring) => ring.map(([lon, lat]) => [lat, lon] as [number, number])),
    style,
  );
}

/** Tags on a map with their safe zones, online or not, battery, and a chosen tag's track. */
export class TagMap {
  readonly element = h("section", { class: "map-view" });
  private readonly mapBox = h("div", {
    class: "map",
    id: "tag-map",
    role: "region",
    "aria-label": t("nav.map"),
  });
  private readonly side = h("aside", { class: "map-side" });
  private map: L.Map | undefined;
  private readonly zones = L.layerGroup();
  private readonly tags = L.layerGroup();
  private readonly track = L.layerGroup();
  private selected: string | null = null;

  constructor(
    private readonly people: Map<string, Person>,
    private readonly alertingDevices: () => Set<string>,
  ) {
    this.element.append(this.mapBox, this.side);
  }

  /** Leaflet needs a visible element to measure: call when the view is shown. */
  async show(): Promise<void> {
    if (!this.map) {
      this.map = baseMap(this.mapBox, config.center, 14);
      this.zones.addTo(this.map);
      this.track.addTo(this.map);
      this.tags.addTo(this.map);
    }
    this.map.invalidateSize();
    await this.refresh();
  }

  async refresh(): Promise<void> {
    const loaded = await Promise.all([api.geofences(), api.devices()]).catch(() => null);
    // The gateway away: the map keeps what it last drew; the header says the link is down.
    if (!loaded) return;
    const [zones, devices] = loaded;
    this.zones.clearLayers();
    // Tooltips get elements, never strings: Leaflet would parse a string as HTML.
    for (const z of zones)
      drawZone(z)
        .bindTooltip(h("span", {}, z.name))
        .addTo(this.zones);
    this.tags.clearLayers();
    const tags = devices.filter((d) => d.kind === "locator-tag");
    const alerting = this.alertingDevices();
    for (const tag of tags) {
      const p = tag.state?.position;
      if (!p) continue;
      const status = alerting.has(tag.id) ? "alert" : tag.state?.online ? "online" : "offline";
      const colour = { alert: "#b00020", online: "#15803d", offline: "#6b7280" }[status];
      L.circleMarker([p.lat, p.lon], {
        radius: 8,
        color: colour,
        fillColor: colour,
        fillOpacity: 0.85,
        className: `tag-marker ${status}`,
      })
        .bindTooltip(
          h(
            "span",
            {},
            `${tag.id} · ${this.people.get(tag.ownerId)?.name ?? tag.ownerId} · ${t("device.battery")} ${tag.state?.battery ?? "?"}%`,
          ),
        )
        .on("click", () => this.select(tag.id))
        .addTo(this.tags);
    }
    this.renderSide(tags, alerting);
  }

  private renderSide(tags: DeviceView[], alerting: Set<string>): void {
    const now = Date.now();
    const from = h("input", {
      type: "datetime-local",
      id: "track-from",
      value: localInput(now - 6 * 3600_000),
    });
    const to = h("input", { type: "datetime-local", id: "track-to", value: localInput(now + 60_000) });
    this.side.replaceChildren(
      ...present(
        !config.tileUrl && h("p", { class: "hint" }, t("map.noTiles")),
        h("h2", {}, t("map.tags")),
        h(
          "ul",
          { class: "tag-list" },
          ...tags.map((tag) =>
            h(
              "li",
              {},
              h(
                "button",
                {
                  class: `tag ${alerting.has(tag.id) ? "alert" : tag.state?.online ? "online" : "offline"}`,
                  "aria-pressed": String(this.selected === tag.id),
                  onclick: () => this.select(tag.id),
                },
                `${tag.id} · ${this.people.get(tag.ownerId)?.name ?? tag.ownerId}`,
                h(
                  "small",
                  {},
                  ` ${tag.state?.battery ?? "?"}% · ${tag.state?.lastSeenAt ? formatAgo(tag.state.lastSeenAt) : t("device.never")}`,
                ),
              ),
            ),
          ),
        ),
        h("h2", {}, t("map.track")),
        this.selected ? h("p", {}, this.selected) : h("p", {}, t("map.pickTag")),
        h("label", { for: "track-from" }, t("map.from")),
        from,
        h("label", { for: "track-to" }, t("map.to")),
        to,
        h(
          "button",
          {
            class: "primary",
            disabled: !this.selected,
            onclick: () => void this.showTrack(new Date(from.value).getTime(), new Date(to.value).getTime()),
          },
          t("map.showTrack"),
        ),
        h("p", { id: "track-summary" }),
      ),
    );
  }

  private select(id: string): void {
    this.selected = id;
    void this.refresh();
  }

  private async showTrack(from: number, to: number): Promise<void> {
    if (!this.selected || !this.map) return;
    const points = (await api.track(this.selected, from, to).catch(() => [])).filter(
      (p) => p.fix === "ok" && p.lat !== undefined,
    );
    this.track.clearLayers();
    const line = points.map((p) => [p.lat, p.lon] as [number, number]);
    if (line.length > 0) {
      L.polyline(line, { color: "#7c3aed", weight: 3, className: "track-line" }).addTo(this.track);
      this.map.fitBounds(L.latLngBounds(line).pad(0.2));
    }
    const summary = this.side.querySelector("#track-summary");
    if (summary) {
      summary.textContent = `${t("map.trackPoints", { count: line.length })}${points[0] ? ` · ${formatTime(points[0].ts)}` : ""}`;
    }
  }
}

/** A `datetime-local` value for a time, in the browser's zone. */
function localInput(ms: number): string {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}
