import { writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openBasemap } from "../../gateway/api/basemap.ts";
import { loadConfig } from "../../gateway/config/index.ts";
import { launchChromium } from "../support/browser.ts";
import {
  call,
  PEOPLE_PASSWORD,
  seedCommunity,
  startGateway,
  type TestGateway,
  tempDataDir,
} from "../support/gateway.ts";

/** A 1x1 PNG; each tile gets its own trailing marker byte so a test can tell them apart. */
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=",
  "base64",
);
const tileBytes = (x: number, yXyz: number) => Buffer.concat([PNG, Buffer.from([x, yXyz])]);

/** Writes a zoom-1 MBTiles file (four tiles), as tools like tippecanoe or mb-util make them. */
function makeMbtiles(path: string, format = "png"): void {
  const db = new Database(path);
  db.exec(`CREATE TABLE metadata (name TEXT, value TEXT);
    CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);`);
  const meta = db.prepare("INSERT INTO metadata VALUES (?, ?)");
  for (const [k, v] of [
    ["name", "test"],
    ["format", format],
    ["minzoom", "0"],
    ["maxzoom", "1"],
    ["attribution", "© 测试底图"],
  ])
    meta.run(k, v);
  const tile = db.prepare("INSERT INTO tiles VALUES (1, ?, ?, ?)");
  for (const x of [0, 1]) for (const y of [0, 1]) tile.run(x, 1 - y, tileBytes(x, y));
  db.close();
}

describe("base map from an MBTiles file", () => {
  let gw: TestGateway;
  beforeAll(async () => {
    const dataDir = tempDataDir();
    makeMbtiles(join(dataDir, "lhasa.mbtiles"));
    gw = await startGateway({ dataDir, env: { BASEMAP_MBTILES: "lhasa.mbtiles" } });
  });
  afterAll(async () => gw?.stop());

  it("tells the page to draw tiles from the gateway, with the file's attribution and zoom", async () => {
    const res = await call(gw, "GET", "/api/ui-config");
    expect(res.body).toMatchObject({
      tileUrl: "/tiles/{z}/{x}/{y}",
      tileAttribution: "© 测试底图",
      tileMaxZoom: 1,
    });
  });

  it("serves each tile by XYZ address, rows counted from the north as the page asks", async () => {
    for (const [x, y] of [
      [0, 0],
      [1, 0],
      [0, 1],
      [1, 1],
    ] as const) {
      const res = await fetch(`${gw.http}/tiles/1/${x}/${y}`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("image/png");
      expect(res.headers.get("cache-control")).toBe("public, max-age=86400");
      expect(Buffer.from(await res.arrayBuffer())).toEqual(tileBytes(x, y));
    }
  });

  it("answers a tile it does not have with 404, and a tile that cannot exist with 400", async () => {
    const missing = await fetch(`${gw.http}/tiles/0/0/0`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe("not_found");
    for (const bad of ["1/2/0", "1/0/2", "25/0/0", "1/-1/0", "1/0.5/0", "z/x/y"]) {
      const res = await fetch(`${gw.http}/tiles/${bad}`);
      expect(res.status, bad).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("invalid_request");
    }
  });

  it("draws the tiles on the map page in Chromium, with nothing fetched from elsewhere", async () => {
    await seedCommunity(gw, () => "http://127.0.0.1:9/unused");
    let browser: Browser | undefined;
    try {
      browser = await launchChromium();
      const page = await browser.newPage();
      const foreign: string[] = [];
      page.on("request", (r) => {
        if (!r.url().startsWith(gw.http) && !r.url().startsWith("data:")) foreign.push(r.url());
      });
      await page.goto(`${gw.http}/#map`);
      await page.fill("#username", "lhakpa");
      await page.fill("#password", PEOPLE_PASSWORD);
      await page.press("#password", "Enter");
      // Lhasa at street zoom: the zoom-1 tile (1, 0) enlarged.
      const tile = page.locator("img.leaflet-tile-loaded").first();
      await tile.waitFor();
      expect(await tile.getAttribute("src")).toMatch(/\/tiles\/1\/1\/0$/);
      await page.locator(".leaflet-control-attribution", { hasText: "© 测试底图" }).waitFor();
      expect(foreign).toEqual([]);
    } finally {
      await browser?.close();
    }
  });
});

describe("base map settings that cannot work", () => {
  it("refuses a missing file, a file that is not MBTiles, and vector tiles, saying which", () => {
    const dir = tempDataDir();
    expect(() => openBasemap(join(dir, "none.mbtiles"))).toThrow(
      /^BASEMAP_MBTILES: no file at .*none\.mbtiles$/,
    );
    writeFileSync(join(dir, "text.mbtiles"), "not a database at all, just some text that is long enough");
    expect(() => openBasemap(join(dir, "text.mbtiles"))).toThrow(
      /^BASEMAP_MBTILES: .*text\.mbtiles is not an MBTiles file/,
    );
    new Database(join(dir, "empty.mbtiles")).exec("CREATE TABLE t (a)");
    expect(() => openBasemap(join(dir, "empty.mbtiles"))).toThrow(/is not an MBTiles file$/);
    makeMbtiles(join(dir, "vector.mbtiles"), "pbf");
    expect(() => openBasemap(join(dir, "vector.mbtiles"))).toThrow(
      /holds 'pbf' tiles; the dashboard draws raster tiles/,
    );
  });

  it("refuses TILE_URL and BASEMAP_MBTILES together", () => {
    expect(() =>
      loadConfig({
        WEBHOOK_SECRET: "test-webhook-secret-0123456789",
        TILE_URL: "https://tiles.example.org/{z}/{x}/{y}.png",
        BASEMAP_MBTILES: "city.mbtiles",
      }),
    ).toThrow(/BASEMAP_MBTILES: set TILE_URL or BASEMAP_MBTILES, not both/);
  });
});
