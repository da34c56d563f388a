import type { FastifyPluginAsync } from "fastify";
import type { ApiDeps } from "./index.ts";

/**
 * Liveness, readiness and Prometheus metrics. Ready: the database answers and takes writes (after
 * a write failed for want of storage, until a probe write succeeds), and the gateway is started.
 */
export const healthRoutes: FastifyPluginAsync<ApiDeps> = async (app, { store, metrics, isReady }) => {
  app.get("/healthz", { schema: { tags: ["operations"] } }, async () => ({ status: "ok" }));
  app.get("/readyz", { schema: { tags: ["operations"] } }, async (_req, reply) => {
    try {
      await store.ping();
    } catch (err) {
      return reply.code(503).send({ status: "unready", reason: `database: ${(err as Error).message}` });
    }
    if (!isReady()) return reply.code(503).send({ status: "unready", reason: "starting or stopping" });
    return { status: "ready" };
  });
  app.get("/metrics", { schema: { tags: ["operations"] } }, async (_req, reply) =>
    reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
  );
};
