import { randomBytes } from "node:crypto";
import { Errors } from "../errors.ts";
import type { Account, Person, Store } from "../store/types.ts";

/**
 * What one signed-in account may see. Scope is a set of people: an alert, a device or a track is
 * visible when the person it is about (the alert's subject, the device's owner) is in it.
 *  - admin: everyone;
 *  - staff: everyone in their community, or in their grid when they are a grid worker;
 *  - doctor / family: the residents assigned to them in that relation, and themselves.
 */
export interface Viewer {
  account: Account;
  /** The person the account acts as: the responder named when it accepts or resolves an alert. */
  person: Person | null;
  /** null: sees everyone. */
  people: ReadonlySet<string> | null;
  /** Where a staff account may add or change people and devices; null for admins (anywhere). */
  area: { communityId: string; gridId: string | null } | null;
}

/** Which person roles an account role may act as. */
export const personRolesFor: Record<Account["role"], readonly Person["role"][]> = {
  admin: ["staff", "grid-worker", "doctor", "family"],
  staff: ["staff", "grid-worker"],
  doctor: ["doctor"],
  family: ["family"],
};

export async function resolveViewer(store: Store, account: Account): Promise<Viewer> {
  const { registry } = store;
  const person = account.personId ? ((await registry.getPerson(account.personId)) ?? null) : null;
  if (account.role === "admin") return { account, person, people: null, area: null };
  // Not reached while the person exists (it cannot be deleted while an account acts as it).
  if (!person) return { account, person, people: new Set(), area: null };
  if (account.role === "staff") {
    const area = {
      communityId: person.communityId,
      gridId: person.role === "grid-worker" ? person.gridId : null,
    };
    const inArea = await registry.listPeople(
      area.gridId ? { gridId: area.gridId } : { communityId: area.communityId },
    );
    return { account, person, people: new Set(inArea.map((p) => p.id)), area };
  }
  const assigned = await registry.listAssignments({ personId: person.id });
  const residents = assigned.filter((a) => a.relation === account.role).map((a) => a.residentId);
  return { account, person, people: new Set([person.id, ...residents]), area: null };
}

export const sees = (viewer: Viewer, personId: string): boolean =>
  viewer.people === null || viewer.people.has(personId);

/** Out of scope reads as absent: nobody learns that another family's child exists. */
export function mustSee(viewer: Viewer, personId: string, what: string, id: string): void {
  if (!sees(viewer, personId)) throw Errors.notFound(what, id);
}

/**
 * The id of a new person or safe zone. Only a viewer who sees everyone may choose one: anyone
 * else would learn from a refused duplicate that an id outside their scope exists, so theirs are
 * made by the gateway. The answer to a chosen id never depends on what exists elsewhere.
 */
export function newRecordId(viewer: Viewer, chosen: string | undefined, prefix: string): string {
  if (chosen === undefined) return `${prefix}-${randomBytes(6).toString("hex")}`;
  if (viewer.people !== null)
    throw Errors.invalid("id: only an administrator chooses ids; leave it out and the gateway makes one");
  return chosen;
}

/** A person record a staff account may create or move: inside its community, and its grid if any. */
export function mustBeInArea(viewer: Viewer, place: { communityId: string; gridId: string | null }): void {
  const { area } = viewer;
  if (!area) return;
  if (place.communityId !== area.communityId)
    throw Errors.forbidden(`community '${place.communityId}' is outside your area`);
  if (area.gridId && place.gridId !== area.gridId)
    throw Errors.forbidden(`only grid '${area.gridId}' is in your area`);
}

/** The responder an account acts as when it accepts, resolves or cancels an alert. */
export function responderOf(viewer: Viewer): Person {
  if (!viewer.person) throw Errors.forbidden("your account is not linked to a person, so it cannot respond");
  return viewer.person;
}
