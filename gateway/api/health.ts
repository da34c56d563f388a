import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { FastifyPluginAsync } from "fastify";
import { Errors } from "../errors.ts";
import type { ApiDeps } from "./index.ts";

/**
 * Liveness, readiness and Prometheus metrics. Ready: the database answers and takes writes (after
 * a write failed for want of storage, until a probe write succeeds), the gateway is started, and
 * Redis answers when instances share it.
 */
export const healthRoutes: FastifyPluginAsync<ApiDeps> = async (
  app,
  { store, metrics, unready, metricsToken },
) => {
  app.get("/healthz", { schema: { tags: ["operations"] } }, async () => ({ status: "ok" }));
  app.get("/readyz", { schema: { tags: ["operations"] } }, async (_req, reply) => {
    try {
      await store.ping();
    } catch (err) {
      return reply.code(503).send({ status: "unready", reason: `database: ${(err as Error).message}` });
    }
    const reason = unready();
    if (reason) return reply.code(503).send({ status: "unready", reason });
    return { status: "ready" };
  });
  app.get(
    "/metrics",
    {
      schema: {
        tags: ["operations"],
        description:
          "Prometheus metrics: with `Authorization: Bearer <METRICS_TOKEN>`, or from this machine when no token is set",
      },
    },
    async (req, reply) => {
      // Alert counts and traffic describe the district: not for anyone who can reach the page.
      const bearer = req.headers.authorization?.replace(/^Bearer /i, "");
      const allowed = metricsToken
        ? bearer !== undefined && sameSecret(bearer, metricsToken)
        : isLocal(req.raw);
      if (!allowed) throw Errors.forbidden("metrics need `Authorization: Bearer <METRICS_TOKEN>`");
      return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
    },
  );
};

/** A request straight from this machine, not relayed by a proxy on it. */
function isLocal(req: IncomingMessage): boolean {
  const peer = req.socket.remoteAddress ?? "";
  const loopback = peer === "::1" || /^(::ffff:)?127\./.test(peer);
  return loopback && req.headers["x-forwarded-for"] === undefined && req.headers.forwarded === undefined;
}

function sameSecret(a: string, b: string): boolean {
  const [x, y] = [createHash("sha256").update(a).digest(), createHash("sha256").update(b).digest()];
  return timingSafeEqual(x, y);
}
