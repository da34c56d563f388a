import { createHmac } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { signAliyun } from "../../gateway/notify/channels/aliyun.ts";
import { migrations } from "../../gateway/store/migrations.ts";
import { openSqliteStore } from "../../gateway/store/sqlite.ts";
import { FakeClock } from "../support/fake-clock.ts";
import {
  call,
  connectDevice,
  registerDevice,
  seedCommunity,
  signIn,
  startGateway,
  type TestGateway,
  tempDataDir,
  WEBHOOK_SECRET,
} from "../support/gateway.ts";
import { waitFor } from "../support/wait.ts";
import { type ReceivedWebhook, startWebhookServer } from "../support/webhook-server.ts";

const SECRETS = {
  WECOM_ROBOT_KEY: "wecom-key-7f3a9c0e",
  DINGTALK_ROBOT_TOKEN: "ding-token-51bd77a2",
  DINGTALK_ROBOT_SECRET: "SECding-secret-88e2f1",
  ALIYUN_ACCESS_KEY_ID: "LTAI-test-id-4411ab",
  ALIYUN_ACCESS_KEY_SECRET: "aliyun-secret-9d0c3e",
};
const PUBLIC_URL = "https://safety.example.org";
const DOCTOR_MOBILE = "+8613800000001";
const FAMILY_MOBILE = "+8613900000002";
const OK_ROBOT = JSON.stringify({ errcode: 0, errmsg: "ok" });
const OK_SMS = JSON.stringify({ Code: "OK", Message: "OK", BizId: "900", RequestId: "r-1" });
const OK_CALL = JSON.stringify({ Code: "OK", Message: "OK", CallId: "call-7", RequestId: "r-2" });

