import { Writable } from "node:stream";
import mqtt from "mqtt";
import { afterEach, describe, expect, it } from "vitest";
import { FakeClock } from "../support/fake-clock.ts";
import {
  ADMIN_PASSWORD,
  call,
  connectDevice,
  PEOPLE_PASSWORD,
  registerDevice,
  seedCommunity,
  signIn,
  startGateway,
  type TestGateway,
} from "../support/gateway.ts";
import { waitFor } from "../support/wait.ts";

describe("privacy", () => {
  let gw: TestGateway | undefined;
  afterEach(async () => {
    await gw?.stop();
    gw = undefined;
  });

  it("keeps passwords, secrets, sessions, phone numbers and addresses out of the log", async () => {
    const lines: string[] = [];
    const logTo = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    gw = await startGateway({ logTo, env: { LOG_LEVEL: "trace" } });
    await seedCommunity(gw, (p) => `http://127.0.0.1:9${p}?token=hook-token-123`);
    const phone = "+86 891 555 0199";
    const home = "Building 7, Chongsaikang Lane";
    await call(gw, "PATCH", "/api/people/dondrub", { phone, address: home });
    const creds = await registerDevice(gw, "btn-private");
    const rotated = (await call(gw, "POST", "/api/devices/btn-private/secret")).body.secret as string;
    // A refused connection is logged: with the device id, never the secret it tried.
    await mqtt
      .connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, {
        clientId: "btn-private",
        username: "btn-private",
        password: creds.secret,
        reconnectPeriod: 0,
      })
      .catch(() => undefined);
    const device = await connectDevice(gw, { id: "btn-private", secret: rotated });
    await device.event("press");
    const { alertId } = await device.waitForCommand("received");
    const doctor = await signIn(gw, "dr-tsering");
    await call(gw, "POST", `/api/alerts/${alertId}/accept`, {}, doctor);
    await call(gw, "POST", "/api/session", { username: "pema", password: "not-her-password" }, null);
    await waitFor(() => lines.some((l) => l.includes("device connection refused")), 5000, "refusal logged");
    await device.close();

    const log = lines.join("");
    // The lines that would carry them were written: the refusal, the first admin, a failed notification.
    for (const msg of ["device connection refused", "created the first admin", "notification failed"]) {
      expect(log).toContain(msg);
    }
    for (const secret of [
      ADMIN_PASSWORD,
      PEOPLE_PASSWORD,
      "not-her-password",
      creds.secret,
      rotated,
      phone,
      home,
      "hook-token-123",
      doctor.cookie.split("=")[1] as string,
      doctor.csrf,
    ]) {
      expect({ secret, logged: log.includes(secret) }).toEqual({ secret, logged: false });
    }
  });

  it("deletes closed alerts and the access log after ALERT_RETENTION_DAYS, never an open alert", async () => {
    const clock = new FakeClock(Date.parse("2026-11-25T08:00:00Z"));
    gw = await startGateway({ clock, env: { ALERT_RETENTION_DAYS: "1" } });
    await seedCommunity(gw, (p) => `http://127.0.0.1:9${p}`);
    const closing = await connectDevice(gw, await registerDevice(gw, "btn-closed"));
    const staying = await connectDevice(gw, await registerDevice(gw, "btn-open"));
    await closing.event("press", undefined, clock.now());
    await staying.event("press", undefined, clock.now());
    const closed = (await closing.waitForCommand("received")).alertId;
    const open = (await staying.waitForCommand("received")).alertId;
    const doctor = await signIn(gw, "dr-tsering");
    await call(gw, "POST", `/api/alerts/${closed}/accept`, {}, doctor);
    await call(gw, "POST", `/api/alerts/${closed}/resolve`, { note: "all well" }, doctor);

    await clock.advance(23 * 3600_000);
    expect((await gw.store.alerts.get(closed))?.state).toBe("resolved");

    await clock.advance(2 * 3600_000);
    await waitFor(
      async () => (await gw?.store.alerts.get(closed)) === undefined,
      5000,
      "closed alert pruned",
    );
    expect(await gw.store.alerts.events(closed)).toEqual([]);
    expect(await gw.store.attempts.forAlert(closed)).toEqual([]);
    expect((await gw.store.alerts.get(open))?.state).toBe("open");
    expect((await gw.store.alerts.events(open)).length).toBeGreaterThan(0);
    const audit = await gw.store.audit.list({ limit: 1000 });
    expect(audit.filter((e) => e.at < clock.now() - 86_400_000)).toEqual([]);
    await closing.close();
    await staying.close();
  });
});
