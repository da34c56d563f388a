import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { mustSee, newRecordId, sees, type Viewer } from "../auth/index.ts";
import { Errors } from "../errors.ts";
import type { Geofence } from "../rules/geofence.ts";
import { geofenceShapeSchema, scheduleSchema, zoneRefusalOf } from "../rules/geofence.ts";
import { everyone, managers, viewerOf } from "./access.ts";
import type { ApiDeps } from "./index.ts";
import * as s from "./schemas.ts";

const geofenceInput = z.object({
  id: s.chosenId,
  name: z.string().min(1).max(200),
  shape: geofenceShapeSchema,
  schedule: scheduleSchema.nullable().default(null),
  deviceIds: z.array(s.id).min(1, "a safe zone must be for at least one tag").max(1000),
});
const geofence = geofenceInput.extend({ id: s.id }).required();

/**
 * Runs before the body's schema: a zone drawn wrong in a way a person can fix is refused with its
 * own code (the page says "the outline crosses itself", not "invalid request"). Anything else is
 * left to the schema's refusal.
 */
const refuseBadZone = (schema: z.ZodType) => async (req: FastifyRequest) => {
  const parsed = schema.safeParse(req.body);
  if (parsed.success) return;
  const refusal = zoneRefusalOf(parsed.error.issues);
  if (refusal) {
    const { reason, issue } = refusal;
    throw Errors.badZone(reason, `body.${issue.path.join(".")}: ${issue.message}`);
  }
};

const time = z.union([
  z.coerce.number().int(),
  z.iso.datetime({ offset: true }).transform((v) => Date.parse(v)),
]);
const watchReading = z.object({
  ts: z.number().describe("Device time"),
  receivedAt: z.number(),
  type: z.string().describe("The frame: UD2, UD_LTE, AL, bphrt..."),
  late: z.boolean().describe("Buffered on the watch during a coverage gap and sent after newer reports"),
  data: z.record(z.string(), z.unknown()),
});
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

/**
 * Locator tags with their latest state, a tag's track, and safe zones (geofences). A track says
 * where a child has been, so every read of one is written to the access audit log.
 */
