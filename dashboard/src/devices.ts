import { api, type DeviceView, type Person } from "./api.ts";
import { h, present } from "./dom.ts";
import { errorText, formatAgo, formatTime, type MessageKey, t } from "./i18n.ts";

/**
 * The device list (last seen, battery, online) and, for staff and admins (who may register
 * devices), the registration form that shows a secret once. Below 600 px the rows become cards.
 */
export class DeviceList {
  readonly element = h("section", { class: "devices" });
  private secret: { id: string; secret?: string } | null = null;
  private error = "";

  private devices: DeviceView[] = [];

  constructor(
    private readonly people: Map<string, Person>,
    private readonly mayRegister: boolean,
  ) {}

  async refresh(): Promise<void> {
    // The gateway away: keep showing what was last known; the header says the link is down.
    this.devices = await api.devices().catch(() => this.devices);
    const devices = this.devices;
    const yes = (v: boolean | undefined) => (v ? t("device.yes") : t("device.no"));
    const residents = [...this.people.values()].filter((p) => p.role === "resident");
    const id = h("input", {
      id: "device-id",
      name: "id",
      required: true,
      pattern: "[A-Za-z0-9._-]+",
      autocomplete: "off",
    });
    const kind = h(
      "select",
      { id: "device-kind", name: "kind" },
      h("option", { value: "call-button" }, t("device.call-button")),
      h("option", { value: "locator-tag" }, t("device.locator-tag")),
    );
    const protocol = h(
      "select",
      { id: "device-protocol", name: "protocol" },
      h("option", { value: "mqtt" }, t("device.protocol-mqtt")),
      h("option", { value: "watch" }, t("device.protocol-watch")),
    );
    const owner = h(
      "select",
      { id: "device-owner", name: "ownerId", required: true },
      ...residents.map((p) => h("option", { value: p.id }, `${p.name} (${p.id})`)),
    );
    const form = h(
      "form",
      {
        class: "register",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          try {
            this.secret = await api.registerDevice({
              id: id.value.trim(),
              kind: kind.value,
              ownerId: owner.value,
              protocol: protocol.value,
            });
            this.error = "";
          } catch (err) {
            this.secret = null;
            this.error = errorText(err);
          }
          await this.refresh();
        },
      },
      h("h2", {}, t("device.register")),
      h("label", { for: "device-id" }, t("device.id")),
      id,
      h("label", { for: "device-kind" }, t("device.kind")),
      kind,
      h("label", { for: "device-protocol" }, t("device.protocol")),
      protocol,
      h("label", { for: "device-owner" }, t("device.owner")),
      owner,
      h("button", { class: "primary", type: "submit" }, t("device.registerButton")),
      this.error && h("p", { class: "error", role: "alert" }, this.error),
      this.secret &&
        h(
          "div",
          { class: "secret", role: "status" },
          this.secret.secret === undefined
            ? h("p", {}, t("device.watchRegistered", { id: this.secret.id }))
            : [
                h("p", {}, t("device.secret", { id: this.secret.id })),
                h("code", { id: "device-secret" }, this.secret.secret),
              ],
        ),
    );
    const columns: MessageKey[] = [
      "device.id",
      "device.kind",
      "device.owner",
      "device.connected",
      "device.online",
      "device.lastSeen",
      "device.battery",
    ];
    // Each cell names its column, for the card layout of narrow screens.
    const cell = (column: number, props: Record<string, unknown>, text: string) =>
      h("td", { ...props, "data-label": t(columns[column] as MessageKey) }, text);
    this.element.replaceChildren(
      ...present(
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            {},
            h("thead", {}, h("tr", {}, ...columns.map((k) => h("th", { scope: "col" }, t(k))))),
            h(
              "tbody",
              {},
              ...devices.map((d) =>
                h(
                  "tr",
                  { class: d.state && !d.state.online ? "offline" : "" },
                  cell(0, {}, d.id),
                  cell(1, {}, t(`device.${d.kind}`)),
                  cell(2, {}, this.people.get(d.ownerId)?.name ?? d.ownerId),
                  cell(3, {}, yes(d.connected)),
                  cell(4, {}, d.state ? yes(d.state.online) : "–"),
                  cell(
                    5,
                    { title: d.state?.lastSeenAt ? formatTime(d.state.lastSeenAt) : "" },
                    d.state?.lastSeenAt ? formatAgo(d.state.lastSeenAt) : t("device.never"),
                  ),
                  cell(
                    6,
                    { class: d.state?.batteryLow ? "low" : "" },
                    d.state?.battery === null || !d.state ? "–" : `${d.state.battery}%`,
                  ),
                ),
              ),
            ),
          ),
        ),
        this.mayRegister && form,
      ),
    );
  }
}
