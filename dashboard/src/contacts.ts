import {
  type AlertKind,
  ApiError,
  alertKinds,
  api,
  type ChannelContact,
  type ContactKind,
  type Person,
  type SessionInfo,
} from "./api.ts";
import { h, present } from "./dom.ts";
import { currentLocale, errorText, t } from "./i18n.ts";

/** A channel a contact may be on: push is not one (the phone subscribes itself, in the header). */
type Channel = { kind: ContactKind; configured: boolean };
/** The gateway keeps at most this many contacts per person. */
const MAX_CONTACTS = 10;
/** Levels offered; a list written elsewhere may hold a higher one, which is kept. */
const LEVELS = 3;

/**
 * One person's contacts, tried in order when an alert reaches them: edited as a draft, sent
 * whole with Save. The gateway is the one judge of what is valid; its refusal is shown by code
 * and the contact it names is marked.
 */
class ContactEditor {
  readonly element = h("form", { class: "reach-editor", novalidate: true });
  private contacts: ChannelContact[] | null = null;
  private loadError: unknown = null;
  private saveError: unknown = null;
  /** The contact the gateway's refusal names (`contacts.2.address`), if it names one. */
  private refused: number | null = null;
  private saving = false;
  private saved = false;
  private dirty = false;
  private readonly status = h("p", { class: "reach-status", role: "status" });

