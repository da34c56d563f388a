import { mkdirSync } from "node:fs";
import mqtt from "mqtt";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { englishOn, launchChromium } from "../support/browser.ts";
import { FakeClock } from "../support/fake-clock.ts";
import {
  ADMIN_PASSWORD,
  call,
  connectDevice,
  login,
  PEOPLE_PASSWORD,
  registerDevice,
  seedCommunity,
  startGateway,
  type TestGateway,
} from "../support/gateway.ts";
import { waitFor } from "../support/wait.ts";

const ARTIFACTS = "test-artifacts";
const PHONE = { width: 390, height: 844 };
const DESK = { width: 1280, height: 900 };
/** Nothing listens there: the seeded webhooks are never called in these tests. */
const NOWHERE = "http://127.0.0.1:9";

/**
 * Managing the community from the page, in Chromium: a child registered, a guardian assigned,
 * care notes written, a tag registered for the child, its secret rotated and copied, revoked; and
 * what a family member and a doctor in and out of scope see. One gateway for the whole story.
 */
describe("people and devices in Chromium", { timeout: 120_000 }, () => {
  let browser: Browser;
  let gw: TestGateway;
  let page: Page;
  const errors: string[] = [];
  const care = {
    conditions: "Autism; frightened by loud voices",
    medicines: "None",
    allergies: "Peanuts (severe): EpiPen in school bag",
    doorAccess: "Grandmother at home after 16:00",
    language: "Tibetan; answers to Dolma",
  };

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await launchChromium();
    gw = await startGateway();
    await seedCommunity(gw, (p) => `${NOWHERE}${p}`);
    // A doctor of another community, whom nobody assigned to anyone in Chongsaikang.
    await call(gw, "POST", "/api/communities", { id: "lugu", name: "鲁固 Lugu" });
    await call(gw, "POST", "/api/people", {
      id: "dr-dawa",
      name: "达瓦医生 Dr Dawa",
      role: "doctor",
      communityId: "lugu",
    });
    await call(gw, "POST", "/api/users", {
      username: "dr-dawa",
      role: "doctor",
      personId: "dr-dawa",
      password: PEOPLE_PASSWORD,
    });
  });
  afterAll(async () => {
    await gw?.stop();
    await browser?.close();
  });
  afterEach(async () => {
    await page?.context().close();
    expect(errors.splice(0)).toEqual([]);
  });

  async function open(viewport: typeof PHONE, locale: "zh-CN" | "en-US", username: string, hash: string) {
    const context = await browser.newContext({
      viewport,
      locale,
      permissions: ["clipboard-read", "clipboard-write"],
    });
    page = await context.newPage();
    page.on("pageerror", (e) => errors.push(e.message));
    // Rotating and revoking ask first; the test says yes.
    page.on("dialog", (d) => void d.accept());
    await page.goto(`${gw.http}/${hash}`);
    await page.locator("form.signin").waitFor();
    await page.fill("#username", username);
    await page.fill("#password", username === "admin" ? ADMIN_PASSWORD : PEOPLE_PASSWORD);
    await page.locator("form.signin button[type=submit]").click();
    await page.locator(".status.live").waitFor();
  }

  /** Names, ids and addresses shown as data: allowed in any language. */
  async function dataShown(): Promise<string[]> {
    const people = (await call(gw, "GET", "/api/people")).body as { id: string; name: string }[];
    const devices = (await call(gw, "GET", "/api/devices")).body as { id: string }[];
    const grids = (await call(gw, "GET", "/api/grids")).body as { name: string }[];
    return [
      ...people.flatMap((p) => [p.name, p.id]),
      ...devices.map((d) => d.id),
      ...grids.map((g) => g.name),
      ...Object.values(care),
    ];
  }

  const childId = async () =>
    ((await call(gw, "GET", "/api/people?role=resident")).body as { id: string; category: string }[]).find(
      (p) => p.category === "child",
    )?.id as string;

  /** A real MQTT connection with these credentials: the CONNACK's refusal code, or 0 when accepted. */
  async function connackCode(id: string, secret: string): Promise<number> {
    try {
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, {
        clientId: id,
        username: id,
        password: secret,
        protocolVersion: 4,
        reconnectPeriod: 0,
      });
      await client.endAsync();
      return 0;
    } catch (err) {
      return (err as { code?: number }).code ?? -1;
    }
  }

  it("lets staff register a child, assign a guardian and write care notes, in English on a desk", async () => {
    await open(DESK, "en-US", "staff-yang", "#people");
    await page.locator("#person-add").click();
    await page.fill("#person-name", "小卓玛 Little Drolma");
    await page.selectOption("#person-category", "child");
    await page.selectOption("#person-grid", "grid-1");
    // Only a resident has a kind: the field goes away for any other role.
    await page.selectOption("#person-role", "family");
    expect(await page.locator("#person-category").isVisible()).toBe(false);
    await page.selectOption("#person-role", "resident");
    await page.click("#person-save");
    await page.locator(".responders").waitFor();
    const id = await childId();
    expect((await call(gw, "GET", `/api/people/${id}`)).body).toMatchObject({
      name: "小卓玛 Little Drolma",
      role: "resident",
      category: "child",
      gridId: "grid-1",
    });
    expect(await page.locator(`.person-row[data-person-id="${id}"] .role-badge`).textContent()).toBe("Child");
    // The grid worker follows from the grid.
    expect(await page.locator(".responders").textContent()).toContain("拉巴 Lhakpa");

    // Pema becomes her guardian: found by typing, nobody chosen before that.
    const family = page.locator(".responders details.assign").nth(1);
    await family.locator("summary").click();
    expect(await family.locator(".picker-chosen").textContent()).toBe("Nobody chosen yet.");
    await page.fill("#assign-family-search", "Pema");
    await family.locator('button[data-person-id="pema"]').click();
    await page.click("#assign-family-save");
    await page.locator('.responders li[data-relation="family"][data-person-id="pema"]').waitFor();
    expect((await call(gw, "GET", `/api/assignments?residentId=${id}`)).body).toEqual([
      expect.objectContaining({ personId: "pema", relation: "family" }),
    ]);

    for (const [field, text] of Object.entries(care)) await page.fill(`#care-${field}`, text);
    await page.click("#care-save");
    await page.locator(".care .saved").waitFor();
    expect((await call(gw, "GET", `/api/people/${id}/care`)).body).toMatchObject({
      ...care,
      updatedBy: "staff-yang",
    });
    await page.screenshot({ path: `${ARTIFACTS}/people-desk-en.png`, fullPage: true });
    // The same view, its editor open, in Chinese: no English left but the data.
    await page.selectOption("#language", "zh-CN");
    await page.locator(".care h3", { hasText: "照护信息" }).waitFor();
    expect(await englishOn(page, await dataShown())).toEqual([]);
  });

  it("registers a tag for the child, rotates its secret (copied from the page) and revokes it, on a phone in Chinese", async () => {
    const id = await childId();
    await open(PHONE, "zh-CN", "staff-yang", "#devices");
    await page.locator("form.register").waitFor();
    await page.fill("#device-id", "tag-drolma");
    await page.selectOption("#device-kind", "locator-tag");
    // No owner preselected: registering without choosing one is refused on the page.
    await page.click("#device-register");
    expect(await page.locator(".device-main .error").textContent()).toBe("请先选择设备使用人。");
    await page.fill("#device-owner-search", "卓玛");
    await page.locator(`.register button[data-person-id="${id}"]`).click();
    expect(await page.locator(".register .picker-chosen").textContent()).toBe("已选：小卓玛 Little Drolma");
    await page.click("#device-register");
    const first = (await page.locator("#device-secret").textContent()) as string;
    expect(first).toMatch(/^\S{16,}$/);
    expect((await call(gw, "GET", "/api/devices/tag-drolma")).body).toMatchObject({
      ownerId: id,
      kind: "locator-tag",
    });
    // Never connected: waiting, not offline; and the filter for it finds it.
    const row = page.locator('tr[data-device-id="tag-drolma"]');
    expect(await row.locator(".device-status").textContent()).toBe("等待首次连接");
    await page.selectOption("#device-filter-status", "waiting");
    expect(await page.locator("tbody tr[data-device-id]").count()).toBe(1);
    await page.selectOption("#device-filter-status", "all");
    expect(await englishOn(page, [...(await dataShown()), first])).toEqual([]);
    await page.screenshot({ path: `${ARTIFACTS}/devices-phone-zh.png`, fullPage: true });

    // The secret shown works for a real MQTT device.
    const device = await connectDevice(gw, { id: "tag-drolma", secret: first });
    await row.locator("#rotate-tag-drolma").click();
    await waitFor(
      async () => (await page.locator("#device-secret").textContent()) !== first,
      5000,
      "the new secret",
    );
    await page.click("#secret-copy");
    await page.locator(".secret .hint", { hasText: "已复制。" }).waitFor();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    expect(copied).toBe(await page.locator("#device-secret").textContent());
    // Rotating closed the connection; the old secret is refused, the copied one works.
    await waitFor(() => !device.client.connected, 5000, "the old connection closed");
    expect(await connackCode("tag-drolma", first)).toBe(4);
    const renewed = await connectDevice(gw, { id: "tag-drolma", secret: copied });

    await page.locator("#revoke-tag-drolma").click();
    await page.locator(".device-main .saved").waitFor();
    expect(await row.locator(".device-status").textContent()).toBe("已停用");
    await waitFor(() => !renewed.client.connected, 5000, "the revoked device disconnected");
    expect(await connackCode("tag-drolma", copied)).toBe(5);
    expect(await englishOn(page, [...(await dataShown()), copied])).toEqual([]);
  });

  it("gives a device to another resident with a searchable picker", async () => {
    await registerDevice(gw, "btn-handover", "dondrub");
    const id = await childId();
    await open(DESK, "en-US", "staff-yang", "#devices");
    await page.fill("#device-search", "handover");
    expect(await page.locator("tbody tr[data-device-id]").count()).toBe(1);
    await page.click("#owner-btn-handover");
    expect(await page.locator(".owner-editor .picker-chosen").textContent()).toBe("Nobody chosen yet.");
    await page.fill("#new-owner-search", "Drolma");
    await page.locator(`.owner-editor button[data-person-id="${id}"]`).click();
    await page.click("#owner-save");
    await page.locator(".device-main .saved").waitFor();
    expect((await call(gw, "GET", "/api/devices/btn-handover")).body.ownerId).toBe(id);
    expect(await page.locator('tr[data-device-id="btn-handover"] td >> nth=2').textContent()).toBe(
      "小卓玛 Little Drolma",
    );
    await page.selectOption("#language", "zh-CN");
    await page.locator("#device-search[type=search]").waitFor();
    expect(await englishOn(page, await dataShown())).toEqual([]);
  });

  it("shows a family member only their own, care notes to read and nothing to change, on a phone", async () => {
    const id = await childId();
    await open(PHONE, "zh-CN", "pema", "#people");
    await page.locator(".person-row").first().waitFor();
    const shown = await page
      .locator(".person-row")
      .evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.personId));
    expect(shown.sort()).toEqual(["dondrub", id, "pema"].sort());
    expect(await page.locator("#person-add").count()).toBe(0);
    await page.click(`.person-row[data-person-id="${id}"]`);
    await page.locator(".care-notes").waitFor();
    expect(await page.locator(".care-notes").textContent()).toContain(care.allergies);
    expect(await page.locator("#person-save, #care-save, #care-allergies").count()).toBe(0);
    expect(await page.locator("#person-name").isDisabled()).toBe(true);
    // Her devices only, and no actions on them.
    await page.goto(`${gw.http}/#devices`);
    await page.locator("tbody tr[data-device-id]").first().waitFor();
    const devices = await page
      .locator("tbody tr[data-device-id]")
      .evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.deviceId));
    expect(devices.sort()).toEqual(["btn-handover", "tag-drolma"]);
    expect(await page.locator("form.register, .device-actions").count()).toBe(0);
    expect(await englishOn(page, await dataShown())).toEqual([]);
    await page.screenshot({ path: `${ARTIFACTS}/people-family-phone-zh.png`, fullPage: true });
  });

  it("shows the care notes in an alert's detail to the doctor in scope, and not to one outside", async () => {
    await call(gw, "PUT", "/api/people/dondrub/care", {
      medicines: "Nifedipine 10 mg, kitchen drawer",
      doorAccess: "Code 4711",
    });
    const button = await connectDevice(gw, await registerDevice(gw, "btn-dondrub"));
    await button.event("press");
    const { alertId } = await button.waitForCommand("received");
    await button.close();

    // A read that fails says so: an allergy or a door code must not silently go missing.
    await open(DESK, "en-US", "dr-tsering", "#alerts");
    await page.route("**/api/people/dondrub/care", (route) =>
      route.fulfill({
        status: 503,
        contentType: "application/json",
        body: '{"error":{"code":"not_ready","message":"x"}}',
      }),
    );
    await page.goto(`${gw.http}/?alert=${alertId}#alerts`);
    await page.locator("dialog .alert-care p.error", { hasText: "Care notes could not be loaded" }).waitFor();
    await page.unroute("**/api/people/dondrub/care");
    await page.reload();
    const notes = page.locator("dialog .alert-care");
    await notes.waitFor();
    expect(await notes.textContent()).toContain("Nifedipine 10 mg, kitchen drawer");
    expect(await notes.textContent()).toContain("Door access");
    await page.context().close();

    // The doctor of another community: the alert's link opens nothing, the notes are not his to read.
    await open(DESK, "en-US", "dr-dawa", `?alert=${alertId}#alerts`);
    const careRead = await page.evaluate(async () => (await fetch("/api/people/dondrub/care")).status);
    expect(careRead).toBe(404);
    expect(await page.locator(`[data-alert-id="${alertId}"], dialog[open]`).count()).toBe(0);
    expect(await page.content()).not.toContain("Nifedipine");
    await page.goto(`${gw.http}/#people`);
    await page.locator(".person-row").first().waitFor();
    expect(await page.locator('.person-row[data-person-id="dondrub"]').count()).toBe(0);
  });

  it("lets an admin create, disable, reset and unlock accounts and filter the access log, in Chinese", async () => {
    await open(DESK, "zh-CN", "admin", "#accounts");
    await page.locator("#account-create").waitFor();
    await page.fill("#account-username", "yang-phone");
    await page.fill("#account-password", "a-new-staff-password");
    await page.selectOption("#account-role", "staff");
    // No person chosen: refused on the page, nothing created.
    await page.click("#account-create");
    expect(await page.locator("#accounts-said").textContent()).toBe("请选择账户对应的人员。");
    await page.fill("#account-person-search", "杨");
    await page.locator('.register button[data-person-id="staff-yang"]').click();
    await page.click("#account-create");
    await page.locator('tr[data-username="yang-phone"]').waitFor();
    expect((await login(gw, "yang-phone", "a-new-staff-password")).csrf).toBeTruthy();

    await page.click("#toggle-yang-phone");
    await page.locator('tr[data-username="yang-phone"].revoked').waitFor();
    await expect(login(gw, "yang-phone", "a-new-staff-password")).rejects.toThrow(/401/);
    await page.click("#toggle-yang-phone");
    await page.locator('tr[data-username="yang-phone"]:not(.revoked)').waitFor();

    await page.click("#reset-open-yang-phone");
    await page.fill("#reset-yang-phone", "reset-by-the-admin");
    await page.click("#reset-save-yang-phone");
    await page.locator("#accounts-said", { hasText: "yang-phone的密码已重置" }).waitFor();
    expect((await login(gw, "yang-phone", "reset-by-the-admin")).csrf).toBeTruthy();

    // Blocked by wrong guesses, unlocked from the page.
    for (let i = 0; i < 5; i++)
      await call(gw, "POST", "/api/session", { username: "yang-phone", password: "wrong-guess-000" }, null);
    const blocked = await call(
      gw,
      "POST",
      "/api/session",
      { username: "yang-phone", password: "reset-by-the-admin" },
      null,
    );
    expect(blocked.status).toBe(429);
    await page.click("#unlock-yang-phone");
    await page.locator("#accounts-said", { hasText: "yang-phone可以重新在任何地方登录" }).waitFor();
    expect((await login(gw, "yang-phone", "reset-by-the-admin")).csrf).toBeTruthy();

    // The log, filtered to who read care notes: only those rows, named in Chinese.
    await page.selectOption("#audit-action", "care.read");
    await page.click("#audit-search");
    await page.locator('#audit-rows tr[data-action="care.read"]').first().waitFor();
    const actions = await page
      .locator("#audit-rows tr")
      .evaluateAll((rows) => [...new Set(rows.map((r) => (r as HTMLElement).dataset.action))]);
    expect(actions).toEqual(["care.read"]);
    expect(await page.locator("#audit-rows tr td >> nth=2").textContent()).toBe("查看照护信息");
    const readers = await page.locator("#audit-rows tr td:nth-child(2)").allTextContents();
    // Dr Dawa asked too, and was refused before reading: not a reader.
    expect(new Set(readers)).toEqual(new Set(["admin", "staff-yang", "pema", "dr-tsering"]));
    // A day before anything happened: nothing.
    await page.fill("#audit-to", "2020-01-01");
    await page.locator("#audit-to").dispatchEvent("change");
    await page.click("#audit-search");
    await page.waitForFunction(() => document.querySelectorAll("#audit-rows tr").length === 0);
    expect(await page.locator(".audit .muted").textContent()).toBe("共0条，最新的在前");
    const accounts = (await call(gw, "GET", "/api/users")).body as { username: string }[];
    const details = (await call(gw, "GET", "/api/audit?limit=1000")).body as { detail: unknown }[];
    const data = [
      ...(await dataShown()),
      ...accounts.map((a) => a.username),
      ...details.flatMap((d) => (d.detail ? [JSON.stringify(d.detail)] : [])),
    ];
    expect(await englishOn(page, data)).toEqual([]);
    await page.screenshot({ path: `${ARTIFACTS}/accounts-admin-zh.png`, fullPage: true });
  });

  it("lets anyone change their own password, and only the admin see accounts", async () => {
    await open(PHONE, "zh-CN", "pema", "#accounts");
    await page.locator("#own-save").waitFor();
    expect(await page.locator("#account-create, #audit-rows").count()).toBe(0);
    await page.fill("#own-current", PEOPLE_PASSWORD);
    await page.fill("#own-new", "pema-new-password");
    await page.fill("#own-repeat", "pema-new-passwort");
    await page.click("#own-save");
    expect(await page.locator("#own-said").textContent()).toBe("两次输入的新密码不一致。");
    await page.fill("#own-current", "not-her-password");
    await page.fill("#own-repeat", "pema-new-password");
    await page.click("#own-save");
    await page.locator("#own-said", { hasText: "用户名或密码错误" }).waitFor();
    expect(await englishOn(page, await dataShown())).toEqual([]);
    await page.fill("#own-current", PEOPLE_PASSWORD);
    await page.click("#own-save");
    // Every session ended, this one too: the page asks to sign in again, and the new password works.
    await page.locator("form.signin").waitFor();
    expect((await login(gw, "pema", "pema-new-password")).csrf).toBeTruthy();
    await expect(login(gw, "pema", PEOPLE_PASSWORD)).rejects.toThrow(/401/);
  });

  it("keeps a device never heard from 'waiting for first connection', with no offline alarm, past its allowance", async () => {
    // Its own gateway, on a clock the test moves: past a tag's allowance of three missed heartbeats.
    const clock = new FakeClock(Date.now());
    const quiet = await startGateway({ clock });
    try {
      await seedCommunity(quiet, (p) => `${NOWHERE}${p}`);
      await registerDevice(quiet, "tag-unboxed", "dondrub", "locator-tag");
      const heard = await connectDevice(
        quiet,
        await registerDevice(quiet, "tag-heard", "dondrub", "locator-tag"),
      );
      await heard.close();
      await clock.advance(10 * 60_000);
      const states = (await call(quiet, "GET", "/api/devices")).body as {
        id: string;
        state: { online: boolean };
      }[];
      // The silent one is offline and alarmed; the one never heard from is neither.
      expect(states.map((d) => [d.id, d.state?.online])).toEqual([
        ["tag-heard", false],
        ["tag-unboxed", undefined],
      ]);
      const offline = (await call(quiet, "GET", "/api/alerts")).body as {
        kind: string;
        deviceId: string;
      }[];
      expect(offline.filter((a) => a.kind === "device-offline").map((a) => a.deviceId)).toEqual([
        "tag-heard",
      ]);
      const context = await browser.newContext({ viewport: DESK, locale: "zh-CN" });
      page = await context.newPage();
      page.on("pageerror", (e) => errors.push(e.message));
      await page.goto(`${quiet.http}/#devices`);
      await page.fill("#username", "staff-yang");
      await page.fill("#password", PEOPLE_PASSWORD);
      await page.locator("form.signin button[type=submit]").click();
      await page.locator('tr[data-device-id="tag-unboxed"]').waitFor();
      const status = (id: string) => page.locator(`tr[data-device-id="${id}"] .device-status`).textContent();
      expect(await status("tag-unboxed")).toBe("等待首次连接");
      expect(await status("tag-heard")).toBe("离线");
    } finally {
      await page?.context().close();
      await quiet.stop();
    }
  });
});
