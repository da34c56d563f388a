import { Alarm, notificationsButton, notifySystem, registerWorker, unlockAudio } from "./alarm.ts";
import { ApiError, api, type Person, type SessionInfo, whenSignedOut } from "./api.ts";
import { AlertBoard } from "./board.ts";
import { DeviceList } from "./devices.ts";
import { h, present } from "./dom.ts";
import {
  currentLocale,
  errorText,
  type Locale,
  locales,
  type MessageKey,
  onLocaleChange,
  setLocale,
  t,
} from "./i18n.ts";
import { configureMaps, TagMap } from "./map.ts";
import { PeopleView } from "./people.ts";
import { AlertFeed, type StreamStatus } from "./stream.ts";
import "./style.css";

type View = "alerts" | "map" | "devices" | "contacts" | "people" | "accounts" | "reports";
interface ViewPart {
  readonly element: HTMLElement;
  show(): Promise<void>;
}

/** A view whose code is fetched the first time it is shown; a failed fetch is tried again at the next. */
function lazyView(load: () => Promise<ViewPart>): ViewPart {
  const element = h("div", { class: "lazy-view" });
  let view: Promise<ViewPart | undefined> | undefined;
  return {
    element,
    async show() {
      view ??= load().then(
        (loaded) => {
          element.replaceChildren(loaded.element);
          return loaded;
        },
        () => {
          view = undefined;
          return undefined;
        },
      );
      await (await view)?.show();
    },
  };
}

const root = document.getElementById("app") as HTMLElement;
/** Redraws whatever is on screen in the language just chosen. */
let redraw: () => void = () => undefined;
onLocaleChange(() => redraw());

const TEXT_SIZE_KEY = "gateway.textSize";
const textSizes = ["100", "125", "150"] as const;
/** Percent of the browser's own size, so a larger default font in the browser still counts. */
function applyTextSize(size: string): void {
  document.documentElement.style.fontSize = `${size}%`;
  localStorage.setItem(TEXT_SIZE_KEY, size);
}
applyTextSize(localStorage.getItem(TEXT_SIZE_KEY) ?? "100");
document.documentElement.lang = currentLocale();
document.title = t("app.title");

const languageSelect = () =>
  h(
    "select",
    {
      id: "language",
      "aria-label": t("lang.label"),
      onchange: (e: Event) => setLocale((e.target as HTMLSelectElement).value as Locale),
    },
    ...locales.map((l) => h("option", { value: l.id, selected: l.id === currentLocale() }, l.name)),
  );

const textSizeSelect = () =>
  h(
    "select",
    {
      id: "text-size",
      "aria-label": t("textSize.label"),
      onchange: (e: Event) => applyTextSize((e.target as HTMLSelectElement).value),
    },
    ...textSizes.map((s) =>
      h(
        "option",
        { value: s, selected: document.documentElement.style.fontSize === `${s}%` },
        `${t("textSize.label")}: ${t(`textSize.${s}`)}`,
      ),
    ),
  );

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `load` until the gateway answers: a page opened during an outage waits, says so, and
 * opens by itself when the gateway is back. An answer that refuses (a 4xx) is not an outage.
 */
async function untilReachable<T>(load: () => Promise<T>): Promise<T> {
  for (let delay = 1000; ; delay = Math.min(delay * 2, 8000)) {
    try {
      return await load();
    } catch (err) {
      if (err instanceof ApiError && err.status < 500) throw err;
      showWaiting();
      await sleep(delay);
    }
  }
}

function showWaiting(): void {
  redraw = showWaiting;
  root.replaceChildren(
    h(
      "div",
      { class: "boot", role: "status" },
      h("h1", {}, t("app.title")),
      h("p", { class: "banner" }, t("boot.retrying")),
      languageSelect(),
    ),
  );
}

