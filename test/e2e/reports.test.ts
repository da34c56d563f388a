import { mkdirSync, readFileSync } from "node:fs";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { englishOn, launchChromium } from "../support/browser.ts";
import { FakeClock } from "../support/fake-clock.ts";
import {
  ADMIN_PASSWORD,
  call,
  connectDevice,
  login,
  PEOPLE_PASSWORD,
  registerDevice,
  type SessionCreds,
  seedCommunity,
  seedLoneResident,
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
const S = 1000;

/**
 * Calls pressed on real devices, answered after known delays on a fake clock, then read on the
 * Reports view: the figures, the charts and the CSV must be those of the calls the test made.
 */
describe("the monthly report in Chromium", { timeout: 120_000 }, () => {
  // Sunday 15 November 2026, 23:00 in the community (Asia/Shanghai, UTC+8): ISO week 46.
  const clock = new FakeClock(Date.parse("2026-11-15T15:00:00Z"));
  let browser: Browser;
  let gw: TestGateway;
  let hooks: Awaited<ReturnType<typeof startWebhookServer>>;
  let button: TestDevice;
  let tag: TestDevice;
  let page: Page;
  const errors: string[] = [];
  /** Every alert the gateway holds after the scenario, by kind: what the report must count. */
  let kindsCounted: Record<string, number>;

  /** An event from a device, and the alert it opened (the gateway's `received` names it). */
  const raise = async (device: TestDevice, type: "press" | "sos") => {
    const before = device.commands.length;
    await device.event(type, undefined, clock.now());
    const received = await waitFor(() => device.commands.slice(before).find((c) => c.type === "received"));
    return received?.alertId as string;
  };
  /** Accepted by the doctor `after` ms on the clock, resolved a minute later. */
  const answer = async (alertId: string, after: number, doctor: SessionCreds) => {
    await clock.advance(after);
    expect((await call(gw, "POST", `/api/alerts/${alertId}/accept`, {}, doctor)).status).toBe(200);
    await clock.advance(60 * S);
    expect((await call(gw, "POST", `/api/alerts/${alertId}/resolve`, { note: "ok" }, doctor)).status).toBe(
      200,
    );
  };

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await launchChromium();
    hooks = await startWebhookServer();
    gw = await startGateway({ clock });
    await seedCommunity(gw, hooks.url);
    await seedLoneResident(gw);
    button = await connectDevice(gw, await registerDevice(gw, "btn-dondrub"));
    tag = await connectDevice(gw, await registerDevice(gw, "tag-dondrub", "dondrub", "locator-tag"));
    const doctor = await signIn(gw, "dr-tsering");

    // Week 46, 23:00 on Sunday: two calls, accepted after 30 s and 50 s.
    await answer(await raise(button, "press"), 30 * S, doctor);
    await clock.advance(600 * S);
    await answer(await raise(button, "press"), 50 * S, doctor);
    // Past midnight: Monday 16 November, week 47. An SOS accepted after 100 s...
    await clock.advance(3600 * S);
    await answer(await raise(tag, "sos"), 100 * S, doctor);
    // ...and a call nobody answers: it reaches community staff (level 3).
    await clock.advance(600 * S);
    const unanswered = await raise(button, "press");
    await clock.advance(240 * S);
    await waitFor(async () => (await call(gw, "GET", `/api/alerts/${unanswered}`)).body.level === 3);

    const all = (await call(gw, "GET", "/api/alerts?limit=500")).body as { kind: string }[];
    kindsCounted = {};
    for (const a of all) kindsCounted[a.kind] = (kindsCounted[a.kind] ?? 0) + 1;
    // The devices send no heartbeats while the clock runs: the gateway may also report them offline.
    expect(kindsCounted).toMatchObject({ call: 3, sos: 1 });
  }, 90_000);
  afterAll(async () => {
    await page?.close();
    await browser?.close();
    await button?.close();
    await tag?.close();
    await gw?.stop();
    await hooks?.close();
    expect(errors).toEqual([]);
  });

  async function open(viewport: typeof PHONE, locale: "zh-CN" | "en-US", username: string) {
    await page?.close();
    page = await browser.newPage({ viewport, locale, acceptDownloads: true });
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${gw.http}/#reports`);
    await page.locator("form.signin").waitFor();
    await page.fill("#username", username);
    await page.fill("#password", username === "admin" ? ADMIN_PASSWORD : PEOPLE_PASSWORD);
    await page.locator("form.signin button[type=submit]").click();
    await page.locator(".status.live").waitFor();
  }

  /** The machine-readable value of a big number on the page, and the text people read. */
  const shown = async (id: string) => {
    const el = page.locator(`#${id} .figure-value`);
    return { value: await el.getAttribute("value"), text: (await el.textContent())?.trim() };
  };

  /** Names and ids the page shows as data: allowed in any script. */
  async function dataShown(): Promise<string[]> {
    const people = (await call(gw, "GET", "/api/people")).body as { id: string; name: string }[];
    const communities = (await call(gw, "GET", "/api/communities")).body as { name: string }[];
    const grids = (await call(gw, "GET", "/api/grids")).body as { name: string }[];
    return [
      ...people.flatMap((p) => [p.name, p.id]),
      ...communities.map((c) => c.name),
      ...grids.map((g) => g.name),
      "btn-dondrub",
      "tag-dondrub",
    ];
  }

  /** The figures every run must show, whatever the language: those of the calls made above. */
  async function expectTheCallsMade() {
    // Counts by kind: exactly the alerts the gateway holds.
    const byKind = await page
      .locator("#report-by-kind li")
      .evaluateAll((items) =>
        Object.fromEntries(
          items.map((li) => [
            (li as HTMLElement).dataset.kind,
            Number(li.querySelector("data")?.getAttribute("value")),
          ]),
        ),
      );
    const expected = Object.fromEntries(Object.keys(byKind).map((k) => [k, kindsCounted[k] ?? 0]));
    expect(byKind).toEqual(expected);
    const total = Object.values(kindsCounted).reduce((a, b) => a + b, 0);
    expect((await shown("figure-total")).value).toBe(String(total));
    // Four calls needed a person; accepted after 30, 50 and 100 s: median 50 s, p90 100 s.
    expect((await shown("figure-needing")).value).toBe("4");
    expect((await shown("figure-accept-p50")).value).toBe("50");
    expect((await shown("figure-accept-p90")).value).toBe("100");
    // Two of four within 60 s, three within 180 s: both of the industry's targets missed.
    expect((await shown("figure-within-60")).value).toBe("50");
    expect((await shown("figure-within-180")).value).toBe("75");
    expect(await page.locator("#figure-within-60 .target.missed .icon").textContent()).toBe("✘");
    expect(await page.locator("#figure-within-180 .target.missed").count()).toBe(1);
    expect((await shown("figure-level-3")).value).toBe("1");

    // Time to accept per week: the six ISO weeks November touches, bars in weeks 46 and 47 only.
    const weekly = page.locator("svg.weekly");
    expect(await weekly.getAttribute("role")).toBe("img");
    expect(await weekly.locator("> title").textContent()).toBeTruthy();
    expect(await weekly.locator("> desc").textContent()).toBeTruthy();
    const bars = await weekly
      .locator("rect.bar")
      .evaluateAll((rects) => rects.map((r) => r.querySelector("title")?.textContent ?? ""));
    expect(bars).toHaveLength(4);
    expect(bars.every((title) => title.length > 0)).toBe(true);
    expect(await page.locator("#report-weekly-table tbody tr").count()).toBe(6);
    const weekCells = await page
      .locator("#report-weekly-table tbody tr")
      .evaluateAll((rows) => rows.map((r) => r.querySelector("td")?.textContent));
    expect(weekCells).toEqual(["0", "0", "2", "2", "0", "0"]);

    // Kind × hour of day: a row of 24 cells for each kind that occurred, every cell titled.
    const kindsSeen = Object.keys(kindsCounted).length;
    const cells = page.locator("svg.hours rect.cell");
    expect(await cells.count()).toBe(kindsSeen * 24);
    expect(await page.locator("svg.hours rect.cell title").count()).toBe(kindsSeen * 24);
    const cell = (kind: string, hour: number) =>
      page.locator(`svg.hours rect.cell[data-kind="${kind}"][data-hour="${hour}"] title`).textContent();
    // Two calls at 23:00 on the community's clock, one call and the SOS after midnight.
    expect(await cell("call", 23)).toMatch(/23:00–24:00\D+2/);
    expect(await cell("call", 0)).toMatch(/0:00–1:00\D+1/);
    expect(await cell("sos", 0)).toMatch(/0:00–1:00\D+1/);
    expect(await cell("call", 12)).toMatch(/12:00–13:00\D+0/);
  }

  /** The CSV behind the button: one row per alert, the same counts and accept times. */
  async function downloadCsv() {
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#report-csv")]);
    expect(download.suggestedFilename()).toBe("alerts-chongsaikang-2026-11.csv");
    const rows = readFileSync(await download.path(), "utf8")
      .replace(/^\uFEFF/, "")
      .trimEnd()
      .split("\r\n");
    const [header, ...alerts] = rows.map((r) => r.split(","));
    expect(alerts).toHaveLength(Object.values(kindsCounted).reduce((a, b) => a + b, 0));
    return { header: header ?? [], alerts };
  }

  it("shows staff their community's month on a phone, in Chinese, with the CSV", async () => {
    await open(PHONE, "zh-CN", "staff-yang");
    await page.locator("#figure-accept-p50 data").waitFor();
    expect(await page.locator('nav a[href="#reports"]').getAttribute("aria-current")).toBe("page");
    // The month the gateway counted: this month on the community's clock.
    expect(await page.inputValue("#report-month")).toBe("2026-11");
    expect(await page.locator("#report-community option").allTextContents()).toEqual([
      "冲赛康社区 Chongsaikang",
    ]);
    await expectTheCallsMade();
    // Numbers and targets in Chinese, the state said in words next to its icon.
    expect((await shown("figure-accept-p50")).text).toBe("50秒");
    expect((await shown("figure-within-60")).text).toBe("50%");
    expect(await page.locator("#figure-within-60 .target").textContent()).toBe("✘ 未达标（目标97.5%）");
    expect(await page.locator(".reports h2").textContent()).toBe("月度报表 · 2026年11月");
    expect(await englishOn(page, await dataShown())).toEqual([]);

    // Nothing wider than the phone, at the normal text size and the largest.
    const width = () => page.evaluate(() => document.documentElement.scrollWidth);
    expect(await width()).toBeLessThanOrEqual(PHONE.width);
    await page.click(".controls summary");
    await page.selectOption("#text-size", "150");
    expect(await width()).toBeLessThanOrEqual(PHONE.width);
    await page.selectOption("#text-size", "100");
    await page.click(".controls summary");
    // The weekly chart's table: week 46's median and 90th percentile, as the bars show them.
    await page.click("#report-weekly .table-toggle");
    const week46 = page.locator("#report-weekly-table tbody tr").nth(2);
    expect(await week46.locator("th").textContent()).toMatch(/^第46周（11\/9\s*–\s*11\/15）$/);
    expect(await week46.locator("td").allTextContents()).toEqual(["2", "30秒", "50秒"]);
    await page.click("#report-hours .table-toggle");
    expect(await width()).toBeLessThanOrEqual(PHONE.width);
    await page.screenshot({ path: `${ARTIFACTS}/reports-phone-zh.png`, fullPage: true });

    const { header, alerts } = await downloadCsv();
    expect(header[1]).toBe("类型");
    const kindColumn = (name: string) => alerts.filter((r) => r[1] === name);
    expect(kindColumn("一键呼叫")).toHaveLength(3);
    // The seconds to answer of the emergencies: the page's median is theirs.
    const answered = alerts
      .filter((r) => r[1] === "一键呼叫" || r[1] === "SOS求救")
      .map((r) => r[5])
      .filter((s) => s !== "")
      .map(Number)
      .sort((a, b) => a - b);
    expect(answered).toEqual([30, 50, 100]);

    // A month with nothing in it: zeros, no bars, and no target to judge.
    await page.fill("#report-month", "2026-10");
    await page.locator(".reports h2", { hasText: "2026年10月" }).waitFor();
    expect((await shown("figure-total")).value).toBe("0");
    expect((await shown("figure-accept-p50")).text).toBe("—");
    expect(await page.locator("svg.weekly rect.bar").count()).toBe(0);
    expect(await page.locator("#figure-within-60 .target.none").count()).toBe(1);
    expect(await page.locator("#report-hours .empty").textContent()).toBe("本月没有告警。");
    expect(await englishOn(page, await dataShown())).toEqual([]);

    // A month cleared from the picker asks nothing: the month shown stays, with no error.
    await page.fill("#report-month", "");
    await page.locator("#report-month").blur();
    expect(await page.locator(".reports h2").textContent()).toBe("月度报表 · 2026年10月");
    expect(await page.locator(".reports .error").count()).toBe(0);
  });

  it("lets an admin choose the community, on a desk in English", async () => {
    // The admin session the gateway started with has idled out on the test's clock.
    gw.session = await login(gw, "admin", ADMIN_PASSWORD);
    await open(DESK, "en-US", "admin");
    await page.locator("#figure-accept-p50 data").waitFor();
    expect(await page.locator("#report-community option").allTextContents()).toEqual([
      "冲赛康社区 Chongsaikang",
      "鲁固 Lugu",
    ]);
    await expectTheCallsMade();
    expect((await shown("figure-accept-p50")).text).toBe("50 sec");
    expect(await page.locator("#figure-within-180 .target").textContent()).toBe("✘ Target missed (99%)");
    expect(await page.locator(".reports h2").textContent()).toBe("Monthly report · November 2026");
    expect(await page.locator("svg.weekly > title").textContent()).toBe("Time to accept per week");
    await page.screenshot({ path: `${ARTIFACTS}/reports-desk-en.png`, fullPage: true });
    const { header } = await downloadCsv();
    expect(header.slice(0, 2)).toEqual(["alert", "kind"]);

    // Lugu's resident pressed nothing.
    await page.selectOption("#report-community", "lugu");
    await page.locator("#report-csv[href*='community=lugu']").waitFor();
    expect((await shown("figure-total")).value).toBe("0");
  });

  it("offers no report to a doctor, whom the API refuses", async () => {
    await open(PHONE, "zh-CN", "dr-tsering");
    expect(await page.locator('nav a[href="#reports"]').count()).toBe(0);
    expect(await page.locator(".reports").count()).toBe(0);
  });
});
