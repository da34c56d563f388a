import { mayAct } from "../../gateway/alerts/decide.ts";
import {
  type Alert,
  type AlertDetail,
  type AlertEvent,
  type AlertKind,
  ApiError,
  alertKinds,
  api,
  type CareNotes,
  type Contact,
  gatewayNow,
  type Person,
} from "./api.ts";
import { h, present, telHref } from "./dom.ts";
import { errorText, formatAgo, formatList, formatTime, isMessageKey, type MessageKey, t } from "./i18n.ts";
import { drawMiniMap } from "./map.ts";
import { careList } from "./people.ts";
import { dueAt, formatCountdown, isActive, laneOf, triageOrder } from "./triage.ts";

export interface BoardContext {
  people: Map<string, Person>;
  /** Grid names by id: the board filters by the grid the resident lives in. */
  grids: Map<string, string>;
  /** The person the signed-in account acts as; without one it may look but not act. */
  me: Person | null;
  /** Whether the gateway answers: actions wait while it does not. */
  online: () => boolean;
  showError: (message: string) => void;
  /** After any change to the alerts: the page counts those waiting for a responder. */
  onChange: () => void;
}

/** A false alarm is sent this long after it is confirmed; until then it can be undone. */
const UNDO_MS = 5000;
/** A closed alert stays in view this long, then folds into "closed earlier". */
const CLOSED_VISIBLE_MS = 10 * 60_000;

type StateFilter = "all" | "active" | "closed";

const colour = (a: Alert): string =>
  a.state === "accepted"
    ? "yellow"
    : a.state === "resolved"
      ? "green"
      : a.state === "cancelled"
        ? "grey"
        : laneOf(a.kind) === "health"
          ? "amber"
          : "red";

/** `tel:` wants digits and a leading plus only. */
/** A map app's search for the address (AMap, which opens the app on a phone that has it). */
const mapHref = (address: string) => `https://uri.amap.com/search?keyword=${encodeURIComponent(address)}`;
const roleName = (role: string) => t(`role.${role}` as MessageKey);
/** The timeline's words for an event; closings the gateway made itself carry no English note. */
function eventKey(e: AlertEvent): MessageKey {
  if (e.type === "resolved" && e.actor === "gateway") return "event.cleared";
  if (e.type === "cancelled" && e.data.reason === "device") return "event.cancelledByResident";
  if (e.type === "cancelled" && e.data.reason === "superseded") return "event.superseded";
  return `event.${e.type}`;
}

/**
 * The responder's workbench: people in danger first (by severity, then who waited longest),
 * then what is in progress, devices needing care in a quieter lane, and closed alerts folding
 * away. Each card counts down to its next escalation and carries the phone numbers to call.
 */
export class AlertBoard {
  readonly alerts = new Map<string, Alert>();
  readonly element = h("section", { class: "board", "aria-label": t("nav.alerts") });
  private detail: HTMLDialogElement | undefined;
  /** The care notes of the alert shown in the detail. */
  private care: { alertId: string; notes: CareNotes | null } | undefined;
  /** The subject's doctor and family with phones, fetched once per subject for active alerts. */
  private readonly contacts = new Map<string, Contact[] | "loading">();
  /** Confirmed false alarms waiting out their undo time. */
  private readonly pending = new Map<string, { sendAt: number; timer: number }>();
  private kind: AlertKind | "all" = "all";
  private state: StateFilter = "all";
  private grid = "all";
  private showEarlier = false;

  constructor(private readonly ctx: BoardContext) {}

  load(alerts: Alert[]): void {
    for (const a of alerts) this.alerts.set(a.id, a);
    this.changed();
  }

  /** Applies one event from the stream; returns true when it is an alert not seen before. */
  apply(alert: Alert): boolean {
    const isNew = !this.alerts.has(alert.id);
    this.alerts.set(alert.id, alert);
    this.changed();
    if (this.detail?.open && this.detail.dataset.alertId === alert.id) void this.openDetail(alert.id);
    return isNew;
  }

  /** Alerts about people waiting for someone to accept them: what the alarm rings for. */
  waiting(): number {
    return [...this.alerts.values()].filter((a) => a.state === "open" && laneOf(a.kind) === "urgent").length;
  }

  private changed(): void {
    this.render();
    this.ctx.onChange();
  }

