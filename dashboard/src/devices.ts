import { api, type DeviceView, type Person } from "./api.ts";
import { h, present } from "./dom.ts";
import { errorText, formatAgo, formatTime, type MessageKey, t } from "./i18n.ts";
import { PersonPicker, type PickerState } from "./people.ts";

/** What a device is doing, as the list shows it and filters by. */
type Status = "online" | "offline" | "waiting" | "revoked";
const statusFilters = ["all", "online", "offline", "low", "waiting", "revoked"] as const;
type StatusFilter = (typeof statusFilters)[number];
const sorts = ["id", "owner", "lastSeen", "battery"] as const;
type Sort = (typeof sorts)[number];

/**
 * Registered but never heard from is not offline: it is waiting for its first connection. Its
 * state, once supervision finds it silent, has `lastSeenAt` 0.
 */
export function statusOf(d: DeviceView): Status {
  if (d.revokedAt !== null) return "revoked";
  if (!d.connected && !d.state?.lastSeenAt) return "waiting";
  return d.connected || d.state?.online ? "online" : "offline";
}

/**
 * The device list: search, filter (kind, status, battery low, never connected), sort; below 600 px
 * the rows become cards. Staff and admins also register devices, give one to another resident,
 * issue a new secret (shown once, with a copy button) and revoke one.
 */
export class DeviceList {
  readonly element = h("section", { class: "devices" });
  /** A secret just issued: shown once, until the list is left or another is issued. */
  private secret: { id: string; secret?: string } | null = null;
  /** What the last action said; translated when drawn, so that it follows the language. */
  private message: { text: () => string; error: boolean } | null = null;
  private devices: DeviceView[] = [];
  private query = "";
  private kind: "all" | DeviceView["kind"] = "all";
  private status: StatusFilter = "all";
  private sort: Sort = "id";
  /** The device whose owner is being changed. */
  private editing: string | null = null;
  /** What is typed into the forms, kept across the redraws every 15 s. */
  private draft = { id: "", kind: "call-button", protocol: "mqtt", owner: { query: "", value: null } };
  private newOwner: PickerState = { query: "", value: null };

  constructor(
    private readonly people: Map<string, Person>,
    private readonly mayManage: boolean,
  ) {}

  private residents(): Person[] {
    return [...this.people.values()].filter((p) => p.role === "resident");
  }

  async refresh(): Promise<void> {
    // The gateway away: keep showing what was last known; the header says the link is down.
    this.devices = await api.devices().catch(() => this.devices);
    // Typing in a search box must not lose its place when the list redraws every 15 s.
    const focused = document.activeElement?.id;
    this.render();
    if (focused) document.getElementById(focused)?.focus();
  }

  private ownerName(d: DeviceView): string {
    return this.people.get(d.ownerId)?.name ?? d.ownerId;
  }

  private shown(): DeviceView[] {
    const q = this.query.trim().toLowerCase();
    const list = this.devices.filter(
      (d) =>
        (!q || d.id.toLowerCase().includes(q) || this.ownerName(d).toLowerCase().includes(q)) &&
        (this.kind === "all" || d.kind === this.kind) &&
        (this.status === "all" ||
          (this.status === "low" ? d.state?.batteryLow === true : statusOf(d) === this.status)),
    );
    const by: Record<Sort, (a: DeviceView, b: DeviceView) => number> = {
      id: (a, b) => a.id.localeCompare(b.id),
      owner: (a, b) => this.ownerName(a).localeCompare(this.ownerName(b)),
      // Longest silent first: what needs a visit comes to the top.
      lastSeen: (a, b) => (a.state?.lastSeenAt ?? 0) - (b.state?.lastSeenAt ?? 0),
      battery: (a, b) => (a.state?.battery ?? 101) - (b.state?.battery ?? 101),
    };
    return list.sort(by[this.sort]);
  }

  private async act(work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (err) {
      this.message = { text: () => errorText(err), error: true };
    }
    await this.refresh();
  }

  private select<T extends string>(
    id: string,
    label: MessageKey,
    values: readonly T[],
    current: T,
    text: (v: T) => string,
    set: (v: T) => void,
  ): HTMLElement {
    return h(
      "label",
      { for: id },
      t(label),
      h(
        "select",
        {
          id,
          onchange: (e: Event) => {
            set((e.target as HTMLSelectElement).value as T);
            this.render();
          },
        },
        ...values.map((v) => h("option", { value: v, selected: v === current }, text(v))),
      ),
    );
  }