/** The sign-in form; a successful sign-in starts the dashboard in place. */
function showSignIn(message = ""): void {
  redraw = () => showSignIn(error.hidden ? "" : error.textContent);
  const error = h("p", { class: "error", role: "alert", hidden: !message }, message);
  const field = (id: string, type: string, key: MessageKey, autocomplete: string) =>
    h(
      "label",
      { for: id },
      t(key),
      h("input", { id, name: id, type, autocomplete, required: true, maxlength: 200 }),
    );
  const submit = h("button", { class: "primary", type: "submit" }, t("signin.submit"));
  const form = h(
    "form",
    {
      class: "signin",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        const data = new FormData(form);
        submit.disabled = true;
        submit.textContent = t("signin.busy");
        try {
          await boot(await api.signIn(String(data.get("username")), String(data.get("password"))));
        } catch (err) {
          error.textContent = t("signin.failed", { message: errorText(err) });
          error.hidden = false;
          submit.disabled = false;
          submit.textContent = t("signin.submit");
        }
      },
    },
    h("h1", {}, t("app.title")),
    h("h2", {}, t("signin.title")),
    field("username", "text", "signin.username", "username"),
    field("password", "password", "signin.password", "current-password"),
    error,
    submit,
    languageSelect(),
  );
  root.replaceChildren(form);
  (form.querySelector("input") as HTMLInputElement).focus();
}

