import { type Account, type AuditEntry, api, type Person, type SessionInfo } from "./api.ts";
import { h, present } from "./dom.ts";
import { currentLocale, errorText, formatTime, isMessageKey, type MessageKey, t } from "./i18n.ts";
import { PersonPicker, type PickerState, say } from "./people.ts";

type AccountRole = Account["role"];
const accountRoles: AccountRole[] = ["admin", "staff", "doctor", "family"];
/** Which people an account of each role may act as (the gateway checks the same). */
const actsAs: Record<AccountRole, Person["role"][]> = {
  admin: [],
  staff: ["staff", "grid-worker"],
  doctor: ["doctor"],
  family: ["family"],
};
const auditFilters = ["actor", "action", "target"] as const;
/** Every action the gateway writes to the access log. */
const auditActions = [
  "login",
  "login.failed",
  "login.throttled",
  "logout",
  "account.create",
  "account.update",
  "account.remove",
  "account.unlock",
  "community.create",
  "grid.create",
  "person.create",
  "person.update",
  "person.remove",
  "person.contacts",
  "assignment.create",
  "assignment.remove",
  "care.read",
  "care.update",
  "device.register",
  "device.owner",
  "device.rotate-secret",
  "device.revoke",
  "geofence.create",
  "geofence.update",
  "geofence.remove",
  "track.read",
  "watch-readings.read",
  "push.subscribe",
  "push.unsubscribe",
] as const;
/** An action in the reader's language; one written by a newer gateway, as it is. */
const actionName = (code: string) => {
  const key = `audit.action.${code}`;
  return isMessageKey(key) ? t(key) : code;
};

/** What an action said; translated when drawn, so that it follows the language. */
type Said = { text: () => string; error: boolean } | null;
const said = (s: Said, id: string) =>
  s && h("p", { id, class: s.error ? "error" : "saved", role: s.error ? "alert" : "status" }, s.text());

/**
 * One's own password, for everyone; for admins also the accounts (create, disable, reset a
 * password, lift sign-in blocks) and the access log, filtered by who, what, on what and when.
 */
export class AccountsView {
  readonly element = h("section", { class: "accounts" });
  private accounts: Account[] = [];
  private log: AuditEntry[] = [];
  private filter: Record<(typeof auditFilters)[number] | "from" | "to", string> = {
    actor: "",
    action: "",
    target: "",
    from: "",
    to: "",
  };
  private draft = {
    username: "",
    password: "",
    role: "staff" as AccountRole,
    person: { query: "", value: null } as PickerState,
  };
  /**
   * The own-password form, kept while the view redraws (the app redraws views when its link
   * comes back) so that what is typed stays; drawn anew in another language.
   */
  private own: { locale: string; element: HTMLElement } | null = null;
  private readonly ownSaid = h("p", { id: "own-said", "aria-live": "polite" });
  private accountsSaid: Said = null;
  /** The account whose password is being reset. */
  private resetting: string | null = null;

  constructor(
    private readonly session: SessionInfo,
    private readonly people: Map<string, Person>,
  ) {}

  private get isAdmin(): boolean {
    return this.session.account.role === "admin";
  }

  async show(): Promise<void> {
    if (this.isAdmin) {
      try {
        [this.accounts, this.log] = await Promise.all([api.users(), api.audit(this.auditQuery())]);
      } catch (err) {
        this.accountsSaid = { text: () => errorText(err), error: true };
      }
    }
    this.render();
  }

  private auditQuery(): Record<string, string> {
    const query: Record<string, string> = { limit: "200" };
    for (const key of auditFilters) if (this.filter[key].trim()) query[key] = this.filter[key].trim();
    // Dates as the reader's own calendar days: from the start of one to the end of the other.
    if (this.filter.from) query.from = String(new Date(`${this.filter.from}T00:00`).getTime());
    if (this.filter.to) query.to = String(new Date(`${this.filter.to}T00:00`).getTime() + 86_400_000);
    return query;
  }

  private async act(work: () => Promise<unknown>, done: MessageKey, params: Record<string, string>) {
    try {
      await work();
      this.accountsSaid = { text: () => t(done, params), error: false };
    } catch (err) {
      this.accountsSaid = { text: () => errorText(err), error: true };
    }
    await this.show();
  }

  render(): void {
    if (this.own?.locale !== currentLocale()) {
      say(this.ownSaid, "");
      this.own = { locale: currentLocale(), element: this.ownPassword() };
    }
    this.element.replaceChildren(
      ...present(
        this.own.element,
        this.isAdmin && this.accountList(),
        this.isAdmin && this.createForm(),
        this.isAdmin && this.auditLog(),
      ),
    );
  }

