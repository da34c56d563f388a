import { rmSync } from "node:fs";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Alert, NewAlertEvent } from "../../gateway/alerts/model.ts";
import { defaultPolicies } from "../../gateway/alerts/policy.ts";
import { openPostgresStore } from "../../gateway/store/postgres.ts";
import { openSqliteStore } from "../../gateway/store/sqlite.ts";
import type { TelemetryPoint } from "../../gateway/store/telemetry.ts";
import { AlertChanged, type DeviceState, type Person, type Store } from "../../gateway/store/types.ts";
import { tempDataDir } from "../support/gateway.ts";
import { startPostgres, type TestPostgres } from "../support/postgres.ts";

/**
 * One contract, two engines: every repository case runs against the embedded SQLite store and
 * against a real PostgreSQL, each test on an empty database of its own.
 */
let postgres: TestPostgres | undefined;
beforeAll(async () => {
  postgres = await startPostgres();
}, 60_000);
afterAll(async () => {
  await postgres?.destroy();
});

const engines = [
  {
    engine: "SQLite",
    open: async () => {
      const dir = tempDataDir();
      const store = openSqliteStore(dir);
      return { store, cleanUp: () => rmSync(dir, { recursive: true, force: true }) };
    },
  },
  {
    engine: "PostgreSQL",
    open: async () => {
      if (!postgres) throw new Error("PostgreSQL did not start");
      const { createDatabase, dropDatabase } = postgres;
      const url = await createDatabase();
      return { store: await openPostgresStore(url), cleanUp: () => dropDatabase(url) };
    },
  },
];

const T0 = Date.UTC(2026, 11, 1, 8, 0, 0);

const person = (id: string, role: Person["role"], extra: Partial<Person> = {}): Person => ({
  id,
  name: `name of ${id}`,
  role,
  communityId: "chongsaikang",
  gridId: "grid-1",
  phone: null,
  address: null,
  locale: "zh-CN",
  contacts: [],
  ...extra,
});

const alert = (id: string, extra: Partial<Alert> = {}): Alert => ({
  id,
  kind: "call",
  deviceId: "btn-1",
  subjectId: "resident-1",
  state: "open",
  level: 1,
  presses: 1,
  openedAt: T0,
  acceptedBy: null,
  acceptedAt: null,
  closedBy: null,
  closedAt: null,
  outcome: null,
  deadlineAt: T0 + 60_000,
  policy: defaultPolicies.call,
  repeats: 0,
  reminders: 0,
  notified: ["doctor-1"],
  unreached: false,
  exhausted: false,
  lastActivityAt: T0,
  ...extra,
});

const event = (
  at: number,
  type: NewAlertEvent["type"],
  data: Record<string, unknown> = {},
): NewAlertEvent => ({
  at,
  type,
  actor: null,
  data,
});

const codeOf = (promise: Promise<unknown>) =>
  promise.then(
    () => "resolved",
    (err: { code?: string }) => err.code,
  );

