import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, registerDevice, seedCommunity, startGateway, type TestGateway } from "../support/gateway.ts";
import { fuzzSeconds } from "./fuzz.ts";

/** Every route that takes a body, with one valid body to mutate. */
const routes: { method: string; url: string; valid: Record<string, unknown> }[] = [
  { method: "POST", url: "/api/communities", valid: { id: "c-new", name: "New" } },
  { method: "POST", url: "/api/grids", valid: { id: "g-new", communityId: "chongsaikang", name: "G" } },
  {
    method: "POST",
    url: "/api/people",
    valid: { id: "p-new", name: "P", role: "resident", communityId: "chongsaikang", gridId: "grid-1" },
  },
  { method: "PATCH", url: "/api/people/dondrub", valid: { phone: "+86 891 000 0000" } },
  {
    method: "POST",
    url: "/api/assignments",
    valid: { residentId: "dondrub", personId: "dr-tsering", relation: "doctor" },
  },
  { method: "POST", url: "/api/devices", valid: { id: "btn-new", kind: "call-button", ownerId: "dondrub" } },
  {
    method: "POST",
    url: "/api/geofences",
    valid: {
      id: "zone-new",
      name: "Z",
      shape: { type: "Circle", center: [91.13, 29.65], radiusM: 200 },
      deviceIds: ["tag-1"],
    },
  },
  {
    method: "PUT",
    url: "/api/geofences/zone-1",
    valid: {
      name: "Z",
      shape: {
        type: "Polygon",
        coordinates: [
          [
            [91.13, 29.65],
            [91.14, 29.65],
            [91.14, 29.66],
            [91.13, 29.65],
          ],
        ],
      },
      deviceIds: ["tag-1"],
    },
  },
  {
    method: "POST",
    url: "/api/users",
    valid: { username: "u-new", password: "a-long-password", role: "family", personId: "pema" },
  },
  { method: "PATCH", url: "/api/users/pema", valid: { disabled: false } },
  { method: "PUT", url: "/api/session/password", valid: { current: "x", password: "y" } },
  { method: "POST", url: "/api/alerts/nope/resolve", valid: { note: "done" } },
  {
    method: "POST",
    url: "/api/push/subscriptions",
    valid: {
      endpoint: "https://push.example.org/wpush/1",
      // A browser's P-256 public key (the curve's generator point) and a 16-byte auth secret.
      keys: {
        p256dh: "BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU",
        auth: "AAAAAAAAAAAAAAAAAAAAAA",
      },
    },
  },
  {
    method: "DELETE",
    url: "/api/push/subscriptions",
    valid: { endpoint: "https://push.example.org/wpush/1" },
  },
];

/** Valid bodies with one field replaced, removed or added; any JSON at all; text that is not JSON. */
const bodies = (valid: Record<string, unknown>) => {
  const keys = Object.keys(valid);
  return fc.oneof(
    fc.tuple(fc.constantFrom(...keys), fc.jsonValue()).map(([k, v]) => JSON.stringify({ ...valid, [k]: v })),
    fc.constantFrom(...keys).map((k) => JSON.stringify({ ...valid, [k]: undefined })),
    fc.tuple(fc.string(), fc.jsonValue()).map(([k, v]) => JSON.stringify({ ...valid, [k]: v })),
    fc.jsonValue().map((v) => JSON.stringify(v)),
    fc.string({ maxLength: 300 }),
    fc.constant(JSON.stringify({ ...valid, id: "x".repeat(70_000) })),
  );
};

describe("API bodies, fuzzed", () => {
  let gw: TestGateway;

  /** What a refused request must leave as it was. */
  const snapshot = async () => {
    const { registry, geofences, accounts } = gw.store;
    return JSON.stringify([
      await registry.listCommunities(),
      await registry.listGrids(),
      await registry.listPeople(),
      await registry.listAssignments(),
      await registry.listDevices(),
      await geofences.list(),
      await accounts.list(),
      await gw.store.pushSubscriptions.forPerson("dr-tsering"),
    ]);
  };

  beforeAll(async () => {
    gw = await startGateway({ env: { LOGIN_MAX_FAILURES: "1000000" } });
    await seedCommunity(gw, (p) => `http://127.0.0.1:9${p}`);
    await registerDevice(gw, "tag-1", "dondrub", "locator-tag");
    await call(gw, "POST", "/api/geofences", {
      id: "zone-1",
      name: "Z",
      shape: { type: "Circle", center: [91.13, 29.65], radiusM: 200 },
      deviceIds: ["tag-1"],
    });
  });
  afterAll(() => gw?.stop());

  it("refuses every bad body with a clear 4xx, never a 500, and changes nothing", async () => {
    const session = gw.session as { cookie: string; csrf: string };
    let cases = 0;
    let refused = 0;
    const property = fc.asyncProperty(
      fc.constantFrom(...routes).chain((r) => fc.tuple(fc.constant(r), bodies(r.valid))),
      async ([route, payload]) => {
        cases++;
        const before = await snapshot();
        const res = await gw.api.inject({
          method: route.method as "POST",
          url: route.url,
          headers: {
            "content-type": "application/json",
            cookie: session.cookie,
            "x-csrf-token": session.csrf,
          },
          payload,
        });
        expect(res.statusCode).not.toBe(500);
        if (res.statusCode < 400) return; // a mutation that happens to be valid
        refused++;
        const body = res.json() as { error?: { code?: string; message?: string } };
        expect(body.error?.code).toMatch(/^[a-z_]+$/);
        expect(body.error?.message?.length).toBeGreaterThan(0);
        expect(await snapshot()).toBe(before);
      },
    );
    await fc.assert(property, {
      numRuns: Number.MAX_SAFE_INTEGER,
      interruptAfterTimeLimit: fuzzSeconds(3) * 1000,
    });
    console.log(`fuzz api-bodies: ${cases} cases, ${refused} refused, 0 failures`);
    // Time-bounded: on two busy cores a few hundred cases run; fewer than 50 means it hardly ran.
    expect(refused).toBeGreaterThan(50);
  }, 60_000);
});
