import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fastifyCompress from "@fastify/compress";
import fastifyStatic from "@fastify/static";
import type { FastifyPluginAsync } from "fastify";
import { everyone } from "./access.ts";
import type { ApiDeps } from "./index.ts";

/** Where `vite build` puts the dashboard. */
export const dashboardDist = fileURLToPath(new URL("../../dashboard/dist", import.meta.url));

/**
 * Serves the built dashboard at `/`, and the settings it reads at start. Compression is
 * registered here, inside this plugin, so it covers the page's files and never the live stream.
 */
export const dashboardRoutes: FastifyPluginAsync<ApiDeps> = async (app, { ui, reportTimeZone }) => {
  await app.register(fastifyCompress, { encodings: ["br", "gzip"] });
  app.get("/api/ui-config", { config: { roles: everyone }, schema: { tags: ["operations"] } }, async () => ({
    ...ui,
    center: [29.6525, 91.1321],
    // The wall clock a safe zone's hours are drawn in (school hours are local time).
    timeZone: reportTimeZone,
  }));
  if (existsSync(`${dashboardDist}/index.html`)) {
    await app.register(fastifyStatic, {
      root: dashboardDist,
      index: "index.html",
      cacheControl: false,
      // Vite names assets by their content hash: they never change. index.html names the current
      // ones, so it is asked for again each time: an update reaches every phone at its next load.
      setHeaders: (res, path) =>
        res.header(
          "cache-control",
          path.includes("/assets/") ? "public, max-age=31536000, immutable" : "no-cache",
        ),
    });
    return;
  }
  app.get("/", { schema: { hide: true } }, async (_req, reply) =>
    reply
      .code(503)
      .type("text/plain; charset=utf-8")
      .send(
        "The dashboard is not built. Run `npm run build` (npm start does it for you); the API is at /docs.",
      ),
  );
};
