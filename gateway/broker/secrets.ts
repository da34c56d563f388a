import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";

const scryptAsync = promisify(scrypt) as (
  pw: string,
  salt: Buffer,
  len: number,
  o: object,
) => Promise<Buffer>;

/**
 * Device secrets are 128 random bits, so no dictionary attack applies; scrypt is defence in depth
 * if the database leaks. Its cost is kept low (N=2^10, about 1 ms on one core, off the event loop)
 * so that a whole district can reconnect at once after an outage: at N=2^12, 10,000 devices took
 * 52 s to connect on 2 cores. Hashes carry their parameters, so older ones still verify.
 */
const DEVICE_SECRET = { N: 1 << 10, r: 8, p: 1 };
/**
 * People choose passwords, so those get a dictionary-resistant cost: N=2^15 (32 MiB, about 60 ms
 * on one core). Sign-ins are few and rate limited, so the cost never competes with devices.
 */
export const PASSWORD = { N: 1 << 15, r: 8, p: 1 };
/** scrypt needs 128·N·r bytes; Node's default ceiling (32 MiB) is just short of that for PASSWORD. */
const MAX_MEMORY = 64 * 1024 * 1024;
const KEY_LENGTH = 32;

export function newDeviceSecret(): string {
  return randomBytes(16).toString("base64url");
}

/** `scrypt$N$r$p$<salt>$<hash>`, base64url, so the parameters can change without a migration. */
export async function hashSecret(secret: string, params = DEVICE_SECRET): Promise<string> {
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

/** Verified against when a device id is unknown, so a refusal takes as long either way. */
export const unknownDeviceHash = await hashSecret(newDeviceSecret());
