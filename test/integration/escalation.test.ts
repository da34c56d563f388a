import { writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { FakeClock } from "../support/fake-clock.ts";
import {
  call,
  connectDevice,
  metric,
  PEOPLE_PASSWORD,
  registerDevice,
  seedCommunity,
  seedLoneResident,
  signIn,
  startGateway,
  type TestDevice,
  type TestGateway,
  tempDataDir,
} from "../support/gateway.ts";
import { waitFor } from "../support/wait.ts";
import { startWebhookServer } from "../support/webhook-server.ts";

const MIN = 60_000;
type Hooks = Awaited<ReturnType<typeof startWebhookServer>>;

/** The failure paths of escalation, each as a user would meet it, on a real gateway with a fake clock. */
describe("escalation that never lets a call fall through", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function setUp(env: Record<string, string> = {}, dataDir = tempDataDir()) {
    const clock = new FakeClock();
    const hooks = await startWebhookServer();
    cleanups.push(() => hooks.close());
    const gw = await startGateway({
      clock,
      dataDir,
      env: { PUBLIC_URL: "https://safety.example.org", ...env },
    });
    cleanups.push(() => gw.stop());
    await seedCommunity(gw, hooks.url);
    const device = await connectDevice(gw, await registerDevice(gw, "btn-dondrub"));
    cleanups.push(() => device.close());
    return { clock, hooks, gw, device, dataDir };
  }

  /** Webhooks that reached `who`, as "event" or "event@level". */
  const heard = (hooks: Hooks, who: string) =>
    hooks.received.filter((h) => h.path === `/${who}`).map((h) => `${h.json.event}@${h.json.level}`);
  const press = async (clock: FakeClock, device: TestDevice, type: "press" | "sos" | "cancel" = "press") => {
    const before = device.commands.length;
    await device.event(type, undefined, clock.now());
    if (type === "cancel") return undefined;
    return waitFor(() => device.commands.slice(before).find((c) => c.type === "received"));
  };
  const alertOf = async (gw: TestGateway, id: string) => (await call(gw, "GET", `/api/alerts/${id}`)).body;
  /** The doctor accepts and resolves, with the kind of clinical note that must never reach a device. */
  const doctorClosesWithANote = async (gw: TestGateway, id: string) => {
    const doctor = await signIn(gw, "dr-tsering");
    await call(gw, "POST", `/api/alerts/${id}/accept`, {}, doctor);
    await call(gw, "POST", `/api/alerts/${id}/resolve`, { note: "BP 180/110, taken to hospital" }, doctor);
  };

  it("reminds an accepter who forgot, then re-opens and escalates, saying why; the device hears Chinese phrases", async () => {
    const { clock, hooks, gw, device } = await setUp();
    const received = await press(clock, device);
    expect(received?.message).toBe("已收到呼叫，正在联系医生");
    const doctor = await signIn(gw, "dr-tsering");
    await call(gw, "POST", `/api/alerts/${received?.alertId}/accept`, {}, doctor);
    expect((await device.waitForCommand("accepted")).message).toBe("次仁医生 Dr Tsering已接单，正在赶来");

    await clock.advance(30 * MIN);
    await waitFor(() => heard(hooks, "dr-tsering").includes("reminder@1"), 5000, "the reminder");
    expect((await alertOf(gw, received?.alertId ?? "")).state).toBe("accepted");

    await clock.advance(30 * MIN);
    await waitFor(() => heard(hooks, "pema").includes("paged@2"), 5000, "level 2 after re-opening");
    const alert = await alertOf(gw, received?.alertId ?? "");
    expect(alert).toMatchObject({ state: "open", acceptedBy: null, level: 2 });
    const reopened = alert.events.find((e: { type: string }) => e.type === "reopened");
    expect(reopened.data).toMatchObject({
      acceptedBy: "dr-tsering",
      reason: "not resolved within 60 min of accepting",
    });
    expect(heard(hooks, "dr-tsering")).toEqual(["paged@1", "reminder@1", "reopened@2"]);
  });

  it("tells the accepter at once of a new press; after the quiet period a press opens a new alert", async () => {
    const { clock, hooks, gw, device } = await setUp({ ALERT_QUIET_PERIOD_MIN: "10" });
    const first = await press(clock, device);
    await call(gw, "POST", `/api/alerts/${first?.alertId}/accept`, {}, await signIn(gw, "dr-tsering"));
    await clock.advance(2 * MIN);
    const again = await press(clock, device);
    expect(again?.alertId).toBe(first?.alertId);
    const toDoctor = await waitFor(() => hooks.received.find((h) => h.json.event === "pressed-again"));
    expect(toDoctor).toMatchObject({ path: "/dr-tsering", json: { presses: 2, state: "accepted" } });

    await clock.advance(11 * MIN);
    const later = await press(clock, device);
    expect(later?.alertId).not.toBe(first?.alertId);
    expect(await alertOf(gw, first?.alertId ?? "")).toMatchObject({ state: "cancelled", closedBy: null });
    expect(await alertOf(gw, later?.alertId ?? "")).toMatchObject({ state: "open", presses: 1, level: 1 });
  });

  it("keeps escalating an open alert on its own policy after a restart with a policy of fewer levels", async () => {
    const { clock, hooks, gw, device, dataDir } = await setUp();
    const received = await press(clock, device);
    await clock.advance(MIN + 2 * MIN); // doctor, family, then grid worker and staff
    await waitFor(() => heard(hooks, "staff-yang").includes("paged@3"));
    await device.close();
    await gw.stop();

    const policyFile = join(dataDir, "policy.json");
    const oneLevel = { call: { levels: [{ notify: ["doctor"], acceptWithinSec: 30 }], repeatLast: true } };
    writeFileSync(policyFile, JSON.stringify(oneLevel));
    const restarted = await startGateway({ clock, dataDir, env: { ESCALATION_POLICY_FILE: policyFile } });
    cleanups.push(() => restarted.stop());
    await clock.advance(5 * MIN);
    await waitFor(() => heard(hooks, "staff-yang").length === 2, 5000, "level 3 paged again");
    expect(heard(hooks, "staff-yang")).toEqual(["paged@3", "paged@3"]);
    const alert = await alertOf(restarted, received?.alertId ?? "");
    expect(alert).toMatchObject({ state: "open", level: 3, repeats: 1 });
    expect(alert.policy.levels).toHaveLength(3);
  });

  it("escalates exactly once after a database lock held across the deadline clears", async () => {
    const { clock, hooks, gw, device } = await setUp({ DB_BUSY_TIMEOUT_MS: "50" });
    const received = await press(clock, device);
    await waitFor(() => heard(hooks, "dr-tsering").length === 1);
    const other = new Database(join(gw.dataDir, "gateway.db"));
    cleanups.push(async () => other.close());
    other.exec("BEGIN EXCLUSIVE");
    await clock.advance(MIN);
    await clock.advance(7_000); // retried after 1 s, 2 s and 4 s
    expect(await metric(gw, "gateway_deadline_retries_total")).toBeGreaterThanOrEqual(3);
    expect(heard(hooks, "pema")).toEqual([]);
    other.exec("ROLLBACK");
    await clock.advance(8_000);
    await waitFor(() => heard(hooks, "pema").length === 1, 5000, "the family paged");
    await clock.advance(60_000);
    expect(heard(hooks, "pema")).toEqual(["paged@2"]);
    const alert = await alertOf(gw, received?.alertId ?? "");
    expect(alert.events.filter((e: { type: string }) => e.type === "notified")).toHaveLength(2);
  });

  it("pages the catch-all and marks the alert unreached when nobody on any level can be reached", async () => {
    const { clock, hooks, gw } = await setUp();
    await seedLoneResident(gw);
    // The district's admin, linked to a person with a webhook: the catch-all when a community has no staff.
    await call(gw, "POST", "/api/people", {
      id: "ops",
      name: "District duty officer",
      role: "staff",
      communityId: "chongsaikang",
      contacts: [{ kind: "webhook", address: hooks.url("/ops") }],
    });
    await call(gw, "POST", "/api/users", {
      username: "ops",
      role: "admin",
      personId: "ops",
      password: PEOPLE_PASSWORD,
    });
    const button = await connectDevice(gw, await registerDevice(gw, "btn-norbu", "norbu"));
    cleanups.push(() => button.close());
    const received = await press(clock, button);
    const page = await waitFor(() => hooks.received.find((h) => h.path === "/ops"), 5000, "the catch-all");
    expect(page.json).toMatchObject({
      event: "paged",
      level: 0,
      unreached: true,
      subject: { name: "Norbu" },
    });
    expect(await alertOf(gw, received?.alertId ?? "")).toMatchObject({ state: "open", unreached: true });
    expect(await metric(gw, 'gateway_escalation_troubles_total{trouble="unreached"}')).toBe(1);
  });

  it("stops after the policy's repeats: exhausted, the catch-all paged, still open and red", async () => {
    const dataDir = tempDataDir();
    const policyFile = join(dataDir, "policy.json");
    writeFileSync(
      policyFile,
      JSON.stringify({
        call: {
          levels: [
            { notify: ["doctor"], acceptWithinSec: 60 },
            { notify: ["family"], acceptWithinSec: 120 },
          ],
          repeatLast: true,
          maxRepeats: 2,
        },
      }),
    );
    const { clock, hooks, gw, device } = await setUp({ ESCALATION_POLICY_FILE: policyFile }, dataDir);
    const received = await press(clock, device);
    await clock.advance(MIN + 3 * 2 * MIN);
    await waitFor(() => heard(hooks, "staff-yang").length === 1, 5000, "the catch-all");
    expect(heard(hooks, "pema")).toEqual(["paged@2", "paged@2", "paged@2"]);
    expect(heard(hooks, "staff-yang")).toEqual(["paged@0"]);
    expect(await alertOf(gw, received?.alertId ?? "")).toMatchObject({
      state: "open",
      exhausted: true,
      deadlineAt: null,
    });
    expect(await metric(gw, 'gateway_escalation_troubles_total{trouble="exhausted"}')).toBe(1);
    await clock.advance(60 * MIN);
    // Nothing more about this call (the silent button's own offline alert is another matter).
    expect(hooks.received.filter((h) => h.json.alertId === received?.alertId)).toHaveLength(5);
  });

  it("upgrades a call to SOS instead of a parallel alert, paging only those not told yet", async () => {
    const { clock, hooks, gw, device } = await setUp();
    const call1 = await press(clock, device);
    await clock.advance(MIN); // the family is paged at level 2
    await waitFor(() => heard(hooks, "pema").length === 1);
    const sos = await press(clock, device, "sos");
    expect(sos?.alertId).toBe(call1?.alertId);
    await waitFor(() => heard(hooks, "lhakpa").length === 1, 5000, "the grid worker");
    expect(heard(hooks, "lhakpa")).toEqual(["paged@1"]); // SOS level 1: family and grid worker
    expect(heard(hooks, "pema")).toEqual(["paged@2", "upgraded@1"]);
    expect(heard(hooks, "dr-tsering")).toEqual(["paged@1", "upgraded@1"]);
    const open = (await call(gw, "GET", "/api/alerts?state=open")).body;
    expect(open).toHaveLength(1);
    expect(open[0]).toMatchObject({ kind: "sos", presses: 2 });
  });

  it("a long press after accept tells the accepter the resident says they are fine, and leaves it to them", async () => {
    const { clock, hooks, gw, device } = await setUp();
    const received = await press(clock, device);
    await call(gw, "POST", `/api/alerts/${received?.alertId}/accept`, {}, await signIn(gw, "dr-tsering"));
    await device.waitForCommand("accepted");
    await press(clock, device, "cancel");
    await waitFor(() => heard(hooks, "dr-tsering").includes("resident-ok@1"), 5000, "the word to the doctor");
    expect((await alertOf(gw, received?.alertId ?? "")).state).toBe("accepted");
    expect(device.commands.map((c) => c.type)).toEqual(["received", "accepted"]);
  });

  it("says nothing to the call button about a low battery it did not raise", async () => {
    const { clock, hooks, gw, device } = await setUp();
    await device.publish(
      "devices/btn-dondrub/heartbeat",
      JSON.stringify({ ts: clock.now(), seq: 1, battery: 5 }),
    );
    const [alert] = await waitFor(async () => {
      const list = (await call(gw, "GET", "/api/alerts?state=open")).body;
      return list.length === 1 && list;
    });
    expect(alert.kind).toBe("low-battery");
    await waitFor(() => hooks.received.length > 0, 5000, "the low-battery page");
    await clock.advance(1000);
    expect(device.commands).toEqual([]);
    expect(
      (await alertOf(gw, alert.id)).attempts.some((a: { channel: string }) => a.channel === "device"),
    ).toBe(false);
  });

  it("keeps commands for a device offline across a restart, and delivers 'accepted' then 'resolved' when it is back", async () => {
    const { clock, hooks, gw, device, dataDir } = await setUp();
    const received = await press(clock, device);
    await device.close();
    await doctorClosesWithANote(gw, received?.alertId ?? "");
    const pending = (await alertOf(gw, received?.alertId ?? "")).attempts.filter(
      (a: { channel: string }) => a.channel === "device",
    );
    expect(pending.map((a: { event: string; status: string }) => `${a.event}:${a.status}`)).toEqual([
      "received:delivered",
      "accepted:pending",
      "resolved:pending",
    ]);
    await gw.stop();
    await hooks.close();

    const restarted = await startGateway({ clock, dataDir });
    cleanups.push(() => restarted.stop());
    const creds = {
      id: "btn-dondrub",
      secret: (await call(restarted, "POST", "/api/devices/btn-dondrub/secret")).body.secret,
    };
    const back = await connectDevice(restarted, creds);
    cleanups.push(() => back.close());
    await waitFor(() => back.commands.length === 2, 5000, "the queued commands");
    expect(back.commands.map((c) => [c.type, c.message])).toEqual([
      ["accepted", "次仁医生 Dr Tsering已接单，正在赶来"],
      ["resolved", "呼叫已处理完毕"],
    ]);
    const delivered = await waitFor(async () => {
      const a = (await alertOf(restarted, received?.alertId ?? "")).attempts.filter(
        (x: { channel: string; status: string }) => x.channel === "device" && x.status === "delivered",
      );
      return a.length === 3 && a;
    });
    expect(delivered).toHaveLength(3);
  });

  it("tells family and staff paged earlier who accepted and how it ended, with what they need to act", async () => {
    const { clock, hooks, gw, device } = await setUp();
    await call(gw, "PATCH", "/api/people/dondrub", {
      address: "冲赛康 3 号楼",
      phone: "+86 891 000 0001",
      locale: "en",
    });
    const received = await press(clock, device);
    expect(received?.message).toBe("Call received, contacting your doctor");
    await clock.advance(3 * MIN); // doctor, family, grid worker and staff
    await waitFor(() => heard(hooks, "staff-yang").length === 1);
    await doctorClosesWithANote(gw, received?.alertId ?? "");
    for (const who of ["pema", "lhakpa", "staff-yang"]) {
      await waitFor(
        () => heard(hooks, who).some((e) => e.startsWith("resolved")),
        5000,
        `resolved to ${who}`,
      );
      expect(heard(hooks, who).map((e) => e.split("@")[0])).toEqual(["paged", "accepted", "resolved"]);
    }
    const accepted = hooks.received.find((h) => h.path === "/pema" && h.json.event === "accepted");
    expect(accepted?.json).toMatchObject({
      subject: { name: "顿珠 Dondrub", address: "冲赛康 3 号楼", phone: "+86 891 000 0001" },
      acceptedBy: { id: "dr-tsering", name: "次仁医生 Dr Tsering" },
      link: `https://safety.example.org/?alert=${received?.alertId}#alerts`,
    });
    expect(((accepted?.json.notified ?? []) as { id: string }[]).map((p) => p.id)).toEqual([
      "dr-tsering",
      "pema",
      "lhakpa",
      "staff-yang",
    ]);
    // The device hears a fixed phrase in the resident's language, never the clinical note.
    const resolved = await device.waitForCommand("resolved");
    expect(resolved.message).toBe("Your call has been handled");
    expect(JSON.stringify(device.commands)).not.toContain("BP 180");
  });

  it("drops a command the device never acknowledged once it expires", async () => {
    const { clock, gw, device } = await setUp({ DEVICE_COMMAND_TTL_HOURS: "1" });
    const received = await press(clock, device);
    await device.close();
    await call(gw, "POST", `/api/alerts/${received?.alertId}/accept`, {}, await signIn(gw, "dr-tsering"));
    await clock.advance(61 * MIN);
    const creds = {
      id: "btn-dondrub",
      secret: (await call(gw, "POST", "/api/devices/btn-dondrub/secret")).body.secret,
    };
    const back = await connectDevice(gw, creds);
    cleanups.push(() => back.close());
    const attempts = await waitFor(async () => {
      const a = (await alertOf(gw, received?.alertId ?? "")).attempts.filter(
        (x: { channel: string }) => x.channel === "device",
      );
      return a.some((x: { status: string }) => x.status === "expired") && a;
    });
    expect(attempts.map((a: { event: string; status: string }) => `${a.event}:${a.status}`)).toEqual([
      "received:delivered",
      "accepted:expired",
    ]);
    expect(back.commands).toEqual([]);
  });

  it("refuses a resident language the device has no phrases for, and changes nothing", async () => {
    const { gw } = await setUp();
    const unknown = await call(gw, "PATCH", "/api/people/dondrub", { locale: "fr" });
    expect(unknown).toMatchObject({ status: 400, body: { error: { code: "invalid_request" } } });
    expect(unknown.body.error.message).toBe("locale: no device phrases for 'fr' (zh-CN, en)");
    const malformed = await call(gw, "PATCH", "/api/people/dondrub", { locale: "Chinese please" });
    expect(malformed.status).toBe(400);
    expect((await call(gw, "GET", "/api/people/dondrub")).body.locale).toBe("zh-CN");
  });
});