  constructor(
    private readonly person: { id: string; name: string } | null,
    /** Read at each drawing, so that it follows the language. */
    private readonly title: () => string,
    /** Keeps the ids of two editors on one page apart. */
    private readonly prefix: string,
    private readonly channels: Channel[],
  ) {
    this.element.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.save();
    });
    if (person)
      api.contacts(person.id).then(
        (list) => {
          this.contacts = list;
          this.render();
        },
        (err) => {
          this.loadError = err;
          this.render();
        },
      );
  }

  private get newContact(): ChannelContact {
    const kind = this.channels.find((c) => c.configured && c.kind !== "webhook")?.kind ?? "sms";
    return { kind, address: "", alertKinds: null, minLevel: 1 };
  }

  private async save(): Promise<void> {
    if (!this.person || !this.contacts || this.saving) return;
    this.saving = true;
    this.render();
    const sent = this.contacts.map((c) => ({
      ...c,
      // People write numbers with spaces and dashes ("138 0000 0001"); the gateway wants digits.
      address: c.kind === "webhook" ? c.address.trim() : c.address.replace(/[\s-]/g, ""),
    }));
    try {
      this.contacts = await api.setContacts(this.person.id, sent);
      this.saveError = null;
      this.refused = null;
      this.saved = true;
      this.dirty = false;
    } catch (err) {
      this.saveError = err;
      // The field path is part of the error's structure (`body.contacts.1.address: …`), not its wording.
      const at = err instanceof ApiError ? /contacts\.(\d+)/.exec(err.message) : null;
      this.refused = at ? Number(at[1]) : null;
    }
    this.saving = false;
    this.render();
  }

  /** An edit that changes no layout: only the saved / unsaved note. */
  private touched(): void {
    this.dirty = true;
    this.saved = false;
    this.renderStatus();
  }

  /** An edit that changes the layout: drawn again, focus kept on the control that was used. */
  private changed(...focus: string[]): void {
    this.dirty = true;
    this.saved = false;
    // The refusal named a contact by its place in the list sent; that place may hold another now.
    this.refused = null;
    this.render();
    for (const id of focus) {
      const el = document.getElementById(id) as HTMLButtonElement | null;
      if (el && !el.disabled) {
        el.focus();
        return;
      }
    }
  }

  private renderStatus(): void {
    this.status.textContent = this.saving
      ? t("contacts.saving")
      : this.saved
        ? t("contacts.saved")
        : this.dirty
          ? t("contacts.unsaved")
          : "";
    this.status.className = `reach-status${this.saved ? " saved" : ""}`;
  }

  render(): void {
    const heading = h("h2", {}, this.title());
    if (!this.person) {
      this.element.replaceChildren(heading, h("p", {}, t("contacts.noPerson")));
      return;
    }
    const list = this.contacts;
    if (!list) {
      this.element.replaceChildren(
        heading,
        this.loadError
          ? h("p", { class: "error", role: "alert" }, errorText(this.loadError))
          : h("p", {}, t("contacts.loading")),
      );
      return;
    }
    this.renderStatus();
    this.element.replaceChildren(
      ...present(
        heading,
        h("p", { class: "reach-intro" }, t("contacts.intro")),
        list.length === 0 && h("p", { class: "reach-empty" }, t("contacts.empty")),
        h("ol", { class: "reach-list" }, ...list.map((c, i) => this.card(list, c, i))),
        h(
          "button",
          {
            type: "button",
            id: `${this.prefix}-add`,
            disabled: list.length >= MAX_CONTACTS,
            onclick: () => {
              list.push(this.newContact);
              this.changed(`${this.prefix}-${list.length - 1}-address`);
            },
          },
          t("contacts.add"),
        ),
        list.length >= MAX_CONTACTS && h("p", {}, t("contacts.max", { max: MAX_CONTACTS })),
        this.saveError !== null &&
          h(
            "p",
            { class: "error", role: "alert" },
            t("contacts.failed", { message: errorText(this.saveError) }),
            this.refused !== null &&
              h("span", { class: "reach-check" }, t("contacts.check", { n: this.refused + 1 })),
          ),
        h(
          "div",
          { class: "reach-save" },
          h(
            "button",
            { type: "submit", class: "primary", id: `${this.prefix}-save`, disabled: this.saving },
            t("contacts.save"),
          ),
          this.status,
        ),
      ),
    );
  }

  private card(list: ChannelContact[], c: ChannelContact, i: number): HTMLLIElement {
    const id = (field: string) => `${this.prefix}-${i}-${field}`;
    const move = (to: number, ...focus: string[]) => {
      const [moved] = list.splice(i, 1);
      if (moved) list.splice(to, 0, moved);
      this.changed(...focus);
    };
    const channel = this.channels.find((ch) => ch.kind === c.kind);
    const isUrl = c.kind === "webhook";
    const some = c.alertKinds !== null;
    const idAt = (n: number, field: string) => `${this.prefix}-${n}-${field}`;
    return h(
      "li",
      {
        class: `reach-card${this.refused === i ? " refused" : ""}`,
        "aria-labelledby": id("title"),
        dataset: { kind: c.kind },
      },
      h("h3", { id: id("title") }, t("contacts.item", { n: i + 1 })),
      h(
        "label",
        { for: id("kind") },
        t("contacts.channel"),
        h(
          "select",
          {
            id: id("kind"),
            onchange: (e: Event) => {
              c.kind = (e.target as HTMLSelectElement).value as ContactKind;
              this.changed(id("kind"));
            },
          },
          ...this.channels.map((ch) =>
            h(
              "option",
              { value: ch.kind, selected: ch.kind === c.kind, disabled: !ch.configured },
              ch.configured
                ? t(`channel.${ch.kind}`)
                : t("contacts.notConfigured", { channel: t(`channel.${ch.kind}`) }),
            ),
          ),
        ),
      ),
      channel?.configured === false && h("p", { class: "warning" }, t("contacts.skipped")),
      h(
        "label",
        { for: id("address") },
        t(isUrl ? "contacts.url" : "contacts.mobile"),
        h("input", {
          id: id("address"),
          type: isUrl ? "url" : "tel",
          inputmode: isUrl ? "url" : "tel",
          autocomplete: "off",
          value: c.address,
          maxlength: 500,
          "aria-describedby": id("hint"),
          "aria-invalid": this.refused === i ? "true" : undefined,
          oninput: (e: Event) => {
            c.address = (e.target as HTMLInputElement).value;
            this.touched();
          },
        }),
      ),
      h("p", { class: "reach-hint", id: id("hint") }, t(isUrl ? "contacts.urlHint" : "contacts.mobileHint")),
      h(
        "fieldset",
        { class: "reach-kinds" },
        h("legend", {}, t("contacts.kinds")),
        ...(["all", "some"] as const).map((choice) =>
          h(
            "label",
            { class: "choice" },
            h("input", {
              type: "radio",
              name: id("scope"),
              id: id(choice),
              checked: (choice === "some") === some,
              onchange: () => {
                c.alertKinds = choice === "all" ? null : [];
                this.changed(id(choice));
              },
            }),
            t(choice === "all" ? "contacts.allKinds" : "contacts.someKinds"),
          ),
        ),
        some &&
          h(
            "div",
            { class: "reach-kind-list" },
            ...alertKinds.map((kind) =>
              h(
                "label",
                { class: "choice" },
                h("input", {
                  type: "checkbox",
                  id: id(`kind-${kind}`),
                  value: kind,
                  checked: c.alertKinds?.includes(kind),
                  onchange: (e: Event) => {
                    const on = (e.target as HTMLInputElement).checked;
                    const chosen = new Set<AlertKind>(c.alertKinds ?? []);
                    if (on) chosen.add(kind);
                    else chosen.delete(kind);
                    c.alertKinds = alertKinds.filter((k) => chosen.has(k));
                    this.touched();
                  },
                }),
                t(`kind.${kind}`),
              ),
            ),
          ),
      ),
      h(
        "label",
        { for: id("level") },
        t("contacts.level"),
        h(
          "select",
          {
            id: id("level"),
            onchange: (e: Event) => {
              c.minLevel = Number((e.target as HTMLSelectElement).value);
              this.touched();
            },
          },
          ...Array.from({ length: Math.max(LEVELS, c.minLevel) }, (_, n) =>
            h(
              "option",
              { value: n + 1, selected: c.minLevel === n + 1 },
              n === 0 ? t("contacts.fromLevel1") : t("contacts.fromLevel", { level: n + 1 }),
            ),
          ),
        ),
      ),
      h(
        "div",
        { class: "reach-moves" },
        h(
          "button",
          {
            type: "button",
            id: id("up"),
            disabled: i === 0,
            onclick: () => move(i - 1, idAt(i - 1, "up"), idAt(i - 1, "down")),
          },
          t("contacts.up"),
        ),
        h(
          "button",
          {
            type: "button",
            id: id("down"),
            disabled: i === list.length - 1,
            onclick: () => move(i + 1, idAt(i + 1, "down"), idAt(i + 1, "up")),
          },
          t("contacts.down"),
        ),
        h(
          "button",
          {
            type: "button",
            id: id("remove"),
            class: "danger",
            onclick: () => {
              list.splice(i, 1);
              this.changed(idAt(i, "remove"), idAt(i - 1, "remove"), `${this.prefix}-add`);
            },
          },
          t("contacts.remove"),
        ),
      ),
    );
  }
}

