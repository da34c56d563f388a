import { type Alert, type AlertDetail, api, type Person } from "./api.ts";
import { h, present } from "./dom.ts";
import { formatAgo, formatTime, type MessageKey, t } from "./i18n.ts";
import { drawMiniMap } from "./map.ts";

export interface BoardContext {
  people: Map<string, Person>;
  /** Whether the signed-in account acts as a person, and so may accept, resolve or cancel. */
  canRespond: boolean;
  showError: (message: string) => void;
}

const ORDER: Record<Alert["state"], number> = { open: 0, accepted: 1, resolved: 2, cancelled: 2 };
const COLOUR: Record<Alert["state"], string> = {
  open: "red",
  accepted: "yellow",
  resolved: "green",
  cancelled: "green",
};

/** The live alert board: open alerts first (red), then in progress (yellow), then closed (green). */
export class AlertBoard {
  readonly alerts = new Map<string, Alert>();
  readonly element = h("section", { class: "board", "aria-live": "polite", "aria-label": t("nav.alerts") });
  private detail: HTMLDialogElement | undefined;

  constructor(private readonly ctx: BoardContext) {}

  load(alerts: Alert[]): void {
    for (const a of alerts) this.alerts.set(a.id, a);
    this.render();
  }

  /** Applies one event from the stream; returns true when it is an alert not seen before. */
  apply(alert: Alert): boolean {
    const isNew = !this.alerts.has(alert.id);
    this.alerts.set(alert.id, alert);
    this.render();
    if (this.detail?.open && this.detail.dataset.alertId === alert.id) void this.openDetail(alert.id);
    return isNew;
  }

  render(): void {
    const sorted = [...this.alerts.values()].sort(
      (a, b) => ORDER[a.state] - ORDER[b.state] || b.openedAt - a.openedAt,
    );
    const focused =
      document.activeElement instanceof HTMLElement ? document.activeElement.dataset.focusKey : undefined;
    this.element.replaceChildren(
      sorted.length === 0
        ? h("p", { class: "empty" }, t("board.empty"))
        : h("ul", { class: "alerts" }, ...sorted.map((a) => this.card(a))),
    );
    if (focused) this.element.querySelector<HTMLElement>(`[data-focus-key="${focused}"]`)?.focus();
  }

  private card(a: Alert): HTMLElement {
    const subject = this.ctx.people.get(a.subjectId);
    // Who has been paged so far, by name: not the roles of the levels passed, which may hold nobody.
    const paged = a.notified.map((id) => this.ctx.people.get(id)?.name ?? id).join(", ");
    const active = a.state === "open" || a.state === "accepted";
    // Nobody reachable, or nobody accepted after every repeat: the card says so, in red.
    const trouble = a.state === "open" && (a.unreached || a.exhausted);
    return h(
      "li",
      {
        class: `alert ${COLOUR[a.state]}${trouble ? " trouble" : ""}`,
        dataset: { alertId: a.id, state: a.state, kind: a.kind },
      },
      h(
        "div",
        { class: "alert-head" },
        h("span", { class: "badge" }, t(`state.${a.state}` as MessageKey)),
        trouble &&
          h("span", { class: "badge trouble" }, t(a.exhausted ? "alert.exhausted" : "alert.unreached")),
        h("strong", { class: "kind" }, t(`kind.${a.kind}` as MessageKey)),
        h("span", { class: "who" }, subject?.name ?? a.subjectId),
        h(
          "time",
          { datetime: new Date(a.openedAt).toISOString(), title: formatTime(a.openedAt), class: "ago" },
          formatAgo(a.openedAt),
        ),
      ),
      h(
        "div",
        { class: "alert-meta" },
        subject?.address && h("span", {}, subject.address),
        h("span", {}, t("alert.device", { id: a.deviceId })),
        a.state === "open" && h("span", {}, t("alert.level", { level: a.level })),
        a.presses > 1 && h("span", {}, t("alert.presses", { count: a.presses })),
        paged && a.state === "open" && h("span", {}, t("alert.notified", { who: paged })),
        a.acceptedBy &&
          h(
            "span",
            {},
            t("alert.acceptedBy", { name: this.ctx.people.get(a.acceptedBy)?.name ?? a.acceptedBy }),
          ),
        a.outcome && !active && h("span", { class: "outcome" }, a.outcome),
      ),
      h(
        "div",
        { class: "actions" },
        a.state === "open" &&
          h(
            "button",
            {
              class: "primary",
              dataset: { focusKey: `accept-${a.id}` },
              onclick: () => this.act(a, "accept"),
            },
            t("alert.accept"),
          ),
        active &&
          h(
            "button",
            { dataset: { focusKey: `resolve-${a.id}` }, onclick: () => this.askNote(a) },
            t("alert.resolve"),
          ),
        active &&
          h(
            "button",
            { dataset: { focusKey: `cancel-${a.id}` }, onclick: () => this.act(a, "cancel") },
            t("alert.falseAlarm"),
          ),
        h(
          "button",
          { class: "link", dataset: { focusKey: `detail-${a.id}` }, onclick: () => this.openDetail(a.id) },
          t("alert.details"),
        ),
      ),
    );
  }

