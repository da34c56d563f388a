import { createECDH, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeClock } from "../support/fake-clock.ts";
import {
  ADMIN_PASSWORD,
  call,
  connectDevice,
  login,
  PEOPLE_PASSWORD,
  registerDevice,
  type SessionCreds,
  seedCommunity,
  signIn,
  startGateway,
  type TestDevice,
  type TestGateway,
} from "../support/gateway.ts";
import { openSse } from "../support/sse.ts";
import { waitFor } from "../support/wait.ts";

/**
 * Who may call which route, and on whose data. Chongsaikang (from seedCommunity) has Dondrub in
 * grid 1 with his doctor and family, a grid worker (staff scoped to grid 1) and community staff;
 * Lugu is another community with its resident Norbu, whom nobody from Chongsaikang may see.
 */
type Viewer = "admin" | "staff" | "grid" | "doctor" | "family";
const viewers: Viewer[] = ["admin", "staff", "grid", "doctor", "family"];
const usernames: Record<Viewer, string> = {
  admin: "admin",
  staff: "staff-yang",
  grid: "lhakpa",
  doctor: "dr-tsering",
  family: "pema",
};
const everyone = viewers;
const managers: Viewer[] = ["admin", "staff", "grid"];

interface Request {
  path: string;
  body?: unknown;
  /** Use this session instead of the viewer's (routes that end or change the session). */
  as?: SessionCreds;
}
interface Row {
  route: string;
  allowed: Viewer[];
  /** A request on the viewer's own data: an allowed viewer gets a 2xx. */
  own: (v: Viewer) => Request | Promise<Request>;
  /** The same request on Lugu's data: every allowed viewer but the admin gets 404 (or 403 when it would write there). */
  foreign?: (v: Viewer) => Request | Promise<Request>;
  /** Statuses other than 2xx an allowed viewer gets on its own data, e.g. an admin who is nobody's responder. */
  ownStatus?: Partial<Record<Viewer, number>>;
  /** For lists: what must not be in the answer to a viewer other than the admin. */
  hides?: (body: unknown) => boolean;
}