/**
 * "How I am reached": the signed-in person's own contacts; staff and admins also pick anyone in
 * their scope and edit theirs. Family and doctors see only their own: the gateway refuses them
 * anyone else's.
 */
export class ContactsView {
  readonly element = h("section", { class: "reach" });
  private channels: Channel[] | null = null;
  private loadError: unknown = null;
  private mine: ContactEditor | null = null;
  private other: ContactEditor | null = null;
  private search = "";
  private picked = "";

  constructor(
    private readonly session: SessionInfo,
    private readonly people: Map<string, Person>,
  ) {}

  private get managesOthers(): boolean {
    return this.session.account.role === "admin" || this.session.account.role === "staff";
  }

  /** Shows the view; what was typed and not yet saved stays through redraws. */
  async show(): Promise<void> {
    if (!this.channels) {
      try {
        this.channels = (await api.channels()).filter((c): c is Channel => c.kind !== "push");
        this.loadError = null;
      } catch (err) {
        this.loadError = err;
      }
    }
    this.render();
  }

  render(): void {
    const channels = this.channels;
    if (!channels) {
      this.element.replaceChildren(
        h("p", { class: "error", role: "alert" }, errorText(this.loadError ?? new Error())),
      );
      return;
    }
    const me = this.session.person;
    this.mine ??= new ContactEditor(me, () => t("contacts.mine"), "mine", channels);
    this.mine.render();
    this.other?.render();
    this.element.replaceChildren(
      ...present(
        !(this.managesOthers && !me) && this.mine.element,
        this.managesOthers && this.picker(channels),
        this.other?.element,
      ),
    );
  }

  /** A select over the people in scope, narrowed by what is typed; nobody is chosen at first. */
  private picker(channels: Channel[]): HTMLElement {
    const me = this.session.person?.id;
    const candidates = [...this.people.values()]
      // Residents are the subjects of alerts, never paged about them.
      .filter((p) => p.role !== "resident" && p.id !== me)
      // In the page's language: by pinyin in Chinese.
      .sort((a, b) => a.name.localeCompare(b.name, currentLocale()));
    const label = (p: Person) => `${p.name} · ${t(`role.${p.role}`)}`;
    const select = h("select", {
      id: "reach-person",
      onchange: () => {
        this.picked = select.value;
        const person = this.people.get(this.picked);
        this.other = person
          ? new ContactEditor(person, () => t("contacts.of", { name: person.name }), "other", channels)
          : null;
        this.render();
        (document.getElementById("reach-person") as HTMLSelectElement | null)?.focus();
      },
    });
    const fill = () => {
      const needle = this.search.trim().toLowerCase();
      const shown = candidates.filter(
        (p) => p.id === this.picked || !needle || `${label(p)} ${p.id}`.toLowerCase().includes(needle),
      );
      select.replaceChildren(
        h("option", { value: "", selected: !this.picked }, t("contacts.choose", { count: shown.length })),
        ...shown.map((p) => h("option", { value: p.id, selected: p.id === this.picked }, label(p))),
      );
    };
    fill();
    return h(
      "div",
      { class: "reach-picker" },
      h("h2", {}, t("contacts.others")),
      h(
        "label",
        { for: "reach-search" },
        t("contacts.search"),
        h("input", {
          id: "reach-search",
          type: "search",
          autocomplete: "off",
          value: this.search,
          oninput: (e: Event) => {
            this.search = (e.target as HTMLInputElement).value;
            fill();
          },
        }),
      ),
      h("label", { for: "reach-person" }, t("contacts.person"), select),
    );
  }
}
