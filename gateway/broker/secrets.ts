import { createHmac, randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { closeSync, fsyncSync, linkSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import type { Logger } from "pino";
import type { RegistryRepository } from "../store/types.ts";

const scryptAsync = promisify(scrypt) as (
  pw: string,
  salt: Buffer,
  len: number,
  o: object,
) => Promise<Buffer>;

/**
 * People choose passwords, so those get a dictionary-resistant cost: N=2^15 (32 MiB, about 60 ms
 * on one core). Sign-ins are few and rate limited, so the cost never competes with devices.
 */
export const PASSWORD = { N: 1 << 15, r: 8, p: 1 };
/**
 * What device secrets were hashed with before keyed hashes (N=2^10, about 1 ms). Such a hash
 * still verifies, and is replaced by a keyed one when its device connects.
 */
export const OLD_DEVICE_SECRET = { N: 1 << 10, r: 8, p: 1 };
/** scrypt needs 128·N·r bytes; Node's default ceiling (32 MiB) is just short of that for PASSWORD. */
const MAX_MEMORY = 64 * 1024 * 1024;
const KEY_LENGTH = 32;

export function newDeviceSecret(): string {
  return randomBytes(16).toString("base64url");
}

/**
 * `scrypt$N$r$p$<salt>$<hash>`, base64url, so the parameters can change without a migration. By
 * default a device hash as older gateways wrote it, for tests that seed one; people get PASSWORD.
 */
export async function hashSecret(secret: string, params = OLD_DEVICE_SECRET): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scryptAsync(secret, salt, KEY_LENGTH, { ...params, maxmem: MAX_MEMORY });
  return [
    "scrypt",
    params.N,
    params.r,
    params.p,
    salt.toString("base64url"),
    hash.toString("base64url"),
  ].join("$");
}

export async function verifySecret(secret: string, stored: string): Promise<boolean> {
  const [scheme, N, r, p, salt, hash] = stored.split("$");
  if (scheme !== "scrypt" || !salt || !hash) return false;
  const expected = Buffer.from(hash, "base64url");
  const actual = await scryptAsync(secret, Buffer.from(salt, "base64url"), expected.length, {
    N: Number(N),
    r: Number(r),
    p: Number(p),
    maxmem: MAX_MEMORY,
  });
  return timingSafeEqual(actual, expected);
}

const KEYED = "hmac-sha256$";

/**
 * Device secrets are 128 random bits: no dictionary applies, so a slow hash buys nothing and costs
 * a district's reconnect after an outage (10,000 devices took 14-17 s with scrypt on 2 cores).
 * They are stored as `hmac-sha256$<base64url>`, keyed with a server key kept outside the database:
 * a copy of the database alone cannot test a guess.
 */
export class DeviceSecrets {
  /** Verified against when a device id is unknown, so that a refusal costs the same either way. */
  private readonly unknownDevice: string;

  constructor(private readonly key: Buffer) {
    this.unknownDevice = this.hash(newDeviceSecret());
  }

  hash(secret: string): string {
    return KEYED + this.mac(secret).toString("base64url");
  }

  /** Whether `stored` is the hash of `secret`; a keyed hash, or scrypt from before them. */
  async verify(secret: string, stored: string | undefined): Promise<boolean> {
    const hash = stored ?? this.unknownDevice;
    const matches = this.isKeyed(hash)
      ? sameBytes(this.mac(secret), Buffer.from(hash.slice(KEYED.length), "base64url"))
      : await verifySecret(secret, hash);
    return matches && stored !== undefined;
  }

  /** A hash from before keyed hashes, to be replaced by a keyed one once its secret is verified. */
  isOutdated(stored: string): boolean {
    return !this.isKeyed(stored);
  }

  private isKeyed(stored: string): boolean {
    return stored.startsWith(KEYED);
  }

  private mac(secret: string): Buffer {
    return createHmac("sha256", this.key).update(secret, "utf8").digest();
  }
}

function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export const DEVICE_SECRET_KEY_FILE = "device-secret.key";
const MIN_KEY_BYTES = 32;
const HOW_TO_MAKE_ONE = "e.g. `openssl rand -base64 32`";

/** A server key written as hex or base64 (either alphabet), at least 32 bytes; throws saying what is wrong. */
export function parseDeviceSecretKey(text: string): Buffer {
  const s = text.trim();
  let key: Buffer;
  if (/^(?:[0-9a-f]{2})+$/i.test(s)) key = Buffer.from(s, "hex");
  else if (/^[\w+/-]+={0,2}$/.test(s) && s.replace(/=+$/, "").length % 4 !== 1)
    key = Buffer.from(s, "base64");
  else throw new Error(`must be hex or base64, ${HOW_TO_MAKE_ONE}`);
  if (key.length < MIN_KEY_BYTES)
    throw new Error(`must be at least ${MIN_KEY_BYTES} bytes, not ${key.length}, ${HOW_TO_MAKE_ONE}`);
  return key;
}

/**
 * The key device secrets are hashed with: `DEVICE_SECRET_KEY` when set, else the key file in the
 * data directory, created (mode 0600) at the first start. A key file that has gone missing while
 * keyed hashes are stored is refused rather than replaced: a new key would lock every device out
 * with nothing but "wrong secret" to show for it. Throws with what to do.
 */
export async function loadDeviceSecretKey(options: {
  configured: Buffer | undefined;
  dataDir: string;
  registry: RegistryRepository;
  log: Logger;
}): Promise<Buffer> {
  const { configured, dataDir, registry, log } = options;
  const file = join(dataDir, DEVICE_SECRET_KEY_FILE);
  const stored = readKeyFile(file);
  if (configured) {
    if (stored && !stored.equals(configured))
      throw new Error(
        `DEVICE_SECRET_KEY: differs from the key in ${file}, which stored device secrets may be hashed with: ` +
          "set it to that file's content, or delete the file to change the key (every device then needs a new secret)",
      );
    return configured;
  }
  if (stored) return stored;
  if (await holdsKeyedHashes(registry))
    throw new Error(
      `${file}: missing, but device secrets in the database are hashed with it: restore it from a backup, or set ` +
        "DEVICE_SECRET_KEY to the key. If it is lost, write a new key there and give every device a new secret.",
    );
  const key = randomBytes(MIN_KEY_BYTES);
  if (createKeyFile(file, key)) {
    log.info({ file }, "created the key device secrets are hashed with: back it up with the database");
    return key;
  }
  // Another gateway on the same data directory created it first.
  const theirs = readKeyFile(file);
  if (!theirs) throw new Error(`${file}: created by another gateway, then removed`);
  return theirs;
}

/**
 * Written whole and synced before it appears, so that neither a power cut nor another gateway
 * starting on the same data directory sees half a key; false when the other one was first.
 */
function createKeyFile(file: string, key: Buffer): boolean {
  const draft = `${file}.${randomBytes(6).toString("hex")}`;
  const fd = openSync(draft, "wx", 0o600);
  try {
    writeSync(fd, `${key.toString("base64")}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(draft, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  } finally {
    unlinkSync(draft);
  }
  const dir = openSync(dirname(file), "r");
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
  return true;
}

function readKeyFile(file: string): Buffer | undefined {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new Error(`${file}: cannot read: ${(err as Error).message}`);
  }
  try {
    return parseDeviceSecretKey(text);
  } catch (err) {
    throw new Error(`${file}: ${(err as Error).message}`);
  }
}

/** Only asked when there is no key yet (the first start, or a lost key file), so a scan is fine. */
async function holdsKeyedHashes(registry: RegistryRepository): Promise<boolean> {
  for (const device of await registry.listDevices()) {
    if ((await registry.getDeviceSecretHash(device.id))?.startsWith(KEYED)) return true;
  }
  return false;
}