// Each sweep makes a few hundred requests; under a loaded CI machine that takes tens of seconds.
describe("access: every route for every role", { timeout: 90_000 }, () => {
  const clock = new FakeClock(Date.parse("2026-11-25T08:00:00Z"));
  let gw: TestGateway;
  const sessions = {} as Record<Viewer, SessionCreds>;
  let dondrubButton: TestDevice;
  let n = 0;
  const unique = (prefix: string) => `${prefix}-${++n}`;

  /** A new open alert about Dondrub, to accept, resolve or cancel. */
  let lastAlert: string | undefined;
  const freshAlert = async () => {
    // A press while Dondrub's alert is still active would join it: close that one first.
    if (lastAlert) await call(gw, "POST", `/api/alerts/${lastAlert}/cancel`, {}, sessions.doctor);
    const before = dondrubButton.commands.length;
    await dondrubButton.event("press", undefined, clock.now());
    const received = await waitFor(() =>
      dondrubButton.commands.slice(before).find((c) => c.type === "received"),
    );
    lastAlert = received.alertId;
    return received.alertId;
  };
  const accepted = async () => {
    const id = await freshAlert();
    await call(gw, "POST", `/api/alerts/${id}/accept`, {}, sessions.doctor);
    return id;
  };
  /** Without an id the gateway makes one: only an admin may choose it. */
  const person = (
    id: string | undefined,
    communityId = "chongsaikang",
    gridId: string | null = "grid-1",
  ) => ({
    id,
    name: id ?? "新居民",
    role: "resident",
    communityId,
    gridId,
  });
  const zone = (id: string | undefined, deviceId: string) => ({
    id,
    name: id ?? "安全区",
    shape: { type: "Circle", center: [91.13, 29.65], radiusM: 300 },
    deviceIds: [deviceId],
  });
  /** A resident with a locator tag, made by the admin, to be deleted or changed. */
  const throwaway = async (communityId = "chongsaikang", gridId: string | null = "grid-1") => {
    const id = unique("p");
    await call(gw, "POST", "/api/people", person(id, communityId, gridId));
    return id;
  };
  const throwawayTag = async (communityId = "chongsaikang", gridId: string | null = "grid-1") => {
    const owner = await throwaway(communityId, gridId);
    return (await registerDevice(gw, unique("tag"), owner, "locator-tag")).id;
  };
  const throwawayZone = async (communityId = "chongsaikang", gridId: string | null = "grid-1") => {
    const id = unique("zone");
    await call(gw, "POST", "/api/geofences", zone(id, await throwawayTag(communityId, gridId)));
    return id;
  };
  const throwawayAssignment = async (residentId: string, personId: string) => {
    const res = await call(gw, "POST", "/api/assignments", { residentId, personId, relation: "doctor" });
    return res.body.id as number;
  };
  /** A second account acting as the viewer's person, for routes that end sessions. */
  const secondAccount = async (v: Viewer) => {
    const username = unique(`second-${v}`);
    const role = v === "grid" ? "staff" : v;
    const personId = v === "admin" ? null : usernames[v];
    await call(gw, "POST", "/api/users", { username, role, personId, password: PEOPLE_PASSWORD });
    return login(gw, username, PEOPLE_PASSWORD);
  };

  /** What a browser posts to turn Web Push on: its endpoint, P-256 public key and auth secret. */
  const pushSubscription = (endpoint: string) => {
    const ecdh = createECDH("prime256v1");
    return {
      endpoint,
      keys: {
        p256dh: ecdh.generateKeys().toString("base64url"),
        auth: randomBytes(16).toString("base64url"),
      },
    };
  };

  const rows: Row[] = [
    { route: "GET /api/session", allowed: everyone, own: () => ({ path: "/api/session" }) },
    {
      route: "DELETE /api/session",
      allowed: everyone,
      own: async (v) => ({ path: "/api/session", as: await secondAccount(v) }),
    },
    {
      route: "PUT /api/session/password",
      allowed: everyone,
      own: async (v) => ({
        path: "/api/session/password",
        body: { current: PEOPLE_PASSWORD, password: PEOPLE_PASSWORD },
        as: await secondAccount(v),
      }),
    },
    { route: "GET /api/users", allowed: ["admin"], own: () => ({ path: "/api/users" }) },
    {
      route: "POST /api/users",
      allowed: ["admin"],
      own: () => ({
        path: "/api/users",
        body: { username: unique("u"), role: "family", personId: "pema", password: PEOPLE_PASSWORD },
      }),
    },
    {
      route: "POST /api/users/{username}/unlock",
      allowed: ["admin"],
      own: () => ({ path: "/api/users/pema/unlock", body: {} }),
    },
    {
      route: "PATCH /api/users/{username}",
      allowed: ["admin"],
      own: async () => {
        const { cookie } = await secondAccount("family");
        expect(cookie).toBeTruthy();
        const username = (await call(gw, "GET", "/api/users")).body.at(-1).username;
        return { path: `/api/users/${username}`, body: { disabled: true } };
      },
    },
    {
      route: "DELETE /api/users/{username}",
      allowed: ["admin"],
      own: async () => {
        await secondAccount("family");
        return { path: `/api/users/${(await call(gw, "GET", "/api/users")).body.at(-1).username}` };
      },
    },
    { route: "GET /api/audit", allowed: ["admin"], own: () => ({ path: "/api/audit" }) },
    {
      route: "POST /api/communities",
      allowed: ["admin"],
      own: () => ({ path: "/api/communities", body: { id: unique("c"), name: "C" } }),
    },
    {
      route: "GET /api/communities",
      allowed: everyone,
      own: () => ({ path: "/api/communities" }),
      hides: (body) => (body as { id: string }[]).some((c) => c.id === "lugu"),
    },
    {
      route: "POST /api/grids",
      allowed: ["admin"],
      own: () => ({ path: "/api/grids", body: { id: unique("g"), communityId: "chongsaikang", name: "G" } }),
    },
    {
      route: "GET /api/grids",
      allowed: everyone,
      own: () => ({ path: "/api/grids" }),
      hides: (body) => (body as { id: string }[]).some((g) => g.id === "lugu-1"),
    },
    {
      route: "POST /api/people",
      allowed: managers,
      own: () => ({ path: "/api/people", body: person(undefined) }),
      foreign: () => ({ path: "/api/people", body: person(undefined, "lugu", "lugu-1") }),
    },
    {
      route: "GET /api/people",
      allowed: everyone,
      own: () => ({ path: "/api/people" }),
      hides: (body) => (body as { id: string }[]).some((p) => p.id === "norbu"),
    },
    {
      route: "GET /api/people/{id}",
      allowed: everyone,
      own: () => ({ path: "/api/people/dondrub" }),
      foreign: () => ({ path: "/api/people/norbu" }),
    },
    {
      route: "GET /api/devices/{id}/watch-readings",
      allowed: everyone,
      own: () => ({ path: "/api/devices/tag-dondrub/watch-readings" }),
      foreign: () => ({ path: "/api/devices/tag-norbu/watch-readings" }),
    },
    { route: "GET /api/channels", allowed: everyone, own: () => ({ path: "/api/channels" }) },
    {
      route: "GET /api/people/{id}/care",
      allowed: everyone,
      own: () => ({ path: "/api/people/dondrub/care" }),
      foreign: () => ({ path: "/api/people/norbu/care" }),
    },
    {
      // Staff in the area and the resident's doctor write them; the family reads only.
      route: "PUT /api/people/{id}/care",
      allowed: ["admin", "staff", "grid", "doctor"],
      own: () => ({ path: "/api/people/dondrub/care", body: { medicines: "Aspirin 100 mg" } }),
      foreign: () => ({ path: "/api/people/norbu/care", body: { medicines: "Aspirin 100 mg" } }),
    },
    {
      route: "GET /api/people/{id}/contacts",
      allowed: everyone,
      own: () => ({ path: "/api/people/dondrub/contacts" }),
      foreign: () => ({ path: "/api/people/norbu/contacts" }),
    },
    {
      // Each person sets their own; the admin, anyone's.
      route: "PUT /api/people/{id}/contacts",
      allowed: everyone,
      own: (v) => ({
        path: `/api/people/${v === "admin" ? "dr-tsering" : usernames[v]}/contacts`,
        body: { contacts: [{ kind: "webhook", address: `http://127.0.0.1:9/${v}` }] },
      }),
      foreign: () => ({
        path: "/api/people/dr-dawa/contacts",
        body: { contacts: [{ kind: "webhook", address: "http://127.0.0.1:9/x" }] },
      }),
    },
    { route: "GET /api/push/key", allowed: everyone, own: () => ({ path: "/api/push/key" }) },
    {
      // Pushes go to the account's person: the first admin is nobody.
      route: "POST /api/push/subscriptions",
      allowed: everyone,
      own: (v) => ({
        path: "/api/push/subscriptions",
        body: pushSubscription(`http://127.0.0.1:9/push-${v}`),
      }),
      ownStatus: { admin: 403 },
    },
    {
      // Each account turns off its own browsers only.
      route: "DELETE /api/push/subscriptions",
      allowed: everyone,
      own: async (v) => {
        const endpoint = `http://127.0.0.1:9/${unique(`push-${v}`)}`;
        await call(gw, "POST", "/api/push/subscriptions", pushSubscription(endpoint), sessions[v]);
        return { path: "/api/push/subscriptions", body: { endpoint } };
      },
      ownStatus: { admin: 404 },
    },
    {
      route: "PATCH /api/people/{id}",
      allowed: managers,
      own: () => ({ path: "/api/people/dondrub", body: { address: "Building 3" } }),
      foreign: () => ({ path: "/api/people/norbu", body: { address: "Building 9" } }),
    },
    {
      route: "DELETE /api/people/{id}",
      allowed: managers,
      own: async () => ({ path: `/api/people/${await throwaway()}` }),
      foreign: async () => ({ path: `/api/people/${await throwaway("lugu", "lugu-1")}` }),
    },
    {
      route: "POST /api/assignments",
      allowed: managers,
      own: async () => ({
        path: "/api/assignments",
        body: { residentId: await throwaway(), personId: "dr-tsering", relation: "doctor" },
      }),
      foreign: async () => ({
        path: "/api/assignments",
        body: { residentId: await throwaway("lugu", "lugu-1"), personId: "dr-dawa", relation: "doctor" },
      }),
    },
    {
      route: "GET /api/assignments",
      allowed: everyone,
      own: () => ({ path: "/api/assignments" }),
      hides: (body) => (body as { residentId: string }[]).some((a) => a.residentId === "norbu"),
    },
    {
      route: "DELETE /api/assignments/{id}",
      allowed: managers,
      own: async () => ({
        path: `/api/assignments/${await throwawayAssignment(await throwaway(), "dr-tsering")}`,
      }),
      foreign: async () => ({
        path: `/api/assignments/${await throwawayAssignment(await throwaway("lugu", "lugu-1"), "dr-dawa")}`,
      }),
    },
    {
      route: "POST /api/devices",
      allowed: managers,
      own: () => ({
        path: "/api/devices",
        body: { id: unique("btn"), kind: "call-button", ownerId: "dondrub" },
      }),
      foreign: () => ({
        path: "/api/devices",
        body: { id: unique("btn"), kind: "call-button", ownerId: "norbu" },
      }),
    },
    {
      route: "GET /api/devices",
      allowed: everyone,
      own: () => ({ path: "/api/devices" }),
      hides: (body) => (body as { ownerId: string }[]).some((d) => d.ownerId === "norbu"),
    },
    {
      route: "GET /api/devices/{id}",
      allowed: everyone,
      own: () => ({ path: "/api/devices/tag-dondrub" }),
      foreign: () => ({ path: "/api/devices/tag-norbu" }),
    },
    {
      route: "POST /api/devices/{id}/secret",
      allowed: managers,
      own: async () => ({ path: `/api/devices/${await throwawayTag()}/secret` }),
      foreign: async () => ({ path: `/api/devices/${await throwawayTag("lugu", "lugu-1")}/secret` }),
    },
    {
      route: "PATCH /api/devices/{id}",
      allowed: managers,
      own: async () => ({ path: `/api/devices/${await throwawayTag()}`, body: { ownerId: "dondrub" } }),
      foreign: async () => ({
        path: `/api/devices/${await throwawayTag("lugu", "lugu-1")}`,
        body: { ownerId: "norbu" },
      }),
    },
    {
      route: "POST /api/devices/{id}/revoke",
      allowed: managers,
      own: async () => ({ path: `/api/devices/${await throwawayTag()}/revoke` }),
      foreign: async () => ({ path: `/api/devices/${await throwawayTag("lugu", "lugu-1")}/revoke` }),
    },
    {
      route: "GET /api/devices/{id}/track",
      allowed: everyone,
      own: () => ({ path: "/api/devices/tag-dondrub/track" }),
      foreign: () => ({ path: "/api/devices/tag-norbu/track" }),
    },
    {
      route: "GET /api/alerts",
      allowed: everyone,
      own: () => ({ path: "/api/alerts" }),
      hides: (body) => (body as { subjectId: string }[]).some((a) => a.subjectId === "norbu"),
    },
    {
      route: "GET /api/alerts/{id}",
      allowed: everyone,
      own: async () => ({ path: `/api/alerts/${await freshAlert()}` }),
      foreign: () => ({ path: `/api/alerts/${norbuAlert}` }),
    },
    {
      route: "POST /api/alerts/{id}/accept",
      allowed: everyone,
      own: async () => ({ path: `/api/alerts/${await freshAlert()}/accept`, body: {} }),
      foreign: () => ({ path: `/api/alerts/${norbuAlert}/accept`, body: {} }),
      ownStatus: { admin: 403 },
    },
    {
      route: "POST /api/alerts/{id}/resolve",
      allowed: everyone,
      own: async () => ({ path: `/api/alerts/${await accepted()}/resolve`, body: { note: "visited" } }),
      foreign: () => ({ path: `/api/alerts/${norbuAlert}/resolve`, body: { note: "visited" } }),
      // The doctor accepted it: the family may not close it for them (README, "Who may act").
      ownStatus: { admin: 403, family: 403 },
    },
    {
      route: "POST /api/alerts/{id}/cancel",
      allowed: everyone,
      own: async () => ({ path: `/api/alerts/${await freshAlert()}/cancel`, body: {} }),
      foreign: () => ({ path: `/api/alerts/${norbuAlert}/cancel`, body: {} }),
      // A call the family did not accept is not theirs to dismiss as a false alarm.
      ownStatus: { admin: 403, family: 403 },
    },
    {
      route: "POST /api/geofences",
      allowed: managers,
      own: async () => ({ path: "/api/geofences", body: zone(undefined, await throwawayTag()) }),
      foreign: async () => ({
        path: "/api/geofences",
        body: zone(undefined, await throwawayTag("lugu", "lugu-1")),
      }),
    },
    {
      route: "GET /api/geofences",
      allowed: everyone,
      own: () => ({ path: "/api/geofences" }),
      hides: (body) => (body as { id: string }[]).some((g) => g.id === "zone-norbu"),
    },
    {
      route: "GET /api/geofences/{id}",
      allowed: everyone,
      own: () => ({ path: "/api/geofences/zone-dondrub" }),
      foreign: () => ({ path: "/api/geofences/zone-norbu" }),
    },
    {
      route: "PUT /api/geofences/{id}",
      allowed: managers,
      own: async () => {
        const tag = await throwawayTag();
        return {
          path: `/api/geofences/${await throwawayZone()}`,
          body: { ...zone("x", tag), id: undefined },
        };
      },
      foreign: async () => ({
        path: "/api/geofences/zone-norbu",
        body: { ...zone("x", "tag-norbu"), id: undefined },
      }),
    },
    {
      route: "DELETE /api/geofences/{id}",
      allowed: managers,
      own: async () => ({ path: `/api/geofences/${await throwawayZone()}` }),
      foreign: async () => ({ path: `/api/geofences/${await throwawayZone("lugu", "lugu-1")}` }),
    },
    ...["monthly", "monthly.csv"].map((report) => ({
      route: `GET /api/reports/${report}`,
      allowed: managers,
      own: () => ({ path: `/api/reports/${report}?community=chongsaikang` }),
      foreign: () => ({ path: `/api/reports/${report}?community=lugu` }),
    })),
    { route: "GET /api/ui-config", allowed: everyone, own: () => ({ path: "/api/ui-config" }) },
    { route: "GET /api/stream", allowed: everyone, own: () => ({ path: "/api/stream" }) },
  ];
  let norbuAlert: string;

  const send = async (row: Row, v: Viewer | null, req: Request) => {
    const method = row.route.split(" ")[0] as string;
    if (row.route === "GET /api/stream") {
      // The stream never ends: read its status line only.
      const res = await fetch(gw.http + req.path, { headers: v ? { cookie: sessions[v].cookie } : {} });
      await res.body?.cancel();
      return { status: res.status, body: undefined };
    }
    return call(
      gw,
      method,
      req.path,
      req.body ?? (method === "GET" || method === "DELETE" ? undefined : {}),
      v ? (req.as ?? sessions[v]) : null,
    );
  };

  const signInAgain = async () => {
    sessions.admin = gw.session = await login(gw, "admin", ADMIN_PASSWORD);
    for (const v of viewers) if (v !== "admin") sessions[v] = await signIn(gw, usernames[v]);
  };

  beforeAll(async () => {
    gw = await startGateway({ clock });
    await seedCommunity(gw, (p) => `http://127.0.0.1:9${p}`);
    await call(gw, "POST", "/api/communities", { id: "lugu", name: "Lugu" });
    await call(gw, "POST", "/api/grids", { id: "lugu-1", communityId: "lugu", name: "Lugu 1" });
    await call(gw, "POST", "/api/people", person("norbu", "lugu", "lugu-1"));
    await call(gw, "POST", "/api/people", { ...person("dr-dawa", "lugu", "lugu-1"), role: "doctor" });
    await registerDevice(gw, "tag-dondrub", "dondrub", "locator-tag");
    await registerDevice(gw, "tag-norbu", "norbu", "locator-tag");
    await call(gw, "POST", "/api/geofences", zone("zone-dondrub", "tag-dondrub"));
    await call(gw, "POST", "/api/geofences", zone("zone-norbu", "tag-norbu"));
    dondrubButton = await connectDevice(gw, await registerDevice(gw, "btn-dondrub"));
    const norbuButton = await connectDevice(gw, await registerDevice(gw, "btn-norbu", "norbu"));
    await norbuButton.event("press", undefined, clock.now());
    norbuAlert = (await norbuButton.waitForCommand("received")).alertId;
    await norbuButton.close();
    await signInAgain();
  });
  afterAll(async () => {
    await dondrubButton?.close();
    await gw?.stop();
  });

  it("has a row for every route of the API", async () => {
    const doc = (await call(gw, "GET", "/docs/json")).body as { paths: Record<string, object> };
    const routes = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    const apiRoutes = routes.filter((r) => r.includes(" /api/") && r !== "POST /api/session");
    expect(rows.map((r) => r.route).sort()).toEqual(apiRoutes.sort());
  });

  it("answers 401 to every route without a session", async () => {
    for (const row of rows) {
      const res = await send(row, null, await row.own("admin"));
      expect({ route: row.route, status: res.status }).toEqual({ route: row.route, status: 401 });
    }
  });

  it("answers 403 to a role the route does not allow, and changes nothing", async () => {
    const before = await call(gw, "GET", "/api/audit?limit=1");
    for (const row of rows) {
      for (const v of viewers.filter((x) => !row.allowed.includes(x))) {
        const res = await send(row, v, await row.own("admin"));
        expect({ route: row.route, v, status: res.status, code: res.body?.error?.code }).toEqual({
          route: row.route,
          v,
          status: 403,
          code: "forbidden",
        });
      }
    }
    // Only the admin's own setup calls were recorded; none by a refused viewer.
    const since = (await call(gw, "GET", "/api/audit?limit=1000")).body as { id: number; actor: string }[];
    const after = since.filter((e) => e.id > (before.body[0]?.id ?? 0));
    expect(after.filter((e) => e.actor !== "admin" && !e.actor.startsWith("second-"))).toEqual([]);
  });

  it("lets each allowed role use the route on its own data", async () => {
    for (const row of rows) {
      for (const v of row.allowed) {
        const res = await send(row, v, await row.own(v));
        const expected = row.ownStatus?.[v];
        const outcome = expected ? res.status === expected : res.status >= 200 && res.status < 300;
        expect({ route: row.route, v, outcome, res: outcome ? undefined : res }).toEqual({
          route: row.route,
          v,
          outcome: true,
          res: undefined,
        });
      }
    }
  });

  it("keeps another community's people, devices, alerts, tracks and zones out of sight", async () => {
    for (const row of rows) {
      for (const v of row.allowed) {
        if (row.hides) {
          const res = await send(row, v, await row.own(v));
          expect({ route: row.route, v, leaks: v !== "admin" && row.hides(res.body) }).toEqual({
            route: row.route,
            v,
            leaks: false,
          });
        }
        if (!row.foreign) continue;
        const res = await send(row, v, await row.foreign(v));
        const ok =
          v === "admin"
            ? res.status < 300 || res.status === 403 // the admin is nobody's responder
            : res.status === 404 || res.status === 403;
        expect({ route: row.route, v, ok, res: ok ? undefined : res }).toEqual({
          route: row.route,
          v,
          ok: true,
          res: undefined,
        });
      }
    }
  });

  it("answers a create the same whether an id outside the viewer's scope exists or not", async () => {
    const tag = await throwawayTag();
    for (const v of ["staff", "grid"] as const) {
      const post = (path: string, body: unknown) => call(gw, "POST", path, body, sessions[v]);
      // Norbu and his zone exist in Lugu; the other ids exist nowhere.
      const taken = [
        await post("/api/people", person("norbu")),
        await post("/api/geofences", zone("zone-norbu", tag)),
      ];
      const free = [
        await post("/api/people", person("nobody-such")),
        await post("/api/geofences", zone("no-such-zone", tag)),
      ];
      expect(taken).toEqual(free);
      expect(free.map((r) => [r.status, r.body.error.code])).toEqual([
        [400, "invalid_request"],
        [400, "invalid_request"],
      ]);
      // Leaving the id out, the gateway makes one.
      const made = [
        await post("/api/people", person(undefined)),
        await post("/api/geofences", zone(undefined, tag)),
      ];
      expect(made.map((r) => [r.status, r.body.id])).toEqual([
        [201, expect.stringMatching(/^person-[0-9a-f]{12}$/)],
        [201, expect.stringMatching(/^zone-[0-9a-f]{12}$/)],
      ]);
    }
    // An admin sees everyone, so may choose ids and hears of a duplicate.
    expect((await call(gw, "POST", "/api/people", person("norbu", "lugu", "lugu-1"))).status).toBe(409);
  });

  it("scopes a grid worker to their grid, and a doctor to their own residents", async () => {
    await call(gw, "POST", "/api/grids", { id: "grid-2", communityId: "chongsaikang", name: "Grid 2" });
    await call(gw, "POST", "/api/people", person("tsomo", "chongsaikang", "grid-2"));
    const sees = async (v: Viewer) =>
      (await call(gw, "GET", "/api/people/tsomo", undefined, await signIn(gw, usernames[v]))).status;
    expect(await sees("staff")).toBe(200);
    expect(await sees("grid")).toBe(404);
    expect(await sees("doctor")).toBe(404);
    // A grid worker may not place a person outside their grid.
    const outside = await call(
      gw,
      "POST",
      "/api/people",
      person(undefined, "chongsaikang", "grid-2"),
      sessions.grid,
    );
    expect(outside).toMatchObject({ status: 403, body: { error: { code: "forbidden" } } });
    // Nor make themselves community staff: a role decides scope, and only an admin changes one.
    const promoted = await call(gw, "PATCH", "/api/people/lhakpa", { role: "staff" }, sessions.grid);
    expect(promoted).toMatchObject({ status: 403, body: { error: { code: "forbidden" } } });
    expect((await call(gw, "GET", "/api/people/lhakpa")).body.role).toBe("grid-worker");
    // A person an account acts as cannot be deleted from under it.
    const linked = await call(gw, "DELETE", "/api/people/pema");
    expect(linked).toMatchObject({ status: 409, body: { error: { code: "in_use" } } });
  });

  it("streams to each viewer only the alerts it may see", async () => {
    const family = openSse(`${gw.http}/api/stream`, { cookie: sessions.family.cookie });
    const admin = openSse(`${gw.http}/api/stream`, { cookie: sessions.admin.cookie });
    await waitFor(() => gw.stream.size >= 2);
    const norbu = await connectDevice(gw, {
      id: "btn-norbu",
      secret: (await call(gw, "POST", "/api/devices/btn-norbu/secret")).body.secret,
    });
    await norbu.event("press", 2, clock.now()); // its first press (seq 1) was in beforeAll
    const ours = await freshAlert();
    await waitFor(() => family.alertEvents().some((e) => e.alert.id === ours), 5000, "family's alert");
    await waitFor(() => admin.alertEvents().some((e) => e.alert.subjectId === "norbu"), 5000, "admin's view");
    expect(family.alertEvents().filter((e) => e.alert.subjectId !== "dondrub")).toEqual([]);
    await norbu.close();
    await family.close();
    await admin.close();
  });

  it("ends a live stream as soon as its account is disabled, an admin's too", async () => {
    const other = await call(gw, "POST", "/api/users", {
      username: "second-admin",
      role: "admin",
      personId: null,
      password: PEOPLE_PASSWORD,
    });
    expect(other.status).toBe(201);
    const session = await login(gw, "second-admin", PEOPLE_PASSWORD);
    const res = await fetch(`${gw.http}/api/stream`, { headers: { cookie: session.cookie } });
    expect(res.status).toBe(200);
    const ended = (async () => {
      for await (const _ of res.body ?? []) {
        // read until the server ends it
      }
    })();
    await waitFor(() => gw.stream.size >= 1);
    await call(gw, "PATCH", "/api/users/second-admin", { disabled: true });
    await ended;
    const again = await fetch(`${gw.http}/api/stream`, { headers: { cookie: session.cookie } });
    expect(again.status).toBe(401);
    await again.body?.cancel();
  });

  it("refuses a state-changing request without the session's CSRF token", async () => {
    const { cookie } = sessions.staff;
    const people = async () => ((await call(gw, "GET", "/api/people")).body as unknown[]).length;
    const before = await people();
    for (const csrf of ["", "forged-token"]) {
      const res = await call(gw, "POST", "/api/people", person(undefined), { cookie, csrf });
      expect(res).toMatchObject({ status: 403, body: { error: { code: "csrf" } } });
    }
    expect(await people()).toBe(before);
  });

  it("sets an httpOnly SameSite cookie, ends sessions at sign-out and at expiry", async () => {
    const res = await fetch(`${gw.http}/api/session`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "pema", password: PEOPLE_PASSWORD }),
    });
    expect(res.headers.get("set-cookie")).toMatch(
      /^gw_session=[\w-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/,
    );
    const out = await signIn(gw, "pema");
    expect((await call(gw, "DELETE", "/api/session", undefined, out)).status).toBe(204);
    expect((await call(gw, "GET", "/api/session", undefined, out)).status).toBe(401);

    const expiring = await signIn(gw, "pema");
    await clock.advance(12 * 3600_000);
    expect((await call(gw, "GET", "/api/session", undefined, expiring)).status).toBe(401);
    await signInAgain();
  });

  it("limits failed sign-ins per username, with Retry-After, and records them", async () => {
    const attempt = (password: string) =>
      fetch(`${gw.http}/api/session`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username: "dr-tsering", password }),
      });
    for (let i = 0; i < 5; i++) expect((await attempt(`guess-${i}`)).status).toBe(401);
    const blocked = await attempt(PEOPLE_PASSWORD); // even the right password, while blocked
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get("retry-after"))).toBeGreaterThan(0);
    await clock.advance(15 * 60_000);
    expect((await attempt(PEOPLE_PASSWORD)).status).toBe(200);
    const audit = (await call(gw, "GET", "/api/audit?actor=dr-tsering&limit=100")).body as {
      action: string;
    }[];
    expect(audit.filter((e) => e.action === "login.failed")).toHaveLength(5);
    expect(audit.filter((e) => e.action === "login.throttled")).toHaveLength(1); // once per window

    // Guesses sent all at once are limited as well: they are counted before the password is checked.
    const burst = await Promise.all(Array.from({ length: 12 }, (_, i) => attempt(`burst-${i}`)));
    const statuses = burst.map((r) => r.status);
    expect(statuses.filter((s) => s === 401)).toHaveLength(5);
    expect(statuses.filter((s) => s === 429)).toHaveLength(7);
  });

  it("records who accepted and resolved, and every read of a tag's track", async () => {
    const id = await accepted();
    await call(gw, "POST", `/api/alerts/${id}/resolve`, { note: "visited" }, sessions.doctor);
    const family = await signIn(gw, "pema");
    await call(gw, "GET", "/api/devices/tag-dondrub/track", undefined, family);
    const audit = (await call(gw, "GET", "/api/audit?limit=1000")).body as {
      actor: string;
      action: string;
      target: string;
      detail: Record<string, unknown>;
    }[];
    expect(audit).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ actor: "dr-tsering", action: "alert.accept", target: id }),
        expect.objectContaining({ actor: "dr-tsering", action: "alert.resolve", target: id }),
        expect.objectContaining({
          actor: "pema",
          action: "track.read",
          target: "tag-dondrub",
          detail: expect.objectContaining({ ownerId: "dondrub" }),
        }),
      ]),
    );
    const alert = (await call(gw, "GET", `/api/alerts/${id}`)).body;
    expect(alert).toMatchObject({ acceptedBy: "dr-tsering", closedBy: "dr-tsering" });
  });
});
