import { notificationsButton, raiseAlarm, unlockAudio } from "./alarm.ts";
import { api, type Person } from "./api.ts";
import { AlertBoard } from "./board.ts";
import { DeviceList } from "./devices.ts";
import { h, present } from "./dom.ts";
import {
  currentLocale,
  type Locale,
  locales,
  type MessageKey,
  onLocaleChange,
  setLocale,
  t,
} from "./i18n.ts";
import { configureMaps, TagMap } from "./map.ts";
import { AlertFeed, type StreamStatus } from "./stream.ts";
import "./style.css";

type View = "alerts" | "map" | "devices";
const ACTOR_KEY = "gateway.actor";

async function boot(): Promise<void> {
  const root = document.getElementById("app") as HTMLElement;
  document.documentElement.lang = currentLocale();
  const config = await api.config();
  configureMaps(config);
  const people = new Map<string, Person>((await api.people()).map((p) => [p.id, p]));
  let actor = localStorage.getItem(ACTOR_KEY);
  let view: View = (location.hash.slice(1) as View) || "alerts";
  let status: StreamStatus = "connecting";
  let errorText = "";

  const board = new AlertBoard({
    people,
    policies: config.policies,
    actor: () => actor,
    showError: (message) => {
      errorText = message;
      render();
    },
  });
  const alerting = () =>
    new Set(
      [...board.alerts.values()]
        .filter((a) => a.state === "open" || a.state === "accepted")
        .map((a) => a.deviceId),
    );
  const tagMap = new TagMap(people, alerting);
  const devices = new DeviceList(people);

  const { alerts, lastEventId } = await api.alerts();
  board.load(alerts);
  const feed = new AlertFeed(
    lastEventId,
    (alert) => {
      const isNew = board.apply(alert);
      if (isNew && alert.state === "open") {
        const who = people.get(alert.subjectId)?.name ?? alert.subjectId;
        raiseAlarm(
          `${t(`kind.${alert.kind}` as MessageKey)} · ${who}`,
          people.get(alert.subjectId)?.address ?? alert.deviceId,
        );
      }
      if (view === "map") void tagMap.refresh();
    },
    (next) => {
      status = next;
      renderStatus();
    },
  );

  const banner = h("div", { class: "banner", role: "alert", hidden: true });
  const statusPill = h("span", { class: "status", "aria-live": "polite" });
  const main = h("main", { id: "main" });
  function renderStatus(): void {
    statusPill.textContent = t(
      status === "live" ? "stream.live" : status === "down" ? "stream.down" : "stream.connecting",
    );
    statusPill.className = `status ${status}`;
    banner.hidden = status !== "down";
    banner.textContent = t("stream.down");
  }

  function render(): void {
    const tab = (id: View, key: MessageKey) =>
      h("a", { href: `#${id}`, class: "tab", "aria-current": view === id ? "page" : undefined }, t(key));
    const language = h(
      "select",
      {
        id: "language",
        "aria-label": t("lang.label"),
        onchange: (e: Event) => setLocale((e.target as HTMLSelectElement).value as Locale),
      },
      ...locales.map((l) => h("option", { value: l.id, selected: l.id === currentLocale() }, l.name)),
    );
    const responders = [...people.values()].filter((p) => p.role !== "resident");
    const actorSelect = h(
      "select",
      {
        id: "actor",
        onchange: (e: Event) => {
          actor = (e.target as HTMLSelectElement).value || null;
          if (actor) localStorage.setItem(ACTOR_KEY, actor);
          errorText = "";
          render();
        },
      },
      h("option", { value: "" }, t("actor.none")),
      ...responders.map((p) =>
        h(
          "option",
          { value: p.id, selected: p.id === actor },
          `${p.name} · ${t(`role.${p.role}` as MessageKey)}`,
        ),
      ),
    );
    root.replaceChildren(
      ...present(
        h("a", { class: "skip", href: "#main" }, "Skip to content"),
        h(
          "header",
          { class: "top" },
          h("div", { class: "brand" }, h("h1", {}, t("app.title")), h("span", {}, t("app.subtitle"))),
          h(
            "nav",
            { "aria-label": "views" },
            tab("alerts", "nav.alerts"),
            tab("map", "nav.map"),
            tab("devices", "nav.devices"),
          ),
          h(
            "div",
            { class: "controls" },
            statusPill,
            notificationsButton(),
            h("label", { for: "actor" }, t("actor.label")),
            actorSelect,
            language,
          ),
        ),
        banner,
        errorText ? h("p", { class: "error", role: "alert" }, errorText) : null,
        main,
      ),
    );
    renderStatus();
    main.replaceChildren(
      view === "alerts" ? board.element : view === "map" ? tagMap.element : devices.element,
    );
    if (view === "alerts") board.render();
    if (view === "map") void tagMap.show();
    if (view === "devices") void devices.refresh();
  }

  window.addEventListener("hashchange", () => {
    view = (location.hash.slice(1) as View) || "alerts";
    render();
  });
  onLocaleChange(render);
  // "3 minutes ago" keeps moving.
  setInterval(() => view === "alerts" && board.render(), 15_000);
  setInterval(() => view === "devices" && void devices.refresh(), 15_000);
  render();
  feed.start();
  // Browsers let a page play sound only after the user touched it once.
  document.addEventListener("pointerdown", unlockAudio, { once: true });
  document.addEventListener("keydown", unlockAudio, { once: true });
}

boot().catch((err) => {
  document.body.textContent = `Cannot start: ${(err as Error).message}`;
});
