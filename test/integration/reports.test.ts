import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeClock } from "../support/fake-clock.ts";
import {
  call,
  connectDevice,
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

const S = 1000;

/** A month of calls answered, escalated and withdrawn on a real gateway, then read back as a report. */
describe("monthly response report", () => {
  // 10:00 on 10 November in the community's time zone (Asia/Shanghai, UTC+8).
  const clock = new FakeClock(Date.parse("2026-11-10T02:00:00Z"));
  let gw: TestGateway;
  let device: TestDevice;
  let hooks: Awaited<ReturnType<typeof startWebhookServer>>;
  let doctor: SessionCreds;
  let staff: SessionCreds;

  const press = async () => {
    const before = device.commands.length;
    await device.event("press", undefined, clock.now());
    const received = await waitFor(() => device.commands.slice(before).find((c) => c.type === "received"));
    return received?.alertId as string;
  };
  const report = (query: string, as?: SessionCreds) =>
    call(gw, "GET", `/api/reports/monthly${query}`, undefined, as);

  beforeAll(async () => {
    hooks = await startWebhookServer();
    gw = await startGateway({ clock });
    await seedCommunity(gw, hooks.url);
    await seedLoneResident(gw);
    device = await connectDevice(gw, await registerDevice(gw, "btn-dondrub"));
    doctor = await signIn(gw, "dr-tsering");
    staff = await signIn(gw, "staff-yang");

    // Answered in 30 s, resolved 10 minutes later.
    const first = await press();
    await clock.advance(30 * S);
    await call(gw, "POST", `/api/alerts/${first}/accept`, {}, doctor);
    await clock.advance(600 * S);
    await call(gw, "POST", `/api/alerts/${first}/resolve`, { note: "fine" }, doctor);

    // Answered after 2 minutes, when the family had already been paged.
    await clock.advance(3600 * S);
    const second = await press();
    await clock.advance(120 * S);
    await call(gw, "POST", `/api/alerts/${second}/accept`, {}, doctor);
    await call(gw, "POST", `/api/alerts/${second}/resolve`, { note: "fine" }, doctor);

    // Withdrawn by the resident before anyone answered.
    await clock.advance(3600 * S);
    const third = await press();
    await device.event("cancel", undefined, clock.now());
    await waitFor(async () => (await call(gw, "GET", `/api/alerts/${third}`)).body.state === "cancelled");

    // Nobody answers: it reaches community staff (level 3).
    await clock.advance(3600 * S);
    const fourth = await press();
    await clock.advance(240 * S);
    await waitFor(async () => (await call(gw, "GET", `/api/alerts/${fourth}`)).body.level === 3);
  }, 60_000);
  afterAll(async () => {
    await device?.close();
    await gw?.stop();
    await hooks?.close();
  });

  it("gives staff their community's figures for the month", async () => {
    const res = await report("?month=2026-11", staff);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      community: { id: "chongsaikang" },
      month: "2026-11",
      timeZone: "Asia/Shanghai",
      // The button sends no heartbeats while the test's clock runs: it is also reported offline.
      alerts: { total: 7, byKind: { call: 4, sos: 0, "device-offline": 3 } },
      emergencies: {
        needingAPerson: 3,
        answered: 2,
        neverAnswered: 1,
        answerSeconds: { p50: 30, p90: 120 },
        answeredWithin60sPercent: 33.3,
        answeredWithin180sPercent: 66.7,
        resolveSeconds: { p50: 120, p90: 630 },
      },
      targets: {
        answeredWithin60s: { targetPercent: 97.5, met: false },
        answeredWithin180s: { targetPercent: 99, met: false },
      },
      escalationsReachingLevel3: 1,
      devicesOffline: { devices: 1 },
    });
    // Every ISO week November touches; the calls in week 46.
    expect(res.body.weekly.map((w: { isoWeek: number }) => w.isoWeek)).toEqual([44, 45, 46, 47, 48, 49]);
    expect(res.body.weekly[2]).toEqual({
      weekStart: "2026-11-09",
      isoWeek: 46,
      emergencies: 3,
      answerSeconds: { p50: 30, p90: 120 },
    });
    expect(res.body.devicesOffline.hours).toBeGreaterThan(2);
    // Opened in the hours from 10:00 to 13:00 on the community's wall clock.
    expect(res.body.alerts.byHour.call.slice(10, 14)).toEqual([1, 1, 1, 1]);
    // This month is the default.
    expect((await report("", staff)).body.emergencies).toEqual(res.body.emergencies);
    // A month with nothing in it.
    expect((await report("?month=2026-10", staff)).body.alerts.total).toBe(0);
  });

  it("gives a grid worker the figures of their grid, and an admin any community they name", async () => {
    const grid = await report("?month=2026-11", await signIn(gw, "lhakpa"));
    expect(grid.body).toMatchObject({ gridId: "grid-1", alerts: { total: 7 } });
    const lugu = await report("?month=2026-11&community=lugu");
    expect(lugu.body).toMatchObject({ community: { id: "lugu" }, alerts: { total: 0 } });
  });

  it("refuses what a report cannot answer, with the reason", async () => {
    const refusals: [string, SessionCreds | undefined, number, RegExp][] = [
      ["?month=2026-11", doctor, 403, /./],
      ["?month=2026-11", await signIn(gw, "pema"), 403, /./],
      ["?community=lugu", staff, 403, /outside your area/],
      ["?month=2026-11", undefined, 400, /name the community/],
      ["?community=atlantis", undefined, 404, /community 'atlantis'/],
      ["?month=2026-13&community=lugu", undefined, 400, /month is YYYY-MM/],
      ["?month=November&community=lugu", undefined, 400, /month is YYYY-MM/],
    ];
    for (const [query, as, status, message] of refusals) {
      const res = await report(query, as);
      expect(res.status, query).toBe(status);
      expect(res.body.error.message, query).toMatch(message);
    }
  });

  it("exports the month's alerts as CSV, in Chinese by default and in English on request", async () => {
    const zh = await fetch(`${gw.http}/api/reports/monthly.csv?month=2026-11`, {
      headers: { cookie: staff.cookie },
    });
    expect(zh.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    expect(zh.headers.get("content-disposition")).toBe(
      'attachment; filename="alerts-chongsaikang-2026-11.csv"',
    );
    const text = new TextDecoder("utf-8", { ignoreBOM: true }).decode(await zh.arrayBuffer());
    const lines = text.trimEnd().split("\r\n");
    expect(lines[0]).toBe(
      "\uFEFF告警编号,类型,对象,设备,发生时间,应答用时(秒),处置用时(秒),最高升级级别,状态,关闭原因",
    );
    expect(lines).toHaveLength(8);
    const calls = lines.filter((l) => l.includes(",一键呼叫,"));
    expect(calls).toHaveLength(4);
    expect(calls[0]).toMatch(
      /^[^,]+,一键呼叫,顿珠 Dondrub,btn-dondrub,2026-11-10 10:00:00,30,630,1,resolved,$/,
    );
    expect(calls[2]).toMatch(/,cancelled,device$/);
    expect(calls[3]).toMatch(/,2026-11-10 13:12:30,,,3,open,$/);
    const en = await fetch(`${gw.http}/api/reports/monthly.csv?month=2026-11&lang=en`, {
      headers: { cookie: staff.cookie },
    });
    // (text() drops the BOM)
    expect((await en.text()).split("\r\n")[0]).toBe(
      "alert,kind,person,device,opened,answered after (s),resolved after (s),highest level,state,close reason",
    );
  });
});