  private toolbar(): HTMLElement {
    return h(
      "div",
      { class: "filters device-filters" },
      h(
        "label",
        { for: "device-search" },
        t("device.search"),
        h("input", {
          id: "device-search",
          type: "search",
          autocomplete: "off",
          value: this.query,
          oninput: (e: Event) => {
            this.query = (e.target as HTMLInputElement).value;
            this.render();
            document.getElementById("device-search")?.focus();
          },
        }),
      ),
      this.select(
        "device-filter-kind",
        "device.kind",
        ["all", "call-button", "locator-tag"] as const,
        this.kind,
        (v) => (v === "all" ? t("device.all") : t(`device.${v}`)),
        (v) => {
          this.kind = v;
        },
      ),
      this.select(
        "device-filter-status",
        "device.status",
        statusFilters,
        this.status,
        (v) => (v === "all" ? t("device.all") : t(`device.status.${v}`)),
        (v) => {
          this.status = v;
        },
      ),
      this.select(
        "device-sort",
        "device.sort",
        sorts,
        this.sort,
        (v) => t(`device.sort.${v}`),
        (v) => {
          this.sort = v;
        },
      ),
    );
  }

  private rowActions(d: DeviceView): HTMLElement {
    const button = (name: string, key: MessageKey, onclick: () => void, cls = "") =>
      h("button", { id: `${name}-${d.id}`, class: cls || undefined, type: "button", onclick }, t(key));
    return h(
      "div",
      { class: "device-actions" },
      button("owner", "device.editOwner", () => {
        this.editing = this.editing === d.id ? null : d.id;
        this.newOwner = { query: "", value: null };
        this.render();
      }),
      button("rotate", "device.rotate", () => {
        if (!confirm(t("device.rotateConfirm", { id: d.id }))) return;
        void this.act(async () => {
          this.secret = await api.rotateSecret(d.id);
          this.message = null;
        });
      }),
      d.revokedAt === null &&
        button(
          "revoke",
          "device.revoke",
          () => {
            if (!confirm(t("device.revokeConfirm", { id: d.id }))) return;
            void this.act(async () => {
              await api.revokeDevice(d.id);
              this.secret = null;
              this.message = { text: () => t("device.revoked", { id: d.id }), error: false };
            });
          },
          "danger",
        ),
    );
  }

  private ownerEditor(d: DeviceView): HTMLElement {
    const picker = new PersonPicker(
      () => this.residents().filter((p) => p.id !== d.ownerId),
      "new-owner",
      this.newOwner,
    );
    return h(
      "div",
      { class: "owner-editor" },
      h("p", {}, t("device.ownerNow", { name: this.ownerName(d) })),
      picker.element,
      h(
        "button",
        {
          id: "owner-save",
          class: "primary",
          type: "button",
          onclick: () => {
            if (!picker.value) return;
            const ownerId = picker.value;
            void this.act(async () => {
              await api.setDeviceOwner(d.id, ownerId);
              this.editing = null;
              this.message = { text: () => t("device.ownerChanged", { id: d.id }), error: false };
            });
          },
        },
        t("device.saveOwner"),
      ),
      h(
        "button",
        {
          type: "button",
          class: "link",
          onclick: () => {
            this.editing = null;
            this.render();
          },
        },
        t("device.cancel"),
      ),
    );
  }

  private secretBox(): HTMLElement | null {
    const issued = this.secret;
    if (!issued) return null;
    if (issued.secret === undefined)
      return h("div", { class: "secret", role: "status" }, t("device.watchRegistered", { id: issued.id }));
    const secret = issued.secret;
    const copied = h("span", { class: "hint", "aria-live": "polite" });
    return h(
      "div",
      { class: "secret", role: "status" },
      h("p", {}, t("device.secret", { id: issued.id })),
      h("code", { id: "device-secret" }, secret),
      h(
        "button",
        {
          id: "secret-copy",
          type: "button",
          onclick: async () => {
            try {
              await navigator.clipboard.writeText(secret);
              copied.textContent = t("device.copied");
            } catch {
              // No clipboard (an insecure page, a refused permission): select it to copy by hand.
              getSelection()?.selectAllChildren(document.getElementById("device-secret") as Node);
              copied.textContent = t("device.copyByHand");
            }
          },
        },
        t("device.copy"),
      ),
      copied,
    );
  }

