import type { FastifyPluginAsync } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { hashSecret, newDeviceSecret } from "../broker/secrets.ts";
import { Errors } from "../errors.ts";
import type { Device, Person, Role } from "../store/types.ts";
import { deviceKinds, roles } from "../store/types.ts";
import type { ApiDeps } from "./index.ts";
import * as s from "./schemas.ts";

/** Communities, grids, people, assignments and devices. */
export const registryRoutes: FastifyPluginAsync<ApiDeps> = async (
  fastify,
  { store, isConnected, clock, bus, tracker },
) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const { registry } = store;

  const mustExist = async <T>(what: string, id: string, get: (id: string) => Promise<T | undefined>) => {
    const found = await get(id);
    if (!found) throw Errors.notFound(what, id);
    return found;
  };
  const communityExists = async (id: string) =>
    mustExist("community", id, async (x) => (await registry.listCommunities()).find((c) => c.id === x));
  const checkPerson = async (p: Person) => {
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
  const personWithRole = async (id: string, role: Role) => {
    const p = await mustExist("person", id, registry.getPerson);
    if (p.role !== role) throw Errors.wrongRole(id, role);
    return p;
  };

  app.post(
    "/api/communities",
    { schema: { tags: ["registry"], body: s.community, response: { 201: s.community } } },
    async (req, reply) => reply.code(201).send(await registry.createCommunity(req.body)),
  );
  app.get(
    "/api/communities",
    { schema: { tags: ["registry"], response: { 200: z.array(s.community) } } },
    () => registry.listCommunities(),
  );
  app.post(
    "/api/grids",
    { schema: { tags: ["registry"], body: s.grid, response: { 201: s.grid } } },
    async (req, reply) => {
      await communityExists(req.body.communityId);
      return reply.code(201).send(await registry.createGrid(req.body));
    },
  );
  app.get("/api/grids", { schema: { tags: ["registry"], response: { 200: z.array(s.grid) } } }, () =>
    registry.listGrids(),
  );

  app.post(
    "/api/people",
    { schema: { tags: ["people"], body: s.personInput, response: { 201: s.person } } },
    async (req, reply) => {
      await checkPerson(req.body);
      return reply.code(201).send(await registry.createPerson(req.body));
    },
  );
  app.get(
    "/api/people",
    {
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
    (req) => registry.listPeople(req.query),
  );
  app.get(
    "/api/people/:id",
    { schema: { tags: ["people"], params: z.object({ id: s.id }), response: { 200: s.person } } },
    (req) => mustExist("person", req.params.id, registry.getPerson),
  );
  app.patch(
    "/api/people/:id",
    {
      schema: {
        tags: ["people"],
        params: z.object({ id: s.id }),
        body: s.personPatch,
        response: { 200: s.person },
      },
    },
    async (req) => {
      const current = await mustExist("person", req.params.id, registry.getPerson);
      const next = { ...current, ...req.body };
      await checkPerson(next);
      return registry.updatePerson(next);
    },
  );
  app.delete(
    "/api/people/:id",
    { schema: { tags: ["people"], params: z.object({ id: s.id }) } },
    async (req, reply) => {
      await mustExist("person", req.params.id, registry.getPerson);
      await registry.deletePerson(req.params.id);
      return reply.code(204).send();
    },
  );

  app.post(
    "/api/assignments",
    { schema: { tags: ["people"], body: s.assignmentInput, response: { 201: s.assignment } } },
    async (req, reply) => {
      await personWithRole(req.body.residentId, "resident");
      await personWithRole(req.body.personId, req.body.relation);
      return reply.code(201).send(await registry.createAssignment(req.body));
    },
  );
  app.get(
    "/api/assignments",
    {
      schema: {
        tags: ["people"],
        querystring: z.object({ residentId: s.id.optional() }),
        response: { 200: z.array(s.assignment) },
      },
    },
    (req) => registry.listAssignments(req.query.residentId),
  );
  app.delete(
    "/api/assignments/:id",
    { schema: { tags: ["people"], params: z.object({ id: z.coerce.number().int() }) } },
    async (req, reply) => {
      await registry.deleteAssignment(req.params.id);
      return reply.code(204).send();
    },
  );

  app.post(
    "/api/devices",
    { schema: { tags: ["devices"], body: s.deviceInput, response: { 201: s.deviceRegistered } } },
    async (req, reply) => {
      await mustExist("person", req.body.ownerId, registry.getPerson);
      const secret = newDeviceSecret();
      await registry.createDevice({ ...req.body, createdAt: clock.now() }, await hashSecret(secret));
      bus.emit("device.registered", { deviceId: req.body.id, kind: req.body.kind });
      return reply.code(201).send({ id: req.body.id, secret });
    },
  );
  const withState = (d: Device) => ({
    ...d,
    connected: isConnected(d.id),
    state: tracker.state(d.id) ?? null,
  });
  app.get(
    "/api/devices",
    {
      schema: {
        tags: ["devices"],
        querystring: z.object({ kind: z.enum(deviceKinds).optional() }),
        response: { 200: z.array(s.device) },
      },
    },
    async (req) =>
      (await registry.listDevices())
        .filter((d) => !req.query.kind || d.kind === req.query.kind)
        .map(withState),
  );
  app.get(
    "/api/devices/:id",
    { schema: { tags: ["devices"], params: z.object({ id: s.id }), response: { 200: s.device } } },
    async (req) => {
      return withState(await mustExist("device", req.params.id, registry.getDevice));
    },
  );
};