describe.each(engines)("$engine store", ({ open }) => {
  let store: Store;
  let cleanUp: () => unknown;

  beforeEach(async () => {
    ({ store, cleanUp } = await open());
    await store.registry.createCommunity({ id: "chongsaikang", name: "冲赛康社区" });
    await store.registry.createGrid({ id: "grid-1", communityId: "chongsaikang", name: "第一网格" });
    await store.registry.createPerson(person("resident-1", "resident"));
    await store.registry.createPerson(person("doctor-1", "doctor"));
    await store.registry.createDevice(
      { id: "btn-1", kind: "call-button", ownerId: "resident-1", createdAt: T0 },
      "hash-1",
    );
  });
  afterEach(async () => {
    await store.close();
    await cleanUp();
  });

  describe("registry", () => {
    it("keeps people with their contacts in order, lists by id byte-wise, and filters", async () => {
      await store.registry.createPerson(
        person("Zhuoma", "family", {
          gridId: null,
          phone: "13800000000",
          locale: "en",
          contacts: [
            { kind: "sms", address: "13800000000", alertKinds: ["call", "sos"], minLevel: 2 },
            { kind: "webhook", address: "https://bridge.example/hook", alertKinds: null, minLevel: 1 },
          ],
        }),
      );
      const zhuoma = await store.registry.getPerson("Zhuoma");
      expect(zhuoma?.contacts.map((c) => [c.kind, c.alertKinds, c.minLevel])).toEqual([
        ["sms", ["call", "sos"], 2],
        ["webhook", null, 1],
      ]);
      expect(zhuoma).toMatchObject({ gridId: null, phone: "13800000000", locale: "en" });
      // Upper case sorts before lower case, as bytes do, whatever the database's locale.
      expect((await store.registry.listPeople()).map((p) => p.id)).toEqual([
        "Zhuoma",
        "doctor-1",
        "resident-1",
      ]);
      expect((await store.registry.listPeople({ role: "doctor" })).map((p) => p.id)).toEqual(["doctor-1"]);
      expect((await store.registry.listPeople({ gridId: "grid-1" })).map((p) => p.id)).toEqual([
        "doctor-1",
        "resident-1",
      ]);

      await store.registry.updatePerson({ ...(zhuoma as Person), name: "卓玛", contacts: [] });
      expect(await store.registry.getPerson("Zhuoma")).toMatchObject({ name: "卓玛", contacts: [] });
      expect(await store.registry.getPerson("nobody")).toBeUndefined();
    });

    it("refuses a second community, grid, person, device or assignment with the same key, and changes nothing", async () => {
      expect(await codeOf(store.registry.createCommunity({ id: "chongsaikang", name: "again" }))).toBe(
        "already_exists",
      );
      expect(
        await codeOf(store.registry.createGrid({ id: "grid-1", communityId: "chongsaikang", name: "x" })),
      ).toBe("already_exists");
      expect(await codeOf(store.registry.createPerson(person("resident-1", "staff")))).toBe("already_exists");
      expect(
        await codeOf(
          store.registry.createDevice(
            { id: "btn-1", kind: "locator-tag", ownerId: "doctor-1", createdAt: T0 },
            "h",
          ),
        ),
      ).toBe("already_exists");
      const a = await store.registry.createAssignment({
        residentId: "resident-1",
        personId: "doctor-1",
        relation: "doctor",
      });
      expect(
        await codeOf(
          store.registry.createAssignment({
            residentId: "resident-1",
            personId: "doctor-1",
            relation: "doctor",
          }),
        ),
      ).toBe("already_exists");
      expect(await store.registry.listCommunities()).toEqual([{ id: "chongsaikang", name: "冲赛康社区" }]);
      expect(await store.registry.getPerson("resident-1")).toMatchObject({ role: "resident" });
      expect(await store.registry.getDevice("btn-1")).toMatchObject({
        kind: "call-button",
        ownerId: "resident-1",
      });
      expect(await store.registry.listAssignments()).toEqual([a]);
    });

    it("keeps device secrets: revoked devices have none, a rotation reinstates, a re-hash never undoes either", async () => {
      expect(await store.registry.getDevice("btn-1")).toEqual({
        id: "btn-1",
        kind: "call-button",
        ownerId: "resident-1",
        protocol: "mqtt",
        createdAt: T0,
        revokedAt: null,
      });
      expect(await store.registry.getDeviceSecretHash("btn-1")).toBe("hash-1");
      expect(await store.registry.replaceDeviceSecret("btn-1", "not-the-hash", "hash-2")).toBe(false);
      expect(await store.registry.replaceDeviceSecret("btn-1", "hash-1", "hash-2")).toBe(true);
      await store.registry.revokeDevice("btn-1", T0 + 1);
      expect(await store.registry.getDeviceSecretHash("btn-1")).toBeUndefined();
      expect(await store.registry.replaceDeviceSecret("btn-1", "hash-2", "hash-3")).toBe(false);
      expect((await store.registry.getDevice("btn-1"))?.revokedAt).toBe(T0 + 1);
      await store.registry.setDeviceSecret("btn-1", "hash-4");
      expect(await store.registry.getDeviceSecretHash("btn-1")).toBe("hash-4");
      expect((await store.registry.getDevice("btn-1"))?.revokedAt).toBeNull();

      await store.registry.createDevice(
        { id: "8800000015", kind: "locator-tag", ownerId: "resident-1", protocol: "watch", createdAt: T0 },
        "h",
      );
      expect((await store.registry.listDevices()).map((d) => [d.id, d.protocol])).toEqual([
        ["8800000015", "watch"],
        ["btn-1", "mqtt"],
      ]);
    });

    it("deletes a person only when nothing refers to them; assignments by id", async () => {
      expect(await codeOf(store.registry.deletePerson("resident-1"))).toBe("in_use");
      const a = await store.registry.createAssignment({
        residentId: "resident-1",
        personId: "doctor-1",
        relation: "doctor",
      });
      expect(await codeOf(store.registry.deletePerson("doctor-1"))).toBe("in_use");
      expect(await store.registry.listAssignments({ personId: "doctor-1" })).toEqual([a]);
      expect(await store.registry.listAssignments({ residentId: "doctor-1" })).toEqual([]);
      await store.registry.deleteAssignment(a.id);
      expect(await codeOf(store.registry.deleteAssignment(a.id))).toBe("not_found");
      await store.accounts.create(
        { username: "dr", role: "doctor", personId: "doctor-1", createdAt: T0, disabledAt: null },
        "pw",
      );
      expect(await codeOf(store.registry.deletePerson("doctor-1"))).toBe("in_use");
      await store.accounts.remove("dr");
      await store.registry.deletePerson("doctor-1");
      expect(await store.registry.getPerson("doctor-1")).toBeUndefined();
      expect(await store.registry.isEmpty()).toBe(false);
    });

    it("keeps a resident's category and care notes apart from the person, replaced whole; gone with the person", async () => {
      await store.registry.createPerson(person("child-1", "resident", { category: "child" }));
      expect(await store.registry.getPerson("child-1")).toMatchObject({ category: "child" });
      expect(await store.registry.getPerson("resident-1")).toMatchObject({ category: null });
      expect(await store.registry.getCareNotes("child-1")).toBeUndefined();
      const notes = {
        conditions: "哮喘",
        medicines: null,
        allergies: "花生",
        doorAccess: null,
        language: "bo",
        updatedAt: T0,
        updatedBy: "doctor-1",
      };
      await store.registry.putCareNotes("child-1", notes);
      await store.registry.putCareNotes("child-1", { ...notes, allergies: null, updatedAt: T0 + 1 });
      expect(await store.registry.getCareNotes("child-1")).toEqual({
        ...notes,
        allergies: null,
        updatedAt: T0 + 1,
      });
      await store.registry.updatePerson({
        ...((await store.registry.getPerson("child-1")) as Person),
        category: "elderly",
      });
      expect(await store.registry.getPerson("child-1")).toMatchObject({ category: "elderly" });
      await store.registry.deletePerson("child-1");
      expect(await store.registry.getCareNotes("child-1")).toBeUndefined();
    });

    it("hands a device to another owner", async () => {
      await store.registry.setDeviceOwner("btn-1", "doctor-1");
      expect(await store.registry.getDevice("btn-1")).toMatchObject({ ownerId: "doctor-1" });
    });
  });

  describe("device events", () => {
    it("stores a (device, seq, ts) once: a re-delivery returns nothing and opens nothing", async () => {
      const first = await store.deviceEvents.record("btn-1", { type: "press", ts: T0, seq: 7 }, T0 + 5);
      expect(first).toBeTypeOf("number");
      expect(
        await store.deviceEvents.record("btn-1", { type: "press", ts: T0, seq: 7 }, T0 + 900),
      ).toBeUndefined();
      // The same seq after a reboot (another ts), or from another device, is another event.
      const rebooted = await store.deviceEvents.record(
        "btn-1",
        { type: "press", ts: T0 + 1, seq: 7 },
        T0 + 6,
      );
      const other = await store.deviceEvents.record("btn-2", { type: "sos", ts: T0, seq: 7 }, T0 + 7);
      expect(new Set([first, rebooted, other]).size).toBe(3);

      expect((await store.deviceEvents.unhandled()).map((e) => e.id)).toEqual([first, rebooted, other]);
      expect(await store.deviceEvents.find("btn-1", 7, T0)).toEqual({
        id: first,
        deviceId: "btn-1",
        message: { type: "press", ts: T0, seq: 7 },
        receivedAt: T0 + 5,
        handled: false,
      });
      await store.deviceEvents.markHandled(first as number);
      expect((await store.deviceEvents.find("btn-1", 7, T0))?.handled).toBe(true);
      expect((await store.deviceEvents.unhandled()).map((e) => e.id)).toEqual([rebooted, other]);
      expect(await store.deviceEvents.find("btn-1", 8, T0)).toBeUndefined();
    });
  });

  describe("alerts", () => {
    it("commits an alert, its trail and the consumed press together; stream keys from time, always increasing", async () => {
      const press = (await store.deviceEvents.record(
        "btn-1",
        { type: "press", ts: T0, seq: 1 },
        T0,
      )) as number;
      const stored = await store.alerts.commit({
        alert: alert("a1"),
        events: [event(T0, "opened"), event(T0, "notified", { level: 1 })],
        handledEventId: press,
      });
      expect(stored.map((e) => e.id)).toEqual([T0 * 1024, T0 * 1024 + 1]);
      expect(stored[1]).toMatchObject({ alertId: "a1", type: "notified", data: { level: 1 } });
      expect(await store.deviceEvents.unhandled()).toEqual([]);
      expect(await store.alerts.get("a1")).toEqual(alert("a1"));

      // The clock stepped back: keys still increase.
      const accepted = alert("a1", { state: "accepted", acceptedBy: "doctor-1", acceptedAt: T0 - 5000 });
      const [back] = await store.alerts.commit({ alert: accepted, events: [event(T0 - 5000, "accepted")] });
      expect(back?.id).toBe(T0 * 1024 + 2);
      expect(await store.alerts.get("a1")).toEqual(accepted);
      expect(await store.alerts.events("a1")).toEqual([...stored, { ...back, actor: null }]);
      expect((await store.alerts.eventsAfter(T0 * 1024, 10)).map((e) => e.type)).toEqual([
        "notified",
        "accepted",
      ]);
      expect((await store.alerts.eventsAfter(T0 * 1024, 1)).map((e) => e.type)).toEqual(["notified"]);
      expect(await store.alerts.streamPosition(T0 - 60_000)).toBe(T0 * 1024 + 2);
      expect(await store.alerts.streamPosition(T0 + 1000)).toBe((T0 + 1000) * 1024 - 1);
    });

    it("stores nothing of a change that fails part-way: not the alert, not the press marked handled", async () => {
      const press = (await store.deviceEvents.record(
        "btn-1",
        { type: "press", ts: T0, seq: 1 },
        T0,
      )) as number;
      const broken = { ...event(T0, "opened"), at: null } as unknown as NewAlertEvent;
      await expect(
        store.alerts.commit({
          alert: alert("a1"),
          events: [event(T0, "opened"), broken],
          handledEventId: press,
        }),
      ).rejects.toThrow();
      expect(await store.alerts.get("a1")).toBeUndefined();
      expect(await store.alerts.events("a1")).toEqual([]);
      expect((await store.deviceEvents.unhandled()).map((e) => e.id)).toEqual([press]);
    });

    it("commits a step only onto the alert it was decided on: a stale one stores nothing and says so", async () => {
      const press = (await store.deviceEvents.record(
        "btn-1",
        { type: "press", ts: T0, seq: 2 },
        T0,
      )) as number;
      const opened = alert("a1", { deadlineAt: T0 + 60_000 });
      await store.alerts.commit({ alert: opened, events: [event(T0, "opened")] });
      // Two gateways read the open alert: one escalates it at its deadline, the other accepts it.
      const escalated = alert("a1", { level: 2, deadlineAt: T0 + 180_000 });
      const accepted = alert("a1", { state: "accepted", acceptedBy: "doctor-1", acceptedAt: T0 + 60_000 });
      await store.alerts.commit({
        alert: escalated,
        events: [event(T0 + 60_000, "notified", { level: 2 })],
        previous: opened,
      });
      const stale = store.alerts.commit({
        alert: accepted,
        events: [event(T0 + 60_000, "accepted")],
        handledEventId: press,
        previous: opened,
      });
      await expect(stale).rejects.toBeInstanceOf(AlertChanged);
      expect(await store.alerts.get("a1")).toEqual(escalated);
      expect((await store.alerts.events("a1")).map((e) => e.type)).toEqual(["opened", "notified"]);
      expect((await store.deviceEvents.unhandled()).map((e) => e.id)).toEqual([press]);
      // Decided again on the alert as it is now, the accept lands.
      const [stored] = await store.alerts.commit({
        alert: { ...accepted, level: 2 },
        events: [event(T0 + 60_000, "accepted")],
        handledEventId: press,
        previous: (await store.alerts.get("a1")) as Alert,
      });
      expect(stored?.type).toBe("accepted");
      expect((await store.alerts.get("a1"))?.state).toBe("accepted");
      expect(await store.deviceEvents.unhandled()).toEqual([]);
      // Expecting an alert that was never stored is stale too.
      await expect(
        store.alerts.commit({ alert: alert("a2"), events: [], previous: alert("a2") }),
      ).rejects.toBeInstanceOf(AlertChanged);
      expect(await store.alerts.get("a2")).toBeUndefined();
      // A press already turned into an alert (by another gateway) opens no second one.
      await expect(
        store.alerts.commit({ alert: alert("a3"), events: [event(T0, "opened")], handledEventId: press }),
      ).rejects.toBeInstanceOf(AlertChanged);
      expect(await store.alerts.get("a3")).toBeUndefined();
    });

    it("keeps one active alert per device and kind, emergencies counting as one: a second opens nothing and says so", async () => {
      const press = (await store.deviceEvents.record(
        "btn-1",
        { type: "press", ts: T0, seq: 3 },
        T0,
      )) as number;
      await store.alerts.commit({ alert: alert("call"), events: [event(T0, "opened")] });
      // Two gateways decided at once: the second opens no twin, and its press stays to be decided again.
      for (const kind of ["call", "fall", "sos"] as const)
        await expect(
          store.alerts.commit({
            alert: alert(`twin-${kind}`, { kind }),
            events: [event(T0, "opened")],
            handledEventId: press,
          }),
        ).rejects.toBeInstanceOf(AlertChanged);
      expect(await store.alerts.get("twin-fall")).toBeUndefined();
      expect((await store.deviceEvents.unhandled()).map((e) => e.id)).toEqual([press]);
      expect((await store.alerts.events("call")).map((e) => e.type)).toEqual(["opened"]);
      // Another kind of alert for the same device, and the same kind for another device, open beside it.
      await store.alerts.commit({ alert: alert("offline", { kind: "device-offline" }), events: [] });
      await store.alerts.commit({ alert: alert("other", { deviceId: "btn-2" }), events: [] });
      await expect(
        store.alerts.commit({ alert: alert("offline-2", { kind: "device-offline" }), events: [] }),
      ).rejects.toBeInstanceOf(AlertChanged);
      // Once the first is closed, the next emergency opens.
      await store.alerts.commit({
        alert: alert("call", { state: "cancelled", closedAt: T0 + 10, deadlineAt: null }),
        events: [event(T0 + 10, "cancelled")],
        previous: alert("call"),
      });
      await store.alerts.commit({ alert: alert("next", { kind: "sos" }), events: [], handledEventId: press });
      expect((await store.alerts.findActive("btn-1", ["call", "fall", "sos"]))?.id).toBe("next");
    });

    it("finds the active alert of a device, lists newest first by state and subject, counts, and orders deadlines", async () => {
      await store.registry.createPerson(person("resident-2", "resident"));
      await store.alerts.commit({
        alert: alert("old", { openedAt: T0 - 3000, state: "resolved", closedAt: T0, deadlineAt: null }),
        events: [],
      });
      await store.alerts.commit({
        alert: alert("call", { openedAt: T0 - 2000, deadlineAt: T0 + 90_000 }),
        events: [],
      });
      await store.alerts.commit({
        alert: alert("zone", {
          kind: "geofence-exit",
          subjectId: "resident-2",
          openedAt: T0 - 1000,
          state: "accepted",
          deadlineAt: T0 + 30_000,
        }),
        events: [],
      });
      expect((await store.alerts.findActive("btn-1", ["call", "sos", "fall"]))?.id).toBe("call");
      expect((await store.alerts.findActive("btn-1", ["geofence-exit"]))?.id).toBe("zone");
      expect(await store.alerts.findActive("btn-1", ["sos"])).toBeUndefined();
      expect((await store.alerts.list({ limit: 10 })).map((a) => a.id)).toEqual(["zone", "call", "old"]);
      expect((await store.alerts.list({ limit: 1 })).map((a) => a.id)).toEqual(["zone"]);
      expect((await store.alerts.list({ states: ["open", "resolved"], limit: 10 })).map((a) => a.id)).toEqual(
        ["call", "old"],
      );
      expect((await store.alerts.list({ subjectIds: ["resident-2"], limit: 10 })).map((a) => a.id)).toEqual([
        "zone",
      ]);
      expect(await store.alerts.list({ subjectIds: [], limit: 10 })).toEqual([]);
      expect(await store.alerts.countByState()).toEqual({ open: 1, accepted: 1, resolved: 1, cancelled: 0 });
      expect((await store.alerts.withDeadlines()).map((a) => [a.id, a.deadlineAt])).toEqual([
        ["zone", T0 + 30_000],
        ["call", T0 + 90_000],
      ]);
    });

    it("reports alerts open in a period: first answer, highest level, why it closed", async () => {
      await store.alerts.commit({
        alert: alert("a1", { state: "cancelled", closedAt: T0 + 9000, deadlineAt: null }),
        events: [
          event(T0, "opened"),
          event(T0, "notified", { level: 1 }),
          event(T0 + 60_000, "notified", { level: 2 }),
          event(T0 + 70_000, "cancelled", { reason: "false-alarm" }),
        ],
      });
      await store.alerts.commit({ alert: alert("later", { openedAt: T0 + 3_600_000 }), events: [] });
      const [report, ...others] = await store.alerts.forReport({ from: T0 - 1, to: T0 + 1000 });
      expect(others).toEqual([]);
      expect(report).toEqual({
        id: "a1",
        kind: "call",
        subjectId: "resident-1",
        subjectName: "name of resident-1",
        deviceId: "btn-1",
        state: "cancelled",
        openedAt: T0,
        firstAnsweredAt: T0 + 70_000,
        closedAt: T0 + 9000,
        closeReason: "false-alarm",
        maxLevel: 2,
      });
      expect(await store.alerts.forReport({ from: T0, to: T0 + 1000, subjectIds: ["doctor-1"] })).toEqual([]);
    });
  });

  describe("notification attempts and the device outbox", () => {
    beforeEach(async () => {
      await store.alerts.commit({ alert: alert("a1"), events: [] });
    });

    it("returns waiting commands in order, expires those past their time, and delivers every copy acknowledged", async () => {
      const topic = "devices/btn-1/command";
      const command = (payload: string, expiresAt: number) =>
        store.attempts.start({
          alertId: "a1",
          level: 0,
          personId: null,
          channel: "device",
          event: "received",
          address: topic,
          attempt: 1,
          at: T0,
          payload,
          expiresAt,
        });
      const received = await command('{"type":"received"}', T0 + 60_000);
      const stale = await command('{"type":"accepted"}', T0 + 1000);
      const again = await command('{"type":"received"}', T0 + 60_000);
      expect(await store.attempts.pendingCommandAddresses()).toEqual([topic]);
      expect(await store.attempts.pendingCommands(topic, T0 + 2000)).toEqual([
        { id: received, payload: '{"type":"received"}' },
        { id: again, payload: '{"type":"received"}' },
      ]);
      expect((await store.attempts.forAlert("a1")).find((a) => a.id === stale)?.status).toBe("expired");
      expect(await store.attempts.commandAcknowledged(topic, '{"type":"received"}', T0 + 3000)).toBe(2);
      expect(await store.attempts.pendingCommands(topic, T0 + 4000)).toEqual([]);
      expect(await store.attempts.pendingCommandAddresses()).toEqual([]);
      expect((await store.attempts.forAlert("a1")).map((a) => a.status)).toEqual([
        "delivered",
        "expired",
        "delivered",
      ]);
    });

    it("knows which contacts failed last, ignoring attempts still pending", async () => {
      const page = (address: string, channel: "sms" | "webhook") =>
        store.attempts.start({
          alertId: "a1",
          level: 1,
          personId: "doctor-1",
          channel,
          event: "paged",
          address,
          attempt: 1,
          at: T0,
        });
      await store.attempts.finish(await page("13800000000", "sms"), "failed", "no signal");
      await store.attempts.finish(await page("13900000000", "sms"), "failed", "no signal");
      await store.attempts.finish(await page("13900000000", "sms"), "accepted", null);
      await page("13900000000", "sms"); // pending: says nothing yet
      await store.attempts.finish(await page("https://bridge.example/hook", "webhook"), "delivered", null);
      const failing = await store.attempts.failing([
        { kind: "sms", address: "13800000000" },
        { kind: "voice", address: "13800000000" },
        { kind: "sms", address: "13900000000" },
        { kind: "webhook", address: "https://bridge.example/hook" },
      ]);
      expect([...failing]).toEqual(["sms 13800000000"]);
      const [first] = await store.attempts.forAlert("a1");
      expect(first).toEqual({
        id: first?.id,
        alertId: "a1",
        level: 1,
        personId: "doctor-1",
        channel: "sms",
        event: "paged",
        address: "13800000000",
        attempt: 1,
        at: T0,
        status: "failed",
        detail: "no signal",
      });
    });
  });

  describe("accounts, sessions, sign-in throttles, audit", () => {
    it("keeps accounts and their passwords; a second account of the same name is refused", async () => {
      const dr = {
        username: "dr",
        role: "doctor" as const,
        personId: "doctor-1",
        createdAt: T0,
        disabledAt: null,
      };
      await store.accounts.create(dr, "hash-a");
      await store.accounts.create({ ...dr, username: "Admin", role: "admin", personId: null }, "hash-b");
      expect(await codeOf(store.accounts.create(dr, "other"))).toBe("already_exists");
      expect(await store.accounts.passwordHash("dr")).toBe("hash-a");
      expect((await store.accounts.list()).map((a) => a.username)).toEqual(["Admin", "dr"]);
      await store.accounts.update({ ...dr, disabledAt: T0 + 1 });
      expect(await store.accounts.passwordHash("dr")).toBe("hash-a");
      await store.accounts.update({ ...dr, disabledAt: T0 + 1 }, "hash-c");
      expect(await store.accounts.get("dr")).toEqual({ ...dr, disabledAt: T0 + 1 });
      expect(await store.accounts.passwordHash("dr")).toBe("hash-c");
      expect(await store.accounts.count()).toBe(2);
      await store.accounts.remove("dr");
      expect(await store.accounts.get("dr")).toBeUndefined();
      expect(await store.accounts.count()).toBe(1);
    });

    it("ends sessions one by one, all of an account, and when expired", async () => {
      await store.accounts.create(
        { username: "dr", role: "doctor", personId: "doctor-1", createdAt: T0, disabledAt: null },
        "h",
      );
      const session = (idHash: string, expiresAt: number) => ({
        idHash,
        username: "dr",
        csrfToken: `csrf-${idHash}`,
        createdAt: T0,
        expiresAt,
        lastSeenAt: T0,
      });
      await store.sessions.create(session("s1", T0 + 1000));
      await store.sessions.create(session("s2", T0 + 9000));
      await store.sessions.create(session("s3", T0 + 9000));
      await store.sessions.touch("s2", T0 + 500);
      expect(await store.sessions.get("s2")).toEqual({ ...session("s2", T0 + 9000), lastSeenAt: T0 + 500 });
      expect(await store.sessions.prune(T0 + 1000)).toBe(1);
      expect(await store.sessions.get("s1")).toBeUndefined();
      await store.sessions.remove("s3");
      expect(await store.sessions.get("s3")).toBeUndefined();
      await store.sessions.removeFor("dr");
      expect(await store.sessions.get("s2")).toBeUndefined();
    });

    it("keeps sign-in throttles across updates, lifts them per user, prunes those no longer blocking", async () => {
      const throttle = {
        key: "dr|127.0.0.1",
        username: "dr",
        failures: 1,
        strikes: 0,
        blockedUntil: 0,
        audited: false,
        updatedAt: T0,
      };
      await store.throttles.put(throttle);
      await store.throttles.put({
        ...throttle,
        failures: 5,
        strikes: 1,
        blockedUntil: T0 + 60_000,
        audited: true,
      });
      await store.throttles.put({ ...throttle, key: "127.0.0.1", username: null, updatedAt: T0 - 1 });
      expect(await store.throttles.get("dr|127.0.0.1")).toEqual({
        ...throttle,
        failures: 5,
        strikes: 1,
        blockedUntil: T0 + 60_000,
        audited: true,
      });
      // Still blocking at T0 + 1: kept; the address's, idle and not blocking: pruned.
      expect(await store.throttles.prune(T0 + 1)).toBe(1);
      expect(await store.throttles.get("127.0.0.1")).toBeUndefined();
      expect(await store.throttles.removeFor("dr")).toBe(1);
      expect(await store.throttles.get("dr|127.0.0.1")).toBeUndefined();
      await store.throttles.put(throttle);
      await store.throttles.remove(throttle.key);
      expect(await store.throttles.get(throttle.key)).toBeUndefined();
    });

    it("lists the audit log newest first, filtered, and prunes it", async () => {
      await store.audit.record({
        at: T0,
        actor: "admin",
        action: "device.create",
        target: "btn-1",
        detail: null,
      });
      await store.audit.record({
        at: T0 + 1,
        actor: "dr",
        action: "track.read",
        target: "tag-1",
        detail: { from: 1, to: 2 },
      });
      await store.audit.record({ at: T0 + 2, actor: "admin", action: "signin", target: null, detail: null });
      expect((await store.audit.list({ limit: 10 })).map((e) => e.action)).toEqual([
        "signin",
        "track.read",
        "device.create",
      ]);
      expect((await store.audit.list({ actor: "admin", limit: 1 })).map((e) => e.action)).toEqual(["signin"]);
      const [read] = await store.audit.list({ action: "track.read", target: "tag-1", limit: 10 });
      expect(read).toMatchObject({ at: T0 + 1, actor: "dr", detail: { from: 1, to: 2 } });
      // From inclusive, to exclusive.
      expect((await store.audit.list({ from: T0 + 1, to: T0 + 2, limit: 10 })).map((e) => e.action)).toEqual([
        "track.read",
      ]);
      expect(await store.audit.prune(T0 + 1)).toBe(1);
      expect((await store.audit.list({ limit: 10 })).length).toBe(2);
    });
  });

  describe("tracking, safe zones, telemetry", () => {
    const state = (deviceId: string, battery: number): DeviceState => ({
      deviceId,
      lastSeenAt: T0,
      lastTs: T0 - 10,
      battery,
      batteryLow: battery < 20,
      online: true,
      position: { lat: 29.65, lon: 91.13, accuracy: 12.5, source: "gps", ts: T0 - 10 },
    });

    it("saves device states and zone tracks over the previous ones", async () => {
      await store.registry.createDevice(
        { id: "tag-1", kind: "locator-tag", ownerId: "resident-1", createdAt: T0 },
        "h",
      );
      const track = {
        deviceId: "tag-1",
        geofenceId: "school",
        track: { status: "inside" as const, streak: 1, lastTs: T0 },
      };
      await store.tracking.save([state("btn-1", 80), state("tag-1", 50)], [track]);
      await store.tracking.save(
        [state("tag-1", 15)],
        [{ ...track, track: { status: "outside", streak: 0, lastTs: T0 + 1 } }],
      );
      const states = await store.tracking.loadStates();
      expect(states.sort((a, b) => a.deviceId.localeCompare(b.deviceId))).toEqual([
        state("btn-1", 80),
        state("tag-1", 15),
      ]);
      expect(await store.tracking.loadZoneTracks()).toEqual([
        { ...track, track: { status: "outside", streak: 0, lastTs: T0 + 1 } },
      ]);
      await store.tracking.save([], []);
    });

    it("keeps safe zones; removing one forgets where tags stood with it", async () => {
      const school = {
        id: "school",
        name: "特殊教育学校",
        shape: { type: "Circle" as const, center: [91.13, 29.65] as [number, number], radiusM: 200 },
        schedule: {
          timeZone: "Asia/Shanghai",
          windows: [{ days: [1, 2, 3, 4, 5], from: "08:00", to: "17:30" }],
        },
        deviceIds: ["tag-1"],
      };
      await store.geofences.create(school);
      await store.geofences.create({ ...school, id: "home", schedule: null });
      expect(await store.geofences.get("school")).toEqual(school);
      await store.geofences.update({ ...school, name: "学校", deviceIds: ["tag-1", "tag-2"] });
      expect((await store.geofences.get("school"))?.deviceIds).toEqual(["tag-1", "tag-2"]);
      expect((await store.geofences.list()).map((g) => [g.id, g.schedule === null])).toEqual([
        ["home", true],
        ["school", false],
      ]);
      await store.tracking.save(
        [],
        [{ deviceId: "tag-1", geofenceId: "school", track: { status: "outside", streak: 0, lastTs: T0 } }],
      );
      await store.geofences.remove("school");
      expect(await store.geofences.get("school")).toBeUndefined();
      expect(await store.tracking.loadZoneTracks()).toEqual([]);
    });

    it("writes telemetry in batches, reads a track oldest first, prunes by arrival; the spool keeps order", async () => {
      const point = (ts: number, extra: Partial<TelemetryPoint> = {}): TelemetryPoint => ({
        deviceId: "tag-1",
        ts,
        receivedAt: ts + 100,
        battery: 87.5,
        fix: "ok",
        ...extra,
      });
      const fixed = point(T0 + 2000, { lat: 29.65, lon: 91.13, accuracy: 8, source: "gps" });
      await store.telemetry.write([
        point(T0 + 1000, { fix: "none" }),
        fixed,
        point(T0, { deviceId: "tag-2" }),
      ]);
      expect(await store.telemetry.track("tag-1", T0, T0 + 5000, 10)).toEqual([
        point(T0 + 1000, { fix: "none" }),
        fixed,
      ]);
      expect(await store.telemetry.track("tag-1", T0, T0 + 5000, 1)).toEqual([
        point(T0 + 1000, { fix: "none" }),
      ]);
      expect(await store.telemetry.prune(T0 + 1100)).toBe(1);
      expect(await store.telemetry.track("tag-1", T0, T0 + 5000, 10)).toEqual([
        point(T0 + 1000, { fix: "none" }),
        fixed,
      ]);

      await store.spool.push([point(T0 + 3), point(T0 + 1)]);
      await store.spool.push([fixed]);
      expect(await store.spool.count()).toBe(3);
      const first = await store.spool.peek(2);
      expect(first.points).toEqual([point(T0 + 3), point(T0 + 1)]);
      await store.spool.remove(first.upTo);
      expect((await store.spool.peek(10)).points).toEqual([fixed]);
      expect(await store.spool.count()).toBe(1);
    });

    it("keeps what watches report beyond heartbeats, newest first, and prunes it", async () => {
      const reading = (ts: number, late: boolean) => ({
        deviceId: "8800000015",
        ts,
        receivedAt: ts + 50,
        type: late ? "UD2" : "bphrt",
        late,
        data: { heartRate: 72, cells: [{ mcc: 460, mnc: 0 }] },
      });
      await store.watchReadings.add(reading(T0, true));
      await store.watchReadings.add(reading(T0 + 1000, false));
      expect(await store.watchReadings.list("8800000015", 10)).toEqual([
        reading(T0 + 1000, false),
        reading(T0, true),
      ]);
      expect(await store.watchReadings.prune(T0 + 51)).toBe(1);
      expect(await store.watchReadings.list("8800000015", 10)).toEqual([reading(T0 + 1000, false)]);
    });
  });

  describe("Web Push subscriptions", () => {
    it("belong to the account that made them, reach the person only while that account acts for them", async () => {
      const account = (username: string) =>
        store.accounts.create(
          { username, role: "doctor", personId: "doctor-1", createdAt: T0, disabledAt: null },
          "h",
        );
      await account("dr");
      await account("dr-phone");
      const sub = (endpoint: string, username: string, createdAt = T0) => ({
        endpoint,
        personId: "doctor-1",
        username,
        p256dh: "BPk",
        auth: "au",
        createdAt,
      });
      await store.pushSubscriptions.save(sub("https://push.example/1", "dr"));
      await store.pushSubscriptions.save(sub("https://push.example/2", "dr", T0 + 1));
      // The same browser subscribed again, signed in as another account: it moves.
      await store.pushSubscriptions.save(sub("https://push.example/2", "dr-phone", T0 + 2));
      expect(await store.pushSubscriptions.get("https://push.example/2")).toEqual(
        sub("https://push.example/2", "dr-phone", T0 + 2),
      );
      expect(await store.pushSubscriptions.countForAccount("dr")).toBe(1);
      expect((await store.pushSubscriptions.forPerson("doctor-1")).map((s) => s.endpoint)).toEqual([
        "https://push.example/1",
        "https://push.example/2",
      ]);
      await store.accounts.update({
        username: "dr",
        role: "doctor",
        personId: "doctor-1",
        createdAt: T0,
        disabledAt: T0 + 5,
      });
      expect((await store.pushSubscriptions.forPerson("doctor-1")).map((s) => s.endpoint)).toEqual([
        "https://push.example/2",
      ]);
      expect(await store.pushSubscriptions.remove("https://push.example/2", "dr")).toBe(false);
      expect(await store.pushSubscriptions.remove("https://push.example/2", "dr-phone")).toBe(true);
      expect(await store.pushSubscriptions.remove("https://push.example/1")).toBe(true);
      expect(await store.pushSubscriptions.remove("https://push.example/1")).toBe(false);
    });
  });

  describe("retention", () => {
    it("prunes closed alerts past retention with their trail, attempts and handled presses; keeps the active ones", async () => {
      const press = (seq: number, handled: boolean) =>
        store.deviceEvents
          .record("btn-1", { type: "press", ts: T0 + seq, seq }, T0 + seq)
          .then(async (id) => {
            if (handled) await store.deviceEvents.markHandled(id as number);
            return id;
          });
      await press(1, true);
      const waiting = await press(2, false);
      const closed = alert("closed", { state: "resolved", closedAt: T0 + 10, deadlineAt: null });
      await store.alerts.commit({ alert: closed, events: [event(T0, "opened"), event(T0 + 10, "resolved")] });
      await store.alerts.commit({ alert: alert("open"), events: [event(T0, "opened")] });
      const recent = alert("recent", { state: "cancelled", closedAt: T0 + 5000, deadlineAt: null });
      await store.alerts.commit({ alert: recent, events: [event(T0, "opened")] });
      await store.attempts.start({
        alertId: "closed",
        level: 1,
        personId: "doctor-1",
        channel: "sms",
        event: "paged",
        address: "13800000000",
        attempt: 1,
        at: T0,
      });

      expect(await store.alerts.prune(T0 + 1000)).toBe(1);
      expect(await store.alerts.get("closed")).toBeUndefined();
      expect(await store.alerts.events("closed")).toEqual([]);
      expect(await store.attempts.forAlert("closed")).toEqual([]);
      expect((await store.alerts.list({ limit: 10 })).map((a) => a.id).sort()).toEqual(["open", "recent"]);
      expect((await store.alerts.events("open")).length).toBe(1);
      expect((await store.deviceEvents.unhandled()).map((e) => e.id)).toEqual([waiting]);
      expect(await store.deviceEvents.find("btn-1", 1, T0 + 1)).toBeUndefined();
    });
  });
});