  render(): void {
    const now = gatewayNow();
    const shown = [...this.alerts.values()]
      .filter((a) => this.kind === "all" || a.kind === this.kind)
      .filter((a) => this.state === "all" || (this.state === "active") === isActive(a))
      .filter((a) => this.grid === "all" || this.ctx.people.get(a.subjectId)?.gridId === this.grid)
      .sort(triageOrder);
    const active = shown.filter(isActive);
    const closed = shown.filter((a) => !isActive(a));
    const recent = closed.filter((a) => now - (a.closedAt ?? a.openedAt) < CLOSED_VISIBLE_MS);
    const earlier = closed.filter((a) => !recent.includes(a));
    const section = (lane: string, title: string, alerts: Alert[], action?: Node | false) =>
      alerts.length > 0 &&
      h(
        "section",
        { class: `lane ${lane}`, dataset: { lane } },
        h("h2", { class: "lane-title" }, title, " ", h("span", { class: "count" }, alerts.length)),
        action,
        h("ul", { class: "alerts" }, ...alerts.map((a) => this.card(a))),
      );
    const health = active.filter((a) => laneOf(a.kind) === "health");
    const unacknowledged = health.filter((a) => a.state === "open");
    const focused =
      document.activeElement instanceof HTMLElement ? document.activeElement.dataset.focusKey : undefined;
    this.element.dataset.pendingSends = String(this.pending.size);
    this.element.replaceChildren(
      ...present(
        this.filters(),
        this.alerts.size === 0 && h("p", { class: "empty" }, t("board.empty")),
        this.alerts.size > 0 && shown.length === 0 && h("p", { class: "empty" }, t("board.noMatch")),
        section(
          "waiting",
          t("board.open"),
          active.filter((a) => a.state === "open" && laneOf(a.kind) === "urgent"),
        ),
        section(
          "in-progress",
          t("board.accepted"),
          active.filter((a) => a.state === "accepted" && laneOf(a.kind) === "urgent"),
        ),
        section(
          "health",
          t("board.health"),
          health,
          // Device care is not an emergency: one tap takes on every open one in the lane.
          this.ctx.me !== null &&
            unacknowledged.length > 1 &&
            h(
              "button",
              {
                class: "accept-all",
                disabled: !this.ctx.online(),
                dataset: { focusKey: "accept-all" },
                onclick: () => this.acceptAll(unacknowledged),
              },
              t("board.acceptAll", { count: unacknowledged.length }),
            ),
        ),
        section("closed", t("board.closed"), recent),
        earlier.length > 0 &&
          h(
            "details",
            {
              class: "lane earlier",
              open: this.showEarlier,
              ontoggle: (e: Event) => {
                this.showEarlier = (e.target as HTMLDetailsElement).open;
              },
            },
            h("summary", {}, t("board.earlier", { count: earlier.length })),
            h("ul", { class: "alerts" }, ...earlier.map((a) => this.card(a))),
          ),
      ),
    );
    this.tick();
    if (focused) this.element.querySelector<HTMLElement>(`[data-focus-key="${focused}"]`)?.focus();
  }

  /** Moves every countdown on the board (and in the detail) on to now: called each second. */
  tick(): void {
    const now = gatewayNow();
    for (const root of [this.element, this.detail]) {
      for (const el of root?.querySelectorAll<HTMLElement>("[data-countdown]") ?? []) {
        const alert = this.alerts.get(el.dataset.alertId ?? "");
        const due = alert && dueAt(alert);
        if (!due) continue;
        const time = formatCountdown(due.at - now);
        const who = "roles" in due.due ? formatList(due.due.roles.map(roleName)) : "";
        el.textContent = t(`countdown.${due.due.what}`, { who, time });
      }
      for (const el of root?.querySelectorAll<HTMLElement>("[data-send-at]") ?? []) {
        // The undo time runs on this device's clock, as its timer does.
        const seconds = Math.max(0, Math.ceil((Number(el.dataset.sendAt) - Date.now()) / 1000));
        el.textContent = t("falseAlarm.pending", { seconds });
      }
    }
  }

