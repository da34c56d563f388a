import { mkdirSync } from "node:fs";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runSimulation } from "../../device-sim/simulator.ts";
import { launchChromium } from "../support/browser.ts";
import {
  ADMIN_PASSWORD,
  call,
  connectDevice,
  PEOPLE_PASSWORD,
  registerDevice,
  seedCommunity,
  seedLoneResident,
  signIn,
  startGateway,
  type TestDevice,
  type TestGateway,
} from "../support/gateway.ts";
import { startWebhookServer } from "../support/webhook-server.ts";

const ARTIFACTS = "test-artifacts";

// A browser shares two cores with the rest of the suite: its steps get more time than a unit test.
describe("dashboard in Chromium", { timeout: 45_000 }, () => {
  let browser: Browser;
  let gw: TestGateway;
  let page: Page;
  const errors: string[] = [];

  let hooks: Awaited<ReturnType<typeof startWebhookServer>>;

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await launchChromium();
    hooks = await startWebhookServer();
  });
  afterAll(async () => {
    await browser?.close();
    await hooks?.close();
  });

  beforeEach(async () => {
    gw = await startGateway();
    // Responders' webhooks answer: pages reach them, and escalation runs on its deadlines.
    await seedCommunity(gw, hooks.url);
    page = await browser.newPage({ viewport: { width: 1024, height: 768 }, locale: "en-US" });
    page.on("pageerror", (e) => errors.push(e.message));
  });
  afterEach(async () => {
    await page.close();
    await gw.stop();
    expect(errors.splice(0)).toEqual([]);
  });

  /** Opens the page, signing in through the form as `username` when it asks. */
  async function open(path = "/", username = "dr-tsering") {
    await page.goto(`${gw.http}${path}`);
    // The page asks for its session first: until it has its answer it shows neither the form nor
    // the board (on a loaded machine that took long enough for the form to appear after the check).
    await page.locator("form.signin, span.status").first().waitFor();
    if (await page.locator("form.signin").isVisible()) {
      await page.fill("#username", username);
      await page.fill("#password", username === "admin" ? ADMIN_PASSWORD : PEOPLE_PASSWORD);
      await page.locator("form.signin button[type=submit]").click();
    }
    await page.locator(".status.live").waitFor();
  }
  const card = (alertId: string) => page.locator(`li.alert[data-alert-id="${alertId}"]`);

  it("shows a press within a second; accepting in the page tells the device; resolving turns it green", async () => {
    const device: TestDevice = await connectDevice(gw, await registerDevice(gw, "btn-dondrub"));
    await page.goto(gw.http);
    await page.fill("#username", "dr-tsering");
    await page.fill("#password", "wrong password");
    await page.locator("form.signin button[type=submit]").click();
    await page.getByText("wrong username or password").waitFor();
    await open();
    await page.getByText("Signed in as 次仁医生 Dr Tsering").waitFor();

    const pressedAt = Date.now();
    await device.event("press");
    const red = page.locator("li.alert.red", { hasText: "btn-dondrub" });
    await red.waitFor({ timeout: 1000 });
    const shownAfterMs = Date.now() - pressedAt;
    const { alertId } = await device.waitForCommand("received");
    await expect(red.textContent()).resolves.toContain("顿珠 Dondrub");

    await card(alertId).getByRole("button", { name: "Accept" }).click();
    const accepted = await device.waitForCommand("accepted");
    expect(accepted.message).toContain("Dr Tsering");
    await card(alertId).and(page.locator(".yellow")).waitFor();

    await card(alertId).getByRole("button", { name: "Resolve" }).click();
    await page.fill("#resolve-note", "Visited; blood pressure normal");
    await page.getByRole("button", { name: "Save" }).click();
    await card(alertId).and(page.locator(".green")).waitFor();
    await device.waitForCommand("resolved");
    expect((await call(gw, "GET", `/api/alerts/${alertId}`)).body.outcome).toBe(
      "Visited; blood pressure normal",
    );

    // The detail shows the audit trail and the notification attempts.
    await card(alertId).getByRole("button", { name: "Details" }).click();
    const detail = page.locator("dialog.detail");
    await detail.getByText("Accepted by 次仁医生 Dr Tsering").waitFor();
    await expect(detail.locator(".attempts li").count()).resolves.toBeGreaterThan(0);
    await page.screenshot({ path: `${ARTIFACTS}/dashboard-alert-detail.png` });
    console.log(`press shown on the board ${shownAfterMs} ms after the publish`);
    await device.close();
  });

  it("misses nothing while the stream is down, shows a banner, and shows nothing twice", async () => {
    const devices = await Promise.all(
      ["btn-a", "btn-b", "btn-c"].map(async (id) => connectDevice(gw, await registerDevice(gw, id))),
    );
    await open();
    await devices[0]?.event("press");
    await page.locator("li.alert").first().waitFor();

    gw.stream.stop();
    await page.locator(".banner:not([hidden])").waitFor();
    await devices[1]?.event("press");
    await devices[2]?.event("press");
    await devices[0]?.event("press"); // joins the first alert
    for (const d of devices) await d.waitForCommand("received");
    await page.screenshot({ path: `${ARTIFACTS}/dashboard-disconnected.png` });

    gw.stream.start();
    await page.locator(".status.live").waitFor({ timeout: 20_000 });
    await expect(page.locator(".banner").isHidden()).resolves.toBe(true);
    await page.locator("li.alert").nth(2).waitFor();
    const ids = await page
      .locator("li.alert")
      .evaluateAll((cards) => cards.map((c) => (c as HTMLElement).dataset.alertId));
    expect(ids).toHaveLength(3);
    expect(new Set(ids).size).toBe(3);
    await page.locator("li.alert", { hasText: "btn-a" }).getByText("2 presses").waitFor();
    for (const d of devices) await d.close();
  });

  it("renders Chinese, switches to English, and remembers the choice", async () => {
    await page.close();
    page = await browser.newPage({ viewport: { width: 1024, height: 768 }, locale: "zh-CN" });
    page.on("pageerror", (e) => errors.push(e.message));
    const device = await connectDevice(gw, await registerDevice(gw, "btn-zh"));
    await device.event("press");
    await open();
    await expect(page.locator("h1").textContent()).resolves.toBe("社区安全");
    await page.locator("li.alert").getByRole("button", { name: "接单" }).waitFor();
    await expect(page.locator("li.alert .kind").textContent()).resolves.toBe("呼叫");
    await expect(page.locator("html").getAttribute("lang")).resolves.toBe("zh-CN");
    await page.screenshot({ path: `${ARTIFACTS}/dashboard-zh-CN.png`, fullPage: true });

    await page.selectOption("#language", "en");
    await expect(page.locator("h1").textContent()).resolves.toBe("Community safety");
    await page.reload();
    await page.locator(".status.live").waitFor();
    await expect(page.locator("h1").textContent()).resolves.toBe("Community safety");
    await expect(page.locator("li.alert .kind").textContent()).resolves.toBe("Call");
    await device.close();
  });

  it("shows a geofence exit from the simulator on the map and the board", async () => {
    const tag = await registerDevice(gw, "tag-child", "dondrub", "locator-tag");
    const school = { lat: 29.6525, lon: 91.1321 };
    await call(gw, "POST", "/api/geofences", {
      id: "school",
      name: "School",
      shape: { type: "Circle", center: [school.lon, school.lat], radiusM: 200 },
      deviceIds: ["tag-child"],
    });
    await open("/#map");
    await page.locator("path.leaflet-interactive").first().waitFor(); // the zone, drawn without tiles
    const out = (i: number) => ({
      at: 300 + i * 150,
      device: "tag-child",
      event: "fix" as const,
      lat: school.lat + 0.004,
      lon: school.lon,
      accuracy: 8,
    });
    const sim = await runSimulation({
      url: `mqtt://127.0.0.1:${gw.ports.mqtt}`,
      devices: [{ ...tag, kind: "locator-tag" }],
      buttons: 0,
      tags: 1,
      pressesPerMinute: 0,
      buttonHeartbeatMs: 3_600_000,
      tagHeartbeatMs: 3_600_000,
      seed: 1,
      scenario: {
        steps: [
          { at: 100, device: "tag-child", event: "fix", lat: school.lat, lon: school.lon, accuracy: 8 },
          out(0),
          out(1),
          out(2),
        ],
      },
      log: () => {},
    });
    try {
      await page.locator(".tag-marker.is-alert").waitFor({ timeout: 10_000 });
      await page.screenshot({ path: `${ARTIFACTS}/dashboard-map-geofence-exit.png` });
      await page.goto(`${gw.http}/#alerts`);
      await page.locator('li.alert.red[data-kind="geofence-exit"]', { hasText: "tag-child" }).waitFor();
    } finally {
      await sim.stop();
    }
  });

  it("can be worked with the keyboard alone", async () => {
    const device = await connectDevice(gw, await registerDevice(gw, "btn-keys"));
    await open();
    await device.event("press");
    const accept = page.locator("li.alert").getByRole("button", { name: "Accept" });
    await accept.waitFor();
    // Tab from the language menu onward reaches the alert's Accept button.
    await page.focus("#language");
    for (let i = 0; i < 10 && !(await accept.evaluate((b) => b === document.activeElement)); i++) {
      await page.keyboard.press("Tab");
    }
    await expect(accept.evaluate((b) => getComputedStyle(b).outlineStyle)).resolves.toBe("solid");
    await page.keyboard.press("Enter");
    await device.waitForCommand("accepted");
    await device.close();
  });

  it("shows a family member only their own relative, and signs out", async () => {
    await call(gw, "POST", "/api/people", {
      id: "other-resident",
      name: "Another resident",
      role: "resident",
      communityId: "chongsaikang",
    });
    const ours = await connectDevice(gw, await registerDevice(gw, "btn-ours"));
    const theirs = await connectDevice(gw, await registerDevice(gw, "btn-theirs", "other-resident"));
    await theirs.event("press");
    await theirs.waitForCommand("received");
    await open("/", "pema");
    await ours.event("press");
    await page.locator("li.alert", { hasText: "btn-ours" }).waitFor();
    await theirs.event("press", undefined, Date.now()); // live, after the page loaded: still not shown
    await theirs.waitForCommand("received");
    await expect(page.locator("li.alert").count()).resolves.toBe(1);
    await page.locator("#sign-out").click();
    await page.locator("form.signin").waitFor();
    await page.reload();
    await page.locator("form.signin").waitFor();
    await ours.close();
    await theirs.close();
  });

  it("registers a device from the page and shows its secret once", async () => {
    await open("/#devices", "lhakpa");
    await page.fill("#device-id", "btn-new");
    // The owner is found by typing: none is chosen beforehand.
    await page.fill("#device-owner-search", "Dondrub");
    await page.locator('.register button[data-person-id="dondrub"]').click();
    await page.getByRole("button", { name: "Register" }).click();
    const secret = await page.locator("#device-secret").textContent();
    expect(secret).toMatch(/^[A-Za-z0-9_-]{22}$/);
    await page.locator("td", { hasText: "btn-new" }).waitFor();
    const device = await connectDevice(gw, { id: "btn-new", secret: secret ?? "" });
    expect(device.client.connected).toBe(true);
    await device.close();
    await page.reload();
    await page.locator("td", { hasText: "btn-new" }).waitFor();
    await expect(page.locator("#device-secret").count()).resolves.toBe(0);
  });

  it("registers a watch from the page by its id, with no secret to show", async () => {
    await open("/#devices", "lhakpa");
    await page.fill("#device-id", "8800000015");
    await page.selectOption("#device-kind", "locator-tag");
    await page.selectOption("#device-protocol", "watch");
    // The owner is found by typing: none is chosen beforehand.
    await page.fill("#device-owner-search", "Dondrub");
    await page.locator('.register button[data-person-id="dondrub"]').click();
    await page.getByRole("button", { name: "Register" }).click();
    await page.getByText("Watch 8800000015 registered. It has no secret").waitFor();
    await expect(page.locator("#device-secret").count()).resolves.toBe(0);
    await page.locator("td", { hasText: "8800000015" }).waitFor();
  });

  it("shows markup stored in any field as text, runs none of it, and sends a strict CSP", async () => {
    // Each payload, if it ever ran, would count itself in window.__xss.
    const evil = (where: string) =>
      `<img src=x onerror="window.__xss=(window.__xss||[]).concat('${where}')"><script>window.__xss=['${where} script']</script>${where}`;
    await call(gw, "PATCH", "/api/people/dondrub", { name: evil("resident"), address: evil("address") });
    await call(gw, "PATCH", "/api/people/pema", { name: evil("family"), phone: "+86 139 0000 0000" });
    const tag = await registerDevice(gw, "tag-child", "dondrub", "locator-tag");
    const school = { lat: 29.6525, lon: 91.1321 };
    await call(gw, "POST", "/api/geofences", {
      id: "school",
      name: evil("zone"),
      shape: { type: "Circle", center: [school.lon, school.lat], radiusM: 200 },
      deviceIds: ["tag-child"],
    });
    const tagDevice = await connectDevice(gw, tag);
    await tagDevice.publish(
      "devices/tag-child/heartbeat",
      JSON.stringify({ ts: Date.now(), seq: 1, battery: 80, lat: school.lat, lon: school.lon, accuracy: 8 }),
    );
    await tagDevice.event("sos");
    const { alertId } = await tagDevice.waitForCommand("received");
    const doctor = await signIn(gw, "dr-tsering");
    await call(gw, "POST", `/api/alerts/${alertId}/resolve`, { note: evil("outcome") }, doctor);

    const res = await fetch(gw.http);
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).not.toContain("unsafe");
    // A gateway on a LAN over plain http must still load its own script.
    expect(csp).not.toContain("upgrade-insecure-requests");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    const api = await fetch(`${gw.http}/api/alerts`, { headers: { cookie: gw.cookie } });
    expect(api.headers.get("cache-control")).toBe("no-store");

    await open("/", "staff-yang");
    const shown = page.locator("li.alert", { hasText: "tag-child" });
    await shown.waitFor();
    await expect(shown.textContent()).resolves.toContain('<img src=x onerror="window.__xss');
    await shown.getByRole("button", { name: "Details" }).click();
    await page.locator("dialog.detail .timeline").waitFor();
    await expect(page.locator("dialog.detail").textContent()).resolves.toContain("outcome");
    await page.locator("dialog.detail").getByRole("button", { name: "Close" }).click();
    await page.goto(`${gw.http}/#map`);
    await page.locator(".tag-marker").waitFor();
    await page.locator(".tag-marker").hover({ force: true });
    await page.locator(".leaflet-tooltip").waitFor();
    await expect(page.locator(".leaflet-tooltip").textContent()).resolves.toContain("<script>");
    // The zone's label, always shown, as text too.
    await expect(page.locator(".zone-label").textContent()).resolves.toContain("<img");
    await page.mouse.move(0, 0);
    await page
      .locator("path.leaflet-interactive")
      .first()
      .hover({ position: { x: 5, y: 20 }, force: true });
    await page.goto(`${gw.http}/#devices`);
    await page.locator("table, ul").first().waitFor();
    await page.screenshot({ path: `${ARTIFACTS}/dashboard-xss.png` });
    await expect(page.evaluate(() => (window as { __xss?: unknown }).__xss)).resolves.toBeUndefined();
    await tagDevice.close();
  });

  it("marks in red a call that nobody can be reached for", async () => {
    await seedLoneResident(gw);
    const device = await connectDevice(gw, await registerDevice(gw, "btn-norbu", "norbu"));
    await device.event("press");
    const { alertId } = await device.waitForCommand("received");
    await open("/", "admin");
    const alone = card(alertId);
    await alone.and(page.locator(".trouble")).waitFor();
    await expect(alone.locator(".badge.trouble").textContent()).resolves.toBe("Nobody reachable");
    await page.screenshot({ path: `${ARTIFACTS}/dashboard-unreached.png` });
    await device.close();
  });
});
