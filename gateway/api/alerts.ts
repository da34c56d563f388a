import type { FastifyPluginAsync } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { alertStates } from "../alerts/model.ts";
import { Errors } from "../errors.ts";
import type { ApiDeps } from "./index.ts";
import * as s from "./schemas.ts";

const params = z.object({ id: z.string().min(1).max(64) });

/** Alerts: list, detail with audit trail, the responder actions, and the live stream. */
export const alertRoutes: FastifyPluginAsync<ApiDeps> = async (fastify, { store, alerts, stream }) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();

  app.get(
    "/api/alerts",
    {
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
      reply.header("x-last-event-id", String(await store.alerts.lastEventId()));
      return store.alerts.list({ states: req.query.state, limit: req.query.limit });
    },
  );

  app.get(
    "/api/alerts/:id",
    { schema: { tags: ["alerts"], params, response: { 200: s.alertDetail } } },
    async (req) => {
      const alert = await store.alerts.get(req.params.id);
      if (!alert) throw Errors.notFound("alert", req.params.id);
      const [events, attempts] = await Promise.all([
        store.alerts.events(alert.id),
        store.attempts.forAlert(alert.id),
      ]);
      return { ...alert, events, attempts };
    },
  );

  const by = z.object({ by: s.id.describe("The responder's person id") });
  app.post(
    "/api/alerts/:id/accept",
    { schema: { tags: ["alerts"], params, body: by, response: { 200: s.alert } } },
    (req) => alerts.accept(req.params.id, req.body.by),
  );
  app.post(
    "/api/alerts/:id/resolve",
    {
      schema: {
        tags: ["alerts"],
        params,
        body: by.extend({ note: z.string().trim().min(1, "say what was done").max(2000) }),
        response: { 200: s.alert },
      },
    },
    (req) => alerts.resolve(req.params.id, req.body.by, req.body.note),
  );
  app.post(
    "/api/alerts/:id/cancel",
    {
      schema: {
        tags: ["alerts"],
        description: "A responder marks the alert a false alarm",
        params,
        body: by,
        response: { 200: s.alert },
      },
    },
    (req) => alerts.cancel(req.params.id, req.body.by),
  );

  app.get(
    "/api/stream",
    {
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
      await stream.attach(reply.raw, fromHeader ?? req.query.lastEventId);
    },
  );
};
