import type { ChannelKind, Person, Store } from "../store/types.ts";
import type { Audience, Responder } from "./decide.ts";
import type { AlertKind } from "./model.ts";

/** Who could be paged about a resident or child, and the people records behind the ids. */
export interface FoundAudience {
  audience: Audience;
  people: Map<string, Person>;
  /** The resident or child, read on the way. */
  subject: Person | undefined;
}

/**
 * Who holds a role for a resident or child (their assigned doctor and family, the grid worker of
 * their grid, the staff of their community) and whether anything reaches each of them now: a
 * contact on a channel the gateway can send on whose last message did not fail, or the dashboard open in their name.
 * The catch-all is the community's staff who can be reached, or else the admins.
 */
export async function findAudience(
  store: Store,
  subjectId: string,
  /** What the alert is about: a contact kept for other kinds reaches nobody for it. */
  kind: AlertKind,
  reach: {
    isWatching: (personId: string | null) => boolean;
    /** Channels the gateway can send on: a contact on another reaches nobody. */
    canSendOn: (kind: ChannelKind) => boolean;
  },
): Promise<FoundAudience> {
  const { registry } = store;
  const people = new Map<string, Person>();
  const byRole: Partial<Record<Person["role"], Person[]>> = {};
  const subject = await registry.getPerson(subjectId);
  if (subject) {
    for (const a of await registry.listAssignments({ residentId: subjectId })) {
      const person = await registry.getPerson(a.personId);
      if (person) byRole[a.relation] = [...(byRole[a.relation] ?? []), person];
    }
    if (subject.gridId)
      byRole["grid-worker"] = await registry.listPeople({ role: "grid-worker", gridId: subject.gridId });
    byRole.staff = await registry.listPeople({ role: "staff", communityId: subject.communityId });
  }
  const all = Object.values(byRole).flat();
  const failing = await store.attempts.failing(all.flatMap((p) => p.contacts));
  /** Contacts that would carry this alert now. */
  const working = (p: Person) =>
    p.contacts.filter(
      (c) =>
        reach.canSendOn(c.kind) &&
        !failing.has(`${c.kind} ${c.address}`) &&
        (c.alertKinds === null || c.alertKinds.includes(kind)),
    );
  const reachable = (p: Person) => reach.isWatching(p.id) || working(p).length > 0;
  const responders = (list: Person[] = []): Responder[] =>
    list.map((p) => {
      people.set(p.id, p);
      if (reach.isWatching(p.id)) return { id: p.id, reachable: true };
      const levels = working(p).map((c) => c.minLevel);
      return { id: p.id, reachable: levels.length > 0, reachableFrom: Math.min(...levels) };
    });
  const audience: Audience = {
    byRole: Object.fromEntries(Object.entries(byRole).map(([role, list]) => [role, responders(list)])),
    catchAll: (byRole.staff ?? []).filter(reachable).map((p) => p.id),
  };
  if (audience.catchAll.length === 0) {
    // Admins: those linked to a person are paged on their contacts; all see the alert on the board.
    for (const account of await store.accounts.list()) {
      if (account.role !== "admin" || account.disabledAt !== null || !account.personId) continue;
      const person = await registry.getPerson(account.personId);
      if (!person) continue;
      people.set(person.id, person);
      audience.catchAll.push(person.id);
    }
  }
  return { audience, people, subject };
}
