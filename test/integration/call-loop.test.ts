import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { signWebhook } from "../../gateway/notify/channels/index.ts";
import { FakeClock } from "../support/fake-clock.ts";
import {
  call,
  connectDevice,
  metric,
  registerDevice,
  seedCommunity,
  signIn,
  startGateway,
  type TestGateway,
  WEBHOOK_SECRET,
} from "../support/gateway.ts";
import { openSse } from "../support/sse.ts";
import { waitFor } from "../support/wait.ts";
import { startWebhookServer } from "../support/webhook-server.ts";

describe("call-button loop", () => {
  let clock: FakeClock;
  let gw: TestGateway;
  let hooks: Awaited<ReturnType<typeof startWebhookServer>>;

  beforeEach(async () => {
    clock = new FakeClock();
    hooks = await startWebhookServer();
    gw = await startGateway({ clock });
    await seedCommunity(gw, hooks.url);
  });
  afterEach(async () => {
    await gw.stop();
    await hooks.close();
  });

  it("escalates a press from doctor to family, and closes the loop back to the device", async () => {
    const device = await connectDevice(gw, await registerDevice(gw, "btn-dondrub"));
    const stream = openSse(`${gw.http}/api/stream`, { cookie: gw.cookie });
    await waitFor(() => gw.api.server.listening && true);

    await device.event("press");

    // The device hears at once that the call was received.
    const received = await device.waitForCommand("received");
    // Level 1: the assigned doctor's webhook, signed.
    const toDoctor = await waitFor(
      () => hooks.received.find((h) => h.path === "/dr-tsering"),
      5000,
      "doctor webhook",
    );
    expect(toDoctor.json).toMatchObject({
      alertId: received.alertId,
      kind: "call",
      level: 1,
      deviceId: "btn-dondrub",
    });
    expect(toDoctor.json.subject).toMatchObject({ id: "dondrub", name: "顿珠 Dondrub" });
    const timestamp = String(toDoctor.headers["x-gateway-timestamp"]);
    expect(toDoctor.headers["x-gateway-signature"]).toBe(
      signWebhook(WEBHOOK_SECRET, timestamp, toDoctor.body),
    );
    expect(hooks.received.some((h) => h.path === "/pema")).toBe(false);

    // Nobody accepts within 60 s: level 2, the family.
    await clock.advance(59_000);
    expect(hooks.received.some((h) => h.path === "/pema")).toBe(false);
    await clock.advance(1_000);
    const toFamily = await waitFor(
      () => hooks.received.find((h) => h.path === "/pema"),
      5000,
      "family webhook",
    );
    expect(toFamily.json).toMatchObject({ alertId: received.alertId, level: 2 });

    // The doctor accepts after all: the device is told who is coming, escalation stops.
    const doctor = await signIn(gw, "dr-tsering");
    const accepted = await call(gw, "POST", `/api/alerts/${received.alertId}/accept`, {}, doctor);
    expect(accepted.status).toBe(200);
    // Accepted is not done: it must be resolved within 30 minutes.
    expect(accepted.body).toMatchObject({
      state: "accepted",
      acceptedBy: "dr-tsering",
      deadlineAt: clock.now() + 30 * 60_000,
    });
    const acceptedCommand = await device.waitForCommand("accepted");
    expect(acceptedCommand.message).toContain("次仁医生 Dr Tsering");
    await clock.advance(10 * 60_000);
    expect(hooks.received.some((h) => h.path === "/lhakpa" || h.path === "/staff-yang")).toBe(false);

    const resolved = await call(
      gw,
      "POST",
      `/api/alerts/${received.alertId}/resolve`,
      { note: "Blood pressure checked, all well" },
      doctor,
    );
    expect(resolved.body).toMatchObject({ state: "resolved", outcome: "Blood pressure checked, all well" });
    await device.waitForCommand("resolved");

    // The audit trail tells the whole story, and the stream carried every step.
    const detail = await call(gw, "GET", `/api/alerts/${received.alertId}`);
    expect(detail.body.events.map((e: { type: string }) => e.type)).toEqual([
      "opened",
      "notified",
      "notified",
      "accepted",
      "resolved",
    ]);
    // Everyone paged hears the outcome: the family was paged at level 2, so hears who accepted and how it ended.
    const attempts = await waitFor(async () => {
      const all = (await call(gw, "GET", `/api/alerts/${received.alertId}`)).body.attempts as {
        channel: string;
        event: string;
        personId: string;
        status: string;
      }[];
      return all.length === 7 && all.every((a) => a.status === "delivered") && all;
    });
    expect(attempts.filter((a) => a.channel === "webhook").map((a) => `${a.event}->${a.personId}`)).toEqual([
      "paged->dr-tsering",
      "paged->pema",
      "accepted->pema",
      "resolved->pema",
    ]);
    // The device's commands are delivered once it acknowledged them.
    expect(attempts.filter((a) => a.channel === "device").map((a) => a.event)).toEqual([
      "received",
      "accepted",
      "resolved",
    ]);
    await waitFor(() => stream.messages.length >= 5, 5000, "stream events");
    expect(stream.alertEvents().map((m) => m.event.type)).toEqual(
      detail.body.events.map((e: { type: string }) => e.type),
    );
    expect(await metric(gw, 'gateway_alerts{state="resolved"}')).toBe(1);
    await stream.close();
    await device.close();
  });

  it("repeats the last level every 5 minutes until someone accepts", async () => {
    const device = await connectDevice(gw, await registerDevice(gw, "btn-dondrub"));
    await device.event("press");
    await waitFor(() => hooks.received.find((h) => h.path === "/dr-tsering"));
    await clock.advance(60_000); // family
    await clock.advance(120_000); // grid worker and staff
    await waitFor(() => hooks.received.filter((h) => h.path === "/staff-yang").length === 1);
    expect(hooks.received.filter((h) => h.path === "/lhakpa")).toHaveLength(1);
    await clock.advance(300_000);
    await waitFor(() => hooks.received.filter((h) => h.path === "/staff-yang").length === 2);
    expect(hooks.received.filter((h) => h.path === "/dr-tsering")).toHaveLength(1);
    await device.close();
  });

  it("joins further presses to the open alert and lets the resident cancel it", async () => {
    const device = await connectDevice(gw, await registerDevice(gw, "btn-dondrub"));
    await device.event("press");
    await device.event("press");
    await device.event("press");
    await waitFor(() => device.commands.filter((c) => c.type === "received").length === 3);
    const ids = new Set(device.commands.map((c) => c.alertId));
    expect(ids.size).toBe(1);
    const [alert] = (await call(gw, "GET", "/api/alerts?state=open")).body;
    expect(alert.presses).toBe(3);

    await device.event("cancel");
    const resolved = await device.waitForCommand("resolved");
    expect(resolved.alertId).toBe(alert.id);
    const after = (await call(gw, "GET", `/api/alerts/${alert.id}`)).body;
    expect(after).toMatchObject({ state: "cancelled", closedBy: "btn-dondrub" });
    // A cancelled alert escalates no further.
    await clock.advance(60_000);
    expect(hooks.received.some((h) => h.path === "/pema")).toBe(false);
    await device.close();
  });

  it("sends the press's PUBACK and its `received` in one write, as one TCP segment", async () => {
    const device = await connectDevice(gw, await registerDevice(gw, "btn-dondrub"));
    const reads: Buffer[] = [];
    device.client.stream.on("data", (chunk: Buffer) => reads.push(chunk));
    await device.event("press");
    await device.waitForCommand("received");
    // The one flush releases both in the same tick, and aedes' packet writer gathers a tick's writes:
    // PUBACK (0x40, length 2, packet id) followed at once by the command's QoS 1 PUBLISH (0x32).
    expect(reads.some((r) => r[0] === 0x40 && r[1] === 2 && r[4] === 0x32)).toBe(true);
    await device.close();
  });

  it("confirms a re-sent press again, without a second alert or press", async () => {
    const device = await connectDevice(gw, await registerDevice(gw, "btn-dondrub"));
    const ts = clock.now();
    await device.event("press", 1, ts);
    const { alertId } = await device.waitForCommand("received");
    // The device did not hear `received` (say the gateway crashed first) and sends the same press again.
    await device.event("press", 1, ts);
    await waitFor(() => device.commands.filter((c) => c.type === "received").length === 2);
    expect(device.commands.filter((c) => c.type === "received").map((c) => c.alertId)).toEqual([
      alertId,
      alertId,
    ]);
    const alerts = (await call(gw, "GET", "/api/alerts")).body;
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ id: alertId, presses: 1 });
    await device.close();
  });

  it("retries a failing webhook with backoff without holding up the next level", async () => {
    hooks.state.status = 503;
    const device = await connectDevice(gw, await registerDevice(gw, "btn-dondrub"));
    await device.event("press");
    const { alertId } = await device.waitForCommand("received");
    await waitFor(() => hooks.received.filter((h) => h.path === "/dr-tsering").length === 1);
    await clock.advance(1_000);
    await waitFor(() => hooks.received.filter((h) => h.path === "/dr-tsering").length === 2);
    hooks.state.status = 200;
    await clock.advance(4_000);
    await waitFor(() => hooks.received.filter((h) => h.path === "/dr-tsering").length === 3);
    await clock.advance(55_000);
    await waitFor(() => hooks.received.find((h) => h.path === "/pema"));
    const attempts = await waitFor(async () => {
      const a = (await call(gw, "GET", `/api/alerts/${alertId}`)).body.attempts.filter(
        (x: { personId: string }) => x.personId === "dr-tsering",
      );
      return a.length === 3 && a.every((x: { status: string }) => x.status !== "pending") && a;
    });
    expect(attempts.map((a: { status: string; detail: string }) => `${a.status} ${a.detail}`)).toEqual([
      "failed HTTP 503",
      "failed HTTP 503",
      "delivered HTTP 200",
    ]);
    await device.close();
  });

  it("skips a level nobody holds instead of waiting out its deadline", async () => {
    await call(gw, "POST", "/api/people", {
      id: "norbu",
      name: "Norbu",
      role: "resident",
      communityId: "chongsaikang",
    });
    const device = await connectDevice(gw, await registerDevice(gw, "btn-norbu", "norbu"));
    await device.event("press");
    // No doctor, no family, no grid: level 3 (community staff) is notified at once.
    const toStaff = await waitFor(() => hooks.received.find((h) => h.path === "/staff-yang"));
    expect(toStaff.json).toMatchObject({ level: 3 });
    await device.close();
  });
});
