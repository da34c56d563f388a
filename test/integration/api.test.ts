import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  call,
  connectDevice,
  metric,
  registerDevice,
  seedCommunity,
  signIn,
  startGateway,
  type TestGateway,
} from "../support/gateway.ts";
import { openSse } from "../support/sse.ts";
import { waitFor } from "../support/wait.ts";

describe("HTTP API", () => {
  let gw: TestGateway;

  beforeAll(async () => {
    gw = await startGateway();
    await seedCommunity(gw, (p) => `http://127.0.0.1:9${p}`);
  });
  afterAll(() => gw.stop());

  it("registers a device and shows its secret once, storing only a hash", async () => {
    const res = await call(gw, "POST", "/api/devices", {
      id: "tag-child-1",
      kind: "locator-tag",
      ownerId: "dondrub",
    });
    expect(res.status).toBe(201);
    expect(res.body.secret).toMatch(/^[A-Za-z0-9_-]{22}$/);
    const listed = await call(gw, "GET", "/api/devices/tag-child-1");
    expect(listed.body).toEqual({
      id: "tag-child-1",
      kind: "locator-tag",
      ownerId: "dondrub",
      // Registered without a protocol: the MQTT device contract.
      protocol: "mqtt",
      createdAt: expect.any(Number),
      revokedAt: null,
      connected: false,
      state: null,
    });
    const hash = await gw.store.registry.getDeviceSecretHash("tag-child-1");
    expect(hash).toMatch(/^hmac-sha256\$/);
    expect(hash).not.toContain(res.body.secret);
    const again = await call(gw, "POST", "/api/devices", {
      id: "tag-child-1",
      kind: "locator-tag",
      ownerId: "dondrub",
    });
    expect(again).toMatchObject({ status: 409, body: { error: { code: "already_exists" } } });
  });

  it.each([
    ["/api/devices", { id: "x", kind: "toaster", ownerId: "dondrub" }, /kind/],
    ["/api/devices", { id: "has/slash", kind: "call-button", ownerId: "dondrub" }, /id/],
    [
      "/api/devices",
      { id: "ok-id", kind: "call-button", ownerId: "nobody" },
      /person 'nobody' does not exist/,
    ],
    ["/api/people", { id: "p1", name: "", role: "resident", communityId: "chongsaikang" }, /name/],
    ["/api/people", { id: "p1", name: "A", role: "king", communityId: "chongsaikang" }, /role/],
    [
      "/api/people",
      { id: "p1", name: "A", role: "resident", communityId: "atlantis" },
      /community 'atlantis'/,
    ],
    [
      "/api/people",
      {
        id: "p1",
        name: "A",
        role: "doctor",
        communityId: "chongsaikang",
        contacts: [{ kind: "webhook", address: "ftp://x" }],
      },
      /contacts/,
    ],
    ["/api/assignments", { residentId: "dondrub", personId: "pema", relation: "doctor" }, /not a doctor/],
    [
      "/api/assignments",
      { residentId: "pema", personId: "dr-tsering", relation: "doctor" },
      /not a resident/,
    ],
  ])("refuses POST %s %j with a clear error and changes nothing", async (path, body, message) => {
    const before = {
      devices: (await call(gw, "GET", "/api/devices")).body,
      people: (await call(gw, "GET", "/api/people")).body,
      assignments: (await call(gw, "GET", "/api/assignments")).body,
    };
    const res = await call(gw, "POST", path, body);
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.body.error.message).toMatch(message);
    expect(res.body.error.code).toMatch(/^[a-z_]+$/);
    expect((await call(gw, "GET", "/api/devices")).body).toEqual(before.devices);
    expect((await call(gw, "GET", "/api/people")).body).toEqual(before.people);
    expect((await call(gw, "GET", "/api/assignments")).body).toEqual(before.assignments);
  });

  it("refuses malformed JSON bodies and unknown alert states", async () => {
    const res = await fetch(`${gw.http}/api/people`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        cookie: gw.cookie,
        "x-csrf-token": gw.session?.csrf ?? "",
      },
      body: "{oops",
    });
    expect(res.status).toBe(400);
    expect((await res.json()).error.code).toBe("invalid_request");
    const states = await call(gw, "GET", "/api/alerts?state=open,exploded");
    expect(states).toMatchObject({
      status: 400,
      body: { error: { message: expect.stringMatching(/exploded/) } },
    });
  });

  it("edits people and refuses to delete someone still referenced", async () => {
    const patched = await call(gw, "PATCH", "/api/people/pema", { phone: "+86 891 000 0000" });
    // Fields left out of a patch keep their values.
    expect(patched.body).toMatchObject({
      id: "pema",
      phone: "+86 891 000 0000",
      role: "family",
      gridId: "grid-1",
      contacts: [{ kind: "webhook", address: "http://127.0.0.1:9/pema" }],
    });
    const del = await call(gw, "DELETE", "/api/people/pema");
    expect(del).toMatchObject({ status: 409, body: { error: { code: "in_use" } } });
    expect((await call(gw, "GET", "/api/people/pema")).status).toBe(200);
  });

  it("answers accept, resolve and cancel on a missing or closed alert with the catalogue's errors", async () => {
    const doctor = await signIn(gw, "dr-tsering");
    expect(await call(gw, "POST", "/api/alerts/nope/accept", {}, doctor)).toMatchObject({
      status: 404,
      body: { error: { code: "not_found" } },
    });
    const device = await connectDevice(gw, await registerDevice(gw, "btn-api"));
    await device.event("press");
    const { alertId } = await device.waitForCommand("received");
    // The admin account acts as no person, so it cannot be the responder.
    expect(await call(gw, "POST", `/api/alerts/${alertId}/accept`, {})).toMatchObject({
      status: 403,
      body: { error: { code: "forbidden" } },
    });
    expect(await call(gw, "POST", `/api/alerts/${alertId}/resolve`, { note: " " }, doctor)).toMatchObject({
      status: 400,
    });
    const cancelled = await call(gw, "POST", `/api/alerts/${alertId}/cancel`, {}, await signIn(gw, "lhakpa"));
    expect(cancelled.body).toMatchObject({ state: "cancelled", closedBy: "lhakpa" });
    expect(await call(gw, "POST", `/api/alerts/${alertId}/accept`, {}, doctor)).toMatchObject({
      status: 409,
      body: { error: { code: "alert_closed" } },
    });
    await device.close();
  });

  it("resumes the live stream from Last-Event-ID without missing or repeating an event", async () => {
    const device = await connectDevice(gw, await registerDevice(gw, "btn-stream"));
    const first = openSse(`${gw.http}/api/stream`, { cookie: gw.cookie });
    await waitFor(() => gw.api.server.listening);
    await device.event("press");
    await waitFor(() => first.messages.length >= 2, 5000, "first events");
    const lastSeen = first.messages.at(-1)?.id ?? "";
    await first.close();

    // While the page is away: the alert is accepted and resolved.
    const { alertId } = await device.waitForCommand("received");
    const doctor = await signIn(gw, "dr-tsering");
    await call(gw, "POST", `/api/alerts/${alertId}/accept`, {}, doctor);
    await call(gw, "POST", `/api/alerts/${alertId}/resolve`, { note: "visited" }, doctor);

    const resumed = openSse(`${gw.http}/api/stream`, { "last-event-id": lastSeen, cookie: gw.cookie });
    await waitFor(() => resumed.messages.length >= 2, 5000, "replayed events");
    await device.event("press"); // a new alert, live
    await waitFor(
      () => resumed.alertEvents().some((e) => e.event.type === "opened"),
      5000,
      "the new alert, live",
    );
    const events = resumed.alertEvents();
    const types = events.map((e) => e.event.type);
    // Between them, escalation: these webhooks all fail, so each level hands on to the next at once.
    const escalation = ["notified", "level-empty", "level-failed", "unreached"];
    expect(types.filter((t) => !escalation.includes(t))).toEqual(["accepted", "resolved", "opened"]);
    const ids = events.map((e) => e.id);
    expect(ids[0]).toBeGreaterThan(Number(lastSeen));
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    expect(events.find((e) => e.event.type === "resolved")?.alert.state).toBe("resolved");
    await resumed.close();
    await device.close();
  });

  it("serves MQTT over WebSocket at /mqtt on the HTTP port", async () => {
    const creds = await registerDevice(gw, "btn-ws");
    const client = await mqtt.connectAsync(`ws://127.0.0.1:${gw.ports.http}/mqtt`, {
      clientId: creds.id,
      username: creds.id,
      password: creds.secret,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    const commands: string[] = [];
    client.on("message", (_t, p) => commands.push(JSON.parse(p.toString()).type));
    await client.subscribeAsync(`devices/${creds.id}/command`, { qos: 1 });
    await client.publishAsync(
      `devices/${creds.id}/event`,
      JSON.stringify({ type: "press", ts: Date.now(), seq: 1 }),
      {
        qos: 1,
      },
    );
    await waitFor(() => commands.includes("received"));
    expect((await call(gw, "GET", `/api/devices/${creds.id}`)).body.connected).toBe(true);
    await client.endAsync();
  });

  it("reports health, readiness, metrics and the OpenAPI document", async () => {
    expect((await call(gw, "GET", "/healthz")).body).toEqual({ status: "ok" });
    expect((await call(gw, "GET", "/readyz")).body).toEqual({ status: "ready" });
    expect(await metric(gw, 'gateway_press_to_notify_seconds_count{channel="stream"}')).toBeGreaterThan(0);
    expect(await metric(gw, 'gateway_press_to_notify_seconds_count{channel="device"}')).toBeGreaterThan(0);
    const doc = (await call(gw, "GET", "/docs/json")).body;
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(["/api/devices", "/api/alerts/{id}/accept", "/api/stream", "/api/people/{id}"]),
    );
    expect((await fetch(`${gw.http}/docs`)).status).toBe(200);
  });
});