export const trackingRoutes: FastifyPluginAsync<ApiDeps> = async (
  fastify,
  { store, bus, telemetry, clock, auth },
) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();

  app.get(
    "/api/devices/:id/watch-readings",
    {
      config: { roles: everyone },
      schema: {
        tags: ["devices"],
        description:
          "What a watch reported beyond its heartbeats, newest first: buffered positions (`UD2`, `late`), cell towers and Wi-Fi access points seen without a fix, alarms with their status word, health readings.",
        params: z.object({ id: s.id }),
        querystring: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) }),
        response: { 200: z.array(watchReading) },
      },
    },
    async (req) => {
      const viewer = viewerOf(req);
      const device = await store.registry.getDevice(req.params.id);
      if (!device) throw Errors.notFound("device", req.params.id);
      mustSee(viewer, device.ownerId, "device", device.id);
      const readings = await store.watchReadings.list(device.id, req.query.limit);
      await auth.audit(viewer.account.username, "watch-readings.read", device.id, {
        ownerId: device.ownerId,
      });
      return readings.map(({ deviceId: _, ...r }) => r);
    },
  );

  app.get(
    "/api/devices/:id/track",
    {
      config: { roles: everyone },
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
      const viewer = viewerOf(req);
      const device = await store.registry.getDevice(req.params.id);
      if (!device) throw Errors.notFound("device", req.params.id);
      mustSee(viewer, device.ownerId, "device", device.id);
      const to = req.query.to ?? clock.now();
      const from = req.query.from ?? to - 24 * 3600_000;
      if (from > to) throw Errors.invalid("querystring.from: must not be after 'to'");
      const points = await telemetry.track(req.params.id, from, to, req.query.limit);
      await auth.audit(viewer.account.username, "track.read", device.id, {
        ownerId: device.ownerId,
        from,
        to,
        points: points.length,
      });
      return points.map(({ deviceId: _, ...p }) => p);
    },
  );

  /** Every tag of a zone must exist, be a locator tag, and be in the viewer's scope. */
  const checkDevices = async (viewer: Viewer, ids: string[]) => {
    for (const id of ids) {
      const device = await store.registry.getDevice(id);
      if (!device || !sees(viewer, device.ownerId)) throw Errors.notFound("device", id);
      if (device.kind !== "locator-tag")
        throw Errors.invalid(`deviceIds: '${id}' is a ${device.kind}, not a locator tag`);
    }
  };
  /** Tag id -> owner, for the given tags, or for every device when there are many zones to judge. */
  const ownersOf = async (deviceIds?: string[]) => {
    const devices = deviceIds
      ? await Promise.all(deviceIds.map((id) => store.registry.getDevice(id)))
      : await store.registry.listDevices();
    return new Map(devices.flatMap((d) => (d ? [[d.id, d.ownerId] as const] : [])));
  };
  /** A zone is visible when one of its tags is; its other tags are left out of the answer. */
  const asSeenBy = (viewer: Viewer, g: Geofence, owners: Map<string, string>): Geofence | undefined => {
    if (viewer.people === null) return g;
    const deviceIds = g.deviceIds.filter((id) => {
      const owner = owners.get(id);
      return owner !== undefined && sees(viewer, owner);
    });
    return deviceIds.length > 0 ? { ...g, deviceIds } : undefined;
  };
  const mustExist = async (viewer: Viewer, id: string) => {
    const found = await store.geofences.get(id);
    const seen = found && asSeenBy(viewer, found, await ownersOf(found.deviceIds));
    if (!seen) throw Errors.notFound("geofence", id);
    return { found: found as Geofence, seen };
  };
  /** Only a zone whose tags are all in scope may be changed. */
  const mustManage = async (viewer: Viewer, id: string) => {
    const { found, seen } = await mustExist(viewer, id);
    if (seen.deviceIds.length !== found.deviceIds.length)
      throw Errors.forbidden(`geofence '${id}' also guards tags outside your area`);
    return found;
  };

  app.post(
    "/api/geofences",
    {
      config: { roles: managers },
      preValidation: refuseBadZone(geofenceInput),
      schema: { tags: ["geofences"], body: geofenceInput, response: { 201: geofence } },
    },
    async (req, reply) => {
      const viewer = viewerOf(req);
      const id = newRecordId(viewer, req.body.id, "zone");
      if (await store.geofences.get(id)) throw Errors.alreadyExists("geofence", id);
      await checkDevices(viewer, req.body.deviceIds);
      const created = await store.geofences.create({ ...req.body, id });
      await auth.audit(viewer.account.username, "geofence.create", created.id);
      bus.emit("geofences.changed", {});
      return reply.code(201).send(created);
    },
  );
  app.get(
    "/api/geofences",
    { config: { roles: everyone }, schema: { tags: ["geofences"], response: { 200: z.array(geofence) } } },
    async (req) => {
      const viewer = viewerOf(req);
      const owners = await ownersOf();
      const seen = (await store.geofences.list()).map((g) => asSeenBy(viewer, g, owners));
      return seen.filter((g) => g !== undefined);
    },
  );
  app.get(
    "/api/geofences/:id",
    {
      config: { roles: everyone },
      schema: { tags: ["geofences"], params: z.object({ id: s.id }), response: { 200: geofence } },
    },
    async (req) => (await mustExist(viewerOf(req), req.params.id)).seen,
  );
  app.put(
    "/api/geofences/:id",
    {
      config: { roles: managers },
      preValidation: refuseBadZone(geofenceInput.omit({ id: true })),
      schema: {
        tags: ["geofences"],
        params: z.object({ id: s.id }),
        body: geofenceInput.omit({ id: true }),
        response: { 200: geofence },
      },
    },
    async (req) => {
      const viewer = viewerOf(req);
      await mustManage(viewer, req.params.id);
      await checkDevices(viewer, req.body.deviceIds);
      const updated = await store.geofences.update({ ...req.body, id: req.params.id });
      await auth.audit(viewer.account.username, "geofence.update", updated.id);
      bus.emit("geofences.changed", {});
      return updated;
    },
  );
  app.delete(
    "/api/geofences/:id",
    { config: { roles: managers }, schema: { tags: ["geofences"], params: z.object({ id: s.id }) } },
    async (req, reply) => {
      const viewer = viewerOf(req);
      await mustManage(viewer, req.params.id);
      await store.geofences.remove(req.params.id);
      await auth.audit(viewer.account.username, "geofence.remove", req.params.id);
      bus.emit("geofences.changed", {});
      return reply.code(204).send();
    },
  );
};
