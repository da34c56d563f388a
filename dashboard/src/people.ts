import {
  ApiError,
  type Assignment,
  api,
  type CareField,
  type CareNotes,
  careFields,
  type Person,
  type PersonInput,
  type SessionInfo,
} from "./api.ts";
import { h, present } from "./dom.ts";
import { currentLocale, errorText, formatTime, isMessageKey, type MessageKey, t } from "./i18n.ts";

type Role = Person["role"];
const roles: Role[] = ["resident", "doctor", "family", "grid-worker", "staff"];
/** The filter's choices: residents split by kind, then the other roles. */
const filters = ["all", "elderly", "child", ...roles.filter((r) => r !== "resident")] as const;
type Filter = (typeof filters)[number];

/** "Child resident" / "儿童居民"; the role alone for everyone else. */
export function roleLabel(p: Pick<Person, "role" | "category">): string {
  return p.role === "resident" && p.category ? t(`people.category.${p.category}`) : t(`role.${p.role}`);
}

const matches = (p: Person, query: string) => {
  const q = query.trim().toLowerCase();
  return !q || [p.name, p.id, p.phone ?? "", p.address ?? ""].some((v) => v.toLowerCase().includes(q));
};

/** What went wrong, and the field the gateway's refusal names (`body.category: …`), when it names one. */
function refusal(err: unknown): string {
  const field = err instanceof ApiError ? /^(?:body\.)?(\w+)/.exec(err.message)?.[1] : undefined;
  const key = `people.field.${field}`;
  return isMessageKey(key) ? `${errorText(err)} ${t("people.check", { field: t(key) })}` : errorText(err);
}

/** Shows how a save went in `el`: an error is announced at once. */
export function say(el: HTMLElement, text: string, error = false): void {
  el.textContent = text;
  el.className = text ? (error ? "error" : "saved") : "";
  el.setAttribute("role", error ? "alert" : "status");
}

/**
 * Choosing a person by typing part of a name, id or phone: nobody is chosen until the user picks
 * one, so a device never lands on whoever happened to be first in a list.
 */
export interface PickerState {
  query: string;
  value: string | null;
}
export class PersonPicker {
  readonly element: HTMLElement;
  private readonly list = h("ul", { class: "picker-list", role: "listbox" });
  private readonly chosen = h("p", { class: "picker-chosen", "aria-live": "polite" });

  constructor(
    private readonly candidates: () => Person[],
    /** Keeps ids of two pickers on one page apart. */
    prefix: string,
    /** Kept by the caller, so that a redrawn picker keeps what was typed and chosen. */
    private readonly state: PickerState = { query: "", value: null },
  ) {
    this.element = h(
      "div",
      { class: "picker" },
      h(
        "label",
        { for: `${prefix}-search` },
        t("people.pickerSearch"),
        h("input", {
          id: `${prefix}-search`,
          type: "search",
          autocomplete: "off",
          value: state.query,
          oninput: (e: Event) => {
            state.query = (e.target as HTMLInputElement).value;
            this.fill();
          },
        }),
      ),
      this.list,
      this.chosen,
    );
    this.fill();
  }

  get value(): string | null {
    return this.state.value;
  }

  private fill(): void {
    const found = this.candidates().filter((p) => matches(p, this.state.query));
    const shown = found.slice(0, 8);
    this.list.replaceChildren(
      ...shown.map((p) =>
        h(
          "li",
          {},
          h(
            "button",
            {
              type: "button",
              class: "choice",
              role: "option",
              "aria-selected": this.value === p.id ? "true" : "false",
              dataset: { personId: p.id },
              onclick: () => {
                this.state.value = p.id;
                this.fill();
              },
            },
            `${p.name} · ${roleLabel(p)}`,
          ),
        ),
      ),
      ...(found.length > shown.length
        ? [h("li", { class: "hint" }, t("people.more", { count: found.length - shown.length }))]
        : found.length === 0
          ? [h("li", { class: "hint" }, t("people.none"))]
          : []),
    );
    const picked = this.value ? this.candidates().find((p) => p.id === this.value) : undefined;
    this.chosen.textContent = picked ? t("people.chosen", { name: picked.name }) : t("people.nobodyChosen");
  }
}

/**
 * People: search and list everyone in the viewer's scope; staff and admins add and edit people and
 * assign a resident's doctor and family (the grid worker follows from the grid); care notes are
 * read by whoever sees the resident and written by staff and the resident's doctor.
 */
