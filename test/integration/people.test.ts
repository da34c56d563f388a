import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  call,
  connectDevice,
  PEOPLE_PASSWORD,
  registerDevice,
  type SessionCreds,
  seedCommunity,
  seedLoneResident,
  signIn,
  startGateway,
  type TestGateway,
} from "../support/gateway.ts";

/**
 * Residents of two kinds, their care notes and who reads them, and a device changing hands.
 * Chongsaikang (seedCommunity): Dondrub with his doctor Dr Tsering and family Pema, grid worker
 * Lhakpa, staff Yang. Lugu (seedLoneResident): Norbu, and Dr Dawa, a doctor nobody assigned.
 */
describe("people and care", () => {
  let gw: TestGateway;
  const lines: string[] = [];
  const as = {} as Record<"staff" | "grid" | "doctor" | "family" | "otherDoctor", SessionCreds>;
  const care = {
    conditions: "阿尔茨海默病 early dementia",
    medicines: "Donepezil 5 mg at night, in the red tin",
    allergies: "penicillin",
    doorAccess: "Key with neighbour Dawa, flat 302",
    language: "Tibetan (Lhasa), little Mandarin",
  };
  const child = {
    name: "小卓玛 Little Drolma",
    role: "resident",
    category: "child",
    communityId: "chongsaikang",
    gridId: "grid-1",
  };

  beforeAll(async () => {
    const logTo = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    gw = await startGateway({ logTo, env: { LOG_LEVEL: "trace" } });
    await seedCommunity(gw, (p) => `http://127.0.0.1:9${p}`);
    await seedLoneResident(gw);
    await call(gw, "POST", "/api/people", {
      id: "dr-dawa",
      name: "Dr Dawa",
      role: "doctor",
      communityId: "lugu",
    });
    await call(gw, "POST", "/api/users", {
      username: "dr-dawa",
      role: "doctor",
      personId: "dr-dawa",
      password: PEOPLE_PASSWORD,
    });
    as.staff = await signIn(gw, "staff-yang");
    as.grid = await signIn(gw, "lhakpa");
    as.doctor = await signIn(gw, "dr-tsering");
    as.family = await signIn(gw, "pema");
    as.otherDoctor = await signIn(gw, "dr-dawa");
  });
  afterAll(() => gw?.stop());

  const peopleCount = async () => (await call(gw, "GET", "/api/people")).body.length as number;

  it("registers a child, and refuses a category on anyone but a resident", async () => {
    const created = await call(gw, "POST", "/api/people", child, as.staff);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ category: "child", role: "resident" });
    expect((await call(gw, "GET", `/api/people/${created.body.id}`, undefined, as.staff)).body.category).toBe(
      "child",
    );
    // A resident registered without one is "not recorded", and may be given one later.
    expect((await call(gw, "GET", "/api/people/dondrub")).body.category).toBeNull();
    const patched = await call(gw, "PATCH", "/api/people/dondrub", { category: "elderly" }, as.staff);
    expect(patched.body.category).toBe("elderly");

    const before = await peopleCount();
    const doctorChild = await call(gw, "POST", "/api/people", { ...child, role: "doctor" }, as.staff);
    expect(doctorChild.status).toBe(400);
    expect(doctorChild.body.error).toMatchObject({ code: "invalid_request" });
    expect(doctorChild.body.error.message).toMatch(/^category: only a resident/);
    const unknown = await call(gw, "POST", "/api/people", { ...child, category: "teen" }, as.staff);
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toMatch(/^body\.category/);
    expect(await peopleCount()).toBe(before);
    // Turning a resident into a doctor without clearing the category is refused, and changes nothing.
    const turned = await call(gw, "PATCH", "/api/people/dondrub", { role: "doctor" });
    expect(turned.status).toBe(400);
    expect((await call(gw, "GET", "/api/people/dondrub")).body).toMatchObject({
      role: "resident",
      category: "elderly",
    });
  });

  it("shows care notes to those who see the resident, and lets staff and the doctor write them", async () => {
    const empty = await call(gw, "GET", "/api/people/dondrub/care", undefined, as.doctor);
    expect(empty.body).toEqual({
      conditions: null,
      medicines: null,
      allergies: null,
      doorAccess: null,
      language: null,
      updatedAt: null,
      updatedBy: null,
    });
    const written = await call(gw, "PUT", "/api/people/dondrub/care", care, as.staff);
    expect(written.status).toBe(200);
    expect(written.body).toMatchObject({ ...care, updatedBy: "staff-yang" });

    for (const who of ["doctor", "family", "grid", "staff"] as const) {
      const read = await call(gw, "GET", "/api/people/dondrub/care", undefined, as[who]);
      expect({ who, status: read.status, notes: read.body.medicines }).toEqual({
        who,
        status: 200,
        notes: care.medicines,
      });
    }
    // A doctor not assigned to him learns nothing, not even that he exists.
    const outside = await call(gw, "GET", "/api/people/dondrub/care", undefined, as.otherDoctor);
    expect(outside.status).toBe(404);
    expect(JSON.stringify(outside.body)).not.toContain("Donepezil");
    expect((await call(gw, "PUT", "/api/people/dondrub/care", care, as.otherDoctor)).status).toBe(404);
    // Staff of Chongsaikang do not see Lugu's resident.
    expect((await call(gw, "GET", "/api/people/norbu/care", undefined, as.staff)).status).toBe(404);

    // His own doctor changes them; a blank note becomes none.
    const byDoctor = await call(
      gw,
      "PUT",
      "/api/people/dondrub/care",
      { ...care, allergies: "  " },
      as.doctor,
    );
    expect(byDoctor.body).toMatchObject({ allergies: null, updatedBy: "dr-tsering" });
  });

  it("refuses bad care notes with a clear error, and keeps the ones stored", async () => {
    const stored = (await call(gw, "GET", "/api/people/dondrub/care")).body;
    const refusals = [
      { body: care, as: as.family, status: 403, code: "forbidden" },
      { body: { ...care, medicines: "x".repeat(2001) }, as: as.staff, status: 400, code: "invalid_request" },
      { body: { ...care, bloodType: "A" }, as: as.staff, status: 400, code: "invalid_request" },
      { body: { ...care, conditions: 7 }, as: as.staff, status: 400, code: "invalid_request" },
    ];
    for (const r of refusals) {
      const res = await call(gw, "PUT", "/api/people/dondrub/care", r.body, r.as);
      expect({ status: res.status, code: res.body.error.code }).toEqual({ status: r.status, code: r.code });
    }
    const tooLong = await call(
      gw,
      "PUT",
      "/api/people/dondrub/care",
      { ...care, medicines: "x".repeat(2001) },
      as.staff,
    );
    expect(tooLong.body.error.message).toMatch(/^body\.medicines/);
    // Only residents have care notes.
    const onDoctor = await call(gw, "PUT", "/api/people/dr-tsering/care", care, as.staff);
    expect(onDoctor.body.error.code).toBe("wrong_role");
    expect((await call(gw, "GET", "/api/people/dondrub/care")).body).toEqual(stored);
  });

  it("logs who read and changed care notes in the access log, and their text nowhere", async () => {
    const audit = (await call(gw, "GET", "/api/audit?target=dondrub&limit=1000")).body as {
      actor: string;
      action: string;
      detail: unknown;
    }[];
    expect(audit.filter((e) => e.action === "care.read").map((e) => e.actor)).toContain("pema");
    const update = audit.find((e) => e.action === "care.update" && e.actor === "staff-yang");
    expect(update?.detail).toEqual({
      notes: ["conditions", "medicines", "allergies", "doorAccess", "language"],
    });
    const everything = JSON.stringify(audit) + lines.join("");
    // The log was captured (at trace level), and holds no note.
    expect(everything).toContain("created the first admin");
    for (const note of Object.values(care)) {
      expect({ note, logged: everything.includes(note) }).toEqual({ note, logged: false });
    }
  });

  it("gives a device to another resident: it leaves the old family's sight", async () => {
    const drolma = (await call(gw, "GET", "/api/people?role=resident", undefined, as.staff)).body.find(
      (p: { category: string | null }) => p.category === "child",
    );
    await registerDevice(gw, "tag-handed", "dondrub", "locator-tag");
    expect((await call(gw, "GET", "/api/devices/tag-handed", undefined, as.family)).status).toBe(200);

    // Refused: an owner out of sight, an unknown one, a field that is not the owner. Nothing changes.
    for (const [body, status] of [
      [{ ownerId: "norbu" }, 404],
      [{ ownerId: "nobody" }, 404],
      [{ ownerId: "dr-tsering" }, 400],
      [{ ownerId: drolma.id, kind: "call-button" }, 400],
      [{}, 400],
    ] as const) {
      const res = await call(gw, "PATCH", "/api/devices/tag-handed", body, as.staff);
      expect({ body, status: res.status }).toEqual({ body, status });
    }
    expect(
      (await call(gw, "PATCH", "/api/devices/tag-handed", { ownerId: drolma.id }, as.family)).status,
    ).toBe(403);
    expect((await call(gw, "GET", "/api/devices/tag-handed")).body.ownerId).toBe("dondrub");

    const moved = await call(gw, "PATCH", "/api/devices/tag-handed", { ownerId: drolma.id }, as.staff);
    expect(moved.status).toBe(200);
    expect(moved.body).toMatchObject({ ownerId: drolma.id, connected: false, state: null });
    expect((await call(gw, "GET", "/api/devices/tag-handed", undefined, as.family)).status).toBe(404);
    const audit = (await call(gw, "GET", "/api/audit?action=device.owner")).body;
    expect(audit[0]).toMatchObject({
      actor: "staff-yang",
      target: "tag-handed",
      detail: { from: "dondrub" },
    });
  });

  it("keeps a device with its owner while an alert about it is active: the new owner's press must not join it", async () => {
    const drolma = (await call(gw, "GET", "/api/people?role=resident", undefined, as.staff)).body.find(
      (p: { category: string | null }) => p.category === "child",
    );
    const button = await connectDevice(gw, await registerDevice(gw, "btn-handed", "dondrub"));
    await button.event("press");
    const { alertId } = await button.waitForCommand("received");
    const refused = await call(gw, "PATCH", "/api/devices/btn-handed", { ownerId: drolma.id }, as.staff);
    expect(refused).toMatchObject({ status: 409, body: { error: { code: "in_use" } } });
    expect(refused.body.error.message).toContain(alertId);
    expect((await call(gw, "GET", "/api/devices/btn-handed")).body.ownerId).toBe("dondrub");

    expect((await call(gw, "POST", `/api/alerts/${alertId}/cancel`, {}, as.staff)).status).toBe(200);
    const moved = await call(gw, "PATCH", "/api/devices/btn-handed", { ownerId: drolma.id }, as.staff);
    expect(moved.body).toMatchObject({ ownerId: drolma.id });
    await button.close();
  });

  it("filters the access log by time, and refuses a time that is not one", async () => {
    type Entry = { id: number; at: number };
    const all = (await call(gw, "GET", "/api/audit?limit=1000")).body as Entry[];
    const middle = all[Math.floor(all.length / 2)]?.at as number;
    const since = (await call(gw, "GET", `/api/audit?from=${middle}&limit=1000`)).body as Entry[];
    const before = (await call(gw, "GET", `/api/audit?to=${middle}&limit=1000`)).body as Entry[];
    expect(since.length).toBeGreaterThan(0);
    expect(before.length).toBeGreaterThan(0);
    expect(since.every((e) => e.at >= middle) && before.every((e) => e.at < middle)).toBe(true);
    expect([...since, ...before].map((e) => e.id).sort()).toEqual(all.map((e) => e.id).sort());
    const bad = await call(gw, "GET", "/api/audit?from=yesterday");
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: "invalid_request" });
    expect(bad.body.error.message).toMatch(/^querystring\.from/);
  });
});