  private async act(a: Alert, action: "accept" | "resolve" | "cancel", note = ""): Promise<void> {
    if (!this.ctx.canRespond) return this.ctx.showError(t("actor.required"));
    try {
      const updated =
        action === "accept"
          ? await api.accept(a.id)
          : action === "resolve"
            ? await api.resolve(a.id, note)
            : await api.cancel(a.id);
      // The stream brings the same change; applying it now makes the click feel instant.
      this.alerts.set(a.id, updated.data);
      this.render();
    } catch (err) {
      this.ctx.showError(t("error.generic", { message: (err as Error).message }));
    }
  }

  private askNote(a: Alert): void {
    const input = h("textarea", {
      id: "resolve-note",
      required: true,
      rows: 3,
      placeholder: t("alert.notePlaceholder"),
    });
    const dialog = h(
      "dialog",
      { class: "note-dialog", "aria-labelledby": "resolve-title" },
      h(
        "form",
        {
          method: "dialog",
          onsubmit: (e: Event) => {
            e.preventDefault();
            const note = input.value.trim();
            if (!note) return input.focus();
            dialog.close();
            void this.act(a, "resolve", note);
          },
        },
        h("label", { for: "resolve-note", id: "resolve-title" }, t("alert.note")),
        input,
        h(
          "div",
          { class: "actions" },
          h("button", { class: "primary", type: "submit" }, t("alert.save")),
          h("button", { type: "button", onclick: () => dialog.close() }, t("alert.cancelAction")),
        ),
      ),
    );
    dialog.addEventListener("close", () => dialog.remove());
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  }

  async openDetail(id: string): Promise<void> {
    let detail: AlertDetail;
    try {
      detail = await api.alert(id);
    } catch (err) {
      return this.ctx.showError(t("error.generic", { message: (err as Error).message }));
    }
    const people = this.ctx.people;
    const name = (pid: string | null) => (pid ? (people.get(pid)?.name ?? pid) : "");
    const assignments = await api.assignments(detail.subjectId).catch(() => []);
    const opened = detail.events.find((e) => e.type === "opened")?.data ?? {};
    const position = (opened.position as { lat: number; lon: number } | null | undefined) ?? null;
    const lastFix =
      ((opened.recentFixes as { lat: number; lon: number }[] | undefined) ?? []).at(-1) ?? position;
    const dialog = this.detail ?? h("dialog", { class: "detail", "aria-labelledby": "detail-title" });
    this.detail = dialog;
    dialog.dataset.alertId = id;
    const mapBox = h("div", { class: "mini-map" });
    dialog.replaceChildren(
      ...present(
        h(
          "header",
          {},
          h(
            "h2",
            { id: "detail-title" },
            `${t(`kind.${detail.kind}` as MessageKey)} · ${name(detail.subjectId)}`,
          ),
          h("button", { class: "link", onclick: () => dialog.close() }, t("alert.close")),
        ),
        h("p", { class: `badge ${COLOUR[detail.state]}` }, t(`state.${detail.state}` as MessageKey)),
        opened.late === true && h("p", { class: "warning" }, t("alert.late")),
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
              t(`event.${e.type}` as MessageKey, {
                level: String(e.data.level ?? ""),
                presses: String(e.data.presses ?? ""),
                roles: ((e.data.roles as string[] | undefined) ?? [])
                  .map((r) => t(`role.${r}` as MessageKey))
                  .join(", "),
                actor: name(e.actor),
                kind: e.data.to ? t(`kind.${e.data.to}` as MessageKey) : "",
                note: String(e.data.note ?? ""),
              }),
            ),
          ),
        ),
        h("h3", {}, t("alert.attempts")),
        detail.attempts.length === 0
          ? h("p", {}, t("alert.noAttempts"))
          : h(
              "ul",
              { class: "attempts" },
              ...detail.attempts.map((a) =>
                h(
                  "li",
                  { class: a.status },
                  h("time", {}, formatTime(a.at)),
                  ` ${a.channel} → ${a.personId ? name(a.personId) : a.address} #${a.attempt}: ${t(`attempt.${a.status}` as MessageKey)}${a.detail ? ` (${a.detail})` : ""}`,
                ),
              ),
            ),
        h("h3", {}, t("alert.contacts")),
        h(
          "ul",
          { class: "contacts" },
          ...assignments.map((a) => {
            const p = people.get(a.personId);
            return h(
              "li",
              {},
              `${t(`role.${a.relation}` as MessageKey)}: ${p?.name ?? a.personId}`,
              p?.phone && h("a", { href: `tel:${p.phone}` }, ` ${p.phone}`),
            );
          }),
        ),
        h("h3", {}, t("alert.position")),
        lastFix ? mapBox : h("p", {}, t("alert.positionUnknown")),
        opened.positionStatus === "stale" && h("p", { class: "warning" }, t("alert.positionStale")),
      ),
    );
    if (!dialog.open) {
      document.body.append(dialog);
      dialog.showModal();
    }
    if (lastFix) drawMiniMap(mapBox, [lastFix.lat, lastFix.lon]);
  }
}