  private filters(): HTMLElement {
    const select = (
      id: string,
      label: MessageKey,
      value: string,
      options: [string, string][],
      set: (v: string) => void,
    ) =>
      h(
        "label",
        { for: id },
        t(label),
        h(
          "select",
          {
            id,
            dataset: { focusKey: id },
            onchange: (e: Event) => {
              set((e.target as HTMLSelectElement).value);
              this.render();
            },
          },
          ...options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)),
        ),
      );
    return h(
      "div",
      { class: "filters" },
      select(
        "filter-kind",
        "filter.kind",
        this.kind,
        [["all", t("filter.all")], ...alertKinds.map((k): [string, string] => [k, t(`kind.${k}`)])],
        (v) => {
          this.kind = v as AlertKind | "all";
        },
      ),
      select(
        "filter-state",
        "filter.state",
        this.state,
        [
          ["all", t("filter.all")],
          ["active", t("filter.active")],
          ["closed", t("filter.closed")],
        ],
        (v) => {
          this.state = v as StateFilter;
        },
      ),
      // One grid (a family, a grid worker) needs no choice.
      this.ctx.grids.size > 1 &&
        select(
          "filter-grid",
          "filter.grid",
          this.grid,
          [["all", t("filter.all")], ...this.ctx.grids],
          (v) => {
            this.grid = v;
          },
        ),
    );
  }

  private card(a: Alert): HTMLElement {
    const subject = this.ctx.people.get(a.subjectId);
    // Who has been paged so far, by name: not the roles of the levels passed, which may hold nobody.
    const paged = a.notified.map((id) => this.ctx.people.get(id)?.name ?? id).join(", ");
    const active = isActive(a);
    // Nobody reachable, or nobody accepted after every repeat: the card says so, in red.
    const trouble = a.state === "open" && (a.unreached || a.exhausted);
    const lane = laneOf(a.kind);
    return h(
      "li",
      {
        class: `alert ${colour(a)} ${lane}${trouble ? " trouble" : ""}`,
        dataset: { alertId: a.id, state: a.state, kind: a.kind, deviceId: a.deviceId },
      },
      h(
        "div",
        { class: "alert-head" },
        h("span", { class: "badge" }, t(`state.${a.state}`)),
        trouble &&
          h("span", { class: "badge trouble" }, t(a.exhausted ? "alert.exhausted" : "alert.unreached")),
        h("strong", { class: "kind" }, t(`kind.${a.kind}`)),
        h(
          "time",
          { datetime: new Date(a.openedAt).toISOString(), title: formatTime(a.openedAt), class: "ago" },
          formatAgo(a.openedAt, gatewayNow()),
        ),
      ),
      h("p", { class: "who" }, subject?.name ?? a.subjectId),
      active && dueAt(a) && h("p", { class: "countdown", dataset: { countdown: "", alertId: a.id } }),
      h(
        "div",
        { class: "alert-meta" },
        subject?.address &&
          h(
            "a",
            {
              class: "navigate",
              href: mapHref(subject.address),
              target: "_blank",
              rel: "noopener",
              title: t("alert.navigate"),
            },
            subject.address,
          ),
        h("span", {}, t("alert.device", { id: a.deviceId })),
        a.state === "open" && a.level > 0 && h("span", {}, t("alert.level", { level: a.level })),
        a.presses > 1 && h("span", {}, t("alert.presses", { count: a.presses })),
        paged && a.state === "open" && h("span", {}, t("alert.notified", { who: paged })),
        a.acceptedBy &&
          h(
            "span",
            {},
            t("alert.acceptedBy", { name: this.ctx.people.get(a.acceptedBy)?.name ?? a.acceptedBy }),
          ),
        // A responder's note, as written; what the gateway closed by itself, in the reader's language.
        a.state === "resolved" &&
          h("span", { class: "outcome" }, a.closedBy === "gateway" ? t("alert.cleared") : a.outcome),
      ),
      active && lane === "urgent" && this.calls(a),
      this.actions(a, true),
    );
  }

  /** `tel:` buttons: the resident, then their doctor and family (loaded once per resident). */
  private calls(a: Alert): HTMLElement | null {
    const subject = this.ctx.people.get(a.subjectId);
    const known = this.contacts.get(a.subjectId);
    if (known === undefined) {
      this.contacts.set(a.subjectId, "loading");
      api.alert(a.id).then(
        (detail) => {
          this.contacts.set(a.subjectId, detail.contacts);
          this.render();
        },
        // Tried again at the next render: a gateway away now may be back by then.
        () => this.contacts.delete(a.subjectId),
      );
    }
    const people = [
      ...(subject?.phone ? [{ relation: "resident", name: subject.name, phone: subject.phone }] : []),
      ...(Array.isArray(known) ? known.filter((c) => c.personId !== this.ctx.me?.id) : []),
    ];
    const links = people.flatMap((p) =>
      p.phone
        ? [
            h(
              "a",
              { class: "tel", href: telHref(p.phone) },
              t("alert.call", { who: roleName(p.relation), name: p.name }),
            ),
          ]
        : [],
    );
    return links.length > 0 ? h("div", { class: "calls" }, ...links) : null;
  }

  /** What the signed-in responder may do with the alert now: the same on the card and in the detail. */
  private actions(a: Alert, onCard: boolean): HTMLElement {
    const me = this.ctx.me;
    const pending = this.pending.get(a.id);
    const offline = !this.ctx.online();
    const key = (name: string) => `${name}-${a.id}${onCard ? "" : "-detail"}`;
    if (pending)
      return h(
        "div",
        { class: "actions undo", role: "status" },
        h("span", { dataset: { sendAt: String(pending.sendAt) } }),
        h(
          "button",
          { class: "primary", dataset: { focusKey: key("undo") }, onclick: () => this.undo(a.id) },
          t("falseAlarm.undo"),
        ),
      );
    const actor = me && { id: me.id, name: me.name, role: me.role };
    const may = (action: "resolve" | "false-alarm") => actor !== null && !mayAct(action, a, actor);
    const button = (name: string, label: MessageKey, onclick: () => void, primary = false) =>
      h(
        "button",
        {
          class: primary ? "primary" : undefined,
          disabled: offline,
          dataset: { focusKey: key(name) },
          onclick,
        },
        t(label),
      );
    return h(
      "div",
      { class: "actions" },
      a.state === "open" && me && button("accept", "alert.accept", () => this.act(a, "accept"), true),
      a.state === "accepted" && may("resolve") && button("resolve", "alert.resolve", () => this.askNote(a)),
      isActive(a) && may("false-alarm") && button("cancel", "alert.falseAlarm", () => this.askFalseAlarm(a)),
      !onCard && a.state === "open" && me && h("span", { class: "hint" }, t("alert.acceptFirst")),
      onCard &&
        h(
          "button",
          { class: "link", dataset: { focusKey: key("detail") }, onclick: () => this.openDetail(a.id) },
          t("alert.details"),
        ),
    );
  }

  private async act(a: Alert, action: "accept" | "resolve" | "cancel", text = ""): Promise<void> {
    if (!this.ctx.online()) return this.ctx.showError(t("stream.paused"));
    try {
      const updated =
        action === "accept"
          ? await api.accept(a.id)
          : action === "resolve"
            ? await api.resolve(a.id, text)
            : await api.cancel(a.id, text);
      // The stream brings the same change; applying it now makes the tap feel instant.
      this.apply(updated.data);
    } catch (err) {
      this.ctx.showError(errorText(err));
    }
  }

  /** Accepts each alert in turn; one taken by someone else meanwhile is skipped, not an error. */
  private async acceptAll(alerts: Alert[]): Promise<void> {
    if (!this.ctx.online()) return this.ctx.showError(t("stream.paused"));
    for (const a of alerts) {
      try {
        this.apply((await api.accept(a.id)).data);
      } catch (err) {
        const taken =
          err instanceof ApiError && (err.code === "alert_already_accepted" || err.code === "alert_closed");
        if (!taken) return this.ctx.showError(errorText(err));
      }
    }
  }

  private undo(id: string): void {
    window.clearTimeout(this.pending.get(id)?.timer);
    this.pending.delete(id);
    this.render();
    if (this.detail?.open && this.detail.dataset.alertId === id) void this.openDetail(id);
  }

  /** A modal with a form; `submit` returns false to keep it open. */
  private ask(title: MessageKey, fields: HTMLElement[], save: MessageKey, submit: () => boolean): void {
    const dialog = h(
      "dialog",
      { class: "note-dialog", "aria-labelledby": "ask-title" },
      h(
        "form",
        {
          method: "dialog",
          onsubmit: (e: Event) => {
            e.preventDefault();
            if (submit()) dialog.close();
          },
        },
        h("h2", { id: "ask-title" }, t(title)),
        ...fields,
        h(
          "div",
          { class: "actions" },
          h("button", { class: "primary", type: "submit" }, t(save)),
          h("button", { type: "button", onclick: () => dialog.close() }, t("alert.cancelAction")),
        ),
      ),
    );
    dialog.addEventListener("close", () => dialog.remove());
    document.body.append(dialog);
    dialog.showModal();
    dialog.querySelector<HTMLElement>("input, textarea")?.focus();
  }

  private askNote(a: Alert): void {
    const input = h("textarea", {
      id: "resolve-note",
      required: true,
      rows: 3,
      placeholder: t("alert.notePlaceholder"),
      "aria-labelledby": "ask-title",
    });
    this.ask("alert.note", [input], "alert.save", () => {
      const note = input.value.trim();
      if (!note) return false;
      void this.act(a, "resolve", note);
      return true;
    });
  }

  /** Asks why, then sends after the undo time: one mistaken tap never closes a real call. */
  private askFalseAlarm(a: Alert): void {
    const reasons: MessageKey[] = [
      "falseAlarm.mistake",
      "falseAlarm.fine",
      "falseAlarm.test",
      "falseAlarm.other",
    ];
    const other = h("input", {
      id: "false-alarm-other",
      type: "text",
      maxlength: 500,
      "aria-label": t("alert.reason"),
    });
    const choices = reasons.map((key, i) =>
      h(
        "label",
        { class: "choice" },
        h("input", { type: "radio", name: "reason", value: key, required: true, checked: i === 0 }),
        t(key),
      ),
    );
    this.ask("falseAlarm.title", [...choices, other], "falseAlarm.confirm", () => {
      const chosen = choices.map((c) => c.querySelector("input") as HTMLInputElement).find((r) => r.checked);
      const reason =
        chosen?.value === "falseAlarm.other" ? other.value.trim() : t(chosen?.value as MessageKey);
      if (!reason) {
        other.focus();
        return false;
      }
      const sendAt = Date.now() + UNDO_MS;
      const timer = window.setTimeout(() => {
        this.pending.delete(a.id);
        // Someone accepted (or it closed) meanwhile: they may know better; nothing is sent.
        if (this.alerts.get(a.id)?.state !== a.state) {
          this.render();
          return this.ctx.showError(t("falseAlarm.changed"));
        }
        void this.act(a, "cancel", reason);
      }, UNDO_MS);
      this.pending.set(a.id, { sendAt, timer });
      this.render();
      if (this.detail?.open && this.detail.dataset.alertId === a.id) void this.openDetail(a.id);
      return true;
    });
  }

  /** Only those who see the resident may read them (anyone else gets none); a failed read says so. */
  private careOf(residentId: string): Promise<CareNotes | null | "unavailable"> {
    return api
      .care(residentId)
      .catch((err) =>
        err instanceof ApiError && (err.status === 403 || err.status === 404) ? null : "unavailable",
      );
  }

  async openDetail(id: string): Promise<void> {
    let detail: AlertDetail;
    let care: CareNotes | null | "unavailable";
    try {
      detail = await api.alert(id);
      // Only those who see the resident may read them; anyone else simply gets none. Each read is
      // in the access log, so a detail redrawn by the alert's updates does not read them again.
      care = this.care?.alertId === id ? this.care.notes : await this.careOf(detail.subjectId);
      // A read that failed is tried again at the next redraw, not remembered as "none".
      if (care !== "unavailable") this.care = { alertId: id, notes: care };
    } catch (err) {
      return this.ctx.showError(errorText(err));
    }
    const careNotes =
      care === "unavailable"
        ? h("p", { class: "error", role: "alert" }, t("alert.careUnavailable"))
        : care && careList(care);
    this.contacts.set(detail.subjectId, detail.contacts);
    const people = this.ctx.people;
    const name = (pid: string | null) => (pid ? (people.get(pid)?.name ?? pid) : "");
    const subject = people.get(detail.subjectId);
    const opened = detail.events.find((e) => e.type === "opened")?.data ?? {};
    const position = (opened.position as { lat: number; lon: number } | null | undefined) ?? null;
    const lastFix =
      ((opened.recentFixes as { lat: number; lon: number }[] | undefined) ?? []).at(-1) ?? position;
    const dialog = this.detail ?? h("dialog", { class: "detail", "aria-labelledby": "detail-title" });
    this.detail = dialog;
    dialog.dataset.alertId = id;
    const mapBox = h("div", { class: "mini-map" });
    const alert = this.alerts.get(id) ?? detail;
    const contacts = [
      ...(subject ? [{ relation: "resident", name: subject.name, phone: subject.phone }] : []),
      ...detail.contacts,
    ];
    dialog.replaceChildren(
      ...present(
        h(
          "header",
          {},
          h("h2", { id: "detail-title" }, `${t(`kind.${detail.kind}`)} · ${name(detail.subjectId)}`),
          h("button", { class: "link", onclick: () => dialog.close() }, t("alert.close")),
        ),
        h("p", { class: `badge ${colour(detail)}` }, t(`state.${detail.state}`)),
        isActive(alert) &&
          dueAt(alert) &&
          h("p", { class: "countdown", dataset: { countdown: "", alertId: id } }),
        this.actions(alert, false),
        opened.late === true && h("p", { class: "warning" }, t("alert.late")),
        detail.kind === "geofence-exit" &&
          typeof opened.distanceM === "number" &&
          h(
            "p",
            { class: "zone-exit" },
            t("alert.zoneExit", {
              zone: String(opened.geofence ?? opened.geofenceId ?? ""),
              distance: opened.distanceM,
              age: typeof opened.fixAt === "number" ? formatAgo(opened.fixAt, gatewayNow()) : "?",
            }),
          ),
        subject?.address &&
          h(
            "p",
            {},
            h(
              "a",
              {
                class: "navigate",
                href: lastFix
                  ? `https://uri.amap.com/marker?position=${lastFix.lon},${lastFix.lat}`
                  : mapHref(subject.address),
                target: "_blank",
                rel: "noopener",
              },
              `${subject.address} · ${t("alert.navigate")}`,
            ),
          ),
        careNotes && h("section", { class: "alert-care" }, h("h3", {}, t("alert.care")), careNotes),
        h("h3", {}, t("alert.contacts")),
        h(
          "ul",
          { class: "contacts" },
          ...contacts.map((c) =>
            h(
              "li",
              {},
              `${roleName(c.relation)}: ${c.name} `,
              c.phone && h("a", { class: "tel", href: telHref(c.phone) }, c.phone),
            ),
          ),
        ),
        h("h3", {}, t("alert.timeline")),
        h(
          "ol",
          { class: "timeline" },
          ...detail.events.map((e) =>
            h(
              "li",
              {},
              h("time", {}, formatTime(e.at)),
              " ",
              t(eventKey(e), {
                level: String(e.data.level ?? ""),
                presses: String(e.data.presses ?? ""),
                roles: ((e.data.roles as string[] | undefined) ?? []).map(roleName).join(", "),
                actor: name(e.actor),
                kind: e.data.to ? t(`kind.${e.data.to}` as MessageKey) : "",
                note: String(e.data.note ?? ""),
              }),
            ),
          ),
        ),
        h("h3", {}, t("alert.attempts")),
        h(
          "ul",
          { class: "attempts" },
          h("li", {}, t("attempt.shown")),
          ...detail.attempts.map((a) => {
            const status = /^HTTP (\d{3})/.exec(a.detail ?? "")?.[1];
            const text =
              a.channel === "device"
                ? t("attempt.device", {
                    what: isMessageKey(`command.${a.event}`)
                      ? t(`command.${a.event}` as MessageKey)
                      : t("command.resolved"),
                  })
                : t("attempt.via", {
                    channel: t(`channel.${a.channel}`),
                    who: a.personId ? name(a.personId) : "",
                    result: status ? t("attempt.webhookStatus", { status }) : t(`attempt.${a.status}`),
                  });
            return h(
              "li",
              { class: a.status },
              h("time", {}, formatTime(a.at)),
              ` ${text}${a.channel === "device" ? ` · ${t(`attempt.${a.status}`)}` : ""}`,
            );
          }),
        ),
        h("h3", {}, t("alert.position")),
        lastFix ? mapBox : h("p", {}, t("alert.positionUnknown")),
        opened.positionStatus === "stale" && h("p", { class: "warning" }, t("alert.positionStale")),
      ),
    );
    this.tick();
    if (!dialog.open) {
      document.body.append(dialog);
      dialog.showModal();
    }
    if (lastFix) drawMiniMap(mapBox, [lastFix.lat, lastFix.lon]);
  }
}
