import { existsSync } from "node:fs";
import Database from "better-sqlite3";
import type { FastifyPluginAsync } from "fastify";
import { z } from "zod";
import { Errors } from "../errors.ts";

const RASTER: Record<string, string> = {
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  webp: "image/webp",
};

/** A base map read from an MBTiles file (SQLite): works with no internet at all. */
export interface Basemap {
  /** What the page needs: where the tiles are, whom to credit, how far they zoom. */
  ui: { tileUrl: string; tileAttribution: string; tileMaxZoom: number };
  contentType: string;
  tile(z: number, x: number, y: number): Buffer | undefined;
  close(): void;
}

/**
 * Opens an MBTiles file read-only. Refuses, with the reason, a file that is missing, is not
 * MBTiles, or holds vector tiles (the page draws raster tiles).
 */
export function openBasemap(path: string): Basemap {
  if (!existsSync(path)) throw new Error(`BASEMAP_MBTILES: no file at ${path}`);
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const tables = db
      .prepare("SELECT name FROM sqlite_master WHERE name IN ('metadata', 'tiles')")
      .pluck()
      .all() as string[];
    if (tables.length !== 2) throw new Error(`BASEMAP_MBTILES: ${path} is not an MBTiles file`);
    const meta = Object.fromEntries(
      (db.prepare("SELECT name, value FROM metadata").all() as { name: string; value: string }[]).map((r) => [
        r.name,
        r.value,
      ]),
    );
    const format = (meta.format ?? "png").toLowerCase();
    const contentType = RASTER[format];
    if (!contentType)
      throw new Error(
        `BASEMAP_MBTILES: ${path} holds '${format}' tiles; the dashboard draws raster tiles (png, jpg, webp)`,
      );
    const maxZoom =
      Number(meta.maxzoom) || (db.prepare("SELECT MAX(zoom_level) FROM tiles").pluck().get() as number) || 0;
    // MBTiles rows count from the south (TMS); the page asks in XYZ, rows from the north.
    const find = db
      .prepare("SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?")
      .pluck();
    return {
      ui: { tileUrl: "/tiles/{z}/{x}/{y}", tileAttribution: meta.attribution ?? "", tileMaxZoom: maxZoom },
      contentType,
      tile: (z, x, y) => find.get(z, x, 2 ** z - 1 - y) as Buffer | undefined,
      close: () => db.close(),
    };
  } catch (err) {
    db.close();
    const message = (err as Error).message;
    // "file is not a database" and the like: said as what it means for this setting.
    throw new Error(
      message.startsWith("BASEMAP_MBTILES")
        ? message
        : `BASEMAP_MBTILES: ${path} is not an MBTiles file (${message})`,
    );
  }
}

const tileParams = z
  .object({
    z: z.coerce.number().int().min(0).max(24),
    x: z.coerce.number().int().min(0),
    y: z.coerce.number().int().min(0),
  })
  .refine((p) => p.x < 2 ** p.z && p.y < 2 ** p.z, { message: "x and y must be below 2^z" });

/** Serves the base map's tiles at `/tiles/{z}/{x}/{y}`: public, like the page's own assets. */
export const basemapRoutes: FastifyPluginAsync<{ basemap: Basemap }> = async (app, { basemap }) => {
  app.addHook("onClose", async () => basemap.close());
  app.get("/tiles/:z/:x/:y", { schema: { hide: true } }, async (req, reply) => {
    const parsed = tileParams.safeParse(req.params);
    if (!parsed.success) throw Errors.invalid(`no such tile: ${parsed.error.issues[0]?.message}`);
    const { z: zoom, x, y } = parsed.data;
    const data = basemap.tile(zoom, x, y);
    if (!data) throw Errors.notFound("tile", `${zoom}/${x}/${y}`);
    return reply.type(basemap.contentType).header("cache-control", "public, max-age=86400").send(data);
  });
};