export class PeopleView {
  readonly element = h("section", { class: "people" });
  private query = "";
  private filter: Filter = "all";
  /** A person's id, "new" while adding one, or null. */
  private selected: string | null = null;
  private grids: { id: string; communityId: string; name: string }[] = [];
  private communities: { id: string; name: string }[] = [];
  private assignments: Assignment[] = [];
  private care: CareNotes | null = null;
  /**
   * The selected person's panel, kept while the list around it redraws (the app redraws views
   * when its link comes back), so that nothing typed into it is lost; drawn anew on another
   * selection, a save, or a change of language.
   */
  private panel: { key: string; element: HTMLElement } | null = null;
  /** Where a save of the person or of the care notes says how it went. */
  private readonly formStatus = h("p", { "aria-live": "polite" });
  private readonly careStatus = h("p", { "aria-live": "polite" });

  constructor(
    private readonly session: SessionInfo,
    /** Shared with the other views: what is added or changed here shows there too. */
    private readonly people: Map<string, Person>,
  ) {}

  private get manages(): boolean {
    return this.session.account.role === "admin" || this.session.account.role === "staff";
  }
  private get writesCare(): boolean {
    return this.manages || this.session.account.role === "doctor";
  }

  async show(): Promise<void> {
    try {
      const [list, grids, communities] = await Promise.all([api.people(), api.grids(), api.communities()]);
      this.people.clear();
      for (const p of list) this.people.set(p.id, p);
      this.grids = grids;
      this.communities = communities;
    } catch (err) {
      say(this.formStatus, errorText(err), true);
    }
    this.render();
  }

  private async select(id: string | null): Promise<void> {
    this.selected = id;
    this.panel = null;
    say(this.formStatus, "");
    say(this.careStatus, "");
    this.assignments = [];
    this.care = null;
    const person = id ? this.people.get(id) : undefined;
    if (person?.role === "resident") {
      [this.assignments, this.care] = await Promise.all([
        api.assignments(person.id).catch(() => []),
        api.care(person.id).catch(() => null),
      ]);
    }
    this.render();
    document.getElementById("person-name")?.focus();
  }

  render(): void {
    const shown = [...this.people.values()].filter(
      (p) =>
        matches(p, this.query) &&
        (this.filter === "all" ||
          (p.role !== "resident" && p.role === this.filter) ||
          (p.role === "resident" && p.category === this.filter)),
    );
    const list = h(
      "div",
      { class: "people-list" },
      h(
        "div",
        { class: "filters" },
        h(
          "label",
          { for: "people-search" },
          t("people.search"),
          h("input", {
            id: "people-search",
            type: "search",
            autocomplete: "off",
            value: this.query,
            oninput: (e: Event) => {
              this.query = (e.target as HTMLInputElement).value;
              this.render();
              document.getElementById("people-search")?.focus();
            },
          }),
        ),
        h(
          "label",
          { for: "people-filter" },
          t("people.filter"),
          h(
            "select",
            {
              id: "people-filter",
              onchange: (e: Event) => {
                this.filter = (e.target as HTMLSelectElement).value as Filter;
                this.render();
              },
            },
            ...filters.map((f) =>
              h(
                "option",
                { value: f, selected: f === this.filter },
                f === "all"
                  ? t("people.all")
                  : f === "elderly" || f === "child"
                    ? t(`people.category.${f}`)
                    : t(`role.${f}`),
              ),
            ),
          ),
        ),
        this.manages &&
          h(
            "button",
            { id: "person-add", class: "primary", onclick: () => this.select("new") },
            t("people.add"),
          ),
      ),
      h("p", { class: "muted", "aria-live": "polite" }, t("people.count", { count: shown.length })),
      h(
        "ul",
        { class: "people-rows" },
        ...shown.map((p) =>
          h(
            "li",
            {},
            h(
              "button",
              {
                class: "person-row",
                "aria-pressed": this.selected === p.id ? "true" : "false",
                dataset: { personId: p.id },
                onclick: () => this.select(p.id),
              },
              h("strong", {}, p.name),
              h("span", { class: `role-badge ${p.category ?? p.role}` }, roleLabel(p)),
              h("span", { class: "muted" }, this.gridName(p.gridId)),
            ),
          ),
        ),
      ),
    );
    const key = `${this.selected}|${currentLocale()}`;
    if (this.selected && this.panel?.key !== key) {
      // What the last save said was in the language of the panel drawn then.
      say(this.formStatus, "");
      say(this.careStatus, "");
      this.panel = { key, element: this.editor() };
    }
    this.element.replaceChildren(...present(list, this.selected && this.panel?.element));
  }

