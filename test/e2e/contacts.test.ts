import { mkdirSync } from "node:fs";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { englishOn, launchChromium } from "../support/browser.ts";
import {
  ADMIN_PASSWORD,
  call,
  PEOPLE_PASSWORD,
  seedCommunity,
  startGateway,
  type TestGateway,
} from "../support/gateway.ts";

const ARTIFACTS = "test-artifacts";
const PHONE = { width: 390, height: 844 };
const DESK = { width: 1280, height: 900 };
/** Nothing listens there: the page only reads which channels are configured, nothing is sent. */
const NOWHERE = "http://127.0.0.1:9";
/** WeCom and SMS set up; DingTalk and voice not, so the page must show them as unavailable. */
const CHANNELS = {
  WECOM_ROBOT_KEY: "wecom-key-e2e",
  WECOM_ROBOT_URL: `${NOWHERE}/cgi-bin/webhook/send`,
  ALIYUN_ACCESS_KEY_ID: "LTAI-e2e",
  ALIYUN_ACCESS_KEY_SECRET: "aliyun-secret-e2e",
  ALIYUN_SMS_SIGN_NAME: "社区平安",
  ALIYUN_SMS_TEMPLATE_PAGED: "SMS_100",
  ALIYUN_SMS_TEMPLATE_FOLLOW_UP: "SMS_200",
  ALIYUN_SMS_URL: `${NOWHERE}/`,
};

