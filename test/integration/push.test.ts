import {
  createDecipheriv,
  createECDH,
  createPublicKey,
  type ECDH,
  hkdfSync,
  randomBytes,
  verify,
} from "node:crypto";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { FakeClock } from "../support/fake-clock.ts";
import {
  call,
  connectDevice,
  registerDevice,
  seedCommunity,
  signIn,
  startGateway,
  type TestGateway,
} from "../support/gateway.ts";
import { waitFor } from "../support/wait.ts";
import { type ReceivedWebhook, startWebhookServer } from "../support/webhook-server.ts";

const PUBLIC_URL = "https://safety.example.org";
const VAPID_SUBJECT = "mailto:ops@example.org";

/** What a browser makes when it subscribes: a P-256 key pair and a 16-byte auth secret. */
function browserKeys() {
  const ecdh = createECDH("prime256v1");
  ecdh.generateKeys();
  return { ecdh, auth: randomBytes(16) };
}

/** The VAPID JWT's claims, once its ES256 signature checks out with the gateway's public key (RFC 8292). */
function vapidClaims(authorization: string | undefined, publicKey: string): Record<string, unknown> {
  const match = /^vapid t=([\w-]+\.[\w-]+\.[\w-]+), k=([\w-]+)$/.exec(authorization ?? "");
  if (!match) throw new Error(`not a VAPID Authorization header: ${authorization}`);
  const [, jwt = "", k] = match;
  expect(k).toBe(publicKey);
  const [header = "", claims = "", signature = ""] = jwt.split(".");
  expect(JSON.parse(Buffer.from(header, "base64url").toString())).toMatchObject({ alg: "ES256" });
  const raw = Buffer.from(publicKey, "base64url");
  const key = createPublicKey({
    key: {
      kty: "EC",
      crv: "P-256",
      x: raw.subarray(1, 33).toString("base64url"),
      y: raw.subarray(33, 65).toString("base64url"),
    },
    format: "jwk",
  });
  const signed = verify(
    "sha256",
    Buffer.from(`${header}.${claims}`),
    { key, dsaEncoding: "ieee-p1363" },
    Buffer.from(signature, "base64url"),
  );
  expect(signed, "the JWT is signed with the gateway's VAPID key").toBe(true);
  return JSON.parse(Buffer.from(claims, "base64url").toString());
}

/** Decrypts an aes128gcm Web Push body as the browser would (RFC 8291 keys, RFC 8188 record). */
function decrypt(body: Buffer, browser: { ecdh: ECDH; auth: Buffer }): string {
  const salt = body.subarray(0, 16);
  const idLength = body.readUInt8(20);
  const serverKey = body.subarray(21, 21 + idLength);
  const record = body.subarray(21 + idLength);
  const shared = browser.ecdh.computeSecret(serverKey);
  const keyInfo = Buffer.concat([Buffer.from("WebPush: info\0"), browser.ecdh.getPublicKey(), serverKey]);
  const ikm = Buffer.from(hkdfSync("sha256", shared, browser.auth, keyInfo, 32));
  const cek = Buffer.from(hkdfSync("sha256", ikm, salt, Buffer.from("Content-Encoding: aes128gcm\0"), 16));
  const nonce = Buffer.from(hkdfSync("sha256", ikm, salt, Buffer.from("Content-Encoding: nonce\0"), 12));
  const decipher = createDecipheriv("aes-128-gcm", cek, nonce);
  decipher.setAuthTag(record.subarray(record.length - 16));
  const padded = Buffer.concat([decipher.update(record.subarray(0, record.length - 16)), decipher.final()]);
  // The last record ends with the delimiter 0x02, then any zero padding.
  const end = padded.lastIndexOf(2);
  expect(padded.subarray(end + 1).every((b) => b === 0)).toBe(true);
  return padded.subarray(0, end).toString("utf8");
}