async function boot(session: SessionInfo): Promise<void> {
  // The session ended (expired, signed out elsewhere, account disabled): back to the form.
  whenSignedOut(() => location.reload());
  const [config, peopleList, gridList, initial] = await untilReachable(() =>
    Promise.all([api.config(), api.people(), api.grids(), api.alerts()]),
  );
  configureMaps(config);
  const people = new Map<string, Person>(peopleList.map((p) => [p.id, p]));
  const manages = session.account.role === "admin" || session.account.role === "staff";
  const viewOf = (hash: string): View =>
    hash === "#map"
      ? "map"
      : hash === "#devices"
        ? "devices"
        : hash === "#contacts"
          ? "contacts"
          : hash === "#people"
            ? "people"
            : hash === "#accounts"
              ? "accounts"
              : hash === "#reports" && manages
                ? "reports"
                : "alerts";
  let view = viewOf(location.hash);
  let status: StreamStatus = "connecting";
  let errorMessage = "";
  const alarm = new Alarm();
  // Folded on a phone, where the header must stay small; open on a desk. Kept across redraws.
  let controlsOpen = matchMedia("(min-width: 900px)").matches;

  const board = new AlertBoard({
    people,
    grids: new Map(gridList.map((g) => [g.id, g.name])),
    me: session.person,
    online: () => status === "live",
    showError: (message) => {
      errorMessage = message;
      render();
    },
    onChange: () => alarm.sync(board.waiting()),
  });
  const alerting = () =>
    new Set(
      [...board.alerts.values()]
        .filter((a) => a.state === "open" || a.state === "accepted")
        .map((a) => a.deviceId),
    );
  const tagMap = new TagMap(people, alerting, manages);
  const devices = new DeviceList(people, manages);
  // Views fewer people open load their code when first shown: the first load stays small.
  const contacts = lazyView(async () => new (await import("./contacts.ts")).ContactsView(session, people));
  const peopleView = new PeopleView(session, people);
  const accounts = lazyView(async () => new (await import("./accounts.ts")).AccountsView(session, people));
  const reports = lazyView(async () => new (await import("./reports.ts")).ReportsView());

  board.load(initial.alerts);
  // A notification's link (?alert=id) opens that alert.
  const linked = new URLSearchParams(location.search).get("alert");
  if (linked) void board.openDetail(linked);
  const feed = new AlertFeed(
    initial.lastEventId,
    (alert) => {
      const isNew = board.apply(alert);
      if (isNew && alert.state === "open") {
        notifySystem(
          `${t(`kind.${alert.kind}`)} · ${people.get(alert.subjectId)?.name ?? alert.subjectId}`,
          people.get(alert.subjectId)?.address ?? alert.deviceId,
          alert.id,
        );
      }
      if (view === "map") void tagMap.refresh();
    },
    (next) => {
      const back = next === "live" && status !== "live";
      status = next;
      // The link is back: what failed while it was away no longer stands, and views reload.
      if (back) {
        errorMessage = "";
        render();
      } else {
        renderStatus();
        board.render();
      }
    },
  );

  const banner = h("div", { class: "banner", role: "alert", hidden: true });
  const statusPill = h("span", { class: "status", "aria-live": "polite" });
  const main = h("main", { id: "main", tabindex: -1 });
  function renderStatus(): void {
    statusPill.textContent = t(
      status === "live" ? "stream.live" : status === "down" ? "stream.offline" : "stream.connecting",
    );
    statusPill.className = `status ${status}`;
    banner.hidden = status !== "down";
    banner.textContent = `${t("stream.down")} ${t("stream.paused")}`;
  }

  function muteButton(): HTMLButtonElement {
    return alarm.muted
      ? h(
          "button",
          {
            id: "mute",
            class: "link",
            onclick: () => {
              alarm.unmute();
              render();
            },
          },
          `${t("alarm.muted", { time: new Date(alarm.mutedUntil).toLocaleTimeString(currentLocale(), { timeStyle: "short" }) })} · ${t("alarm.unmute")}`,
        )
      : h(
          "button",
          {
            id: "mute",
            class: "link",
            onclick: () => {
              alarm.mute(10);
              render();
            },
          },
          t("alarm.mute", { minutes: 10 }),
        );
  }

  function render(): void {
    redraw = render;
    const tab = (id: View, key: MessageKey) =>
      h("a", { href: `#${id}`, class: "tab", "aria-current": view === id ? "page" : undefined }, t(key));
    const who = session.person
      ? `${session.person.name} · ${t(`role.${session.person.role}`)}`
      : session.account.username;
    root.replaceChildren(
      ...present(
        // Moves focus without touching the hash, which names the view.
        h(
          "a",
          {
            class: "skip",
            href: "#main",
            onclick: (e: Event) => {
              e.preventDefault();
              main.focus();
            },
          },
          t("app.skip"),
        ),
        h(
          "div",
          { class: "sticky" },
          h(
            "header",
            { class: "top" },
            h("h1", { class: "brand" }, t("app.title")),
            h(
              "nav",
              { "aria-label": t("nav.label") },
              tab("alerts", "nav.alerts"),
              tab("map", "nav.map"),
              tab("devices", "nav.devices"),
              tab("contacts", "nav.contacts"),
              tab("people", "nav.people"),
              // The report API answers staff and admins only.
              manages && tab("reports", "nav.reports"),
              tab("accounts", "nav.accounts"),
            ),
            statusPill,
            h(
              "details",
              {
                class: "controls",
                open: controlsOpen,
                ontoggle: (e: Event) => {
                  controlsOpen = (e.target as HTMLDetailsElement).open;
                },
              },
              h("summary", {}, t("signin.as", { name: who })),
              h(
                "div",
                { class: "controls-body" },
                muteButton(),
                notificationsButton(session.person !== null),
                languageSelect(),
                textSizeSelect(),
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
              ),
            ),
          ),
          banner,
          errorMessage ? h("p", { class: "error", role: "alert" }, errorMessage) : null,
        ),
        main,
      ),
    );
    renderStatus();
    alarm.sync(board.waiting());
    main.replaceChildren(
      view === "alerts"
        ? board.element
        : view === "map"
          ? tagMap.element
          : view === "devices"
            ? devices.element
            : view === "people"
              ? peopleView.element
              : view === "accounts"
                ? accounts.element
                : view === "reports"
                  ? reports.element
                  : contacts.element,
    );
    if (view === "alerts") board.render();
    if (view === "map") void tagMap.show();
    if (view === "devices") void devices.refresh();
    if (view === "contacts") void contacts.show();
    if (view === "people") void peopleView.show();
    if (view === "accounts") void accounts.show();
    if (view === "reports") void reports.show();
  }

  window.addEventListener("hashchange", () => {
    view = viewOf(location.hash);
    render();
  });
  // Countdowns move each second; "3 minutes ago" and the device list every 15 s.
  setInterval(() => view === "alerts" && board.tick(), 1000);
  setInterval(() => view === "alerts" && board.render(), 15_000);
  setInterval(() => view === "devices" && void devices.refresh(), 15_000);
  render();
  feed.start();
  registerWorker();
  // Browsers let a page play sound only after the user touched it once.
  document.addEventListener("pointerdown", unlockAudio, { once: true });
  document.addEventListener("keydown", unlockAudio, { once: true });
}

untilReachable(() => api.session())
  .then(boot, (err) => {
    if (err instanceof ApiError && err.status === 401) return showSignIn();
    throw err;
  })
  .catch((err) => {
    root.replaceChildren(h("p", { class: "error", role: "alert" }, errorText(err)));
  });