  private ownPassword(): HTMLElement {
    const field = (id: string, key: MessageKey, autocomplete: string) =>
      h(
        "label",
        { for: id },
        t(key),
        h("input", { id, type: "password", autocomplete, required: true, maxlength: 200 }),
      );
    const value = (id: string) => (document.getElementById(id) as HTMLInputElement).value;
    return h(
      "form",
      {
        class: "panel own-password",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          if (value("own-new") !== value("own-repeat")) return say(this.ownSaid, t("account.mismatch"), true);
          try {
            await api.changePassword(value("own-current"), value("own-new"));
            // Every session of the account has ended, this one too: sign in with the new password.
            location.reload();
          } catch (err) {
            say(this.ownSaid, errorText(err), true);
          }
        },
      },
      h("h2", {}, t("account.own")),
      h("p", { class: "muted" }, t("account.ownHint")),
      field("own-current", "account.current", "current-password"),
      field("own-new", "account.new", "new-password"),
      field("own-repeat", "account.repeat", "new-password"),
      h("button", { id: "own-save", class: "primary", type: "submit" }, t("account.change")),
      this.ownSaid,
    );
  }

  private accountList(): HTMLElement {
    const name = (a: Account) => (a.personId ? (this.people.get(a.personId)?.name ?? a.personId) : "");
    const columns: MessageKey[] = ["account.username", "account.role", "account.person", "account.status"];
    const cell = (i: number, ...children: (Node | string)[]) =>
      h("td", { "data-label": t(columns[i] as MessageKey) }, ...children);
    const row = (a: Account) => {
      const disabled = a.disabledAt !== null;
      const reset = h("input", {
        id: `reset-${a.username}`,
        type: "password",
        autocomplete: "new-password",
        minlength: 10,
        required: true,
        "aria-label": t("account.new"),
      });
      return [
        h(
          "tr",
          { class: disabled ? "revoked" : "", dataset: { username: a.username } },
          cell(0, a.username),
          cell(1, t(`account.role.${a.role}`)),
          cell(2, name(a)),
          cell(3, disabled ? t("account.disabled") : t("account.active")),
          h(
            "td",
            { class: "row-actions" },
            h(
              "div",
              { class: "device-actions" },
              a.username !== this.session.account.username &&
                h(
                  "button",
                  {
                    id: `toggle-${a.username}`,
                    type: "button",
                    class: disabled ? undefined : "danger",
                    onclick: () =>
                      this.act(
                        () => api.updateUser(a.username, { disabled: !disabled }),
                        disabled ? "account.enabledDone" : "account.disabledDone",
                        { username: a.username },
                      ),
                  },
                  t(disabled ? "account.enable" : "account.disable"),
                ),
              h(
                "button",
                {
                  id: `reset-open-${a.username}`,
                  type: "button",
                  onclick: () => {
                    this.resetting = this.resetting === a.username ? null : a.username;
                    this.render();
                  },
                },
                t("account.reset"),
              ),
              h(
                "button",
                {
                  id: `unlock-${a.username}`,
                  type: "button",
                  onclick: () =>
                    this.act(() => api.unlockUser(a.username), "account.unlocked", { username: a.username }),
                },
                t("account.unlock"),
              ),
            ),
          ),
        ),
        this.resetting === a.username &&
          h(
            "tr",
            { class: "editing" },
            h(
              "td",
              { colspan: 5 },
              h(
                "form",
                {
                  class: "reset",
                  onsubmit: (e: Event) => {
                    e.preventDefault();
                    this.resetting = null;
                    void this.act(
                      () => api.updateUser(a.username, { password: reset.value }),
                      "account.resetDone",
                      { username: a.username },
                    );
                  },
                },
                h("label", { for: reset.id }, t("account.new"), reset),
                h(
                  "button",
                  { id: `reset-save-${a.username}`, class: "primary", type: "submit" },
                  t("account.reset"),
                ),
              ),
            ),
          ),
      ];
    };
    return h(
      "div",
      { class: "panel" },
      h("h2", {}, t("account.list")),
      said(this.accountsSaid, "accounts-said"),
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
              h("th", { scope: "col" }, t("device.actions")),
            ),
          ),
          h("tbody", {}, ...this.accounts.flatMap((a) => present(...row(a)))),
        ),
      ),
    );
  }

  private createForm(): HTMLElement {
    const draft = this.draft;
    const picker = new PersonPicker(
      () => [...this.people.values()].filter((p) => actsAs[draft.role].includes(p.role)),
      "account-person",
      draft.person,
    );
    const password = h("input", {
      id: "account-password",
      type: "password",
      autocomplete: "new-password",
      minlength: 10,
      required: true,
      value: draft.password,
      oninput: (e: Event) => {
        draft.password = (e.target as HTMLInputElement).value;
      },
    });
    return h(
      "form",
      {
        class: "panel register",
        onsubmit: (e: Event) => {
          e.preventDefault();
          const personId = draft.role === "admin" ? null : picker.value;
          if (draft.role !== "admin" && !personId) {
            this.accountsSaid = { text: () => t("account.choosePerson"), error: true };
            return this.render();
          }
          const username = draft.username.trim();
          void this.act(
            async () => {
              await api.createUser({ username, password: draft.password, role: draft.role, personId });
              this.draft = {
                username: "",
                password: "",
                role: draft.role,
                person: { query: "", value: null },
              };
            },
            "account.created",
            { username },
          );
        },
      },
      h("h2", {}, t("account.create")),
      h(
        "label",
        { for: "account-username" },
        t("account.username"),
        h("input", {
          id: "account-username",
          required: true,
          autocomplete: "off",
          value: draft.username,
          oninput: (e: Event) => {
            draft.username = (e.target as HTMLInputElement).value;
          },
        }),
      ),
      h("label", { for: "account-password" }, t("account.password"), password),
      h(
        "label",
        { for: "account-role" },
        t("account.role"),
        h(
          "select",
          {
            id: "account-role",
            onchange: (e: Event) => {
              draft.role = (e.target as HTMLSelectElement).value as AccountRole;
              draft.person = { query: "", value: null };
              this.render();
            },
          },
          ...accountRoles.map((r) =>
            h("option", { value: r, selected: r === draft.role }, t(`account.role.${r}`)),
          ),
        ),
      ),
      draft.role !== "admin" && h("p", {}, t("account.actsAs")),
      draft.role !== "admin" && picker.element,
      h("button", { id: "account-create", class: "primary", type: "submit" }, t("account.createButton")),
    );
  }

  private auditLog(): HTMLElement {
    const input = (key: keyof AccountsView["filter"], type = "text") =>
      h(
        "label",
        { for: `audit-${key}` },
        t(`audit.${key}`),
        h("input", {
          id: `audit-${key}`,
          type,
          autocomplete: "off",
          value: this.filter[key],
          onchange: (e: Event) => {
            this.filter[key] = (e.target as HTMLInputElement).value;
          },
        }),
      );
    return h(
      "div",
      { class: "panel audit" },
      h("h2", {}, t("audit.title")),
      h(
        "form",
        {
          class: "filters",
          onsubmit: (e: Event) => {
            e.preventDefault();
            void this.show();
          },
        },
        input("actor"),
        h(
          "label",
          { for: "audit-action" },
          t("audit.action"),
          h(
            "select",
            {
              id: "audit-action",
              onchange: (e: Event) => {
                this.filter.action = (e.target as HTMLSelectElement).value;
              },
            },
            h("option", { value: "" }, t("device.all")),
            ...auditActions.map((a) =>
              h("option", { value: a, selected: this.filter.action === a }, actionName(a)),
            ),
          ),
        ),
        input("target"),
        input("from", "date"),
        input("to", "date"),
        h("button", { id: "audit-search", type: "submit" }, t("audit.search")),
      ),
      h("p", { class: "muted", "aria-live": "polite" }, t("audit.count", { count: this.log.length })),
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
              ...(["audit.at", "audit.actor", "audit.action", "audit.target", "audit.detail"] as const).map(
                (k) => h("th", { scope: "col" }, t(k)),
              ),
            ),
          ),
          h(
            "tbody",
            { id: "audit-rows" },
            ...this.log.map((e) =>
              h(
                "tr",
                { dataset: { action: e.action } },
                h("td", { "data-label": t("audit.at") }, formatTime(e.at)),
                h("td", { "data-label": t("audit.actor") }, e.actor),
                h("td", { "data-label": t("audit.action") }, actionName(e.action)),
                h("td", { "data-label": t("audit.target") }, e.target ?? ""),
                h(
                  "td",
                  { "data-label": t("audit.detail"), class: "audit-detail" },
                  e.detail ? JSON.stringify(e.detail) : "",
                ),
              ),
            ),
          ),
        ),
      ),
    );
  }
}
