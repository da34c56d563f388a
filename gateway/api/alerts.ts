import type { FastifyPluginAsync } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { type Alert, alertStates } from "../alerts/model.ts";
import { mustSee, responderOf, sees, type Viewer } from "../auth/index.ts";
import { Errors } from "../errors.ts";
import { everyone, viewerOf } from "./access.ts";
import type { ApiDeps } from "./index.ts";
import * as s from "./schemas.ts";

const params = z.object({ id: z.string().min(1).max(64) });

/** Whom a responder can phone about the alert: the resident's doctor and family, by name and number. */
const contact = z.object({
  personId: z.string(),
  relation: z.string(),
  name: z.string(),
  phone: z.string().nullable(),
});
const alertDetail = s.alertDetail.extend({
  contacts: z
    .array(contact)
    .describe("The subject's assigned doctor and family: whoever sees the alert may phone them"),
});

/**
 * Alerts: list, detail with audit trail, the responder actions, and the live stream. Each viewer
 * gets only alerts about people in their scope; a responder acts as the person their account is.
 */
export const alertRoutes: FastifyPluginAsync<ApiDeps> = async (
  fastify,
  { store, alerts, stream, auth, clock },
) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const visibleAlert = async (viewer: Viewer, id: string) => {
    const alert = await store.alerts.get(id);
    if (!alert) throw Errors.notFound("alert", id);
    mustSee(viewer, alert.subjectId, "alert", id);
    return alert;
  };
  /** Checks scope, then does `act` as the viewer's person, and notes the account in the audit log. */
  const respond = async (
    viewer: Viewer,
    id: string,
    action: string,
    act: (by: string) => Promise<Alert>,
    detail?: Record<string, unknown>,
  ) => {
    await visibleAlert(viewer, id);
    const alert = await act(responderOf(viewer).id);
    await auth.audit(viewer.account.username, `alert.${action}`, alert.id, detail);
    return alert;
  };

  app.get(
    "/api/alerts",
    {
      config: { roles: everyone },
      schema: {
        tags: ["alerts"],
        querystring: z.object({
          state: z
            .string()
            .optional()
            .transform((v, ctx) => {
              const states = v?.split(",").filter(Boolean);
              for (const st of states ?? []) {
                if (!(alertStates as readonly string[]).includes(st)) {
                  ctx.addIssue({
                    code: "custom",
                    message: `unknown state '${st}' (${alertStates.join(", ")})`,
                  });
                }
              }
              return states as (typeof alertStates)[number][] | undefined;
            }),
          limit: z.coerce.number().int().min(1).max(1000).default(200),
        }),
        response: { 200: z.array(s.alert) },
      },
    },
    async (req, reply) => {
      // Read before the list: a page that streams from this id misses nothing the list lacks.
      reply.header("x-last-event-id", String(await store.alerts.streamPosition(clock.now())));
      const { people } = viewerOf(req);
      return store.alerts.list({
        states: req.query.state,
        subjectIds: people ? [...people] : undefined,
        limit: req.query.limit,
      });
    },
  );

  app.get(
    "/api/alerts/:id",
    { config: { roles: everyone }, schema: { tags: ["alerts"], params, response: { 200: alertDetail } } },
    async (req) => {
      const viewer = viewerOf(req);
      const alert = await visibleAlert(viewer, req.params.id);
      const [events, attempts, assigned] = await Promise.all([
        store.alerts.events(alert.id),
        store.attempts.forAlert(alert.id),
        store.registry.listAssignments({ residentId: alert.subjectId }),
      ]);
      // A doctor needs the family's number (and the family the doctor's) to act on an alert they
      // see: names and phones only, and only of the people assigned to this alert's subject.
      const contacts = [];
      for (const a of assigned) {
        const p = await store.registry.getPerson(a.personId);
        if (p) contacts.push({ personId: p.id, relation: a.relation, name: p.name, phone: p.phone });
      }
      // Contact addresses may hold tokens or phone numbers, and raw errors map the network: for managers only.
      const manages = viewer.account.role === "admin" || viewer.account.role === "staff";
      return {
        ...alert,
        events,
        contacts,
        attempts: manages
          ? attempts
          : attempts.map((a) => (a.channel === "device" ? a : { ...a, address: "", detail: null })),
      };
    },
  );

  app.post(
    "/api/alerts/:id/accept",
    {
      config: { roles: everyone },
      schema: {
        tags: ["alerts"],
        description: "Accept as the signed-in account's person",
        params,
        response: { 200: s.alert },
      },
    },
    (req) => respond(viewerOf(req), req.params.id, "accept", (by) => alerts.accept(req.params.id, by)),
  );
  app.post(
    "/api/alerts/:id/resolve",
    {
      config: { roles: everyone },
      schema: {
        tags: ["alerts"],
        params,
        body: z.object({ note: z.string().trim().min(1, "say what was done").max(2000) }),
        response: { 200: s.alert },
      },
    },
    (req) =>
      respond(viewerOf(req), req.params.id, "resolve", (by) =>
        alerts.resolve(req.params.id, by, req.body.note),
      ),
  );
  app.post(
    "/api/alerts/:id/cancel",
    {
      config: { roles: everyone },
      schema: {
        tags: ["alerts"],
        description:
          "A responder marks the alert a false alarm, optionally saying why (kept in the audit log)",
        params,
        body: z.object({ reason: z.string().trim().max(500).optional() }).optional(),
        response: { 200: s.alert },
      },
    },
    (req) =>
      respond(
        viewerOf(req),
        req.params.id,
        "cancel",
        (by) => alerts.cancel(req.params.id, by),
        req.body?.reason ? { reason: req.body.reason } : undefined,
      ),
  );

  app.get(
    "/api/stream",
    {
      config: { roles: everyone },
      schema: {
        tags: ["alerts"],
        description:
          "Server-Sent Events: one `alert` event per audit event, `id` = audit event id. Send `Last-Event-ID` (or `?lastEventId=`) to resume; `?lastEventId=0` replays everything.",
        querystring: z.object({ lastEventId: z.coerce.number().int().min(0).optional() }),
      },
    },
    async (req, reply) => {
      const header = req.headers["last-event-id"];
      const fromHeader = typeof header === "string" && /^\d+$/.test(header) ? Number(header) : undefined;
      if (!stream.running) throw Errors.notReady("the live stream is stopped; retry with Last-Event-ID");
      reply.hijack();
      const viewer = viewerOf(req);
      const session = req.session as NonNullable<typeof req.session>;
      await stream.attach(reply.raw, fromHeader ?? req.query.lastEventId, {
        sees: (alert) => sees(viewer, alert.subjectId),
        expiresAt: session.expiresAt,
        personId: viewer.person?.id ?? null,
        admin: viewer.account.role === "admin",
        sessionId: session.idHash,
        username: viewer.account.username,
        // Admins see everyone: a change of people never narrows what they see.
        seesPerson: (id) => viewer.people !== null && sees(viewer, id),
        communityId: viewer.area?.communityId ?? null,
      });
    },
  );
};
