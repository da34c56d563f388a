import { mkdirSync } from "node:fs";
import { request } from "node:http";
import { gunzipSync } from "node:zlib";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { englishOn, launchChromium } from "../support/browser.ts";
import {
  ADMIN_PASSWORD,
  call,
  connectDevice,
  PEOPLE_PASSWORD,
  registerDevice,
  seedCommunity,
  signIn,
  startGateway,
  type TestDevice,
  type TestGateway,
} from "../support/gateway.ts";
import { waitFor } from "../support/wait.ts";
import { startWebhookServer } from "../support/webhook-server.ts";

const ARTIFACTS = "test-artifacts";
const PHONE = { width: 390, height: 844 };
const DESK = { width: 1280, height: 900 };

/** The bytes a URL sends over the wire when the client accepts gzip, and its headers. */
function fetchRaw(url: string): Promise<{ bytes: number; body: Buffer; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    request(url, { headers: { "accept-encoding": "gzip" } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const body = Buffer.concat(chunks);
        resolve({ bytes: body.length, body, headers: res.headers });
      });
    })
      .on("error", reject)
      .end();
  });
}

describe("the responder's workbench in Chromium", { timeout: 90_000 }, () => {
  let browser: Browser;
  let gw: TestGateway;
  let page: Page;
  const errors: string[] = [];
  const devices: TestDevice[] = [];

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
  });
  afterEach(async () => {
    for (const d of devices.splice(0)) await d.close().catch(() => undefined);
    await page?.close();
    await gw.stop();
    expect(errors.splice(0)).toEqual([]);
  });

  async function newPage(viewport: { width: number; height: number }, locale: "zh-CN" | "en-US") {
    page = await browser.newPage({ viewport, locale });
    page.on("pageerror", (e) => errors.push(e.message));
    return page;
  }

  /** Opens the page and signs in through the form as `username`. */
  async function open(username: string, path = "/") {
    await page.goto(`${gw.http}${path}`);
    await page.locator("form.signin").waitFor();
    await page.fill("#username", username);
    await page.fill("#password", username === "admin" ? ADMIN_PASSWORD : PEOPLE_PASSWORD);
    await page.locator("form.signin button[type=submit]").click();
    await page.locator(".status.live").waitFor();
  }

  async function device(id: string, kind = "call-button") {
    const d = await connectDevice(gw, await registerDevice(gw, id, "dondrub", kind));
    devices.push(d);
    return d;
  }

  /** Names, ids and addresses the page shows as data: allowed to be in any script. */
  async function dataShown(): Promise<string[]> {
    const people = (await call(gw, "GET", "/api/people")).body as { id: string; name: string }[];
    const all = (await call(gw, "GET", "/api/devices")).body as { id: string }[];
    const grids = (await call(gw, "GET", "/api/grids")).body as { name: string }[];
    return [...people.flatMap((p) => [p.name, p.id]), ...all.map((d) => d.id), ...grids.map((g) => g.name)];
  }

  const laneOrder = (lane: string) =>
    page
      .locator(`section[data-lane="${lane}"] li.alert`)
      .evaluateAll((cards) =>
        cards.map((c) => `${(c as HTMLElement).dataset.kind}:${(c as HTMLElement).dataset.deviceId}`),
      );

  it("puts 20 mixed alerts in triage order on a phone, all in Chinese, on every view", async () => {
    // Presses one at a time, so each opens after the one before.
    for (const id of ["b01", "b02", "b03", "b04", "b05", "b06", "b10"]) {
      const d = await device(id);
      await d.event("press");
      await d.waitForCommand("received");
    }
    for (const id of ["b07", "b08"]) {
      const d = await device(id);
      await d.event("fall");
      await d.waitForCommand("received");
    }
    for (const id of ["t1", "t2", "t3"]) {
      const d = await device(id, "locator-tag");
      await d.event("sos");
      await d.waitForCommand("received");
    }
    for (const id of ["t4", "t5", "b09"])
      await registerDevice(gw, id, "dondrub", id.startsWith("t") ? "locator-tag" : "call-button");
    // The gateway's own rules raise these on the bus, as the tracker does.
    // One at a time, each stored before the next, so that their order is known.
    const raise = async (kind: "geofence-exit" | "device-offline" | "low-battery", deviceId: string) => {
      gw.bus.emit("alert.raise", { kind, deviceId, data: {} });
      await waitFor(async () =>
        ((await call(gw, "GET", "/api/alerts")).body as { kind: string; deviceId: string }[]).some(
          (a) => a.kind === kind && a.deviceId === deviceId,
        ),
      );
    };
    await raise("geofence-exit", "t4");
    await raise("geofence-exit", "t5");
    for (const id of ["b01", "b02", "b09"]) await raise("device-offline", id);
    for (const id of ["b03", "b04", "t1"]) await raise("low-battery", id);
    // Two closed ones, with the words the gateway writes itself: a resident's long press, and a
    // low battery the gateway cleared when the battery came back.
    const b11 = await device("b11");
    await b11.event("press");
    await b11.waitForCommand("received");
    await b11.event("cancel");
    await registerDevice(gw, "b12");
    await raise("low-battery", "b12");
    gw.bus.emit("alert.clear", { kind: "low-battery", deviceId: "b12", note: "battery recovered" });
    await waitFor(
      async () =>
        ((await call(gw, "GET", "/api/alerts?state=resolved,cancelled")).body as unknown[]).length === 2,
    );
    const doctor = await signIn(gw, "dr-tsering");
    const b06 = ((await call(gw, "GET", "/api/alerts")).body as { id: string; deviceId: string }[]).find(
      (a) => a.deviceId === "b06",
    );
    expect((await call(gw, "POST", `/api/alerts/${b06?.id}/accept`, {}, doctor)).status).toBe(200);

    await call(gw, "POST", "/api/grids", {
      id: "grid-2",
      communityId: "chongsaikang",
      name: "第二网格 Grid 2",
    });
    await newPage(PHONE, "zh-CN");
    await open("staff-yang");
    await page.locator("li.alert").nth(21).waitFor();
    expect(await laneOrder("waiting")).toEqual([
      "sos:t1",
      "sos:t2",
      "sos:t3",
      "fall:b07",
      "fall:b08",
      "call:b01",
      "call:b02",
      "call:b03",
      "call:b04",
      "call:b05",
      "call:b10",
      "geofence-exit:t4",
      "geofence-exit:t5",
    ]);
    expect(await laneOrder("in-progress")).toEqual(["call:b06"]);
    expect((await laneOrder("health")).sort()).toEqual([
      "device-offline:b01",
      "device-offline:b02",
      "device-offline:b09",
      "low-battery:b03",
      "low-battery:b04",
      "low-battery:t1",
    ]);
    await expect(page.locator('section[data-lane="waiting"] .count').textContent()).resolves.toBe("13");
    // Each waiting card counts down to its next escalation, in Chinese.
    await expect(
      page.locator('li.alert[data-device-id="b01"] .countdown').first().textContent(),
    ).resolves.toMatch(/^升级给家属 \d+:\d\d$/);
    await expect(page.title()).resolves.toBe("(13) 社区安全");
    // A phone: the header stays small and stays put; the name is the largest text on a card.
    const header = await page.locator(".sticky").boundingBox();
    expect(header?.height).toBeLessThan(844 / 5);
    const sizes = await page
      .locator('li.alert[data-device-id="t1"]')
      .first()
      .evaluate((card) => {
        const size = (el: Element) => Number.parseFloat(getComputedStyle(el).fontSize);
        const who = card.querySelector(".who") as Element;
        return {
          who: size(who),
          largestOther: Math.max(
            ...[...card.querySelectorAll("*")].filter((e) => e !== who && !who.contains(e)).map(size),
          ),
        };
      });
    expect(sizes.who).toBeGreaterThan(sizes.largestOther);
    await page.screenshot({ path: `${ARTIFACTS}/workbench-phone-zh-alerts.png`, fullPage: true });

    const data = await dataShown();
    expect(await englishOn(page, data)).toEqual([]);
    // Filters: only falls.
    await page.selectOption("#filter-kind", "fall");
    await expect(page.locator("li.alert").count()).resolves.toBe(2);
    await page.selectOption("#filter-kind", "all");
    // By grid: nobody in grid 2 has called.
    await page.selectOption("#filter-grid", "grid-2");
    await page.getByText("没有符合筛选条件的告警").waitFor();
    await page.selectOption("#filter-grid", "all");
    // Device care in one tap: every open alert in the health lane is taken on, the calls are not.
    await page.getByRole("button", { name: "全部接单（6）" }).click();
    await waitFor(
      async () =>
        (
          await page
            .locator('section[data-lane="health"] li.alert')
            .evaluateAll((cards) => cards.map((c) => (c as HTMLElement).dataset.state))
        ).every((state) => state === "accepted"),
      10_000,
      "the health lane accepted",
    );
    await expect(page.locator("button.accept-all").count()).resolves.toBe(0);
    await expect(page.locator('section[data-lane="waiting"] .count').textContent()).resolves.toBe("13");

    await page
      .locator('li.alert[data-device-id="t1"][data-kind="sos"]')
      .getByRole("button", { name: "详情" })
      .click();
    await page.locator("dialog.detail .timeline").waitFor();
    expect(await englishOn(page, data)).toEqual([]);
    await page.screenshot({ path: `${ARTIFACTS}/workbench-phone-zh-detail.png` });
    await page.locator("dialog.detail").getByRole("button", { name: "关闭" }).click();
    for (const closed of ["b11", "b12"]) {
      await page
        .locator(`li.alert[data-device-id="${closed}"]`)
        .getByRole("button", { name: "详情" })
        .click();
      await page.locator("dialog.detail .timeline").waitFor();
      expect(await englishOn(page, data)).toEqual([]);
      await page.locator("dialog.detail").getByRole("button", { name: "关闭" }).click();
    }

    await page
      .locator('li.alert[data-device-id="b01"][data-kind="call"]')
      .getByRole("button", { name: "误报" })
      .click();
    await page.locator("dialog.note-dialog").waitFor();
    expect(await englishOn(page, data)).toEqual([]);
    await page.screenshot({ path: `${ARTIFACTS}/workbench-phone-zh-false-alarm.png` });
    await page.locator("dialog.note-dialog").getByRole("button", { name: "取消" }).click();

    await page.goto(`${gw.http}/#map`);
    await page.locator(".status.live").waitFor();
    await page.locator(".leaflet-control-zoom-in").waitFor();
    expect(await englishOn(page, data)).toEqual([]);
    await page.screenshot({ path: `${ARTIFACTS}/workbench-phone-zh-map.png`, fullPage: true });

    await page.goto(`${gw.http}/#devices`);
    await page.locator("form.register").waitFor();
    await page.locator("td", { hasText: "b09" }).waitFor();
    // Cards, not a table scrolling sideways: nothing is wider than the phone.
    await expect(page.evaluate(() => document.documentElement.scrollWidth)).resolves.toBeLessThanOrEqual(390);
    expect(await englishOn(page, data)).toEqual([]);
    await page.screenshot({ path: `${ARTIFACTS}/workbench-phone-zh-devices.png`, fullPage: true });

    // The server's refusal, by its code, in Chinese.
    await page.locator(".controls summary").click();
    await page.locator("#sign-out").click();
    await page.locator("form.signin").waitFor();
    await page.fill("#username", "staff-yang");
    await page.fill("#password", "wrong password");
    await page.locator("form.signin button[type=submit]").click();
    await page.getByText("用户名或密码错误").waitFor();
    await expect(page.locator("html").getAttribute("lang")).resolves.toBe("zh-CN");
    expect(await englishOn(page, data)).toEqual([]);
    await page.screenshot({ path: `${ARTIFACTS}/workbench-phone-zh-signin.png` });
    // The sign-in page switches language, and the page's lang follows.
    await page.selectOption("#language", "en");
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    await expect(page.locator("html").getAttribute("lang")).resolves.toBe("en");
  });

  it("calls the resident and family from the card; a false alarm asks why and can be undone", async () => {
    await call(gw, "PATCH", "/api/people/dondrub", {
      phone: "+86 139 0000 0001",
      address: "拉萨市城关区冲赛康社区3号楼2单元",
    });
    await call(gw, "PATCH", "/api/people/pema", { phone: "+86 139 0000 0002" });
    const button = await device("btn-call");
    await button.event("press");
    const { alertId } = await button.waitForCommand("received");
    await newPage(DESK, "en-US");
    // The doctor sees the family's number, though the family is not in the doctor's people list.
    await open("dr-tsering");
    const card = page.locator(`li.alert[data-alert-id="${alertId}"]`);
    await card.locator('a.tel[href="tel:+8613900000001"]').waitFor();
    await expect(card.locator('a.tel[href="tel:+8613900000002"]').textContent()).resolves.toContain(
      "白玛 Pema",
    );
    await expect(card.locator("a.navigate").getAttribute("href")).resolves.toContain("uri.amap.com");
    // Resolve waits until someone accepted; the detail says so and offers the same actions.
    await expect(card.getByRole("button", { name: "Resolve" }).count()).resolves.toBe(0);
    await card.getByRole("button", { name: "Details" }).click();
    const detail = page.locator("dialog.detail");
    await detail.getByText("Accept first, then resolve").waitFor();
    await detail.getByRole("button", { name: "Accept" }).waitFor();
    await detail.locator('a.tel[href="tel:+8613900000002"]').waitFor();
    await detail.getByText("Shown on the dashboard").waitFor();
    await page.screenshot({ path: `${ARTIFACTS}/workbench-desk-en-detail.png` });
    await detail.getByRole("button", { name: "Close" }).click();

    // False alarm: a reason, then an undo before anything is sent.
    await card.getByRole("button", { name: "False alarm" }).click();
    await page.getByLabel("Device test").check();
    await page.getByRole("button", { name: "Mark as false alarm" }).click();
    await card.locator(".undo").waitFor();
    await page.screenshot({ path: `${ARTIFACTS}/workbench-desk-en-undo.png` });
    await card.getByRole("button", { name: "Undo" }).click();
    await page.locator('section.board[data-pending-sends="0"]').waitFor();
    await card.getByRole("button", { name: "Accept" }).waitFor();
    expect((await call(gw, "GET", `/api/alerts/${alertId}`)).body.state).toBe("open");

    // Confirmed and left alone: sent after the undo time; cancelled is grey, not green.
    await card.getByRole("button", { name: "False alarm" }).click();
    await page.getByLabel("Device test").check();
    await page.getByRole("button", { name: "Mark as false alarm" }).click();
    await page
      .locator(`li.alert.grey[data-alert-id="${alertId}"][data-state="cancelled"]`)
      .waitFor({ timeout: 15_000 });
    const audit = (await call(gw, "GET", `/api/audit?action=alert.cancel&target=${alertId}`)).body as {
      detail: { reason?: string } | null;
    }[];
    expect(audit.map((e) => e.detail?.reason)).toEqual(["Device test"]);

    // A new press: Accept, then Resolve is offered.
    await button.event("press");
    const fresh = page.locator('li.alert[data-state="open"]', { hasText: "btn-call" });
    await fresh.getByRole("button", { name: "Accept" }).click();
    const accepted = page.locator('li.alert[data-state="accepted"]');
    await accepted.getByRole("button", { name: "Resolve" }).waitFor();
    await page.screenshot({ path: `${ARTIFACTS}/workbench-desk-en-alerts.png`, fullPage: true });

    // A false alarm waiting out its undo time while someone else closes the alert: nothing is sent.
    const freshId = await accepted.getAttribute("data-alert-id");
    await accepted.getByRole("button", { name: "False alarm" }).click();
    await page.getByRole("button", { name: "Mark as false alarm" }).click();
    await accepted.locator(".undo").waitFor();
    const worker = await signIn(gw, "lhakpa");
    const closed = await call(gw, "POST", `/api/alerts/${freshId}/resolve`, { note: "visited" }, worker);
    expect(closed.status).toBe(200);
    await page.getByText("The alert changed meanwhile").waitFor({ timeout: 15_000 });
    expect((await call(gw, "GET", `/api/alerts/${freshId}`)).body.state).toBe("resolved");
  });

  it("rings again and again until someone accepts, unless muted; the title counts the waiting", async () => {
    const button = await device("btn-loud");
    await button.event("press");
    await button.waitForCommand("received");
    await newPage(DESK, "en-US");
    await open("dr-tsering");
    await page.waitForFunction(() => Number(document.documentElement.dataset.chimes) >= 3);
    await expect(page.title()).resolves.toBe("(1) Community safety");
    await page.locator("#mute").click();
    await page.locator("html[data-alarm=muted]").waitFor();
    const whileMuted = Number(await page.locator("html").getAttribute("data-chimes"));
    await page.locator("#mute").click();
    await page.locator("html[data-alarm=ringing]").waitFor();
    await page.waitForFunction((n) => Number(document.documentElement.dataset.chimes) > n, whileMuted);
    await page.locator("li.alert").getByRole("button", { name: "Accept" }).click();
    await page.locator("html[data-alarm=quiet]").waitFor();
    await expect(page.title()).resolves.toBe("Community safety");
  });

  it("recovers by itself when the gateway stops and starts again, open or loading", async () => {
    const port = gw.ports.http;
    const restart = async () => {
      gw = await startGateway({ dataDir: gw.dataDir, env: { PORT: String(port) } });
    };
    const button = await device("btn-outage");
    await button.event("press");
    const { alertId } = await button.waitForCommand("received");
    await button.close();
    devices.length = 0;
    await newPage(PHONE, "zh-CN");
    await open("dr-tsering");
    const accept = page.locator(`li.alert[data-alert-id="${alertId}"]`).getByRole("button", { name: "接单" });
    await accept.waitFor();
    const data = await dataShown();

    await gw.stop();
    await page.locator(".status.down").waitFor();
    // The state stays in view (sticky) and nothing can be tapped that would fail.
    await page.mouse.wheel(0, 2000);
    await expect(page.locator(".banner").isVisible()).resolves.toBe(true);
    await expect(accept.isDisabled()).resolves.toBe(true);
    // What fails meanwhile says so in Chinese, and stops saying it once the link is back.
    await page.locator(`li.alert[data-alert-id="${alertId}"]`).getByRole("button", { name: "详情" }).click();
    await page.getByText("无法连接网关，连接恢复后请重试").waitFor();
    expect(await englishOn(page, data)).toEqual([]);
    await page.screenshot({ path: `${ARTIFACTS}/workbench-phone-zh-disconnected.png` });
    await restart();
    await page.locator(".status.live").waitFor({ timeout: 30_000 });
    await expect(accept.isEnabled()).resolves.toBe(true);
    await expect(page.locator(".error").count()).resolves.toBe(0);
    await expect(page.getByText("无法连接网关，连接恢复后请重试").count()).resolves.toBe(0);

    // Loading: the page's own files arrived, then the gateway went away before it answered.
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    await page.route(
      "**/api/session",
      async (route) => {
        await held;
        await route.continue().catch(() => route.abort());
      },
      { times: 1 },
    );
    await page.reload({ waitUntil: "load" });
    await gw.stop();
    release();
    await page.locator(".boot").waitFor();
    expect(await englishOn(page, data)).toEqual([]);
    await page.screenshot({ path: `${ARTIFACTS}/workbench-phone-zh-starting.png` });
    await restart();
    await page.locator(".status.live").waitFor({ timeout: 30_000 });
    await accept.click();
    await page.locator(`li.alert[data-alert-id="${alertId}"][data-state="accepted"]`).waitFor();
  });

  it("shows each role only what it may do", async () => {
    const button = await device("btn-roles");
    await button.event("press");
    await button.waitForCommand("received");
    await newPage(DESK, "en-US");
    // The administrator acts as nobody: the API would refuse an accept, so none is offered.
    await open("admin");
    await page.locator("li.alert").waitFor();
    await expect(page.locator("li.alert button.primary").count()).resolves.toBe(0);
    await page.locator("#sign-out").click();
    // Signed out for good before the next sign-in: a late answer would clear the new session's cookie.
    await page.locator("form.signin").waitFor();
    // Family: accepts, but registers no devices.
    await open("pema", "/#devices");
    await page.locator("td", { hasText: "btn-roles" }).waitFor();
    await expect(page.locator("form.register").count()).resolves.toBe(0);
    await page.goto(`${gw.http}/#alerts`);
    await page.locator("li.alert").getByRole("button", { name: "Accept" }).waitFor();
  });

  it("grows with the page's own text size, and with a 28 px browser font", async () => {
    const button = await device("btn-eyes");
    await button.event("press");
    await newPage(PHONE, "zh-CN");
    await open("dr-tsering");
    const sizeOf = (selector: string) =>
      page
        .locator(selector)
        .first()
        .evaluate((el) => Number.parseFloat(getComputedStyle(el).fontSize));
    await page.locator("li.alert .who").waitFor();
    const normal = await sizeOf("li.alert .who");
    await page.locator(".controls summary").click();
    await page.selectOption("#text-size", "150");
    await expect(sizeOf("html")).resolves.toBe(24);
    expect(await sizeOf("li.alert .who")).toBeCloseTo(normal * 1.5, 0);
    await page.selectOption("#text-size", "100");
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Page.setFontSizes", { fontSizes: { standard: 28 } });
    await page.reload();
    await page.locator("li.alert .who").waitFor();
    await expect(sizeOf("html")).resolves.toBe(28);
    expect(await sizeOf("li.alert .who")).toBeCloseTo((normal * 28) / 16, 0);
    await page.screenshot({ path: `${ARTIFACTS}/workbench-phone-zh-28px.png`, fullPage: true });
  });

  it("sends at most 80 KB of gzipped script at first load; hashed files cached for good, the page never", async () => {
    const index = await fetchRaw(`${gw.http}/`);
    expect(index.headers["cache-control"]).toBe("no-cache");
    const html = index.headers["content-encoding"] === "gzip" ? gunzipSync(index.body) : index.body;
    const scripts = [...html.toString().matchAll(/(?:src|href)="(\/assets\/[^"]+\.js)"/g)].map((m) => m[1]);
    expect(scripts.length).toBeGreaterThan(0);
    let total = 0;
    for (const path of scripts) {
      const res = await fetchRaw(`${gw.http}${path}`);
      expect(res.headers["content-encoding"]).toBe("gzip");
      expect(res.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
      total += res.bytes;
    }
    console.log(`first-load JS: ${(total / 1024).toFixed(1)} KB gzipped in ${scripts.length} file(s)`);
    expect(total).toBeLessThanOrEqual(80 * 1024);
  });

  it("is an installable app: a Chinese manifest with icons, a service worker from the root never cached, which shows a push as a lasting notification tagged with its alert", async () => {
    const manifest = await fetch(`${gw.http}/manifest.webmanifest`);
    expect(manifest.headers.get("content-type")).toMatch(/^application\/manifest\+json/);
    const app = (await manifest.json()) as { name: string; lang: string; icons: { src: string }[] };
    expect(app).toMatchObject({ name: "社区安全 · 告警", lang: "zh-CN", display: "standalone" });
    for (const icon of app.icons) expect((await fetch(`${gw.http}${icon.src}`)).status).toBe(200);
    const worker = await fetchRaw(`${gw.http}/sw.js`);
    expect(worker.headers["content-type"]).toMatch(/^(application|text)\/javascript/);
    expect(worker.headers["cache-control"]).toBe("no-cache");

    await newPage(PHONE, "zh-CN");
    await page.context().grantPermissions(["notifications"], { origin: gw.http });
    await open("dr-tsering");
    await expect(page.locator('link[rel="manifest"]').getAttribute("href")).resolves.toBe(
      "/manifest.webmanifest",
    );
    const scope = await page.evaluate(async () => {
      const registration = await navigator.serviceWorker.ready;
      return { scope: registration.scope, script: registration.active?.scriptURL };
    });
    expect(scope).toEqual({ scope: `${gw.http}/`, script: `${gw.http}/sw.js` });

    // Headless Chromium has no push service to subscribe with; DevTools hands the worker a push
    // as one would, in the gateway's payload format.
    const cdp = await page.context().newCDPSession(page);
    const registered = new Promise<string>((resolve) =>
      cdp.on("ServiceWorker.workerRegistrationUpdated", ({ registrations }) => {
        const ours = registrations.find((r) => r.scopeURL === `${gw.http}/` && !r.isDeleted);
        if (ours) resolve(ours.registrationId);
      }),
    );
    await cdp.send("ServiceWorker.enable");
    const payload = {
      alertId: "a-42",
      event: "paged",
      title: "一键呼叫 · 顿珠",
      body: "顿珠一键呼叫（第1级）",
      link: "/?alert=a-42#alerts",
    };
    const registrationId = await registered;
    const notification = () =>
      page.evaluate(async () => {
        const [n] = await (await navigator.serviceWorker.ready).getNotifications();
        return (
          n && {
            title: n.title,
            body: n.body,
            tag: n.tag,
            requireInteraction: n.requireInteraction,
            data: n.data,
          }
        );
      });
    // DevTools may hand a push to a worker it is still starting and drop it on a loaded machine;
    // a second delivery of the same alert replaces the first (same tag), as a re-sent push would.
    let shown: Awaited<ReturnType<typeof notification>>;
    for (let attempt = 1; !shown; attempt++) {
      await cdp.send("ServiceWorker.deliverPushMessage", {
        origin: gw.http,
        registrationId,
        data: JSON.stringify(payload),
      });
      shown = await waitFor(notification, 5000, "the notification").catch((error) => {
        if (attempt === 4) throw error;
        return undefined;
      });
    }
    expect(shown).toEqual({
      title: payload.title,
      body: payload.body,
      tag: "a-42",
      requireInteraction: true,
      data: { link: payload.link },
    });

    // A new alert while the page is open: notified through the same worker, tagged with the alert,
    // so that its push replaces it rather than ringing twice.
    const button = await device("btn-sw");
    await button.event("press");
    const { alertId } = await button.waitForCommand("received");
    await waitFor(
      () =>
        page.evaluate(
          async (id) =>
            (await (await navigator.serviceWorker.ready).getNotifications()).some((n) => n.tag === id),
          alertId as string,
        ),
      15000,
      "the page's notification of the new alert",
    );

    // The header's control says what this browser can do: without a push service, it says so.
    await page.locator(".controls summary").click();
    await page.locator("#notify").click();
    await waitFor(
      async () => (await page.locator("#notify").getAttribute("data-state")) !== "enable",
      10_000,
    );
    const state = await page.locator("#notify").getAttribute("data-state");
    console.log(`headless Chromium: turning on alerts on this phone ends as '${state}'`);
    expect(["on", "failed"]).toContain(state);
    const saved = await gw.store.pushSubscriptions.forPerson("dr-tsering");
    expect(saved).toHaveLength(state === "on" ? 1 : 0);
  });
});
