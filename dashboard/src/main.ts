import { notificationsButton, raiseAlarm, unlockAudio } from "./alarm.ts";
import { ApiError, api, type Person, type SessionInfo, whenSignedOut } from "./api.ts";
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
const root = document.getElementById("app") as HTMLElement;

/** The sign-in form; a successful sign-in starts the dashboard in place. */
function showSignIn(message = ""): void {
  const error = h("p", { class: "error", role: "alert", hidden: !message }, message);
  const field = (id: string, type: string, key: MessageKey, autocomplete: string) =>
    h(
      "label",
      { for: id },
      t(key),
      h("input", { id, name: id, type, autocomplete, required: true, maxlength: 200 }),
    );
  const form = h(
    "form",
    {
      class: "signin",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        const data = new FormData(form);
        try {
          await boot(await api.signIn(String(data.get("username")), String(data.get("password"))));
        } catch (err) {
          error.textContent = t("signin.failed", { message: (err as Error).message });
          error.hidden = false;
        }
      },
    },
    h("h1", {}, t("app.title")),
    h("h2", {}, t("signin.title")),
    field("username", "text", "signin.username", "username"),
    field("password", "password", "signin.password", "current-password"),
    error,
    h("button", { class: "primary", type: "submit" }, t("signin.submit")),
  );
  root.replaceChildren(form);
  (form.querySelector("input") as HTMLInputElement).focus();
}

async function boot(session: SessionInfo): Promise<void> {
  document.documentElement.lang = currentLocale();
  // The session ended (expired, signed out elsewhere, account disabled): back to the form.
  whenSignedOut(() => location.reload());
  const config = await api.config();
  configureMaps(config);
  const people = new Map<string, Person>((await api.people()).map((p) => [p.id, p]));
  let view: View = (location.hash.slice(1) as View) || "alerts";
  let status: StreamStatus = "connecting";
  let errorText = "";

  const board = new AlertBoard({
    people,
    canRespond: session.person !== null,
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
    const who = session.person
      ? `${session.person.name} · ${t(`role.${session.person.role}` as MessageKey)}`
      : session.account.username;
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
            h("span", { class: "who" }, t("signin.as", { name: who })),
            h(
              "button",
              {
                id: "sign-out",
                onclick: async () => {
                  await api.signOut().catch(() => undefined);
                  location.reload();
                },
              },
              t("signout"),
            ),
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

api
  .session()
  .then(boot, (err) => {
    if (err instanceof ApiError && err.status === 401) return showSignIn();
    throw err;
  })
  .catch((err) => {
    document.body.textContent = `Cannot start: ${(err as Error).message}`;
  });
