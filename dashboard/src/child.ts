import { signedDistanceM } from "../../gateway/rules/geometry.ts";
import { isInForce } from "../../gateway/rules/schedule.ts";
import { api, type DeviceView, type Geofence, gatewayNow, type Person } from "./api.ts";
import { h, present, telHref } from "./dom.ts";
import { formatAgo, formatTime, type MessageKey, t } from "./i18n.ts";

/** Who to phone about a child, loaded once per child: guardians (family) and the grid's worker. */
const callees = new Map<string, { relation: "guardian" | "gridWorker"; person: Person }[]>();

async function loadCallees(owner: Person, people: Map<string, Person>) {
  const known = callees.get(owner.id);
  if (known) return known;
  const assigned = await api.assignments(owner.id).catch(() => []);
  const guardians = assigned
    .filter((a) => a.relation === "family")
    .flatMap((a) => people.get(a.personId) ?? []);
  const gridWorkers = [...people.values()].filter(
    (p) => p.role === "grid-worker" && owner.gridId !== null && p.gridId === owner.gridId,
  );
  const found = [
    ...guardians.map((person) => ({ relation: "guardian" as const, person })),
    ...gridWorkers.map((person) => ({ relation: "gridWorker" as const, person })),
  ];
  callees.set(owner.id, found);
  return found;
}

/** Where the tag is against each zone that guards it, judged on its last trusted fix. */
function zoneLines(tag: DeviceView, zones: Geofence[]): string[] {
  const own = zones.filter((z) => z.deviceIds.includes(tag.id));
  const p = tag.state?.position;
  if (own.length === 0) return [t("child.noZone")];
  return own.map((z) => {
    if (!p) return z.name;
    if (!isInForce(z.schedule, gatewayNow())) return t("child.offHours", { zone: z.name });
    const d = signedDistanceM(z.shape, [p.lon, p.lat]);
    return d <= 0
      ? t("child.inZone", { zone: z.name })
      : t("child.outZone", { zone: z.name, distance: Math.round(d) });
  });
}

const sourceKey = (source: string | null): MessageKey =>
  source === "gps" || source === "lbs" || source === "wifi"
    ? `child.source.${source}`
    : "child.source.unknown";

/**
 * "Where is the child now", for staff and family: the last fix with its time, age, source and
 * accuracy, the child's own zones, battery, and `tel:` buttons for the guardian and grid worker.
 */
export function childView(tag: DeviceView, zones: Geofence[], people: Map<string, Person>): HTMLElement {
  const owner = people.get(tag.ownerId);
  const p = tag.state?.position;
  const calls = h("div", { class: "calls" });
  if (owner)
    void loadCallees(owner, people).then((found) =>
      calls.replaceChildren(
        ...found.flatMap(({ relation, person }) =>
          person.phone
            ? [
                h(
                  "a",
                  { class: "tel button", href: telHref(person.phone), dataset: { relation } },
                  t("child.call", { relation: t(`child.${relation}`), name: person.name }),
                ),
              ]
            : [],
        ),
      ),
    );
  return h(
    "section",
    { class: "child-view", dataset: { deviceId: tag.id } },
    ...present(
      h("h2", {}, t("child.title", { name: owner?.name ?? tag.ownerId })),
      p
        ? h(
            "p",
            { class: "fix" },
            h(
              "time",
              { datetime: new Date(p.ts).toISOString() },
              t("child.lastFix", { time: formatTime(p.ts), ago: formatAgo(p.ts, gatewayNow()) }),
            ),
          )
        : h("p", { class: "fix warning" }, t("child.noFix")),
      p &&
        h(
          "p",
          { class: "source", dataset: { source: p.source ?? "unknown" } },
          t("child.source", { source: t(sourceKey(p.source)), metres: Math.round(p.accuracy) }),
        ),
      h("ul", { class: "zones" }, ...zoneLines(tag, zones).map((line) => h("li", {}, line))),
      h(
        "p",
        { class: "battery" },
        t("child.battery", { battery: tag.state?.battery ?? "?" }),
        tag.state?.lastSeenAt
          ? ` · ${t("child.lastHeard", { ago: formatAgo(tag.state.lastSeenAt, gatewayNow()) })}`
          : "",
      ),
      calls,
    ),
  );
}
