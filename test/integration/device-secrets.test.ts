import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, renameSync, statSync } from "node:fs";
import { join } from "node:path";
import mqtt from "mqtt";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  DEVICE_SECRET_KEY_FILE,
  hashSecret,
  OLD_DEVICE_SECRET,
  parseDeviceSecretKey,
} from "../../gateway/broker/secrets.ts";
import {
  call,
  connectDevice,
  registerDevice,
  seedCommunity,
  startGateway,
  type TestGateway,
  tempDataDir,
} from "../support/gateway.ts";

const unusedWebhook = (path: string) => `http://127.0.0.1:9${path}`;
const KEYED = /^hmac-sha256\$[\w-]{43}$/;

/** A CONNECT with these credentials, once: resolves when accepted, rejects with the CONNACK code. */
const connectAs = (gw: TestGateway, id: string, password: string) =>
  mqtt.connectAsync(
    `mqtt://127.0.0.1:${gw.ports.mqtt}`,
    { clientId: id, username: id, password, protocolVersion: 4, reconnectPeriod: 0 },
    false,
  );

/** Connects with the device's credentials and leaves again; throws if refused. */
async function connectsWith(gw: TestGateway, creds: { id: string; secret: string }) {
  await (await connectDevice(gw, creds)).close();
}

/** A device registered through the API whose stored hash is then set back to scrypt, as older gateways wrote it. */
async function deviceWithScryptHash(gw: TestGateway, id: string) {
  const creds = await registerDevice(gw, id);
  const old = await hashSecret(creds.secret, OLD_DEVICE_SECRET);
  await gw.store.registry.setDeviceSecret(id, old);
  return { creds, old };
}

describe("device secrets", () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
    await seedCommunity(gw, unusedWebhook);
  });
  afterAll(() => gw?.stop());

  it("stores a registered device's secret as a keyed hash, and the device connects with the secret", async () => {
    const creds = await registerDevice(gw, "btn-keyed");
    const stored = await gw.store.registry.getDeviceSecretHash(creds.id);
    expect(stored).toMatch(KEYED);
    expect(stored).not.toContain(creds.secret);
    await connectsWith(gw, creds);
  });

  it("reads a keyed hash once per connect: it is verified in the turn the read returns", async () => {
    const creds = await registerDevice(gw, "btn-one-read");
    const { registry } = gw.store;
    const read = registry.getDeviceSecretHash;
    const asked: string[] = [];
    registry.getDeviceSecretHash = (id) => {
      asked.push(id);
      return read(id);
    };
    try {
      await connectsWith(gw, creds);
    } finally {
      registry.getDeviceSecretHash = read;
    }
    expect(asked).toEqual([creds.id]);
  });

  it("refuses a wrong secret and an unknown device with CONNACK 4", async () => {
    const creds = await registerDevice(gw, "btn-wrong");
    await expect(connectAs(gw, creds.id, `${creds.secret}x`)).rejects.toMatchObject({ code: 4 });
    await expect(connectAs(gw, creds.id, "")).rejects.toMatchObject({ code: 4 });
    await expect(connectAs(gw, "btn-nobody", creds.secret)).rejects.toMatchObject({ code: 4 });
  });

  it("gives a rotated secret a keyed hash: the new secret connects, the old one is refused", async () => {
    const first = await registerDevice(gw, "btn-rotated");
    const rotated = (await call(gw, "POST", `/api/devices/${first.id}/secret`)).body;
    expect(await gw.store.registry.getDeviceSecretHash(first.id)).toMatch(KEYED);
    await expect(connectAs(gw, first.id, first.secret)).rejects.toMatchObject({ code: 4 });
    await connectsWith(gw, rotated);
  });

  it("accepts a scrypt hash from before keyed hashes and replaces it with a keyed one at the connect", async () => {
    const { creds, old } = await deviceWithScryptHash(gw, "btn-upgraded");
    await expect(connectAs(gw, creds.id, "not-the-secret")).rejects.toMatchObject({ code: 4 });
    expect(await gw.store.registry.getDeviceSecretHash(creds.id)).toBe(old);

    await connectsWith(gw, creds);
    const replaced = await gw.store.registry.getDeviceSecretHash(creds.id);
    expect(replaced).toMatch(KEYED);
    expect(await gw.deviceSecrets.verify(creds.secret, replaced)).toBe(true);
    await connectsWith(gw, creds);
    await expect(connectAs(gw, creds.id, "not-the-secret")).rejects.toMatchObject({ code: 4 });
  });

  it("keeps a secret rotated while the old scrypt hash was being verified, and refuses the old secret", async () => {
    const { creds } = await deviceWithScryptHash(gw, "btn-race");
    const { registry } = gw.store;
    const replace = registry.replaceDeviceSecret;
    let rotated: { id: string; secret: string } | undefined;
    // The rotation lands after the old secret was verified and before its hash is replaced.
    registry.replaceDeviceSecret = async (...args) => {
      rotated = (await call(gw, "POST", `/api/devices/${creds.id}/secret`)).body;
      return replace(...args);
    };
    try {
      await expect(connectAs(gw, creds.id, creds.secret)).rejects.toMatchObject({ code: 5 });
    } finally {
      registry.replaceDeviceSecret = replace;
    }
    if (!rotated) throw new Error("the old hash was never replaced");
    expect(await gw.deviceSecrets.verify(rotated.secret, await registry.getDeviceSecretHash(creds.id))).toBe(
      true,
    );
    await expect(connectAs(gw, creds.id, creds.secret)).rejects.toMatchObject({ code: 4 });
    await connectsWith(gw, rotated);
  });

  it("replaces a stored hash only while it is still the one expected and the device is not revoked", async () => {
    const { registry } = gw.store;
    const { creds, old } = await deviceWithScryptHash(gw, "btn-compare");
    const keyed = gw.deviceSecrets.hash(creds.secret);
    const rotated = gw.deviceSecrets.hash("another secret");
    await registry.setDeviceSecret(creds.id, rotated);
    expect(await registry.replaceDeviceSecret(creds.id, old, keyed)).toBe(false);
    expect(await registry.getDeviceSecretHash(creds.id)).toBe(rotated);

    expect(await registry.replaceDeviceSecret(creds.id, rotated, keyed)).toBe(true);
    expect(await registry.getDeviceSecretHash(creds.id)).toBe(keyed);

    await registry.revokeDevice(creds.id, Date.now());
    expect(await registry.replaceDeviceSecret(creds.id, keyed, rotated)).toBe(false);
    expect((await registry.getDevice(creds.id))?.revokedAt).not.toBeNull();
    expect(await registry.replaceDeviceSecret("btn-nobody", keyed, rotated)).toBe(false);
  });
});