describe("the notifications view in Chromium", { timeout: 90_000 }, () => {
  let browser: Browser;
  let gw: TestGateway;
  let page: Page;
  const errors: string[] = [];

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await launchChromium();
  });
  afterAll(() => browser?.close());

  beforeEach(async () => {
    gw = await startGateway({ env: CHANNELS });
    await seedCommunity(gw, (p) => `${NOWHERE}${p}`);
  });
  afterEach(async () => {
    await page?.close();
    await gw.stop();
    expect(errors.splice(0)).toEqual([]);
  });

  async function open(viewport: typeof PHONE, locale: "zh-CN" | "en-US", username: string) {
    page = await browser.newPage({ viewport, locale });
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${gw.http}/#contacts`);
    await page.locator("form.signin").waitFor();
    await page.fill("#username", username);
    await page.fill("#password", username === "admin" ? ADMIN_PASSWORD : PEOPLE_PASSWORD);
    await page.locator("form.signin button[type=submit]").click();
    await page.locator(".status.live").waitFor();
  }

  const contactsOf = async (personId: string) =>
    (await call(gw, "GET", `/api/people/${personId}/contacts`)).body.contacts;

  /** Names, ids and addresses the view shows as data: allowed to be in any script. */
  async function dataShown(): Promise<string[]> {
    const people = (await call(gw, "GET", "/api/people")).body as { id: string; name: string }[];
    return people.flatMap((p) => [p.name, p.id, `${NOWHERE}/${p.id}`]);
  }

  it("lets a family member add an SMS for SOS from level 2 and put it first, on a phone in Chinese", async () => {
    const before = await contactsOf("pema");
    expect(before).toEqual([{ kind: "webhook", address: `${NOWHERE}/pema`, alertKinds: null, minLevel: 1 }]);
    await open(PHONE, "zh-CN", "pema");
    await page.locator("#mine-0-kind").waitFor();
    // Family edit only their own list: no one else to pick, one list on the page.
    expect(await page.locator("#reach-person").count()).toBe(0);
    expect(await page.locator(".reach-editor").count()).toBe(1);
    expect(await page.locator(".reach-editor h2").textContent()).toBe("我的通知方式");

    await page.click("#mine-add");
    // Channels not set up here are listed as such and cannot be chosen.
    const options = await page
      .locator("#mine-1-kind option")
      .evaluateAll((os) =>
        os.map((o) => [(o as HTMLOptionElement).value, (o as HTMLOptionElement).disabled]),
      );
    expect(options).toEqual([
      ["webhook", false],
      ["wecom", false],
      ["dingtalk", true],
      ["sms", false],
      ["voice", true],
    ]);
    await page.selectOption("#mine-1-kind", "sms");
    expect(await page.getAttribute("#mine-1-address", "type")).toBe("tel");
    await page.check("#mine-1-some");
    await page.check("#mine-1-kind-sos");
    await page.selectOption("#mine-1-level", "2");
    await page.fill("#mine-1-address", "139-0000-000x");
    expect(await englishOn(page, await dataShown())).toEqual([]);

    // A number the gateway refuses: its error in Chinese, the way it names marked, nothing stored.
    await page.click("#mine-save");
    const error = page.locator(".reach-editor .error");
    await error.waitFor();
    expect(await error.textContent()).toBe("未保存：请求无效，请检查填写的内容。请检查第2种方式。");
    expect(await page.getAttribute("#mine-1-address", "aria-invalid")).toBe("true");
    expect(await contactsOf("pema")).toEqual(before);
    expect(await englishOn(page, await dataShown())).toEqual([]);

    // Written as people write numbers, with dashes; put first; saved.
    await page.fill("#mine-1-address", "+86 139-0000-0002");
    await page.click("#mine-1-up");
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("mine-0-down");
    await page.click("#mine-save");
    await page.locator(".reach-status.saved").waitFor();
    expect(await page.locator(".reach-editor .error").count()).toBe(0);
    expect(await contactsOf("pema")).toEqual([
      { kind: "sms", address: "+8613900000002", alertKinds: ["sos"], minLevel: 2 },
      { kind: "webhook", address: `${NOWHERE}/pema`, alertKinds: null, minLevel: 1 },
    ]);
    expect(await englishOn(page, [...(await dataShown()), "+8613900000002"])).toEqual([]);
    await page.screenshot({ path: `${ARTIFACTS}/contacts-phone-zh-family.png`, fullPage: true });
    // Nothing on the page is wider than the phone, at the normal text size and the largest.
    const width = () => page.evaluate(() => document.documentElement.scrollWidth);
    expect(await width()).toBeLessThanOrEqual(PHONE.width);
    await page.click(".controls summary");
    await page.selectOption("#text-size", "150");
    expect(await width()).toBeLessThanOrEqual(PHONE.width);
    await page.selectOption("#text-size", "100");

    // A fresh load shows what was stored.
    await page.reload();
    await page.locator("#mine-1-kind").waitFor();
    expect(await page.inputValue("#mine-0-kind")).toBe("sms");
    expect(await page.inputValue("#mine-0-address")).toBe("+8613900000002");
    expect(await page.inputValue("#mine-0-level")).toBe("2");
    expect(await page.isChecked("#mine-0-kind-sos")).toBe(true);
    expect(await page.isChecked("#mine-0-kind-call")).toBe(false);
    expect(await page.inputValue("#mine-1-kind")).toBe("webhook");
  });

  it("lets staff find a resident's doctor and change how the doctor is reached, on a desk in English", async () => {
    await open(DESK, "en-US", "staff-yang");
    await page.locator("#mine-0-kind").waitFor();
    expect(await page.inputValue("#reach-person")).toBe("");
    expect(await page.locator(".reach-editor").count()).toBe(1);

    await page.fill("#reach-search", "tsering");
    const offered = await page.locator("#reach-person option").allTextContents();
    expect(offered).toEqual(["Choose a person (1)", "次仁医生 Dr Tsering · Doctor"]);
    await page.selectOption("#reach-person", "dr-tsering");
    await page.locator("#other-0-kind").waitFor();
    expect(await page.locator(".reach-editor h2").allTextContents()).toEqual([
      "How I am reached",
      "How 次仁医生 Dr Tsering is reached",
    ]);
    expect(await page.locator("#other-0-kind option[value=voice]").textContent()).toBe(
      "Voice call (not set up on this gateway)",
    );

    await page.click("#other-add");
    expect(await page.inputValue("#other-1-kind")).toBe("wecom");
    await page.fill("#other-1-address", "+8613800000001");
    await page.selectOption("#other-0-level", "3");
    await page.click("#other-1-up");
    await page.click("#other-save");
    await page.locator("#other-save ~ .reach-status.saved").waitFor();
    expect(await page.locator("#other-save ~ .reach-status").textContent()).toBe(
      "Saved: alerts now go this way.",
    );
    expect(await contactsOf("dr-tsering")).toEqual([
      { kind: "wecom", address: "+8613800000001", alertKinds: null, minLevel: 1 },
      { kind: "webhook", address: `${NOWHERE}/dr-tsering`, alertKinds: null, minLevel: 3 },
    ]);
    // Their own list was not touched.
    expect(await contactsOf("staff-yang")).toEqual([
      { kind: "webhook", address: `${NOWHERE}/staff-yang`, alertKinds: null, minLevel: 1 },
    ]);
    await page.screenshot({ path: `${ARTIFACTS}/contacts-desk-en-staff.png`, fullPage: true });
  });
  it("gives an admin with no person of their own only the search, used by keyboard alone", async () => {
    await open(PHONE, "zh-CN", "admin");
    await page.locator("#reach-search").waitFor();
    expect(await page.locator(".reach-editor").count()).toBe(0);
    // Everyone who can be paged, by pinyin; residents are what alerts are about, never paged.
    expect(await page.locator("#reach-person option").allTextContents()).toEqual([
      "请选择人员（共4人）",
      "白玛 Pema · 家属",
      "次仁医生 Dr Tsering · 社区医生",
      "拉巴 Lhakpa · 网格员",
      "杨 Yang · 社区工作人员",
    ]);
    await page.focus("#reach-search");
    await page.keyboard.type("白玛");
    await page.keyboard.press("Tab");
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("reach-person");
    await page.keyboard.press("ArrowDown");
    await page.locator("#other-0-kind").waitFor();
    expect(await page.inputValue("#reach-person")).toBe("pema");
    expect(await page.locator(".reach-editor h2").textContent()).toBe("白玛 Pema的通知方式");
    // The account's username is data too.
    expect(await englishOn(page, [...(await dataShown()), "admin"])).toEqual([]);
  });
});
