import { afterEach, describe, expect, it } from "vitest";
import { clientNetwork } from "../../gateway/auth/index.ts";
import { FakeClock } from "../support/fake-clock.ts";
import {
  call,
  PEOPLE_PASSWORD,
  seedCommunity,
  signIn,
  startGateway,
  type TestGateway,
  tempDataDir,
} from "../support/gateway.ts";

describe("sign-in limits that stop guessing without locking a responder out", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  async function gateway(clock: FakeClock, dataDir = tempDataDir(), env: Record<string, string> = {}) {
    const gw = await startGateway({ clock, dataDir, env: { TRUST_PROXY: "true", ...env } });
    cleanups.push(() => gw.stop());
    return gw;
  }
  /** A sign-in as `username` from `address` (behind the trusted proxy). */
  const attempt = (gw: TestGateway, username: string, password: string, address: string) =>
    fetch(`${gw.http}/api/session`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-forwarded-for": address },
      body: JSON.stringify({ username, password }),
    });
  const guess = async (gw: TestGateway, username: string, address: string, n: number) => {
    for (let i = 0; i < n; i++) expect((await attempt(gw, username, `guess-${i}`, address)).status).toBe(401);
  };

  it("blocks guesses from one address only: the doctor still signs in from another", async () => {
    const clock = new FakeClock();
    const gw = await gateway(clock);
    await seedCommunity(gw, (p) => `http://127.0.0.1:9${p}`);
    await guess(gw, "dr-tsering", "203.0.113.5", 5);
    const blocked = await attempt(gw, "dr-tsering", PEOPLE_PASSWORD, "203.0.113.5");
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get("retry-after"))).toBe(60);
    expect((await attempt(gw, "dr-tsering", PEOPLE_PASSWORD, "198.51.100.7")).status).toBe(200);
  });

  it("backs off: each block lasts twice the one before, up to the window", async () => {
    const clock = new FakeClock();
    const gw = await gateway(clock);
    await seedCommunity(gw, (p) => `http://127.0.0.1:9${p}`);
    const retryAfter = async () =>
      Number((await attempt(gw, "pema", "again", "203.0.113.9")).headers.get("retry-after"));
    const seen: number[] = [];
    for (let round = 0; round < 6; round++) {
      await guess(gw, "pema", "203.0.113.9", 5);
      const wait = await retryAfter();
      seen.push(wait);
      await clock.advance(wait * 1000);
    }
    expect(seen).toEqual([60, 120, 240, 480, 900, 900]);
  });

  it("keeps its counts across a restart, and an admin can lift a block at once", async () => {
    const clock = new FakeClock();
    const dataDir = tempDataDir();
    const first = await gateway(clock, dataDir);
    await seedCommunity(first, (p) => `http://127.0.0.1:9${p}`);
    await guess(first, "lhakpa", "203.0.113.20", 5);
    await first.stop();
    cleanups.pop();

    const gw = await gateway(clock, dataDir);
    expect((await attempt(gw, "lhakpa", PEOPLE_PASSWORD, "203.0.113.20")).status).toBe(429);
    const unlocked = await call(gw, "POST", "/api/users/lhakpa/unlock", {});
    expect(unlocked).toMatchObject({ status: 200, body: { lifted: 1 } });
    expect((await attempt(gw, "lhakpa", PEOPLE_PASSWORD, "203.0.113.20")).status).toBe(200);
    const audit = (await call(gw, "GET", "/api/audit?action=account.unlock")).body;
    expect(audit[0]).toMatchObject({ actor: "admin", target: "lhakpa" });
    expect((await call(gw, "POST", "/api/users/nobody/unlock", {})).status).toBe(404);
  });

  it("counts an IPv6 client's whole /64 as one address, across usernames", async () => {
    const clock = new FakeClock();
    const gw = await gateway(clock, tempDataDir(), { LOGIN_MAX_FAILURES_PER_ADDRESS: "6" });
    await seedCommunity(gw, (p) => `http://127.0.0.1:9${p}`);
    const users = ["dr-tsering", "pema", "lhakpa", "staff-yang", "admin", "nobody"];
    for (const [i, u] of users.entries()) await guess(gw, u, `2001:db8:1:1::${i + 1}`, 1);
    expect((await attempt(gw, "pema", PEOPLE_PASSWORD, "2001:db8:1:1:ffff::9")).status).toBe(429);
    expect((await attempt(gw, "pema", PEOPLE_PASSWORD, "2001:db8:1:2::1")).status).toBe(200);
  });

  it("ends a session left idle, and keeps one in use", async () => {
    const clock = new FakeClock();
    const gw = await gateway(clock, tempDataDir(), { SESSION_IDLE_HOURS: "1", SESSION_TTL_HOURS: "12" });
    await seedCommunity(gw, (p) => `http://127.0.0.1:9${p}`);
    const used = await signIn(gw, "pema");
    const idle = await signIn(gw, "pema");
    for (let i = 0; i < 3; i++) {
      await clock.advance(50 * 60_000);
      expect((await call(gw, "GET", "/api/session", undefined, used)).status).toBe(200);
    }
    expect((await call(gw, "GET", "/api/session", undefined, idle)).status).toBe(401);
  });
});

describe("client network", () => {
  it("groups IPv6 by /64 and leaves IPv4 alone", () => {
    expect(clientNetwork("2001:db8:1:1::a")).toBe("2001:db8:1:1::/64");
    expect(clientNetwork("2001:0db8:0001:0001:ffff:0:0:9")).toBe("2001:db8:1:1::/64");
    expect(clientNetwork("::1")).toBe("0:0:0:0::/64");
    expect(clientNetwork("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(clientNetwork("::ffff:203.0.113.5")).toBe("203.0.113.5");
    expect(clientNetwork("203.0.113.5")).toBe("203.0.113.5");
  });
});
