import L from "leaflet";
import "leaflet/dist/leaflet.css";
import type {} from "leaflet.markercluster";
import { api, type DeviceView, type Geofence, gatewayNow, type Person, type UiConfig } from "./api.ts";
import { childView } from "./child.ts";
import { h, present } from "./dom.ts";
import { currentLocale, formatAgo, type MessageKey, t } from "./i18n.ts";
import { TrackReplay } from "./replay.ts";
import type { ZoneEditor } from "./zones.ts";

let config: UiConfig = {
  tileUrl: null,
  tileAttribution: "",
  tileMaxZoom: 19,
  center: [29.6525, 91.1321],
  timeZone: "Asia/Shanghai",
};

export function configureMaps(c: UiConfig): void {
  config = c;
}

/** Leaflet's scale writes "500 m": the page's language instead ("500 米"). */
const Scale = L.Control.Scale.extend({
  _updateMetric(
    this: { _mScale: HTMLElement; _getRoundNum(n: number): number; options: L.Control.ScaleOptions },
    maxMeters: number,
  ) {
    const metres = this._getRoundNum(maxMeters);
    this._mScale.style.width = `${Math.round((this.options.maxWidth ?? 100) * (metres / maxMeters))}px`;
    this._mScale.textContent =
      metres < 1000 ? t("map.scaleM", { n: metres }) : t("map.scaleKm", { n: metres / 1000 });
  },
});

