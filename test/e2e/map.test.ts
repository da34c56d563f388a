import { mkdirSync } from "node:fs";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { englishOn, launchChromium } from "../support/browser.ts";
import { FakeClock } from "../support/fake-clock.ts";
import {
  call,
  connectDevice,
  PEOPLE_PASSWORD,
  registerDevice,
  seedCommunity,
  startGateway,
  type TestDevice,
  type TestGateway,
} from "../support/gateway.ts";
import { waitFor } from "../support/wait.ts";

const ARTIFACTS = "test-artifacts";
const DESK = { width: 1280, height: 900 };
const NOWHERE = "http://127.0.0.1:9";
type LonLat = [number, number];

const centroid = (ring: LonLat[]): LonLat => {
  const open = ring.slice(0, -1);
  return [open.reduce((s, p) => s + p[0], 0) / open.length, open.reduce((s, p) => s + p[1], 0) / open.length];
};

/**
 * The map in Chromium, as staff use it: a safe zone drawn with the mouse through Leaflet-Geoman
 * (a polygon, a hole cut into it, school hours, the tag it guards), a real MQTT tag walked into
 * the hole, the alert naming the zone and the distance, the child's view, and the track replayed.
 */
describe("the map in Chromium", { timeout: 120_000 }, () => {
  // Monday 30 November 2026, 10:00 in Lhasa (Beijing time): school hours. The gateway's clock
  // moves only when the test says; sessions are kept by Max-Age, so the browser does not mind.
  const clock = new FakeClock(Date.parse("2026-11-30T02:00:00Z"));
  let browser: Browser;
  let gw: TestGateway;
  let page: Page;
  let tag: TestDevice;
  let seq = 0;
  const errors: string[] = [];

  const fix = async ([lon, lat]: LonLat, accuracy = 8) => {
    await tag.publish(
      "devices/tag-child/heartbeat",
      JSON.stringify({ ts: clock.now(), seq: ++seq, battery: 64, lat, lon, accuracy, source: "gps" }),
    );
    await clock.advance(30_000);
  };

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await launchChromium();
    gw = await startGateway({ clock, env: { TELEMETRY_FLUSH_MS: "1000" } });
    await seedCommunity(gw, (p) => `${NOWHERE}${p}`);
    await call(gw, "PATCH", "/api/people/pema", { phone: "+86 139 0000 0001" });
    await call(gw, "PATCH", "/api/people/lhakpa", { phone: "+86 139 0000 0002" });
    tag = await connectDevice(gw, await registerDevice(gw, "tag-child", "dondrub", "locator-tag"));
    page = await browser.newPage({ viewport: DESK, locale: "en-US" });
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("dialog", (d) => void d.accept());
    // The page reads the gateway's time from the Date header, which Node writes from the real
    // clock: this puts the gateway's own (fake) clock there, as a real gateway's would be. The
    // live stream never ends, so it is left alone.
    await page.route(
      (url) => url.pathname.startsWith("/api/") && url.pathname !== "/api/stream",
      async (route) => {
        const response = await route.fetch();
        const headers = { ...response.headers(), date: new Date(clock.now()).toUTCString() };
        await route.fulfill({ response, headers });
      },
    );
    await page.goto(`${gw.http}/#map`);
    await page.fill("#username", "staff-yang");
    await page.fill("#password", PEOPLE_PASSWORD);
    await page.locator("form.signin button[type=submit]").click();
    await page.locator(".status.live").waitFor();
    await page.locator(".leaflet-control-scale-line").waitFor();
  });
  afterAll(async () => {
    await tag?.close();
    await page?.close();
    await browser?.close();
    await gw?.stop();
  });

  it("draws a polygon with a hole by mouse, for school hours and one tag; refuses empty hours by their own message", async () => {
    // The scale speaks the page's language too.
    await expect(page.locator(".leaflet-control-scale-line").textContent()).resolves.toMatch(/^\d+ (m|km)$/);
    await page.click("#new-zone");
    await page.locator(".zone-editor").waitFor();
    const box = await page.locator("#tag-map").boundingBox();
    if (!box) throw new Error("no map");
    const [cx, cy] = [box.x + box.width / 2, box.y + box.height / 2];
    // Mouse drawing: Geoman places a corner per click and closes the ring on its first corner.
    const polygon = async (half: number) => {
      const corners = [
        [-half, -half],
        [half, -half],
        [half, half],
        [-half, half],
        [-half, -half],
      ];
      for (const [dx, dy] of corners) {
        await page.mouse.move(cx + (dx ?? 0), cy + (dy ?? 0), { steps: 4 });
        await page.mouse.click(cx + (dx ?? 0), cy + (dy ?? 0));
      }
    };
    await page.click('button[data-draw="Polygon"]');
    await polygon(150);
    await page.locator(".zone-editor.has-shape").waitFor();
    await page.click('button[data-draw="Cut"]');
    await polygon(50);
    await page.fill("#zone-name", "Special school 特教学校");
    await page.check('input[name="zone-tag"][value="tag-child"]');
    // Hours chosen with no day: the gateway refuses it, and the page says why in the reader's words.
    await page.check("#zone-scheduled");
    await page.click('.zone-editor button[type="submit"]');
    const refusal = page.locator(".zone-editor .error");
    await refusal.and(page.locator(":not(:empty)")).waitFor();
    await expect(refusal.textContent()).resolves.toBe(
      "Choose at least one day for the zone's hours, or make it always in force.",
    );
    expect((await call(gw, "GET", "/api/geofences")).body).toEqual([]);
    await page.click(".zone-editor .school-hours");
    await page.click('.zone-editor button[type="submit"]');
    await page.locator(".zone-label span", { hasText: "Special school" }).waitFor();
    const [zone] = (await call(gw, "GET", "/api/geofences")).body;
    expect(zone).toMatchObject({
      name: "Special school 特教学校",
      deviceIds: ["tag-child"],
      schedule: {
        timeZone: "Asia/Shanghai",
        windows: [{ days: [1, 2, 3, 4, 5], from: "08:00", to: "16:30" }],
      },
      shape: { type: "Polygon" },
    });
    expect(zone.shape.coordinates).toHaveLength(2); // the outline and the hole
    await page.screenshot({ path: `${ARTIFACTS}/map-zone-drawn.png` });
  });

  it("shows the alert naming the zone and the distance when the tag walks into the hole", async () => {
    const [zone] = (await call(gw, "GET", "/api/geofences")).body;
    const [outer, hole] = zone.shape.coordinates as [LonLat[], LonLat[]];
    const [o, hc] = [outer[0] as LonLat, centroid(hole)];
    // Between the outline and the hole: inside the zone.
    const inside: LonLat = [(o[0] + hc[0]) / 2, (o[1] + hc[1]) / 2];
    await fix(inside);
    // Too inaccurate to count: stored, rejected, drawn apart (a quarter of the way to the hole).
    await fix([inside[0] + (hc[0] - inside[0]) / 4, inside[1] + (hc[1] - inside[1]) / 4], 900);
    for (let i = 0; i < 3; i++) await fix(hc);
    await page.goto(`${gw.http}/#alerts`);
    const card = page.locator('li.alert[data-kind="geofence-exit"][data-device-id="tag-child"]');
    await card.waitFor();
    const alerts = (await call(gw, "GET", "/api/alerts")).body as { id: string }[];
    const opened = (await call(gw, "GET", `/api/alerts/${alerts[0]?.id}`)).body.events[0].data;
    expect(opened.distanceM).toBeGreaterThan(100);
    await card.getByRole("button", { name: "Details" }).click();
    const said = page.locator("dialog.detail .zone-exit");
    await said.waitFor();
    const text = await said.textContent();
    expect(text).toContain(`${opened.distanceM} m outside Special school 特教学校`);
    expect(text).toMatch(/last fix \d+ seconds? ago|last fix now/);
    await page.screenshot({ path: `${ARTIFACTS}/map-zone-alert.png` });
    await page.locator("dialog.detail").getByRole("button", { name: "Close" }).click();
  });

  it("shows where the child is now: fix time and age, source with its accuracy, zone, battery, calls", async () => {
    await page.goto(`${gw.http}/#map`);
    await page.locator(".tag-marker.is-alert").waitFor();
    await page.click('.tag-list button[data-device-id="tag-child"]');
    const view = page.locator(".child-view");
    await view.waitFor();
    await expect(view.locator("h2").textContent()).resolves.toBe("Where is 顿珠 Dondrub now");
    await expect(view.locator(".fix").textContent()).resolves.toMatch(
      /^Last fix .+ \((\d+ seconds? ago|now)\)$/,
    );
    await expect(view.locator(".source").textContent()).resolves.toBe("Located by GPS, within 8 m");
    await expect(view.locator(".zones").textContent()).resolves.toMatch(
      /^\d+ m outside Special school 特教学校$/,
    );
    await expect(view.locator(".battery").textContent()).resolves.toMatch(/^Battery 64%/);
    await view.locator('a.tel[data-relation="gridWorker"]').waitFor();
    const calls = await view
      .locator("a.tel")
      .evaluateAll((as) => as.map((a) => [(a as HTMLAnchorElement).getAttribute("href"), a.textContent]));
    expect(calls).toEqual([
      ["tel:+8613900000001", "Call guardian 白玛 Pema"],
      ["tel:+8613900000002", "Call grid worker 拉巴 Lhakpa"],
    ]);
    // The tag's accuracy circle, and its own zone picked out from any other.
    await page.locator("path.accuracy").waitFor();
    await page.locator("path.zone.own").waitFor();
    await page.screenshot({ path: `${ARTIFACTS}/map-child-view.png` });
  });

  it("replays the last hour with a slider, arrows, times on hover and the rejected fix apart", async () => {
    await clock.advance(1_000); // the telemetry's last batch is written
    await page.getByRole("button", { name: "Last hour" }).click();
    const summary = page.locator("#track-summary");
    await waitFor(async () => (await summary.textContent())?.includes("points"));
    await expect(summary.textContent()).resolves.toBe("4 points · 1 rejected fixes, drawn grey");
    await expect(page.locator(".track-arrow").count()).resolves.toBeGreaterThan(0);
    await expect(page.locator("path.track-point.rejected").count()).resolves.toBe(1);
    await expect(page.locator("#replay-time").textContent()).resolves.toMatch(/ · point 1 of 4$/);
    await page.locator("#replay-slider").fill("3");
    await expect(page.locator("#replay-time").textContent()).resolves.toMatch(/ · point 4 of 4$/);
    await page.locator("path.track-point.rejected").hover({ force: true });
    await page.locator(".leaflet-tooltip", { hasText: "rejected: too inaccurate" }).waitFor();
    await page.screenshot({ path: `${ARTIFACTS}/map-replay.png` });

    // In Chinese (chosen, remembered, the page opened again): no English left on the map, the
    // child's view or the replay.
    await page.selectOption("#language", "zh-CN");
    await page.reload();
    await page.locator(".status.live").waitFor();
    await page.click('.tag-list button[data-device-id="tag-child"]');
    await page.getByRole("button", { name: "最近1小时" }).click();
    await page.locator("#track-summary", { hasText: "个点" }).waitFor();
    await expect(summary.textContent()).resolves.toBe("4 个点 · 1 个无效定位，以灰色显示");
    await expect(page.locator(".child-view .source").textContent()).resolves.toBe("卫星定位，误差约 8 米");
    const people = (await call(gw, "GET", "/api/people")).body as { id: string; name: string }[];
    const data = [...people.flatMap((p) => [p.name, p.id]), "tag-child", "Special school 特教学校"];
    expect(await englishOn(page, data)).toEqual([]);
    await page.screenshot({ path: `${ARTIFACTS}/map-replay-zh.png` });
    await page.selectOption("#language", "en");
    await page.locator(".replay h2", { hasText: "Track replay" }).waitFor();
  });

  it("moves a zone by dragging it in the editor, and deletes it", async () => {
    const [before] = (await call(gw, "GET", "/api/geofences")).body;
    await page.click(".zone-list button[data-zone-id]");
    await page.locator(".zone-editor.has-shape").waitFor();
    const box = await page.locator("#tag-map").boundingBox();
    if (!box) throw new Error("no map");
    // Grab the zone by its body (between outline and hole, top left of the view) and drag it.
    const [x, y] = [box.x + 150, box.y + 150];
    await page.mouse.move(x, y);
    await page.mouse.down();
    await page.mouse.move(x + 40, y + 30, { steps: 8 });
    await page.mouse.up();
    await page.click('.zone-editor button[type="submit"]');
    await page.locator("#new-zone").waitFor();
    const [after] = (await call(gw, "GET", "/api/geofences")).body;
    const shift = (ring: number) => {
      const [[a0, a1], [b0, b1]] = [before.shape.coordinates[ring][0], after.shape.coordinates[ring][0]];
      return [b0 - a0, b1 - a1];
    };
    const [east, north] = shift(0);
    expect(east).toBeGreaterThan(0); // dragged right
    expect(north).toBeLessThan(0); // and down
    // The whole zone moved, hole and all.
    expect(shift(1)[0]).toBeCloseTo(east as number, 6);
    expect(shift(1)[1]).toBeCloseTo(north as number, 6);
    expect(after).toMatchObject({ id: before.id, name: before.name, schedule: before.schedule });

    await page.click(".zone-list button[data-zone-id]");
    await page.locator(".zone-editor.has-shape").waitFor();
    await page.getByRole("button", { name: "Delete zone" }).click();
    await page.locator("#new-zone").waitFor();
    expect((await call(gw, "GET", "/api/geofences")).body).toEqual([]);
    expect(errors).toEqual([]);
  });
});