describe("the key device secrets are hashed with", () => {
  let gw: TestGateway | undefined;
  afterEach(async () => {
    await gw?.stop();
    gw = undefined;
  });

  /** A first run on a new data directory: one device registered, then stopped. */
  async function firstRun(env: Record<string, string> = {}) {
    const dataDir = tempDataDir();
    const first = await startGateway({ dataDir, env });
    await seedCommunity(first, unusedWebhook);
    const creds = await registerDevice(first, "btn-kept");
    await first.stop();
    return { dataDir, creds, keyFile: join(dataDir, DEVICE_SECRET_KEY_FILE) };
  }

  it("is created at the first start, readable by the gateway's user only, and kept across a restart", async () => {
    const { dataDir, creds, keyFile } = await firstRun();
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const key = readFileSync(keyFile, "utf8");
    expect(parseDeviceSecretKey(key)).toHaveLength(32);

    gw = await startGateway({ dataDir });
    await connectsWith(gw, creds);
    expect(readFileSync(keyFile, "utf8")).toBe(key);
  });

  it("refuses to start when the key file is gone while keyed hashes are stored, and starts once it is back", async () => {
    const { dataDir, creds, keyFile } = await firstRun();
    renameSync(keyFile, `${keyFile}.backup`);
    await expect(startGateway({ dataDir })).rejects.toThrow(
      `${keyFile}: missing, but device secrets in the database are hashed with it: restore it from a backup`,
    );
    // No new key was made in its place, which would lock the devices out for good.
    expect(existsSync(keyFile)).toBe(false);

    renameSync(`${keyFile}.backup`, keyFile);
    gw = await startGateway({ dataDir });
    await connectsWith(gw, creds);
  });

  it("is made at the first start after an upgrade, when only scrypt hashes are stored; they are replaced", async () => {
    const dataDir = tempDataDir();
    const before = await startGateway({ dataDir });
    await seedCommunity(before, unusedWebhook);
    const { creds } = await deviceWithScryptHash(before, "btn-from-before");
    await before.stop();
    // As an older gateway left its data directory: scrypt hashes and no key file.
    renameSync(join(dataDir, DEVICE_SECRET_KEY_FILE), join(dataDir, "unrelated"));

    gw = await startGateway({ dataDir });
    expect(existsSync(join(dataDir, DEVICE_SECRET_KEY_FILE))).toBe(true);
    await connectsWith(gw, creds);
    expect(await gw.store.registry.getDeviceSecretHash(creds.id)).toMatch(KEYED);
  });

  it("comes from DEVICE_SECRET_KEY when set, and a DEVICE_SECRET_KEY that differs from the key file is refused", async () => {
    const env = { DEVICE_SECRET_KEY: randomBytes(32).toString("hex") };
    const configured = await firstRun(env);
    expect(existsSync(configured.keyFile)).toBe(false);
    gw = await startGateway({ dataDir: configured.dataDir, env });
    await connectsWith(gw, configured.creds);
    await gw.stop();
    gw = undefined;

    const fromFile = await firstRun();
    await expect(startGateway({ dataDir: fromFile.dataDir, env })).rejects.toThrow(
      `DEVICE_SECRET_KEY: differs from the key in ${fromFile.keyFile}`,
    );
    gw = await startGateway({
      dataDir: fromFile.dataDir,
      env: { DEVICE_SECRET_KEY: readFileSync(fromFile.keyFile, "utf8").trim() },
    });
    await connectsWith(gw, fromFile.creds);
  });
});