function baseMap(element: HTMLElement, center: [number, number], zoom: number): L.Map {
  // No tiles configured or reachable: the vectors still draw on the plain background.
  // A maximum zoom of its own: clustering needs one, and with no tile layer there is none.
  const map = L.map(element, {
    zoomControl: false,
    attributionControl: Boolean(config.tileUrl),
    maxZoom: 19,
  }).setView(center, zoom);
  // Leaflet's own titles are English: the page's language instead.
  L.control.zoom({ zoomInTitle: t("map.zoomIn"), zoomOutTitle: t("map.zoomOut") }).addTo(map);
  new (Scale as unknown as typeof L.Control.Scale)({ imperial: false }).addTo(map);
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

function drawZone(zone: Geofence, own: boolean): L.Path {
  // The picked tag's own zones stand out: another child's zone is no safe place for it.
  const style = own
    ? { color: "#c2410c", weight: 4, fillOpacity: 0.15, className: "zone own" }
    : { color: "#1d4ed8", weight: 2, fillOpacity: 0.06, dashArray: "6 4", className: "zone" };
  if (zone.shape.type === "Circle") {
    return L.circle([zone.shape.center[1], zone.shape.center[0]], { ...style, radius: zone.shape.radiusM });
  }
  return L.polygon(
    zone.shape.coordinates.map((ring) => ring.map(([lon, lat]) => [lat, lon] as [number, number])),
    style,
  );
}

/**
 * A zone's name just above its top edge, centred: inside, it would cover the tags it guards (the
 * centre of a zone with a hole is in the hole). Text, never parsed as HTML.
 */
function zoneLabel(zone: Geofence, own: boolean): L.Marker {
  const shape = zone.shape;
  const top: [number, number] =
    shape.type === "Circle"
      ? [shape.center[1] + shape.radiusM / 111_195, shape.center[0]]
      : (() => {
          const outer = shape.coordinates[0] ?? [];
          const lons = outer.map((p) => p[0]);
          return [Math.max(...outer.map((p) => p[1])), (Math.min(...lons) + Math.max(...lons)) / 2];
        })();
  return L.marker(top, {
    icon: L.divIcon({
      className: `zone-label${own ? " own" : ""}`,
      html: h("span", { dataset: { zoneId: zone.id } }, zone.name),
      iconSize: [0, 0],
    }),
    interactive: false,
    keyboard: false,
  });
}

type TagStatus = "alert" | "online" | "offline";
/** Shape and glyph as well as colour: red and green alone fail one reader in twelve. */
const GLYPH: Record<TagStatus, string> = { alert: "!", online: "●", offline: "■" };

function tagIcon(tag: DeviceView, status: TagStatus, selected: boolean): L.DivIcon {
  return L.divIcon({
    className: `tag-marker is-${status}${selected ? " selected" : ""}`,
    html: h("span", { dataset: { deviceId: tag.id } }, GLYPH[status]),
    iconSize: [28, 28],
  });
}

/** Nearby tags gather into one counted marker; one holding an open alert says so by its shape too. */
function clusterGroup(): L.MarkerClusterGroup {
  return L.markerClusterGroup({
    showCoverageOnHover: false,
    maxClusterRadius: 40,
    iconCreateFunction: (cluster) => {
      const alerting = cluster
        .getAllChildMarkers()
        .some((m) => m.options.icon?.options.className?.includes("is-alert"));
      return L.divIcon({
        className: `tag-cluster${alerting ? " is-alert" : ""}`,
        html: h("span", {}, `${alerting ? "! " : ""}${cluster.getChildCount()}`),
        iconSize: [36, 36],
      });
    },
  });
}

/** Tags on a map with their safe zones; a picked tag's whereabouts and track; zones drawn by staff. */
export class TagMap {
  readonly element = h("section", { class: "map-view" });
  private readonly mapBox = h("div", {
    class: "map",
    id: "tag-map",
    role: "region",
    "aria-label": t("nav.map"),
  });
  private readonly side = h("aside", { class: "map-side" });
  private readonly legendBox = h("div", { class: "legend-box" });
  private readonly list = h("div", { class: "tag-list-box" });
  /** The language the fixed parts (legend, replay controls) were last written in. */
  private writtenIn: string | null = null;
  private readonly child = h("div", { class: "child-box" });
  private readonly zoneBox = h("div", { class: "zone-box" });
  private map: L.Map | undefined;
  /** Leaflet needs a visible element to measure: set up when the view is first shown. */
  private ready: Promise<void> | undefined;
  private readonly zones = L.layerGroup();
  /** Made when the map is first shown: clustering is loaded then, not with the page. */
  private tags: L.MarkerClusterGroup | undefined;
  private readonly accuracy = L.layerGroup();
  private readonly replay = new TrackReplay((bounds) => this.map?.fitBounds(bounds));
  private editor: ZoneEditor | null = null;
  /** While the editor is open: the zone it edits (null for a new one). */
  private editingZone: string | null | undefined;
  private selected: string | null = null;
  private lastZones: Geofence[] = [];
  private lastTags: DeviceView[] = [];

  constructor(
    private readonly people: Map<string, Person>,
    private readonly alertingDevices: () => Set<string>,
    private readonly manages = false,
  ) {
    this.side.append(
      ...present(
        h("div", { class: "map-hint" }),
        this.legendBox,
        this.list,
        this.child,
        this.replay.element,
        this.manages && this.zoneBox,
      ),
    );
    this.element.append(this.mapBox, this.side);
  }

  /** Call when the view is shown. */
  async show(): Promise<void> {
    this.ready ??= this.setUp();
    await this.ready;
    this.map?.invalidateSize();
    await this.refresh();
  }

  private async setUp(): Promise<void> {
    // Marker clustering patches the global `L` that Leaflet sets.
    await Promise.all([
      import("leaflet.markercluster"),
      import("leaflet.markercluster/dist/MarkerCluster.css"),
    ]);
    this.tags = clusterGroup();
    this.map = baseMap(this.mapBox, config.center, 14);
    this.zones.addTo(this.map);
    this.replay.layer.addTo(this.map);
    this.accuracy.addTo(this.map);
    this.tags.addTo(this.map);
  }

  async refresh(): Promise<void> {
    const loaded = await Promise.all([api.geofences(), api.devices()]).catch(() => null);
    // The gateway away: the map keeps what it last drew; the header says the link is down.
    if (!loaded) return;
    const [zones, devices] = loaded;
    this.lastZones = zones;
    this.lastTags = devices.filter((d) => d.kind === "locator-tag");
    this.draw();
  }

  private draw(): void {
    const zones = this.lastZones;
    const tags = this.lastTags;
    const alerting = this.alertingDevices();
    const statusOf = (tag: DeviceView): TagStatus =>
      alerting.has(tag.id) ? "alert" : tag.state?.online ? "online" : "offline";
    this.zones.clearLayers();
    // Tooltips get elements, never strings: Leaflet would parse a string as HTML.
    for (const z of zones) {
      if (z.id === this.editingZone) continue; // the editor draws it
      const own = this.selected !== null && z.deviceIds.includes(this.selected);
      const layer = drawZone(z, own).addTo(this.zones);
      zoneLabel(z, own).addTo(this.zones);
      if (this.manages) layer.on("click", () => void this.editZone(z));
    }
    this.tags?.clearLayers();
    this.accuracy.clearLayers();
    for (const tag of tags) {
      const p = tag.state?.position;
      if (!p) continue;
      const status = statusOf(tag);
      const selected = this.selected === tag.id;
      const marker = L.marker([p.lat, p.lon], {
        icon: tagIcon(tag, status, selected),
        title: `${tag.id} · ${t(`map.status.${status}`)}`,
        zIndexOffset: status === "alert" ? 1000 : 0,
      })
        .bindTooltip(
          h(
            "span",
            {},
            `${tag.id} · ${this.people.get(tag.ownerId)?.name ?? tag.ownerId} · ${t("device.battery")} ${tag.state?.battery ?? "?"}%`,
          ),
        )
        .on("click", () => this.select(tag.id));
      this.tags?.addLayer(marker);
      if (selected)
        L.circle([p.lat, p.lon], {
          radius: p.accuracy,
          color: "#0369a1",
          weight: 1,
          fillOpacity: 0.12,
          className: "accuracy",
          interactive: false,
        }).addTo(this.accuracy);
    }
    if (this.writtenIn !== currentLocale()) {
      this.writtenIn = currentLocale();
      this.legendBox.replaceChildren(this.legend());
      this.replay.relabel();
    }
    const hint = this.side.querySelector(".map-hint");
    hint?.replaceChildren(...present(!config.tileUrl && h("p", { class: "hint" }, t("map.noTiles"))));
    this.list.replaceChildren(
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
                class: `tag ${statusOf(tag)}`,
                "aria-pressed": String(this.selected === tag.id),
                dataset: { deviceId: tag.id },
                onclick: () => this.select(tag.id),
              },
              h("span", { class: `glyph is-${statusOf(tag)}`, "aria-hidden": "true" }, GLYPH[statusOf(tag)]),
              ` ${tag.id} · ${this.people.get(tag.ownerId)?.name ?? tag.ownerId}`,
              h(
                "small",
                {},
                ` ${tag.state?.battery ?? "?"}% · ${tag.state?.lastSeenAt ? formatAgo(tag.state.lastSeenAt, gatewayNow()) : t("device.never")}`,
              ),
            ),
          ),
        ),
      ),
    );
    const picked = tags.find((tag) => tag.id === this.selected);
    this.child.replaceChildren(...present(picked && childView(picked, zones, this.people)));
    if (this.manages && this.editingZone === undefined) this.renderZoneList(zones);
  }

  private legend(): HTMLElement {
    const statuses: TagStatus[] = ["alert", "online", "offline"];
    return h(
      "p",
      { class: "map-legend", "aria-label": t("map.legend") },
      ...statuses.map((s) =>
        h(
          "span",
          { class: "legend-item" },
          h("span", { class: `glyph is-${s}`, "aria-hidden": "true" }, GLYPH[s]),
          ` ${t(`map.status.${s}` as MessageKey)} `,
        ),
      ),
    );
  }

  private renderZoneList(zones: Geofence[]): void {
    this.zoneBox.replaceChildren(
      h("h2", {}, t("zones.title")),
      h(
        "ul",
        { class: "zone-list" },
        ...zones.map((z) =>
          h(
            "li",
            {},
            `${z.name} `,
            h(
              "button",
              {
                type: "button",
                class: "link",
                dataset: { zoneId: z.id },
                onclick: () => void this.editZone(z),
              },
              t("zones.edit"),
            ),
          ),
        ),
      ),
      h(
        "button",
        { type: "button", class: "primary", id: "new-zone", onclick: () => void this.editZone(null) },
        t("zones.new"),
      ),
    );
  }

  /** The drawing tools are loaded on first use: Leaflet-Geoman is larger than the rest of the page. */
  private async editZone(zone: Geofence | null): Promise<void> {
    if (!this.map) return;
    if (!this.editor) {
      const { ZoneEditor } = await import("./zones.ts");
      this.editor = new ZoneEditor(this.map, {
        tags: () => this.lastTags,
        people: this.people,
        timeZone: config.timeZone,
        done: (saved) => {
          this.editingZone = undefined;
          if (saved) void this.refresh();
          else this.draw();
        },
      });
    }
    this.editingZone = zone?.id ?? null;
    this.zoneBox.replaceChildren(this.editor.element);
    this.editor.open(zone);
    this.draw();
  }

  private select(id: string): void {
    this.selected = id;
    this.replay.showFor(id);
    this.draw();
  }
}
