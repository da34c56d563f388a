import L from "leaflet";
// Leaflet-Geoman patches the global `L` (Leaflet sets it); loaded with this module, only when
// someone draws a zone, so the first load stays small.
import "@geoman-io/leaflet-geoman-free";
import "@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.css";
import { api, type DeviceView, type Geofence, type Person } from "./api.ts";
import { h, present } from "./dom.ts";
import { currentLocale, errorText, type MessageKey, t } from "./i18n.ts";

type Shape = Geofence["shape"];
type Draft = L.Circle | L.Polygon;
type LonLat = [number, number];

const SCHOOL_HOURS = { days: [1, 2, 3, 4, 5], from: "08:00", to: "16:30" };
const DRAFT_STYLE = { color: "#c2410c", weight: 3, fillOpacity: 0.15 };

/** Seven decimals of a degree are about a centimetre: more is noise. */
const round = (deg: number) => Math.round(deg * 1e7) / 1e7;

/** A closed GeoJSON ring from Leaflet's open one. */
function ringOf(latlngs: L.LatLng[]): LonLat[] {
  const ring = latlngs.map((p) => [round(p.lng), round(p.lat)] as LonLat);
  const [first, last] = [ring[0], ring.at(-1)];
  if (first && last && (first[0] !== last[0] || first[1] !== last[1])) ring.push([...first]);
  return ring;
}

/** The zone's shape as the API takes it: a circle, or a polygon (outer ring, then holes). */
function shapeOf(layer: Draft): Shape {
  if (layer instanceof L.Circle) {
    const c = layer.getLatLng();
    return { type: "Circle", center: [round(c.lng), round(c.lat)], radiusM: Math.round(layer.getRadius()) };
  }
  // A polygon with holes is LatLng[][]; one a cut split in two is LatLng[][][]: its first part.
  const latlngs = layer.getLatLngs() as L.LatLng[][] | L.LatLng[][][];
  const rings = (Array.isArray(latlngs[0]?.[0]) ? latlngs[0] : latlngs) as L.LatLng[][];
  return { type: "Polygon", coordinates: rings.map(ringOf) };
}

function layerOf(shape: Shape): Draft {
  return shape.type === "Circle"
    ? L.circle([shape.center[1], shape.center[0]], { ...DRAFT_STYLE, radius: shape.radiusM })
    : L.polygon(
        // Leaflet rings are open: the closing position is dropped.
        shape.coordinates.map((ring) =>
          ring.slice(0, -1).map(([lon, lat]) => [lat, lon] as [number, number]),
        ),
        DRAFT_STYLE,
      );
}

/**
 * Draws and edits a safe zone on the map with Leaflet-Geoman: a circle or a polygon, holes cut
 * into it, corners and the whole zone dragged; its name, the tags it guards and its hours.
 */
export class ZoneEditor {
  readonly element = h("form", { class: "zone-editor", novalidate: true });
  private draft: Draft | null = null;
  private editing: Geofence | null = null;
  private readonly error = h("p", { class: "error", role: "alert" });

