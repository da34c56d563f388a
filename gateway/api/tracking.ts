import type { FastifyPluginAsync } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { Errors } from "../errors.ts";
import { geofenceShapeSchema, scheduleSchema } from "../rules/geofence.ts";
import type { ApiDeps } from "./index.ts";
import * as s from "./schemas.ts";

const geofenceInput = z.object({
  id: s.id,
  name: z.string().min(1).max(200),
  shape: geofenceShapeSchema,
  schedule: scheduleSchema.nullable().default(null),
  deviceIds: z.array(s.id).min(1, "a safe zone must be for at least one tag").max(1000),
});
const geofence = geofenceInput.required();

const time = z.union([
  z.coerce.number().int(),
  z.iso.datetime({ offset: true }).transform((v) => Date.parse(v)),
]);
const trackPoint = z.object({
  ts: z.number(),
  receivedAt: z.number(),
  battery: z.number(),
  lat: z.number().optional(),
  lon: z.number().optional(),
  accuracy: z.number().optional(),
  source: z.string().optional(),
  fix: z.string(),
});

/** Locator tags with their latest state, a tag's track, and safe zones (geofences). */
export const trackingRoutes: FastifyPluginAsync<ApiDeps> = async (
  fastify,
  { store, bus, telemetry, clock },
) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();

  app.get(
    "/api/devices/:id/track",
    {
      schema: {
        tags: ["devices"],
        description:
          "A device's heartbeats between `from` and `to` (device time; ms since epoch or ISO 8601), oldest first. Defaults to the last 24 hours. Rejected fixes are included with their `fix` verdict.",
        params: z.object({ id: s.id }),
        querystring: z.object({
          from: time.optional(),
          to: time.optional(),
          limit: z.coerce.number().int().min(1).max(50_000).default(10_000),
        }),
        response: { 200: z.array(trackPoint) },
      },
    },
    async (req) => {
      if (!(await store.registry.getDevice(req.params.id))) throw Errors.notFound("device", req.params.id);
      const to = req.query.to ?? clock.now();
      const from = req.query.from ?? to - 24 * 3600_000;
      if (from > to) throw Errors.invalid("querystring.from: must not be after 'to'");
      const points = await telemetry.track(req.params.id, from, to, req.query.limit);
      return points.map(({ deviceId: _, ...p }) => p);
    },
  );

  const checkDevices = async (ids: string[]) => {
    for (const id of ids) {
      const device = await store.registry.getDevice(id);
      if (!device) throw Errors.notFound("device", id);
      if (device.kind !== "locator-tag")
        throw Errors.invalid(`deviceIds: '${id}' is a ${device.kind}, not a locator tag`);
    }
  };
  const mustExist = async (id: string) => {
    const found = await store.geofences.get(id);
    if (!found) throw Errors.notFound("geofence", id);
    return found;
  };

  app.post(
    "/api/geofences",
    { schema: { tags: ["geofences"], body: geofenceInput, response: { 201: geofence } } },
    async (req, reply) => {
      if (await store.geofences.get(req.body.id)) throw Errors.alreadyExists("geofence", req.body.id);
      await checkDevices(req.body.deviceIds);
      const created = await store.geofences.create(req.body);
      bus.emit("geofences.changed", {});
      return reply.code(201).send(created);
    },
  );
  app.get("/api/geofences", { schema: { tags: ["geofences"], response: { 200: z.array(geofence) } } }, () =>
    store.geofences.list(),
  );
  app.get(
    "/api/geofences/:id",
    { schema: { tags: ["geofences"], params: z.object({ id: s.id }), response: { 200: geofence } } },
    (req) => mustExist(req.params.id),
  );
  app.put(
    "/api/geofences/:id",
    {
      schema: {
        tags: ["geofences"],
        params: z.object({ id: s.id }),
        body: geofenceInput.omit({ id: true }),
        response: { 200: geofence },
      },
    },
    async (req) => {
      await mustExist(req.params.id);
      await checkDevices(req.body.deviceIds);
      const updated = await store.geofences.update({ ...req.body, id: req.params.id });
      bus.emit("geofences.changed", {});
      return updated;
    },
  );
  app.delete(
    "/api/geofences/:id",
    { schema: { tags: ["geofences"], params: z.object({ id: s.id }) } },
    async (req, reply) => {
      await mustExist(req.params.id);
      await store.geofences.remove(req.params.id);
      bus.emit("geofences.changed", {});
      return reply.code(204).send();
    },
  );
};
