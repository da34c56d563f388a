import { createHash, randomBytes } from "node:crypto";
import type { Logger } from "pino";
import { hashSecret, newDeviceSecret, PASSWORD, verifySecret } from "../broker/secrets.ts";
import type { Clock } from "../clock/index.ts";
import { Errors } from "../errors.ts";
import type { Account, Session, Store } from "../store/types.ts";
import { personRolesFor } from "./access.ts";

export { mustBeInArea, mustSee, resolveViewer, responderOf, sees, type Viewer } from "./access.ts";

export interface AuthOptions {
  sessionTtlMs: number;
  /** Failed sign-ins allowed per username, and per client address, in each window. */
  maxFailuresPerUser: number;
  maxFailuresPerAddress: number;
  failureWindowMs: number;
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
  /** Failed sign-ins by `user:<name>` and `addr:<ip>`, counted in fixed windows. */
  private readonly failures = new Map<string, { count: number; resetAt: number; audited: boolean }>();

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
    };
    await this.deps.store.sessions.create(session);
    await this.audit(username, "login", username, { address });
    return { token, session, account };
  }

  /** The account, when the password is right; failures are counted per username and per address. */
  async checkPassword(username: string, password: string, address: string): Promise<Account> {
    const { store } = this.deps;
    const keys = [`user:${username}`, `addr:${address}`];
    const blocked = keys.map((k) => this.blocked(k)).find((b) => b !== undefined);
    if (blocked) {
      // One line per blocked window, not per refused guess: a flood must not fill the log.
      if (!blocked.audited) await this.audit(username, "login.throttled", username, { address });
      blocked.audited = true;
      throw Errors.tooManyAttempts(Math.ceil((blocked.resetAt - this.deps.clock.now()) / 1000));
    }
    // Counted before the (slow) check, so that guesses sent all at once are limited too.
    for (const k of keys) this.count(k, +1);
    const account = await store.accounts.get(username);
    const hash = await store.accounts.passwordHash(username);
    const matches = await verifySecret(password, hash ?? unknownAccountHash);
    if (!account || !hash || !matches || account.disabledAt !== null) {
      const reason = !account ? "unknown account" : matches ? "disabled" : "wrong password";
      await this.audit(username, "login.failed", username, { address, reason });
      throw Errors.badCredentials();
    }
    for (const k of keys) this.count(k, -1);
    return account;
  }

  /** The live session and account behind a cookie token, or undefined (expired, ended, disabled). */
  async session(token: string): Promise<{ session: Session; account: Account } | undefined> {
    const { store, clock } = this.deps;
    const session = await store.sessions.get(hashToken(token));
    if (!session) return undefined;
    if (session.expiresAt <= clock.now()) {
      await store.sessions.remove(session.idHash);
      return undefined;
    }
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

  /** The key's window when it has used up its failures, else undefined. */
  private blocked(key: string) {
    const entry = this.failures.get(key);
    if (!entry || entry.resetAt <= this.deps.clock.now()) return undefined;
    const max = key.startsWith("user:")
      ? this.options.maxFailuresPerUser
      : this.options.maxFailuresPerAddress;
    return entry.count >= max ? entry : undefined;
  }

  /** +1 for an attempt under way, -1 when it turned out right. */
  private count(key: string, by: 1 | -1): void {
    const now = this.deps.clock.now();
    // Bound the table under a spray of usernames: drop windows that have ended.
    if (this.failures.size > 10_000) {
      for (const [k, v] of this.failures) if (v.resetAt <= now) this.failures.delete(k);
    }
    const entry = this.failures.get(key);
    if (entry && entry.resetAt > now) entry.count = Math.max(0, entry.count + by);
    else if (by > 0)
      this.failures.set(key, { count: 1, resetAt: now + this.options.failureWindowMs, audited: false });
  }
}