describe("Web Push: a subscribed phone rings", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /** A gateway, the community, and a local push service standing in for FCM or Mozilla's. */
  async function world() {
    const clock = new FakeClock();
    const hooks = await startWebhookServer();
    const pushService = await startWebhookServer({ status: 201 });
    cleanups.push(() => Promise.all([hooks.close(), pushService.close()]));
    const gw = await startGateway({ clock, env: { PUBLIC_URL, VAPID_SUBJECT } });
    cleanups.push(() => gw.stop());
    await seedCommunity(gw, (path) => hooks.url(path));
    const doctor = await signIn(gw, "dr-tsering");
    const { publicKey } = (await call(gw, "GET", "/api/push/key", undefined, doctor)).body as {
      publicKey: string;
    };
    return { gw, clock, hooks, pushService, doctor, publicKey };
  }

  const subscriptionOf = (endpoint: string, browser: { ecdh: ECDH; auth: Buffer }) => ({
    endpoint,
    expirationTime: null,
    keys: {
      p256dh: browser.ecdh.getPublicKey().toString("base64url"),
      auth: browser.auth.toString("base64url"),
    },
  });

  async function press(gw: TestGateway, deviceId: string) {
    const device = await connectDevice(gw, await registerDevice(gw, deviceId));
    cleanups.push(() => device.close());
    await device.event("press");
    return (await device.waitForCommand("received")).alertId as string;
  }

  type Attempt = { personId: string; channel: string; event: string; status: string; detail: string };
  const pushAttempts = (gw: TestGateway, alertId: string, count: number) =>
    waitFor(
      async () => {
        const all = ((await call(gw, "GET", `/api/alerts/${alertId}`)).body.attempts as Attempt[]).filter(
          (a) => a.channel === "push",
        );
        return all.length === count && all.every((a) => a.status !== "pending") && all;
      },
      5000,
      `${count} settled push attempts`,
    );

  it("a press is pushed to the doctor's phone: signed with VAPID, encrypted to the phone, urgent, recorded as accepted; a 410 removes the subscription", async () => {
    const { gw, pushService, doctor, publicKey } = await world();
    expect(Buffer.from(publicKey, "base64url")).toHaveLength(65);
    const phone = browserKeys();
    const endpoint = pushService.url("/wpush/v2/doctor-phone");
    const subscribed = await call(
      gw,
      "POST",
      "/api/push/subscriptions",
      subscriptionOf(endpoint, phone),
      doctor,
    );
    expect(subscribed.status, JSON.stringify(subscribed.body)).toBe(204);

    const alertId = await press(gw, "btn-dondrub");
    const push: ReceivedWebhook = await waitFor(() => pushService.received[0], 5000, "the push");
    expect(push.path).toBe("/wpush/v2/doctor-phone");
    expect(push.headers["content-encoding"]).toBe("aes128gcm");
    expect(push.headers.ttl).toBe("600");
    expect(push.headers.urgency).toBe("high");
    const claims = vapidClaims(push.headers.authorization, publicKey);
    expect(claims.aud).toBe(new URL(endpoint).origin);
    expect(claims.sub).toBe(VAPID_SUBJECT);
    const nowSec = Date.now() / 1000;
    expect(claims.exp).toBeGreaterThan(nowSec);
    expect(claims.exp).toBeLessThanOrEqual(nowSec + 24 * 3600);

    const payload = JSON.parse(decrypt(push.raw, phone));
    expect(payload).toMatchObject({
      alertId,
      event: "paged",
      link: `${PUBLIC_URL}/?alert=${alertId}#alerts`,
    });
    expect(payload.title).toContain("顿珠 Dondrub");
    expect(payload.body).toContain("第1级");

    const [attempt] = await pushAttempts(gw, alertId, 1);
    expect(attempt).toMatchObject({ personId: "dr-tsering", event: "paged", status: "accepted" });
    expect(attempt?.detail).toContain("HTTP 201");

    // The phone's browser dropped the subscription: the next message (the accept) finds it gone.
    pushService.state.status = 410;
    const accepted = await call(
      gw,
      "POST",
      `/api/alerts/${alertId}/accept`,
      {},
      await signIn(gw, "staff-yang"),
    );
    expect(accepted.status).toBe(200);
    const attempts = await pushAttempts(gw, alertId, 2);
    expect(attempts[1]).toMatchObject({ personId: "dr-tsering", event: "accepted", status: "failed" });
    expect(attempts[1]?.detail).toContain("410");
    // News, not a call to act: normal urgency, kept longer.
    expect(pushService.received[1]?.headers).toMatchObject({ urgency: "normal", ttl: "3600" });
    expect(await gw.store.pushSubscriptions.get(endpoint)).toBeUndefined();
    // The page's "turn off" then finds nothing to remove.
    expect((await call(gw, "DELETE", "/api/push/subscriptions", { endpoint }, doctor)).status).toBe(404);
  });

  it("never counts as reaching anyone: a doctor with push alone is pushed to, and the family is paged at once, not after the doctor's minute", async () => {
    const { gw, clock, hooks, pushService, doctor } = await world();
    const noContacts = await call(gw, "PUT", "/api/people/dr-tsering/contacts", { contacts: [] }, doctor);
    expect(noContacts.status).toBe(200);
    const phone = browserKeys();
    const endpoint = pushService.url("/wpush/only-push");
    expect(
      (await call(gw, "POST", "/api/push/subscriptions", subscriptionOf(endpoint, phone), doctor)).status,
    ).toBe(204);
    const startedAt = clock.now();
    const alertId = await press(gw, "btn-dondrub");
    await waitFor(() => hooks.received.find((r) => r.path === "/pema"), 5000, "the family's page");
    expect(clock.now()).toBe(startedAt);
    const [attempt] = await pushAttempts(gw, alertId, 1);
    expect(attempt).toMatchObject({ personId: "dr-tsering", event: "paged", status: "accepted" });
    expect(JSON.parse(decrypt((pushService.received[0] as ReceivedWebhook).raw, phone)).alertId).toBe(
      alertId,
    );
  });

  it("does not count a push as reaching the doctor when a crash cut off her page: the page goes out again at the next start", async () => {
    const { gw, clock, hooks, pushService, doctor } = await world();
    const endpoint = pushService.url("/wpush/crash");
    expect(
      (await call(gw, "POST", "/api/push/subscriptions", subscriptionOf(endpoint, browserKeys()), doctor))
        .status,
    ).toBe(204);
    const alertId = await press(gw, "btn-dondrub");
    await pushAttempts(gw, alertId, 1);
    await waitFor(() => hooks.received.find((r) => r.path === "/dr-tsering"), 5000, "the doctor's page");
    await gw.stop();
    // As a crash mid-send leaves it: the doctor's webhook stored, its result never.
    const db = new Database(join(gw.dataDir, "gateway.db"));
    db.prepare(
      "UPDATE notification_attempts SET status = 'pending', detail = NULL WHERE person_id = 'dr-tsering' AND channel = 'webhook'",
    ).run();
    db.close();
    const pagesBefore = hooks.received.filter((r) => r.path === "/dr-tsering").length;
    const again = await startGateway({ clock, dataDir: gw.dataDir, env: { PUBLIC_URL, VAPID_SUBJECT } });
    cleanups.push(() => again.stop());
    await waitFor(
      () => hooks.received.filter((r) => r.path === "/dr-tsering").length > pagesBefore,
      5000,
      "the doctor's page sent again",
    );
  });

  it("refuses a subscription that is not one, or whose endpoint the outbound guard refuses, and changes nothing", async () => {
    const { gw, pushService, doctor } = await world();
    const phone = browserKeys();
    const good = subscriptionOf(pushService.url("/wpush/ok"), phone);
    const notOnCurve = Buffer.alloc(65, 7);
    notOnCurve[0] = 4;
    const refusals: [unknown, string][] = [
      [{ endpoint: good.endpoint }, "keys"],
      [{ ...good, endpoint: "not a url" }, "endpoint"],
      [{ ...good, keys: { ...good.keys, auth: "c2hvcnQ" } }, "16 bytes"],
      [{ ...good, keys: { ...good.keys, p256dh: notOnCurve.toString("base64url") } }, "P-256"],
      // Not allowed by OUTBOUND_ALLOW: private and link-local (cloud metadata) addresses.
      [{ ...good, endpoint: "https://10.20.30.40/wpush/x" }, "10.20.30.40"],
      [{ ...good, endpoint: "https://169.254.169.254/latest" }, "169.254.169.254"],
    ];
    for (const [body, why] of refusals) {
      const res = await call(gw, "POST", "/api/push/subscriptions", body, doctor);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(JSON.stringify(res.body)).toContain(why);
    }
    // The first admin acts as nobody: no alert would ever be pushed to it.
    expect((await call(gw, "POST", "/api/push/subscriptions", good)).status).toBe(403);
    expect(await gw.store.pushSubscriptions.forPerson("dr-tsering")).toEqual([]);

    // Someone else's subscription cannot be turned off.
    expect((await call(gw, "POST", "/api/push/subscriptions", good, doctor)).status).toBe(204);
    const family = await signIn(gw, "pema");
    expect(
      (await call(gw, "DELETE", "/api/push/subscriptions", { endpoint: good.endpoint }, family)).status,
    ).toBe(404);
    expect(await gw.store.pushSubscriptions.forPerson("dr-tsering")).toHaveLength(1);
    expect(
      (await call(gw, "DELETE", "/api/push/subscriptions", { endpoint: good.endpoint }, doctor)).status,
    ).toBe(204);
    expect(await gw.store.pushSubscriptions.forPerson("dr-tsering")).toEqual([]);

    // A disabled account's phone falls silent.
    expect((await call(gw, "POST", "/api/push/subscriptions", good, doctor)).status).toBe(204);
    expect(await gw.store.pushSubscriptions.forPerson("dr-tsering")).toHaveLength(1);
    expect((await call(gw, "PATCH", "/api/users/dr-tsering", { disabled: true })).status).toBe(200);
    expect(await gw.store.pushSubscriptions.forPerson("dr-tsering")).toEqual([]);
  });
});