  private registerForm(): HTMLElement {
    const draft = this.draft;
    const owner = new PersonPicker(() => this.residents(), "device-owner", draft.owner);
    const id = h("input", {
      id: "device-id",
      name: "id",
      required: true,
      pattern: "[A-Za-z0-9._-]+",
      autocomplete: "off",
      value: draft.id,
      oninput: (e: Event) => {
        draft.id = (e.target as HTMLInputElement).value;
      },
    });
    const choice = (name: "kind" | "protocol", values: [string, MessageKey][]) =>
      h(
        "select",
        {
          id: `device-${name}`,
          name,
          onchange: (e: Event) => {
            draft[name] = (e.target as HTMLSelectElement).value;
          },
        },
        ...values.map(([v, key]) => h("option", { value: v, selected: draft[name] === v }, t(key))),
      );
    return h(
      "form",
      {
        class: "register",
        onsubmit: (e: Event) => {
          e.preventDefault();
          const ownerId = owner.value;
          if (!ownerId) {
            this.message = { text: () => t("device.chooseOwner"), error: true };
            this.render();
            return;
          }
          void this.act(async () => {
            this.secret = null;
            this.secret = await api.registerDevice({
              id: draft.id.trim(),
              kind: draft.kind,
              ownerId,
              protocol: draft.protocol,
            });
            this.draft = { ...draft, id: "", owner: { query: "", value: null } };
            this.message = null;
          });
        },
      },
      h("h2", {}, t("device.register")),
      h("label", { for: "device-id" }, t("device.id")),
      id,
      h("label", { for: "device-kind" }, t("device.kind")),
      choice("kind", [
        ["call-button", "device.call-button"],
        ["locator-tag", "device.locator-tag"],
      ]),
      h("label", { for: "device-protocol" }, t("device.protocol")),
      choice("protocol", [
        ["mqtt", "device.protocol-mqtt"],
        ["watch", "device.protocol-watch"],
      ]),
      h("p", {}, t("device.owner")),
      owner.element,
      h("button", { id: "device-register", class: "primary", type: "submit" }, t("device.registerButton")),
    );
  }

  private render(): void {
    const devices = this.shown();
    const columns: MessageKey[] = [
      "device.id",
      "device.kind",
      "device.owner",
      "device.status",
      "device.lastSeen",
      "device.battery",
    ];
    // Each cell names its column, for the card layout of narrow screens.
    const cell = (column: number, props: Record<string, unknown>, ...children: (Node | string)[]) =>
      h("td", { ...props, "data-label": t(columns[column] as MessageKey) }, ...children);
    const rows = devices.flatMap((d) => {
      const status = statusOf(d);
      const row = h(
        "tr",
        { class: status, dataset: { deviceId: d.id } },
        cell(0, {}, d.id),
        cell(1, {}, t(`device.${d.kind}`)),
        cell(2, {}, this.ownerName(d)),
        cell(3, { class: `device-status ${status}` }, t(`device.status.${status}`)),
        cell(
          4,
          { title: d.state?.lastSeenAt ? formatTime(d.state.lastSeenAt) : "" },
          d.state?.lastSeenAt ? formatAgo(d.state.lastSeenAt) : t("device.never"),
        ),
        cell(
          5,
          { class: d.state?.batteryLow ? "low" : "" },
          d.state?.battery === null || !d.state
            ? "–"
            : `${d.state.battery}%${d.state.batteryLow ? ` · ${t("device.status.low")}` : ""}`,
        ),
        ...(this.mayManage ? [h("td", { class: "row-actions" }, this.rowActions(d))] : []),
      );
      return this.editing === d.id
        ? [row, h("tr", { class: "editing" }, h("td", { colspan: 7 }, this.ownerEditor(d)))]
        : [row];
    });
    this.element.replaceChildren(
      ...present(
        h(
          "div",
          { class: "device-main" },
          ...present(
            this.toolbar(),
            this.message &&
              h(
                "p",
                {
                  class: this.message.error ? "error" : "saved",
                  role: this.message.error ? "alert" : "status",
                },
                this.message.text(),
              ),
            this.secretBox(),
            h(
              "p",
              { class: "muted", "aria-live": "polite" },
              t("device.count", { shown: devices.length, total: this.devices.length }),
            ),
            h(
              "div",
              { class: "table-wrap" },
              h(
                "table",
                {},
                h(
                  "thead",
                  {},
                  h(
                    "tr",
                    {},
                    ...columns.map((k) => h("th", { scope: "col" }, t(k))),
                    ...(this.mayManage ? [h("th", { scope: "col" }, t("device.actions"))] : []),
                  ),
                ),
                h("tbody", {}, ...rows),
              ),
            ),
          ),
        ),
        this.mayManage && this.registerForm(),
      ),
    );
  }
}
