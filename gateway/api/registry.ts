import type { FastifyPluginAsync } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { alertKinds } from "../alerts/model.ts";
import { mustBeInArea, mustSee, newRecordId, sees, type Viewer } from "../auth/index.ts";
import { newDeviceSecret } from "../broker/secrets.ts";
import { Errors } from "../errors.ts";
import type { Device, Person, Role } from "../store/types.ts";
import { channelKinds, deviceKinds, roles } from "../store/types.ts";
import { adminOnly, everyone, managers, viewerOf } from "./access.ts";
import type { ApiDeps } from "./index.ts";
import * as s from "./schemas.ts";

/**
 * Communities, grids, people, assignments and devices. Everyone reads what is in their scope;
 * staff change people and devices in their own area; only admins add communities and grids.
 */
export const registryRoutes: FastifyPluginAsync<ApiDeps> = async (
  fastify,
  {
    store,
    deviceSecrets,
    isConnected,
    clock,
    bus,
    tracker,
    auth,
    disconnectDevice,
    phrases,
    outbound,
    configuredChannels,
  },
) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const { registry } = store;
  const actor = (v: Viewer) => v.account.username;

  const mustExist = async <T>(what: string, id: string, get: (id: string) => Promise<T | undefined>) => {
    const found = await get(id);
    if (!found) throw Errors.notFound(what, id);
    return found;
  };
  /** A person this viewer may see; anyone else reads as absent. */
  const visiblePerson = async (viewer: Viewer, id: string) => {
    const p = await mustExist("person", id, registry.getPerson);
    mustSee(viewer, p.id, "person", id);
    return p;
  };
  const visibleDevice = async (viewer: Viewer, id: string) => {
    const d = await mustExist("device", id, registry.getDevice);
    mustSee(viewer, d.ownerId, "device", id);
    return d;
  };
  const communityExists = async (id: string) =>
    mustExist("community", id, async (x) => (await registry.listCommunities()).find((c) => c.id === x));
  /** A webhook the outbound guard would refuse is refused when stored, not first when an alert needs it. */
  const checkContacts = (contacts: Person["contacts"]) => {
    for (const [i, c] of contacts.entries()) {
      const refused = c.kind === "webhook" ? outbound.refusal(c.address) : undefined;
      if (refused) throw Errors.invalid(`contacts.${i}.address: ${refused}`);
    }
  };
  const checkPerson = async (
    viewer: Viewer,
    p: Pick<Person, "role" | "category" | "communityId" | "gridId" | "locale" | "contacts">,
  ) => {
    mustBeInArea(viewer, p);
    if (p.category && p.role !== "resident")
      throw Errors.invalid(`category: only a resident is elderly or a child; a ${p.role} has none (null)`);
    checkContacts(p.contacts);
    if (!phrases[p.locale])
      throw Errors.invalid(
        `locale: no device phrases for '${p.locale}' (${Object.keys(phrases).join(", ")})`,
      );
    await communityExists(p.communityId);
    if (p.gridId) {
      const grid = await mustExist("grid", p.gridId, async (x) =>
        (await registry.listGrids()).find((g) => g.id === x),
      );
      if (grid.communityId !== p.communityId) {
        throw Errors.invalid(`gridId: grid '${grid.id}' is not in community '${p.communityId}'`);
      }
    }
  };
  /**
   * Where a person's alerts go may be changed only by someone whose area covers every resident
   * they hear about: staff of one community must not redirect another community's alerts.
   */
  const mayRedirectAlertsOf = async (viewer: Viewer, p: Person) => {
    const { area } = viewer;
    if (!area) return;
    // Staff hear of their whole community, a grid worker of their grid, doctor and family of their residents.
    const heardOf: { communityId: string; gridId: string | null }[] =
      p.role === "staff"
        ? [{ communityId: p.communityId, gridId: null }]
        : p.role === "grid-worker"
          ? [p]
          : [];
    for (const a of await registry.listAssignments({ personId: p.id })) {
      const resident = await registry.getPerson(a.residentId);
      if (resident) heardOf.push(resident);
    }
    if (
      heardOf.some(
        (r) => r.communityId !== area.communityId || (area.gridId !== null && r.gridId !== area.gridId),
      )
    )
      throw Errors.forbidden(
        `contacts: '${p.id}' receives alerts about residents outside your area; only someone whose area covers all of them, or an admin, may change where they go`,
      );
  };
  const personWithRole = async (viewer: Viewer, id: string, role: Role) => {
    const p = await visiblePerson(viewer, id);
    if (p.role !== role) throw Errors.wrongRole(id, role);
    return p;
  };
  /** Admins see every community; others their own. */
  const ownCommunity = (viewer: Viewer) => (viewer.people === null ? null : viewer.person?.communityId);

  app.post(
    "/api/communities",
    {
      config: { roles: adminOnly },
      schema: { tags: ["registry"], body: s.community, response: { 201: s.community } },
    },
    async (req, reply) => {
      const created = await registry.createCommunity(req.body);
      await auth.audit(actor(viewerOf(req)), "community.create", created.id);
      return reply.code(201).send(created);
    },
  );
  app.get(
    "/api/communities",
    { config: { roles: everyone }, schema: { tags: ["registry"], response: { 200: z.array(s.community) } } },
    async (req) => {
      const own = ownCommunity(viewerOf(req));
      return (await registry.listCommunities()).filter((c) => own === null || c.id === own);
    },
  );
  app.post(
    "/api/grids",
    { config: { roles: adminOnly }, schema: { tags: ["registry"], body: s.grid, response: { 201: s.grid } } },
    async (req, reply) => {
      await communityExists(req.body.communityId);
      const created = await registry.createGrid(req.body);
      await auth.audit(actor(viewerOf(req)), "grid.create", created.id);
      return reply.code(201).send(created);
    },
  );
  app.get(
    "/api/grids",
    { config: { roles: everyone }, schema: { tags: ["registry"], response: { 200: z.array(s.grid) } } },
    async (req) => {
      const own = ownCommunity(viewerOf(req));
      return (await registry.listGrids()).filter((g) => own === null || g.communityId === own);
    },
  );

  app.post(
    "/api/people",
    {
      config: { roles: managers },
      schema: { tags: ["people"], body: s.personInput, response: { 201: s.person } },
    },
    async (req, reply) => {
      const viewer = viewerOf(req);
      const id = newRecordId(viewer, req.body.id, "person");
      await checkPerson(viewer, req.body);
      const created = await registry.createPerson({ ...req.body, id });
      await auth.audit(actor(viewer), "person.create", created.id);
      bus.emit("access.changed", { communities: [created.communityId] });
      return reply.code(201).send(created);
    },
  );
  app.get(
    "/api/people",
    {
      config: { roles: everyone },
      schema: {
        tags: ["people"],
        querystring: z.object({
          role: z.enum(roles).optional(),
          communityId: s.id.optional(),
          gridId: s.id.optional(),
        }),
        response: { 200: z.array(s.person) },
      },
    },
    async (req) => {
      const viewer = viewerOf(req);
      return (await registry.listPeople(req.query)).filter((p) => sees(viewer, p.id));
    },
  );
  app.get(
    "/api/people/:id",
    {
      config: { roles: everyone },
      schema: { tags: ["people"], params: z.object({ id: s.id }), response: { 200: s.person } },
    },
    (req) => visiblePerson(viewerOf(req), req.params.id),
  );
  app.patch(
    "/api/people/:id",
    {
      config: { roles: managers },
      schema: {
        tags: ["people"],
        params: z.object({ id: s.id }),
        body: s.personPatch,
        response: { 200: s.person },
      },
    },
    async (req) => {
      const viewer = viewerOf(req);
      const current = await visiblePerson(viewer, req.params.id);
      // A role decides scope (a grid worker's is their grid): staff must not widen their own.
      if (req.body.role && req.body.role !== current.role && viewer.people !== null)
        throw Errors.forbidden("only an admin changes a person's role");
      const next = { ...current, ...req.body };
      await checkPerson(viewer, next);
      if (req.body.contacts) await mayRedirectAlertsOf(viewer, current);
      const updated = await registry.updatePerson(next);
      await auth.audit(actor(viewer), "person.update", current.id, { fields: Object.keys(req.body) });
      bus.emit("access.changed", {
        people: [current.id],
        communities: [...new Set([current.communityId, next.communityId])],
      });
      return updated;
    },
  );
  app.get(
    "/api/channels",
    {
      config: { roles: everyone },
      schema: {
        tags: ["people"],
        description:
          "The channels a contact may use, and whether each is configured here (a contact on one that is not is skipped)",
        response: { 200: z.array(z.object({ kind: z.enum(channelKinds), configured: z.boolean() })) },
      },
    },
    async () => channelKinds.map((kind) => ({ kind, configured: configuredChannels.includes(kind) })),
  );
  const contactList = z.strictObject({ contacts: s.contacts });
  app.get(
    "/api/people/:id/contacts",
    {
      config: { roles: everyone },
      schema: {
        tags: ["people"],
        params: z.object({ id: s.id }),
        response: { 200: contactList },
      },
    },
    async (req) => ({ contacts: (await visiblePerson(viewerOf(req), req.params.id)).contacts }),
  );
  /**
   * Where a person's alerts go, in order of preference: the person changes their own; staff (and
   * admins) those of people whose alerts stay within their area.
   */
  app.put(
    "/api/people/:id/contacts",
    {
      config: { roles: everyone },
      schema: {
        tags: ["people"],
        params: z.object({ id: s.id }),
        body: contactList,
        response: { 200: contactList },
      },
    },
    async (req) => {
      const viewer = viewerOf(req);
      const current = await visiblePerson(viewer, req.params.id);
      if (viewer.person?.id !== current.id) {
        if (viewer.account.role !== "admin" && viewer.account.role !== "staff")
          throw Errors.forbidden("contacts: only the person themself or staff change where their alerts go");
        mustBeInArea(viewer, current);
        await mayRedirectAlertsOf(viewer, current);
      }
      checkContacts(req.body.contacts);
      const updated = await registry.updatePerson({ ...current, contacts: req.body.contacts });
      await auth.audit(actor(viewer), "person.contacts", current.id, {
        channels: updated.contacts.map((c) => c.kind),
      });
      return { contacts: updated.contacts };
    },
  );
  app.delete(
    "/api/people/:id",
    { config: { roles: managers }, schema: { tags: ["people"], params: z.object({ id: s.id }) } },
    async (req, reply) => {
      const viewer = viewerOf(req);
      await visiblePerson(viewer, req.params.id);
      await registry.deletePerson(req.params.id);
      await auth.audit(actor(viewer), "person.remove", req.params.id);
      bus.emit("access.changed", { people: [req.params.id] });
      return reply.code(204).send();
    },
  );

  app.post(
    "/api/assignments",
    {
      config: { roles: managers },
      schema: { tags: ["people"], body: s.assignmentInput, response: { 201: s.assignment } },
    },
    async (req, reply) => {
      const viewer = viewerOf(req);
      await personWithRole(viewer, req.body.residentId, "resident");
      await personWithRole(viewer, req.body.personId, req.body.relation);
      const created = await registry.createAssignment(req.body);
      await auth.audit(actor(viewer), "assignment.create", req.body.residentId, {
        personId: req.body.personId,
        relation: req.body.relation,
      });
      bus.emit("access.changed", { people: [req.body.personId] });
      return reply.code(201).send(created);
    },
  );
  app.get(
    "/api/assignments",
    {
      config: { roles: everyone },
      schema: {
        tags: ["people"],
        querystring: z.object({ residentId: s.id.optional() }),
        response: { 200: z.array(s.assignment) },
      },
    },
    async (req) => {
      const viewer = viewerOf(req);
      return (await registry.listAssignments(req.query)).filter((a) => sees(viewer, a.residentId));
    },
  );
  app.delete(
    "/api/assignments/:id",
    {
      config: { roles: managers },
      schema: { tags: ["people"], params: z.object({ id: z.coerce.number().int() }) },
    },
    async (req, reply) => {
      const viewer = viewerOf(req);
      const found = (await registry.listAssignments()).find((a) => a.id === req.params.id);
      if (!found || !sees(viewer, found.residentId))
        throw Errors.notFound("assignment", String(req.params.id));
      await registry.deleteAssignment(req.params.id);
      await auth.audit(actor(viewer), "assignment.remove", found.residentId, { personId: found.personId });
      bus.emit("access.changed", { people: [found.personId] });
      return reply.code(204).send();
    },
  );

  app.post(
    "/api/devices",
    {
      config: { roles: managers },
      schema: { tags: ["devices"], body: s.deviceInput, response: { 201: s.deviceRegistered } },
    },
    async (req, reply) => {
      const viewer = viewerOf(req);
      await visiblePerson(viewer, req.body.ownerId);
      const secret = newDeviceSecret();
      await registry.createDevice({ ...req.body, createdAt: clock.now() }, deviceSecrets.hash(secret));
      await auth.audit(actor(viewer), "device.register", req.body.id, {
        ownerId: req.body.ownerId,
        protocol: req.body.protocol,
      });
      bus.emit("device.registered", { deviceId: req.body.id, kind: req.body.kind });
      // A watch gets a secret too, that nobody is told: its id alone can never sign in over MQTT.
      if (req.body.protocol === "watch") return reply.code(201).send({ id: req.body.id });
      return reply.code(201).send({ id: req.body.id, secret });
    },
  );
  const withState = async (d: Device) => ({
    ...d,
    connected: await isConnected(d.id),
    state: (await tracker.current(d.id)) ?? null,
  });
  app.get(
    "/api/devices",
    {
      config: { roles: everyone },
      schema: {
        tags: ["devices"],
        querystring: z.object({ kind: z.enum(deviceKinds).optional() }),
        response: { 200: z.array(s.device) },
      },
    },
    async (req) => {
      const viewer = viewerOf(req);
      return Promise.all(
        (await registry.listDevices())
          .filter((d) => (!req.query.kind || d.kind === req.query.kind) && sees(viewer, d.ownerId))
          .map(withState),
      );
    },
  );
  app.get(
    "/api/devices/:id",
    {
      config: { roles: everyone },
      schema: { tags: ["devices"], params: z.object({ id: s.id }), response: { 200: s.device } },
    },
    async (req) => withState(await visibleDevice(viewerOf(req), req.params.id)),
  );
  app.post(
    "/api/devices/:id/secret",
    {
      config: { roles: managers },
      schema: {
        tags: ["devices"],
        description:
          "Issues a new secret: the old one stops working and the device is disconnected at once. Also reinstates a revoked device. A watch gets no secret back (its protocol has none): this only reinstates it.",
        params: z.object({ id: s.id }),
        response: { 200: s.deviceRegistered },
      },
    },
    async (req) => {
      const viewer = viewerOf(req);
      const device = await visibleDevice(viewer, req.params.id);
      const secret = newDeviceSecret();
      await registry.setDeviceSecret(device.id, deviceSecrets.hash(secret));
      disconnectDevice(device.id, "secret rotated");
      await auth.audit(actor(viewer), "device.rotate-secret", device.id);
      // A watch has no use for a secret (its protocol has none): told to nobody, it never opens MQTT.
      return device.protocol === "watch" ? { id: device.id } : { id: device.id, secret };
    },
  );
  app.post(
    "/api/devices/:id/revoke",
    {
      config: { roles: managers },
      schema: {
        tags: ["devices"],
        description:
          "The device is disconnected at once and refused at CONNECT (return code 5) until its secret is rotated",
        params: z.object({ id: s.id }),
        response: { 200: s.device },
      },
    },
    async (req) => {
      const viewer = viewerOf(req);
      const device = await visibleDevice(viewer, req.params.id);
      await registry.revokeDevice(device.id, clock.now());
      disconnectDevice(device.id, "revoked");
      await auth.audit(actor(viewer), "device.revoke", device.id);
      return withState(await visibleDevice(viewer, device.id));
    },
  );

  app.patch(
    "/api/devices/:id",
    {
      config: { roles: managers },
      schema: {
        tags: ["devices"],
        description: "Gives the device to another person: from now on its alerts are about them",
        params: z.object({ id: s.id }),
        body: s.deviceOwner,
        response: { 200: s.device },
      },
    },
    async (req) => {
      const viewer = viewerOf(req);
      const device = await visibleDevice(viewer, req.params.id);
      await personWithRole(viewer, req.body.ownerId, "resident");
      // A press of the new owner would join the old owner's alert, and page the old owner's people.
      const active = await store.alerts.findActive(device.id, alertKinds);
      if (active) throw Errors.inUse("device", device.id, `the active alert '${active.id}': close it first`);
      await registry.setDeviceOwner(device.id, req.body.ownerId);
      await auth.audit(actor(viewer), "device.owner", device.id, {
        from: device.ownerId,
        to: req.body.ownerId,
      });
      bus.emit("access.changed", { people: [device.ownerId, req.body.ownerId] });
      return withState(await visibleDevice(viewer, device.id));
    },
  );

  /** Care notes belong to residents; anyone who sees the resident reads them (and is logged reading). */
  const residentInScope = (viewer: Viewer, id: string) => personWithRole(viewer, id, "resident");
  const noCareNotes = {
    conditions: null,
    medicines: null,
    allergies: null,
    doorAccess: null,
    language: null,
    updatedAt: null,
    updatedBy: null,
  };
  app.get(
    "/api/people/:id/care",
    {
      config: { roles: everyone },
      schema: {
        tags: ["people"],
        description:
          "What a responder needs at the door: conditions, medicines, allergies, door access, language. Every read is in the access log.",
        params: z.object({ id: s.id }),
        response: { 200: s.careNotes },
      },
    },
    async (req) => {
      const viewer = viewerOf(req);
      const resident = await residentInScope(viewer, req.params.id);
      await auth.audit(actor(viewer), "care.read", resident.id);
      return (await registry.getCareNotes(resident.id)) ?? noCareNotes;
    },
  );
  /** Staff in the resident's area and the resident's own doctor write them; family read them. */
  app.put(
    "/api/people/:id/care",
    {
      config: { roles: ["admin", "staff", "doctor"] },
      schema: {
        tags: ["people"],
        description: "Replaces the resident's care notes (a blank note is none)",
        params: z.object({ id: s.id }),
        body: s.careNotesInput,
        response: { 200: s.careNotes },
      },
    },
    async (req) => {
      const viewer = viewerOf(req);
      const resident = await residentInScope(viewer, req.params.id);
      const saved = await registry.putCareNotes(resident.id, {
        ...req.body,
        updatedAt: clock.now(),
        updatedBy: actor(viewer),
      });
      // Which notes are written, never what they say.
      await auth.audit(actor(viewer), "care.update", resident.id, {
        notes: Object.entries(req.body).flatMap(([k, v]) => (v ? [k] : [])),
      });
      return saved;
    },
  );
};
