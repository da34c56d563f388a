import type { Person, RegistryRepository, Role } from "../store/types.ts";

/**
 * Who holds a role for a given resident or child: their assigned doctor and family, the grid
 * worker of their grid, the staff of their community.
 */
export async function findRecipients(
  registry: RegistryRepository,
  subjectId: string,
  roles: Role[],
): Promise<Person[]> {
  const subject = await registry.getPerson(subjectId);
  if (!subject) return [];
  const found = new Map<string, Person>();
  const assignments = await registry.listAssignments({ residentId: subjectId });
  for (const role of roles) {
    if (role === "doctor" || role === "family") {
      for (const a of assignments.filter((x) => x.relation === role)) {
        const person = await registry.getPerson(a.personId);
        if (person) found.set(person.id, person);
      }
    } else if (role === "grid-worker" && subject.gridId) {
      for (const p of await registry.listPeople({ role, gridId: subject.gridId })) found.set(p.id, p);
    } else if (role === "staff") {
      for (const p of await registry.listPeople({ role, communityId: subject.communityId }))
        found.set(p.id, p);
    }
  }
  return [...found.values()];
}
