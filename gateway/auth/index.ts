import { createHash, randomBytes } from "node:crypto";
import { isIP } from "node:net";
import type { Logger } from "pino";
import { hashSecret, newDeviceSecret, PASSWORD, verifySecret } from "../broker/secrets.ts";
import type { Clock } from "../clock/index.ts";
import { Errors } from "../errors.ts";
import type { Account, Session, SignInThrottle, Store } from "../store/types.ts";
import { personRolesFor } from "./access.ts";

export {
  mustBeInArea,
  mustSee,
  newRecordId,
  resolveViewer,
  responderOf,
  sees,
  type Viewer,
} from "./access.ts";

export interface AuthOptions {
  sessionTtlMs: number;
  /** A session not used for this long ends, before its lifetime is up. */
  sessionIdleMs: number;
  /** Failed sign-ins allowed for a username from one address, and from one address in all. */
  maxFailuresPerUser: number;
  maxFailuresPerAddress: number;
  /** How long failures are remembered, and the longest block they earn. */
  failureWindowMs: number;
}

/** The first block lasts a minute; each next one twice as long, up to the failure window. */
const FIRST_BLOCK_MS = 60_000;
/** How often a session's last use is written: not at every request. */
const TOUCH_EVERY_MS = 60_000;

/** A client's network: an IPv6 client holds a whole /64, so it is counted as one. */
export function clientNetwork(address: string): string {
  const ip = address.split("%")[0] ?? address;
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1];
  if (v4) return v4;
  if (isIP(ip) !== 6) return ip;
  const [head = "", tail] = ip.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups =
    tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(":")}::/64`;
}

const hashToken = (token: string) => createHash("sha256").update(token).digest("base64url");
/** Verified against when the username is unknown, so a refusal takes as long either way. */
const unknownAccountHash = await hashSecret(newDeviceSecret(), PASSWORD);

/**
 * Accounts, passwords and sessions. A session is a random 256-bit token in an httpOnly cookie;
 * the database keeps only its SHA-256. Each session has its own CSRF token, which every
 * state-changing request must echo in a header.
 */
export class Auth {
  /** Sign-in counting, one attempt at a time: guesses sent at once must not read the same count. */
  private counting: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly deps: { store: Store; clock: Clock; log: Logger },
    private readonly options: AuthOptions,
  ) {}

  /** The first start: with no account at all, `ADMIN_PASSWORD` becomes the admin's password. */
  async createFirstAdmin(username: string, password: string | undefined): Promise<void> {
    const { store, log } = this.deps;
    if ((await store.accounts.count()) > 0) return;
    if (!password) {
      log.warn("no accounts yet: set ADMIN_PASSWORD to create the first admin at start");
      return;
    }
    await this.createAccount({ username, role: "admin", personId: null }, password, "gateway");
    log.info({ username }, "created the first admin account from ADMIN_PASSWORD");
  }

  async createAccount(
    a: Pick<Account, "username" | "role" | "personId">,
    password: string,
    by: string,
  ): Promise<Account> {
    await this.checkPerson(a);
    const account = await this.deps.store.accounts.create(
      { ...a, createdAt: this.deps.clock.now(), disabledAt: null },
      await hashSecret(password, PASSWORD),
    );
    await this.audit(by, "account.create", a.username, { role: a.role, personId: a.personId });
    return account;
  }

  /** Changes role, person, disabled or password; any change but the person ends the account's sessions. */
  async updateAccount(
    username: string,
    patch: { role?: Account["role"]; personId?: string | null; disabled?: boolean; password?: string },
    by: string,
  ): Promise<Account> {
    const { store, clock } = this.deps;
    const current = await store.accounts.get(username);
    if (!current) throw Errors.notFound("account", username);
    const next: Account = {
      ...current,
      role: patch.role ?? current.role,
      personId: patch.personId === undefined ? current.personId : patch.personId,
      disabledAt: patch.disabled === undefined ? current.disabledAt : patch.disabled ? clock.now() : null,
    };
    await this.checkPerson(next);
    const saved = await store.accounts.update(
      next,
      patch.password ? await hashSecret(patch.password, PASSWORD) : undefined,
    );
    if (patch.password || patch.disabled || patch.role) await store.sessions.removeFor(username);
    const { password: _, ...changed } = patch;
    await this.audit(by, "account.update", username, {
      ...changed,
      password: patch.password ? "changed" : undefined,
    });
    return saved;
  }

  async removeAccount(username: string, by: string): Promise<void> {
    const { store } = this.deps;
    if (!(await store.accounts.get(username))) throw Errors.notFound("account", username);
    await store.accounts.remove(username); // its sessions go with it (ON DELETE CASCADE)
    await this.audit(by, "account.remove", username);
  }

  /** Checks the password; returns the new session and its cookie token. */
  async login(username: string, password: string, address: string) {
    const account = await this.checkPassword(username, password, address);
    const token = randomBytes(32).toString("base64url");
    const now = this.deps.clock.now();
    const session: Session = {
      idHash: hashToken(token),
      username,
      csrfToken: randomBytes(24).toString("base64url"),
      createdAt: now,
      expiresAt: now + this.options.sessionTtlMs,
      lastSeenAt: now,
    };
    await this.deps.store.sessions.create(session);
    await this.audit(username, "login", username, { address });
    return { token, session, account };
  }

  /**
   * The account, when the password is right. Failures are counted per (username, address) and
   * per address (an IPv6 /64): wrong guesses from one place block that place, with a backoff,
   * and never lock the responder out from anywhere else. The counts are in the database.
   */
  async checkPassword(username: string, password: string, address: string): Promise<Account> {
    const { store } = this.deps;
    const network = clientNetwork(address);
    const keys = [
      { key: `pair:${username}|${network}`, username, max: this.options.maxFailuresPerUser },
      { key: `addr:${network}`, username: null, max: this.options.maxFailuresPerAddress },
    ];
    const count = this.counting.then(() => this.countAttempt(username, address, keys));
    this.counting = count.catch(() => undefined);
    const entries = await count;
    const account = await store.accounts.get(username);
    const hash = await store.accounts.passwordHash(username);
    const matches = await verifySecret(password, hash ?? unknownAccountHash);
    if (!account || !hash || !matches || account.disabledAt !== null) {
      const reason = !account ? "unknown account" : matches ? "disabled" : "wrong password";
      await this.audit(username, "login.failed", username, { address, reason });
      throw Errors.badCredentials();
    }
    // The right password: this account starts afresh from here; the address gets this try back
    // (one good account must not wipe the address's count of guesses at others).
    const [pair, place] = entries;
    const undo = this.counting.then(async () => {
      if (pair) await store.throttles.remove(pair.key);
      const current = place && (await store.throttles.get(place.key));
      if (current) await store.throttles.put({ ...current, failures: Math.max(0, current.failures - 1) });
    });
    this.counting = undo.catch(() => undefined);
    await undo;
    return account;
  }

  /** Refuses while a key is blocked; else counts the attempt as failed until it proves right. */
  private async countAttempt(
    username: string,
    address: string,
    keys: { key: string; username: string | null; max: number }[],
  ): Promise<SignInThrottle[]> {
    const { store, clock } = this.deps;
    const now = clock.now();
    const entries = await Promise.all(keys.map((k) => this.throttle(k.key, k.username, now)));
    const blocked = entries.find((e) => e.blockedUntil > now);
    if (blocked) {
      // One line per block, not per refused guess: a flood must not fill the log.
      if (!blocked.audited) {
        await this.audit(username, "login.throttled", username, { address });
        await store.throttles.put({ ...blocked, audited: true });
      }
      throw Errors.tooManyAttempts(Math.ceil((blocked.blockedUntil - now) / 1000));
    }
    // Counted before the (slow) check, so that guesses sent all at once are limited too.
    for (const [i, e] of entries.entries()) {
      e.failures++;
      e.updatedAt = now;
      if (e.failures >= (keys[i]?.max ?? 1)) {
        e.blockedUntil = now + Math.min(FIRST_BLOCK_MS * 2 ** e.strikes, this.options.failureWindowMs);
        e.strikes++;
        e.failures = 0;
        e.audited = false;
      }
      await store.throttles.put(e);
    }
    return entries;
  }

  /** Lifts the sign-in blocks on an account, from every address. */
  async unlock(username: string, by: string): Promise<number> {
    const lifted = await this.deps.store.throttles.removeFor(username);
    await this.audit(by, "account.unlock", username, { lifted });
    return lifted;
  }

  /** The key's record, afresh once it has been quiet (and unblocked) for a whole window. */
  private async throttle(key: string, username: string | null, now: number): Promise<SignInThrottle> {
    const stored = await this.deps.store.throttles.get(key);
    if (stored && now - Math.max(stored.updatedAt, stored.blockedUntil) < this.options.failureWindowMs)
      return stored;
    return { key, username, failures: 0, strikes: 0, blockedUntil: 0, audited: false, updatedAt: now };
  }

  /** The live session and account behind a cookie token, or undefined (expired, ended, disabled). */
  async session(token: string): Promise<{ session: Session; account: Account } | undefined> {
    const { store, clock } = this.deps;
    const session = await store.sessions.get(hashToken(token));
    if (!session) return undefined;
    const now = clock.now();
    if (session.expiresAt <= now || session.lastSeenAt + this.options.sessionIdleMs <= now) {
      await store.sessions.remove(session.idHash);
      return undefined;
    }
    if (now - session.lastSeenAt >= TOUCH_EVERY_MS) await store.sessions.touch(session.idHash, now);
    const account = await store.accounts.get(session.username);
    if (!account || account.disabledAt !== null) return undefined;
    return { session, account };
  }

  async logout(session: Session): Promise<void> {
    await this.deps.store.sessions.remove(session.idHash);
    await this.audit(session.username, "logout", session.username);
  }

  /** One line in the access audit log: who did or read what. */
  audit(actor: string, action: string, target: string | null, detail?: Record<string, unknown>) {
    return this.deps.store.audit.record({
      at: this.deps.clock.now(),
      actor,
      action,
      target,
      detail: detail ?? null,
    });
  }

  private async checkPerson(a: Pick<Account, "role" | "personId">) {
    if (!a.personId) {
      if (a.role !== "admin") throw Errors.invalid(`personId: a ${a.role} account acts as a person`);
      return;
    }
    const person = await this.deps.store.registry.getPerson(a.personId);
    if (!person) throw Errors.notFound("person", a.personId);
    if (!personRolesFor[a.role].includes(person.role))
      throw Errors.invalid(
        `personId: '${a.personId}' is a ${person.role}; a ${a.role} account acts as a ${personRolesFor[a.role].join(" or ")}`,
      );
  }
}