  private gridName(id: string | null): string {
    return id ? (this.grids.find((g) => g.id === id)?.name ?? id) : "";
  }

  private editor(): HTMLElement {
    const isNew = this.selected === "new";
    const person = isNew ? undefined : this.people.get(this.selected ?? "");
    const readOnly = !this.manages;
    const isAdmin = this.session.account.role === "admin";
    const ownCommunity = this.session.person?.communityId ?? this.communities[0]?.id ?? "";
    const input = (id: string, value: string | null, props: Record<string, unknown> = {}) =>
      h("input", { id, value: value ?? "", disabled: readOnly, autocomplete: "off", ...props });
    const name = input("person-name", person?.name ?? "", { required: true, maxlength: 200 });
    const role = h(
      "select",
      { id: "person-role", disabled: readOnly || (!isNew && !isAdmin) },
      ...roles.map((r) =>
        h("option", { value: r, selected: (person?.role ?? "resident") === r }, t(`role.${r}`)),
      ),
    );
    const category = h(
      "select",
      { id: "person-category", disabled: readOnly },
      h("option", { value: "" }, t("people.category.none")),
      ...(["elderly", "child"] as const).map((c) =>
        h("option", { value: c, selected: person?.category === c }, t(`people.category.${c}`)),
      ),
    );
    const community = h(
      "select",
      { id: "person-community", disabled: readOnly || !isNew || !isAdmin },
      ...this.communities.map((c) =>
        h("option", { value: c.id, selected: (person?.communityId ?? ownCommunity) === c.id }, c.name),
      ),
    );
    const grid = h("select", { id: "person-grid", disabled: readOnly });
    const fillGrids = () =>
      grid.replaceChildren(
        h("option", { value: "" }, t("people.noGrid")),
        ...this.grids
          .filter((g) => g.communityId === community.value)
          .map((g) => h("option", { value: g.id, selected: person?.gridId === g.id }, g.name)),
      );
    fillGrids();
    community.addEventListener("change", fillGrids);
    const categoryLabel = h("label", { for: "person-category" }, t("people.category"), category);
    const showCategory = () => {
      categoryLabel.hidden = role.value !== "resident";
    };
    role.addEventListener("change", showCategory);
    showCategory();
    const phone = input("person-phone", person?.phone ?? null, { type: "tel", maxlength: 40 });
    const address = input("person-address", person?.address ?? null, { maxlength: 300 });
    const locale = h(
      "select",
      { id: "person-locale", disabled: readOnly },
      h("option", { value: "zh-CN", selected: person?.locale !== "en" }, "中文"),
      h("option", { value: "en", selected: person?.locale === "en" }, "English"),
    );
    const field = (key: MessageKey, el: HTMLElement, id: string) => h("label", { for: id }, t(key), el);

    const form = h(
      "form",
      {
        class: "person-editor",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          const body: PersonInput = {
            name: name.value.trim(),
            role: role.value as Role,
            category: role.value === "resident" ? ((category.value || null) as Person["category"]) : null,
            communityId: community.value,
            gridId: grid.value || null,
            phone: phone.value.trim() || null,
            address: address.value.trim() || null,
            locale: locale.value,
          };
          try {
            const saved = person
              ? await api.updatePerson(person.id, body)
              : await api.createPerson({ ...body, contacts: [] });
            this.people.set(saved.id, saved);
            await this.select(saved.id);
            say(this.formStatus, t("people.saved"));
          } catch (err) {
            say(this.formStatus, refusal(err), true);
          }
        },
      },
      h("h2", {}, isNew ? t("people.add") : (person?.name ?? "")),
      field("people.name", name, "person-name"),
      field("people.role", role, "person-role"),
      categoryLabel,
      this.communities.length > 1 && field("people.community", community, "person-community"),
      field("people.grid", grid, "person-grid"),
      field("people.phone", phone, "person-phone"),
      field("people.address", address, "person-address"),
      field("people.locale", locale, "person-locale"),
      !readOnly && h("button", { id: "person-save", class: "primary", type: "submit" }, t("people.save")),
      this.formStatus,
    );
    return h(
      "div",
      { class: "person-panel" },
      ...present(
        form,
        person?.role === "resident" && this.responders(person),
        person?.role === "resident" && this.careEditor(person),
      ),
    );
  }

  /** The resident's doctor and family (assigned here), and the grid worker (by the grid). */
  private responders(resident: Person): HTMLElement {
    const name = (id: string) => this.people.get(id)?.name ?? id;
    const gridWorkers = [...this.people.values()].filter(
      (p) => p.role === "grid-worker" && resident.gridId && p.gridId === resident.gridId,
    );
    const assign = (relation: "doctor" | "family") => {
      const taken = new Set(this.assignments.filter((a) => a.relation === relation).map((a) => a.personId));
      const picker = new PersonPicker(
        () =>
          [...this.people.values()].filter(
            (p) => p.role === relation && p.communityId === resident.communityId && !taken.has(p.id),
          ),
        `assign-${relation}`,
      );
      return h(
        "details",
        { class: "assign" },
        h("summary", {}, t(relation === "doctor" ? "people.assignDoctor" : "people.assignFamily")),
        picker.element,
        h(
          "button",
          {
            id: `assign-${relation}-save`,
            type: "button",
            onclick: async () => {
              if (!picker.value) return;
              try {
                await api.assign({ residentId: resident.id, personId: picker.value, relation });
                await this.select(resident.id);
              } catch (err) {
                say(this.formStatus, errorText(err), true);
              }
            },
          },
          t("people.assign"),
        ),
      );
    };
    return h(
      "section",
      { class: "responders" },
      h("h3", {}, t("people.responders")),
      h(
        "ul",
        {},
        ...this.assignments.map((a) =>
          h(
            "li",
            { dataset: { relation: a.relation, personId: a.personId } },
            `${t(`role.${a.relation}`)}: ${name(a.personId)} `,
            this.manages &&
              h(
                "button",
                {
                  class: "link",
                  type: "button",
                  onclick: async () => {
                    try {
                      await api.unassign(a.id);
                      await this.select(resident.id);
                    } catch (err) {
                      say(this.formStatus, errorText(err), true);
                    }
                  },
                },
                t("people.unassign"),
              ),
          ),
        ),
        h(
          "li",
          {},
          `${t("role.grid-worker")}: ${gridWorkers.map((p) => p.name).join(", ") || t("people.noGridWorker")}`,
        ),
      ),
      ...present(this.manages && assign("doctor"), this.manages && assign("family")),
    );
  }

  private careEditor(resident: Person): HTMLElement {
    const notes = this.care;
    const heading = h("h3", {}, t("people.care"));
    if (!notes) return h("section", { class: "care" }, heading, h("p", {}, t("people.careUnavailable")));
    const updated =
      notes.updatedAt !== null
        ? h(
            "p",
            { class: "hint" },
            t("people.careUpdated", { time: formatTime(notes.updatedAt), who: notes.updatedBy ?? "" }),
          )
        : h("p", { class: "hint" }, t("people.careNone"));
    if (!this.writesCare) return h("section", { class: "care" }, heading, careList(notes), updated);
    const areas = Object.fromEntries(
      careFields.map((f) => [
        f,
        h("textarea", { id: `care-${f}`, rows: 2, maxlength: 2000 }, notes[f] ?? ""),
      ]),
    ) as Record<CareField, HTMLTextAreaElement>;
    return h(
      "form",
      {
        class: "care",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          try {
            this.care = await api.setCare(
              resident.id,
              Object.fromEntries(careFields.map((f) => [f, areas[f].value])) as Record<CareField, string>,
            );
            this.panel = null;
            this.render();
            say(this.careStatus, t("people.saved"));
          } catch (err) {
            say(this.careStatus, refusal(err), true);
          }
        },
      },
      heading,
      h("p", { class: "hint" }, t("people.carePrivate")),
      ...careFields.map((f) => h("label", { for: `care-${f}` }, t(`care.${f}`), areas[f])),
      updated,
      h("button", { id: "care-save", class: "primary", type: "submit" }, t("people.saveCare")),
      this.careStatus,
    );
  }
}

/** The written care notes as a list, for the alert detail and read-only readers; null when none. */
export function careList(notes: CareNotes): HTMLElement | null {
  const written = careFields.filter((f) => notes[f]);
  if (written.length === 0) return null;
  return h(
    "dl",
    { class: "care-notes" },
    ...written.flatMap((f) => [h("dt", {}, t(`care.${f}`)), h("dd", {}, notes[f] ?? "")]),
  );
}