  constructor(
    private readonly map: L.Map,
    private readonly deps: {
      tags: () => DeviceView[];
      people: Map<string, Person>;
      timeZone: string;
      /** The editor closed; `saved` when the zones changed. */
      done: (saved: boolean) => void;
    },
  ) {
    // Geoman equips maps made after it loaded; this one was made before.
    const PM = (L as unknown as { PM: { Map: new (map: L.Map) => L.PM.PMMap } }).PM;
    map.pm ??= new PM.Map(map);
    map.pm.setLang(currentLocale() === "en" ? "en" : "zh");
    map.on("pm:create", (e) => this.adopt(e.layer as Draft));
    map.on("pm:cut", (e) => {
      // The cut replaces the zone's layer with a new one that has the hole.
      if (e.originalLayer === this.draft) this.adopt(e.layer as Draft);
    });
    this.element.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.save();
    });
  }

  /** Opens the form: on a zone to edit it, or empty to draw a new one. */
  open(zone: Geofence | null): void {
    this.discardDraft();
    this.editing = zone;
    if (zone) this.adopt(layerOf(zone.shape).addTo(this.map));
    this.render(zone);
  }

  close(saved: boolean): void {
    this.map.pm.disableDraw();
    this.map.pm.disableGlobalCutMode();
    this.discardDraft();
    this.editing = null;
    this.element.replaceChildren();
    this.deps.done(saved);
  }

  private adopt(layer: Draft): void {
    if (this.draft && this.draft !== layer) this.draft.remove();
    this.draft = layer;
    layer.setStyle(DRAFT_STYLE);
    // Corners dragged one by one, and the whole zone dragged by its body.
    layer.pm.enable({ allowSelfIntersection: false, draggable: true });
    layer.pm.enableLayerDrag();
    this.element.classList.add("has-shape");
  }

  private discardDraft(): void {
    this.draft?.remove();
    this.draft = null;
    this.element.classList.remove("has-shape");
  }

  private draw(shape: "Circle" | "Polygon"): void {
    this.map.pm.disableGlobalCutMode();
    this.discardDraft();
    this.map.pm.enableDraw(shape, { allowSelfIntersection: false, pathOptions: DRAFT_STYLE });
  }

  private cutHole(): void {
    if (!this.draft) {
      this.say("zones.needShape");
      return;
    }
    // Only the zone being drawn is cut, never the other zones on the map.
    this.map.pm.setGlobalOptions({ layersToCut: [this.draft] });
    this.map.pm.enableGlobalCutMode({ allowSelfIntersection: false });
  }

  private say(key: MessageKey): void {
    this.error.textContent = t(key);
  }

  private render(zone: Geofence | null): void {
    const windows = zone?.schedule?.windows ?? [];
    const first = windows[0] ?? SCHOOL_HOURS;
    const days = new Set(windows.flatMap((w) => w.days));
    const button = (key: MessageKey, onclick: () => void, extra: Record<string, unknown> = {}) =>
      h("button", { type: "button", onclick, ...extra }, t(key));
    const dayBoxes = [1, 2, 3, 4, 5, 6, 7].map((d) =>
      h(
        "label",
        { class: "day" },
        h("input", { type: "checkbox", name: "zone-day", value: d, checked: days.has(d) }),
        t(`zones.day${d}` as MessageKey),
      ),
    );
    const from = h("input", { type: "time", id: "zone-from", value: first.from });
    const to = h("input", { type: "time", id: "zone-to", value: first.to === "24:00" ? "23:59" : first.to });
    const scheduled = h("input", {
      type: "radio",
      name: "zone-when",
      value: "scheduled",
      id: "zone-scheduled",
      checked: Boolean(zone?.schedule),
    });
    const schoolHours = () => {
      scheduled.checked = true;
      for (const box of dayBoxes) {
        const input = box.querySelector("input") as HTMLInputElement;
        input.checked = SCHOOL_HOURS.days.includes(Number(input.value));
      }
      from.value = SCHOOL_HOURS.from;
      to.value = SCHOOL_HOURS.to;
    };
    this.error.textContent = "";
    this.element.replaceChildren(
      ...present(
        h("h3", {}, zone ? zone.name : t("zones.new")),
        h(
          "div",
          { class: "zone-tools" },
          button("zones.circle", () => this.draw("Circle"), { dataset: { draw: "Circle" } }),
          button("zones.polygon", () => this.draw("Polygon"), { dataset: { draw: "Polygon" } }),
          button("zones.hole", () => this.cutHole(), { dataset: { draw: "Cut" } }),
        ),
        h("p", { class: "hint" }, t("zones.drawHint")),
        h("label", { for: "zone-name" }, t("zones.name")),
        h("input", {
          id: "zone-name",
          name: "name",
          required: true,
          maxlength: 200,
          value: zone?.name ?? "",
        }),
        h(
          "fieldset",
          { class: "zone-tags" },
          h("legend", {}, t("zones.tags")),
          ...this.deps.tags().map((tag) =>
            h(
              "label",
              {},
              h("input", {
                type: "checkbox",
                name: "zone-tag",
                value: tag.id,
                checked: zone?.deviceIds.includes(tag.id) ?? false,
              }),
              `${tag.id} · ${this.deps.people.get(tag.ownerId)?.name ?? tag.ownerId}`,
            ),
          ),
        ),
        h(
          "fieldset",
          { class: "zone-hours" },
          h("legend", {}, t("zones.when")),
          h(
            "label",
            {},
            h("input", { type: "radio", name: "zone-when", value: "always", checked: !zone?.schedule }),
            t("zones.always"),
          ),
          h("label", { for: "zone-scheduled" }, scheduled, t("zones.scheduled")),
          button("zones.schoolHours", schoolHours, { class: "school-hours" }),
          h("div", { class: "days", role: "group", "aria-label": t("zones.days") }, ...dayBoxes),
          h("label", { for: "zone-from" }, t("zones.from")),
          from,
          h("label", { for: "zone-to" }, t("zones.to")),
          to,
          h(
            "p",
            { class: "hint" },
            t("zones.timeZone", { zone: zone?.schedule?.timeZone ?? this.deps.timeZone }),
          ),
        ),
        this.error,
        h(
          "div",
          { class: "actions" },
          h("button", { type: "submit", class: "primary" }, t("zones.save")),
          button("zones.cancel", () => this.close(false)),
          zone && button("zones.delete", () => void this.remove(zone), { class: "danger" }),
        ),
      ),
    );
  }

  /** What the form says, as the API takes it; the API judges the rest and says why in its code. */
  private async save(): Promise<void> {
    if (!this.draft) {
      this.say("zones.needShape");
      return;
    }
    const form = this.element;
    const value = (sel: string) => (form.querySelector(sel) as HTMLInputElement).value;
    const checked = (name: string) =>
      [...form.querySelectorAll<HTMLInputElement>(`input[name="${name}"]:checked`)].map((i) => i.value);
    const deviceIds = checked("zone-tag");
    if (deviceIds.length === 0) {
      this.say("zones.needTag");
      return;
    }
    const scheduled = checked("zone-when")[0] === "scheduled";
    const zone = {
      id: this.editing?.id,
      name: value("#zone-name").trim(),
      shape: shapeOf(this.draft),
      deviceIds,
      schedule: scheduled
        ? {
            timeZone: this.editing?.schedule?.timeZone ?? this.deps.timeZone,
            windows: [
              { days: checked("zone-day").map(Number), from: value("#zone-from"), to: value("#zone-to") },
            ],
          }
        : null,
    };
    try {
      await api.saveGeofence(zone);
      this.close(true);
    } catch (err) {
      this.error.textContent = errorText(err);
    }
  }

  private async remove(zone: Geofence): Promise<void> {
    if (!confirm(t("zones.confirmDelete", { name: zone.name }))) return;
    try {
      await api.removeGeofence(zone.id);
      this.close(true);
    } catch (err) {
      this.error.textContent = errorText(err);
    }
  }
}
