import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FakeClock, settle } from "../support/fake-clock.ts";
import {
  call,
  connectDevice,
  registerDevice,
  seedCommunity,
  seedLoneResident,
  signIn,
  startGateway,
  type TestGateway,
} from "../support/gateway.ts";
import { openSse } from "../support/sse.ts";
import { waitFor } from "../support/wait.ts";

describe("scope held across communities and sessions", () => {
  let gw: TestGateway;
  beforeEach(async () => {
    gw = await startGateway();
    await seedCommunity(gw, (p) => `https://bridge.example.invalid${p}`);
    await seedLoneResident(gw);
  });
  afterEach(() => gw.stop());

  it("lets only someone whose area covers all its residents redirect a person's alerts", async () => {
    // An admin makes Pema, of Chongsaikang, the family of a Lugu resident too.
    await call(gw, "POST", "/api/assignments", { residentId: "norbu", personId: "pema", relation: "family" });
    const contacts = [{ kind: "webhook", address: "https://attacker.example.org/hook" }];
    const byStaff = await call(gw, "PATCH", "/api/people/pema", { contacts }, await signIn(gw, "staff-yang"));
    expect(byStaff.status).toBe(403);
    expect(byStaff.body.error.message).toMatch(/receives alerts about residents outside your area/);
    expect(byStaff.body.error.message).not.toContain("norbu");
    // What does not redirect alerts is still the staff's to change.
    expect(
      (await call(gw, "PATCH", "/api/people/pema", { phone: "+86 1" }, await signIn(gw, "staff-yang")))
        .status,
    ).toBe(200);
    // A grid worker may not redirect the alerts of the community's staff, who hear of the whole community.
    const byGridWorker = await call(
      gw,
      "PATCH",
      "/api/people/staff-yang",
      { contacts },
      await signIn(gw, "lhakpa"),
    );
    expect(byGridWorker.status).toBe(403);
    expect((await call(gw, "PATCH", "/api/people/pema", { contacts })).status).toBe(200);
    expect((await call(gw, "GET", "/api/people/pema")).body.contacts).toEqual([
      { ...contacts[0], alertKinds: null, minLevel: 1 },
    ]);
  });

  it("ends on a change of access only the streams it affects", async () => {
    const pema = await signIn(gw, "pema");
    const staff = await signIn(gw, "staff-yang");
    const admin = openSse(`${gw.http}/api/stream`, { cookie: gw.cookie });
    const family = openSse(`${gw.http}/api/stream`, { cookie: pema.cookie });
    const community = openSse(`${gw.http}/api/stream`, { cookie: staff.cookie });
    await waitFor(() => gw.stream.size === 3);

    // Someone else signs in and out, again and again: nobody's stream flaps.
    for (let i = 0; i < 3; i++)
      await call(gw, "DELETE", "/api/session", undefined, await signIn(gw, "lhakpa"));
    // A change in another community touches none of them either.
    await call(gw, "PATCH", "/api/people/norbu", { address: "Lugu 1" });
    await settle();
    expect(gw.stream.size).toBe(3);

    // Pema's own sign-out ends Pema's stream only.
    await call(gw, "DELETE", "/api/session", undefined, pema);
    await waitFor(() => gw.stream.size === 2, 2000, "Pema's stream to end");
    // A new resident in Chongsaikang changes what its staff see: their stream is scoped afresh.
    await call(gw, "POST", "/api/people", {
      id: "yangzom",
      name: "Yangzom",
      role: "resident",
      communityId: "chongsaikang",
    });
    await waitFor(() => gw.stream.size === 1, 2000, "the staff stream to be re-scoped");
    await Promise.all([admin.close(), family.close(), community.close()]);
  });

  it("gives a family account event ids that tell nothing of the district's other alerts", async () => {
    const clock = new FakeClock();
    const quiet = await startGateway({ clock });
    try {
      await seedCommunity(quiet, (p) => `https://bridge.example.invalid${p}`);
      await call(quiet, "POST", "/api/people", {
        id: "tashi",
        name: "Tashi",
        role: "resident",
        communityId: "chongsaikang",
      });
      const pema = await signIn(quiet, "pema");
      const position = async () =>
        Number(
          (await fetch(`${quiet.http}/api/alerts`, { headers: { cookie: pema.cookie } })).headers.get(
            "x-last-event-id",
          ),
        );
      const before = await position();
      const neighbour = await connectDevice(quiet, await registerDevice(quiet, "btn-tashi", "tashi"));
      for (let i = 0; i < 5; i++) {
        await clock.advance(1);
        await neighbour.event("press", undefined, clock.now());
        await neighbour.waitForCommand("received");
      }
      await clock.advance(1);
      // Six milliseconds later, whatever happened elsewhere: only the time moved it.
      expect((await position()) - before).toBe(6 * 1024);
      const family = openSse(`${quiet.http}/api/stream?lastEventId=${await position()}`, {
        cookie: pema.cookie,
      });
      await waitFor(() => quiet.stream.size === 1);
      const own = await connectDevice(quiet, await registerDevice(quiet, "btn-dondrub"));
      await clock.advance(1);
      await own.event("press", undefined, clock.now());
      await waitFor(() => family.messages.length > 0);
      expect(Number(family.messages[0]?.id)).toBe(clock.now() * 1024);
      await Promise.all([family.close(), neighbour.close(), own.close()]);
    } finally {
      await quiet.stop();
    }
  });
});