/** Aliyun's RPC signature as its documentation spells it, written here apart from the gateway's. */
function aliyunSignatureOf(form: URLSearchParams, secret: string): string {
  const encode = (s: string) =>
    encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const query = [...form.entries()]
    .filter(([k]) => k !== "Signature")
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${encode(k)}=${encode(v)}`)
    .join("&");
  return createHmac("sha1", `${secret}&`)
    .update(`POST&${encode("/")}&${encode(query)}`)
    .digest("base64");
}

describe("request signatures", () => {
  it("signs Aliyun RPC requests as Aliyun's documented example does", () => {
    // help.aliyun.com, 签名机制: DescribeRegions with AccessKey testid / testsecret.
    const params = {
      TimeStamp: "2016-02-23T12:46:24Z",
      Format: "XML",
      AccessKeyId: "testid",
      Action: "DescribeRegions",
      SignatureMethod: "HMAC-SHA1",
      SignatureNonce: "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
      Version: "2014-05-26",
      SignatureVersion: "1.0",
    };
    expect(signAliyun("GET", params, "testsecret")).toBe("CT9X0VtwR86fNWSnsc6v8YGOjuE=");
  });
});

describe("migration 8", () => {
  it("keeps the webhook contacts of a database made before it, in order, for every alert kind and level", async () => {
    const dataDir = tempDataDir();
    const db = new Database(join(dataDir, "gateway.db"));
    db.exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at INTEGER)");
    for (const m of migrations.filter((m) => m.version < 8)) {
      db.exec(m.sql);
      db.prepare("INSERT INTO schema_migrations VALUES (?, ?, ?)").run(m.version, m.name, 0);
    }
    db.exec(`INSERT INTO communities VALUES ('c', 'C');
      INSERT INTO people (id, name, role, community_id) VALUES ('dr', 'Dr', 'doctor', 'c'), ('fam', 'Fam', 'family', 'c');
      INSERT INTO contacts VALUES ('dr', 'webhook', 'https://b.example.org/2'), ('fam', 'webhook', 'https://a.example.org/1'),
        ('dr', 'webhook', 'https://a.example.org/1')`);
    db.close();
    const store = openSqliteStore(dataDir);
    try {
      expect((await store.registry.getPerson("dr"))?.contacts).toEqual([
        { kind: "webhook", address: "https://b.example.org/2", alertKinds: null, minLevel: 1 },
        { kind: "webhook", address: "https://a.example.org/1", alertKinds: null, minLevel: 1 },
      ]);
      expect((await store.registry.getPerson("fam"))?.contacts).toHaveLength(1);
    } finally {
      await store.close();
    }
  });
});

describe("channels: WeCom and DingTalk robots, Aliyun SMS and voice calls", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /** A gateway whose providers are fakes on this machine, each answering what the test sets. */
  async function world(
    options: {
      env?: Record<string, string>;
      secretsInFile?: boolean;
      logs?: string[];
      /** Secrets left out, so that their channel is not configured. */
      without?: (keyof typeof SECRETS)[];
    } = {},
  ) {
    const clock = new FakeClock();
    const hooks = await startWebhookServer();
    const wecom = await startWebhookServer({ body: OK_ROBOT });
    const dingtalk = await startWebhookServer({ body: OK_ROBOT });
    const sms = await startWebhookServer({ body: OK_SMS });
    const voice = await startWebhookServer({ body: OK_CALL });
    const servers = [hooks, wecom, dingtalk, sms, voice];
    cleanups.push(() => Promise.all(servers.map((s) => s.close())));
    const dataDir = tempDataDir();
    let secrets: Record<string, string> = Object.fromEntries(
      Object.entries(SECRETS).filter(([k]) => !options.without?.includes(k as keyof typeof SECRETS)),
    );
    if (options.secretsInFile) {
      const file = join(dataDir, "secrets.json");
      writeFileSync(file, JSON.stringify(secrets));
      secrets = { SECRETS_FILE: file };
    }
    const logs = options.logs;
    const gw = await startGateway({
      clock,
      dataDir,
      logTo: logs && { write: (line: string) => void logs.push(line) },
      env: {
        ...secrets,
        PUBLIC_URL,
        WECOM_ROBOT_URL: wecom.url("/cgi-bin/webhook/send"),
        DINGTALK_ROBOT_URL: dingtalk.url("/robot/send"),
        ALIYUN_SMS_URL: sms.url("/"),
        ALIYUN_VOICE_URL: voice.url("/"),
        ALIYUN_SMS_SIGN_NAME: "社区平安",
        ALIYUN_SMS_TEMPLATE_PAGED: "SMS_100",
        ALIYUN_SMS_TEMPLATE_FOLLOW_UP: "SMS_200",
        ALIYUN_VOICE_TTS_CODE: "TTS_300",
        ...options.env,
      },
    });
    cleanups.push(() => gw.stop());
    await seedCommunity(gw, (path) => hooks.url(path));
    const patched = await call(gw, "PATCH", "/api/people/dondrub", { address: "冲赛康3栋2单元" });
    expect(patched.status).toBe(200);
    return { gw, clock, hooks, wecom, dingtalk, sms, voice };
  }

  /** Sets where a person's alerts go, as that person. */
  async function setContacts(gw: TestGateway, personId: string, contacts: unknown[]) {
    const res = await call(
      gw,
      "PUT",
      `/api/people/${personId}/contacts`,
      { contacts },
      await signIn(gw, personId),
    );
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.contacts;
  }

  async function press(gw: TestGateway, deviceId: string) {
    const device = await connectDevice(gw, await registerDevice(gw, deviceId));
    cleanups.push(() => device.close());
    await device.event("press");
    return (await device.waitForCommand("received")).alertId;
  }

  type Attempt = { personId: string; channel: string; event: string; status: string; detail: string };
  /** The alert's notification attempts (not device commands) once none is pending. */
  const settledAttempts = (gw: TestGateway, alertId: string, count: number) =>
    waitFor(
      async () => {
        const all = ((await call(gw, "GET", `/api/alerts/${alertId}`)).body.attempts as Attempt[]).filter(
          (a) => a.channel !== "device",
        );
        return all.length === count && all.every((a) => a.status !== "pending") && all;
      },
      5000,
      `${count} settled attempts`,
    );
  const said = (attempts: Attempt[]) =>
    attempts.map((a) => `${a.event} ${a.personId} ${a.channel} ${a.status}: ${a.detail}`);

  it("a press reaches the doctor's WeCom group as markdown with the resident, address, level and a link to accept; follow-ups reach the family on the channel that paged her, in her language", async () => {
    const { gw, clock, wecom, dingtalk, hooks } = await world();
    await setContacts(gw, "dr-tsering", [{ kind: "wecom", address: DOCTOR_MOBILE }]);
    await setContacts(gw, "pema", [
      { kind: "dingtalk", address: FAMILY_MOBILE },
      { kind: "webhook", address: hooks.url("/pema") },
    ]);
    expect((await call(gw, "PATCH", "/api/people/pema", { locale: "en" })).status).toBe(200);

    const alertId = await press(gw, "btn-dondrub");
    const page = await waitFor(() => wecom.received[0], 5000, "the WeCom message");
    expect(page.path).toBe(`/cgi-bin/webhook/send?key=${SECRETS.WECOM_ROBOT_KEY}`);
    expect(page.headers["content-type"]).toBe("application/json");
    expect(page.json.msgtype).toBe("markdown");
    const content = (page.json.markdown as { content: string }).content;
    expect(content).toContain("顿珠 Dondrub");
    expect(content).toContain("一键呼叫");
    expect(content).toContain("冲赛康3栋2单元");
    expect(content).toContain("第1级");
    expect(content).toContain(`[点此接单](${PUBLIC_URL}/?alert=${alertId}#alerts)`);
    expect(Buffer.byteLength(content)).toBeLessThanOrEqual(2048);
    expect(said(await settledAttempts(gw, alertId, 1))).toEqual([
      "paged dr-tsering wecom delivered: posted to the group",
    ]);

    // Nobody accepts within 60 s: the family is paged on DingTalk, her first contact.
    await clock.advance(60_000);
    await settledAttempts(gw, alertId, 2);
    const accepted = await call(
      gw,
      "POST",
      `/api/alerts/${alertId}/accept`,
      {},
      await signIn(gw, "dr-tsering"),
    );
    expect(accepted.status).toBe(200);
    const resolved = await call(
      gw,
      "POST",
      `/api/alerts/${alertId}/resolve`,
      { note: "blood pressure fine" },
      await signIn(gw, "dr-tsering"),
    );
    expect(resolved.status).toBe(200);
    expect(said(await settledAttempts(gw, alertId, 4))).toEqual([
      "paged dr-tsering wecom delivered: posted to the group",
      "paged pema dingtalk delivered: posted to the group",
      "accepted pema dingtalk delivered: posted to the group",
      "resolved pema dingtalk delivered: posted to the group",
    ]);
    const texts = dingtalk.received.map((r) => (r.json.markdown as { text: string }).text);
    expect(texts[0]).toContain("Dondrub: call (level 2)");
    expect(texts[1]).toContain("顿珠 Dondrub's call was accepted by 次仁医生 Dr Tsering");
    expect(texts[2]).toContain("顿珠 Dondrub's call is resolved");
    // Her webhook, second in her list, was never needed.
    expect(hooks.received.filter((h) => h.path === "/pema")).toEqual([]);
  }, 30_000);

  it("signs DingTalk requests with HmacSHA256 over timestamp and secret, and @-mentions the person", async () => {
    const { gw, clock, dingtalk } = await world();
    await setContacts(gw, "dr-tsering", [{ kind: "dingtalk", address: DOCTOR_MOBILE }]);
    await press(gw, "btn-dondrub");
    const req = await waitFor(() => dingtalk.received[0], 5000, "the DingTalk message");
    const url = new URL(req.path, "http://robot");
    expect(url.pathname).toBe("/robot/send");
    expect(url.searchParams.get("access_token")).toBe(SECRETS.DINGTALK_ROBOT_TOKEN);
    const timestamp = url.searchParams.get("timestamp") ?? "";
    expect(timestamp).toBe(String(clock.now()));
    const expected = createHmac("sha256", SECRETS.DINGTALK_ROBOT_SECRET)
      .update(`${timestamp}\n${SECRETS.DINGTALK_ROBOT_SECRET}`)
      .digest("base64");
    // In the raw query the signature is URL-encoded once: `+`, `/` and `=` escaped.
    expect(/[?&]sign=([^&]+)/.exec(req.path)?.[1]).toBe(encodeURIComponent(expected));
    expect(req.json).toMatchObject({
      msgtype: "markdown",
      markdown: { title: "一键呼叫 · 顿珠 Dondrub" },
      // Chinese services take a mainland number as its 11 digits.
      at: { atMobiles: ["13800000001"], isAtAll: false },
    });
    expect((req.json.markdown as { text: string }).text).toContain("@13800000001");
  }, 30_000);

  it("a voice call that cannot be made falls through to SMS at once; both requests are signed as Aliyun documents", async () => {
    const { gw, voice, sms } = await world();
    // Some numbers (in Tibet among others) cannot be called.
    voice.state.body = JSON.stringify({ Code: "isv.OUT_OF_SERVICE", Message: "the number cannot be called" });
    await setContacts(gw, "dr-tsering", [
      { kind: "voice", address: DOCTOR_MOBILE, alertKinds: ["call", "sos", "fall"] },
      { kind: "sms", address: DOCTOR_MOBILE },
    ]);
    const alertId = await press(gw, "btn-dondrub");
    expect(said(await settledAttempts(gw, alertId, 2))).toEqual([
      "paged dr-tsering voice failed: isv.OUT_OF_SERVICE: the number cannot be called",
      "paged dr-tsering sms accepted: Aliyun SMS took it (BizId 900)",
    ]);
    const form = (r: ReceivedWebhook) => new URLSearchParams(r.body);
    const call_ = form(voice.received[0] as ReceivedWebhook);
    expect(Object.fromEntries(call_)).toMatchObject({
      Action: "SingleCallByTts",
      Version: "2017-05-25",
      Format: "JSON",
      SignatureMethod: "HMAC-SHA1",
      SignatureVersion: "1.0",
      AccessKeyId: SECRETS.ALIYUN_ACCESS_KEY_ID,
      CalledNumber: "13800000001",
      TtsCode: "TTS_300",
      OutId: alertId,
    });
    expect(JSON.parse(call_.get("TtsParam") ?? "")).toEqual({
      name: "顿珠 Dondrub",
      kind: "一键呼叫",
      address: "冲赛康3栋2单元",
    });
    expect(call_.get("Signature")).toBe(aliyunSignatureOf(call_, SECRETS.ALIYUN_ACCESS_KEY_SECRET));
    const text = form(sms.received[0] as ReceivedWebhook);
    expect(sms.received[0]?.headers["content-type"]).toBe("application/x-www-form-urlencoded");
    expect(Object.fromEntries(text)).toMatchObject({
      Action: "SendSms",
      PhoneNumbers: "13800000001",
      SignName: "社区平安",
      TemplateCode: "SMS_100",
    });
    expect(JSON.parse(text.get("TemplateParam") ?? "")).toEqual({
      name: "顿珠 Dondrub",
      kind: "一键呼叫",
      address: "冲赛康3栋2单元",
      level: "第1级",
      link: `${PUBLIC_URL}/?alert=${alertId}#alerts`,
    });
    expect(text.get("Signature")).toBe(aliyunSignatureOf(text, SECRETS.ALIYUN_ACCESS_KEY_SECRET));
  }, 30_000);

  it("calls a number at most once a minute, then sends an SMS; follow-ups never call; voice is for the levels and kinds chosen", async () => {
    const { gw, voice, sms, wecom } = await world();
    // A voice call, then (added by the gateway) an SMS to the same number: sent even when the call
    // was placed, as a placed call may ring unanswered.
    await setContacts(gw, "dr-tsering", [{ kind: "voice", address: DOCTOR_MOBILE }]);
    const first = await press(gw, "btn-1");
    const second = await press(gw, "btn-2");
    expect(said(await settledAttempts(gw, first, 2))).toEqual([
      "paged dr-tsering voice accepted: Aliyun voice took it (CallId call-7)",
      "paged dr-tsering sms accepted: Aliyun SMS took it (BizId 900)",
    ]);
    expect(said(await settledAttempts(gw, second, 2))).toEqual([
      "paged dr-tsering voice failed: rate limit: at most 1 call a minute to this number",
      "paged dr-tsering sms accepted: Aliyun SMS took it (BizId 900)",
    ]);
    expect(voice.received).toHaveLength(1);
    expect(sms.received).toHaveLength(2);

    // The family accepts the first: the doctor, reached by a call, hears of it by SMS, not another call.
    const byFamily = await call(gw, "POST", `/api/alerts/${first}/accept`, {}, await signIn(gw, "pema"));
    expect(byFamily.status).toBe(200);
    expect(said(await settledAttempts(gw, first, 3))[2]).toBe(
      "accepted dr-tsering sms accepted: Aliyun SMS took it (BizId 900)",
    );
    expect(voice.received).toHaveLength(1);
    const followUp = new URLSearchParams(sms.received[2]?.body);
    expect(followUp.get("TemplateCode")).toBe("SMS_200");
    expect(JSON.parse(followUp.get("TemplateParam") ?? "")).toEqual({
      name: "顿珠 Dondrub",
      kind: "一键呼叫",
      status: "顿珠 Dondrub的一键呼叫已由白玛 Pema接单",
    });

    // From level 2 only: a level-1 page goes to the next contact without a call.
    await setContacts(gw, "dr-tsering", [
      { kind: "voice", address: "+8613800000009", minLevel: 2 },
      { kind: "wecom", address: DOCTOR_MOBILE },
    ]);
    const third = await press(gw, "btn-3");
    expect(said(await settledAttempts(gw, third, 1))).toEqual([
      "paged dr-tsering wecom delivered: posted to the group",
    ]);
    expect(voice.received).toHaveLength(1);
    expect(wecom.received).toHaveLength(1);
  }, 30_000);

  it("a throttled robot falls through to the next contact, and is left alone while DingTalk blocks it", async () => {
    const { gw, dingtalk, hooks } = await world();
    dingtalk.state.body = JSON.stringify({
      errcode: 130101,
      errmsg: "send too fast, exceed 20 times per minute",
    });
    await setContacts(gw, "dr-tsering", [
      { kind: "dingtalk", address: DOCTOR_MOBILE },
      { kind: "webhook", address: hooks.url("/dr-tsering") },
    ]);
    const first = await press(gw, "btn-1");
    expect(said(await settledAttempts(gw, first, 2))).toEqual([
      "paged dr-tsering dingtalk failed: DingTalk errcode 130101: send too fast, exceed 20 times per minute",
      "paged dr-tsering webhook delivered: HTTP 200",
    ]);
    const second = await press(gw, "btn-2");
    const attempts = await settledAttempts(gw, second, 2);
    expect(attempts[0]?.detail).toMatch(/^throttled by the provider until /);
    expect(attempts[1]?.channel).toBe("webhook");
    expect(dingtalk.received).toHaveLength(1);
    expect(hooks.received.filter((h) => h.path === "/dr-tsering")).toHaveLength(2);
  }, 30_000);

  it("WeCom text messages @-mention the person by mobile; over the robot's limit a message goes to the next contact", async () => {
    const { gw, wecom, hooks } = await world({ env: { WECOM_MSGTYPE: "text", ROBOT_PER_MINUTE: "1" } });
    await setContacts(gw, "dr-tsering", [
      { kind: "wecom", address: DOCTOR_MOBILE },
      { kind: "webhook", address: hooks.url("/dr-tsering") },
    ]);
    const first = await press(gw, "btn-1");
    await settledAttempts(gw, first, 1);
    expect(wecom.received[0]?.json).toMatchObject({
      msgtype: "text",
      text: { mentioned_mobile_list: ["13800000001"] },
    });
    const text = (wecom.received[0]?.json.text as { content: string } | undefined)?.content;
    expect(text).toContain("顿珠 Dondrub一键呼叫（第1级），地址：冲赛康3栋2单元");
    expect(text).toContain(`${PUBLIC_URL}/?alert=${first}#alerts`);
    const second = await press(gw, "btn-2");
    expect(said(await settledAttempts(gw, second, 2))).toEqual([
      "paged dr-tsering wecom failed: rate limit: at most 1 messages a minute to the robot",
      "paged dr-tsering webhook delivered: HTTP 200",
    ]);
    expect(wecom.received).toHaveLength(1);
  }, 30_000);

  it("a contact on a channel not configured reaches nobody: the level is skipped at once", async () => {
    const { gw, hooks, dingtalk } = await world({
      without: ["DINGTALK_ROBOT_TOKEN", "DINGTALK_ROBOT_SECRET"],
    });
    expect((await call(gw, "GET", "/api/channels")).body).toContainEqual({
      kind: "dingtalk",
      configured: false,
    });
    await setContacts(gw, "dr-tsering", [{ kind: "dingtalk", address: DOCTOR_MOBILE }]);
    const alertId = await press(gw, "btn-dondrub");
    // No clock advanced: the family is paged because the doctor cannot be reached, not because time ran out.
    await waitFor(() => hooks.received.find((h) => h.path === "/pema"), 5000, "the family's page");
    const events = (await call(gw, "GET", `/api/alerts/${alertId}`)).body.events.map(
      (e: { type: string }) => e.type,
    );
    expect(events).toContain("level-empty");
    expect(dingtalk.received).toEqual([]);
  }, 30_000);

  it("a level whose people keep their contacts for other kinds, or for later levels, is skipped at once", async () => {
    const { gw, hooks } = await world({});
    for (const [i, only] of [{ alertKinds: ["sos"] }, { minLevel: 2 }].entries()) {
      await setContacts(gw, "dr-tsering", [{ kind: "webhook", address: hooks.url("/dr-tsering"), ...only }]);
      const before = hooks.received.length;
      const alertId = await press(gw, `btn-${i}`);
      // No clock advanced: the family hears at once, because nothing the doctor keeps is for this call.
      await waitFor(
        () => hooks.received.slice(before).find((h) => h.path === "/pema"),
        5000,
        "the family's page",
      );
      const events = (await call(gw, "GET", `/api/alerts/${alertId}`)).body.events;
      expect(events.find((e: { type: string }) => e.type === "level-empty")?.data.level).toBe(1);
      expect(hooks.received.slice(before).filter((h) => h.path === "/dr-tsering")).toEqual([]);
    }
  }, 30_000);

  it("a level whose every message failed pages the next at once, not at its deadline", async () => {
    const { gw, hooks, wecom } = await world({});
    const down = await startWebhookServer({ status: 500 });
    cleanups.push(() => down.close());
    await setContacts(gw, "dr-tsering", [
      { kind: "wecom", address: "+8613900000404" },
      { kind: "webhook", address: down.url("/dr-tsering") },
    ]);
    // The robot's key was rotated: WeCom refuses every message.
    wecom.state.body = JSON.stringify({ errcode: 93000, errmsg: "invalid webhook url" });
    const alertId = await press(gw, "btn-down");
    // No clock advanced: the family hears because every message to the doctor failed.
    await waitFor(() => hooks.received.find((h) => h.path === "/pema"), 5000, "the family's page");
    const events = (await call(gw, "GET", `/api/alerts/${alertId}`)).body.events as {
      type: string;
      data: { level?: number };
    }[];
    expect(events.map((e) => `${e.type}${e.data.level === undefined ? "" : `@${e.data.level}`}`)).toEqual([
      "opened",
      "notified@1",
      "level-failed@1",
      "notified@2",
    ]);
    expect(down.received.length).toBeGreaterThan(0);
  }, 30_000);

  it("keeps every secret out of the logs (at trace level) and the API, which says only which channels are configured", async () => {
    const logs: string[] = [];
    const { gw, dingtalk, hooks } = await world({ secretsInFile: true, logs, env: { LOG_LEVEL: "trace" } });
    dingtalk.state.status = 500;
    await setContacts(gw, "dr-tsering", [
      { kind: "dingtalk", address: DOCTOR_MOBILE },
      { kind: "wecom", address: DOCTOR_MOBILE },
      { kind: "voice", address: DOCTOR_MOBILE },
      { kind: "webhook", address: hooks.url("/dr-tsering") },
    ]);
    const alertId = await press(gw, "btn-dondrub");
    const attempts = await settledAttempts(gw, alertId, 2);
    expect(said(attempts)).toEqual([
      "paged dr-tsering dingtalk failed: HTTP 500",
      "paged dr-tsering wecom delivered: posted to the group",
    ]);
    const channels = await call(gw, "GET", "/api/channels");
    expect(channels.body).toEqual([
      { kind: "webhook", configured: true },
      { kind: "wecom", configured: true },
      { kind: "dingtalk", configured: true },
      { kind: "sms", configured: true },
      { kind: "voice", configured: true },
      { kind: "push", configured: true },
    ]);
    const answers = [
      channels,
      await call(gw, "GET", `/api/alerts/${alertId}`),
      await call(gw, "GET", "/api/people"),
      await call(gw, "GET", "/api/people/dr-tsering/contacts"),
      await call(gw, "GET", "/docs/json"),
    ].map((r) => JSON.stringify(r.body));
    expect(logs.join("\n")).toContain("notification failed");
    for (const secret of [...Object.values(SECRETS), WEBHOOK_SECRET]) {
      expect(logs.join("\n")).not.toContain(secret);
      for (const answer of answers) expect(answer).not.toContain(secret);
    }
  }, 30_000);

  it("refuses a contact list with an unknown channel or a bad number, clearly, and changes nothing; only the person and staff in scope change it", async () => {
    const { gw, hooks } = await world();
    const before = (await call(gw, "GET", "/api/people/pema/contacts")).body;
    expect(before).toEqual({
      contacts: [{ kind: "webhook", address: hooks.url("/pema"), alertKinds: null, minLevel: 1 }],
    });
    const pema = await signIn(gw, "pema");
    const unknown = await call(
      gw,
      "PUT",
      "/api/people/pema/contacts",
      { contacts: [{ kind: "pager", address: FAMILY_MOBILE }] },
      pema,
    );
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.code).toBe("invalid_request");
    expect(unknown.body.error.message).toMatch(/body\.contacts\.0\.kind/);
    const badNumber = await call(
      gw,
      "PUT",
      "/api/people/pema/contacts",
      { contacts: [{ kind: "sms", address: "call me" }] },
      pema,
    );
    expect(badNumber.status).toBe(400);
    expect(badNumber.body.error.message).toMatch(/address: must be a mobile number/);
    const internal = await call(
      gw,
      "PUT",
      "/api/people/pema/contacts",
      { contacts: [{ kind: "webhook", address: "https://10.0.0.5/hook" }] },
      pema,
    );
    expect(internal.status).toBe(400);
    expect((await call(gw, "GET", "/api/people/pema/contacts")).body).toEqual(before);

    // The family changes her own; the doctor may not change hers; the grid's staff may.
    const sms = [{ kind: "sms", address: FAMILY_MOBILE, alertKinds: ["call"], minLevel: 2 }];
    expect((await call(gw, "PUT", "/api/people/pema/contacts", { contacts: sms }, pema)).status).toBe(200);
    const byDoctor = await call(
      gw,
      "PUT",
      "/api/people/dondrub/contacts",
      { contacts: sms },
      await signIn(gw, "dr-tsering"),
    );
    expect(byDoctor.status).toBe(403);
    const byStaff = await call(
      gw,
      "PUT",
      "/api/people/pema/contacts",
      { contacts: [] },
      await signIn(gw, "lhakpa"),
    );
    expect(byStaff.status).toBe(200);
    expect((await call(gw, "GET", "/api/people/pema/contacts")).body).toEqual({ contacts: [] });
  }, 30_000);
});
