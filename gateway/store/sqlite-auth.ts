import type Database from "better-sqlite3";
import { Errors } from "../errors.ts";
import { type Row, toAccount } from "./rows.ts";
import type {
  AccountRepository,
  AuditEntry,
  AuditRepository,
  Session,
  SessionRepository,
  SignInThrottleRepository,
} from "./types.ts";

export function sqliteAccounts(db: Database.Database): AccountRepository {
  return {
    create: async (a, passwordHash) => {
      try {
        db.prepare(
          "INSERT INTO accounts (username, password_hash, role, person_id, created_at, disabled_at) VALUES (?, ?, ?, ?, ?, ?)",
        ).run(a.username, passwordHash, a.role, a.personId, a.createdAt, a.disabledAt);
      } catch (err) {
        if ((err as { code?: string }).code?.startsWith("SQLITE_CONSTRAINT_PRIMARYKEY"))
          throw Errors.alreadyExists("account", a.username);
        throw err;
      }
      return a;
    },
    get: async (username) => {
      const r = db.prepare("SELECT * FROM accounts WHERE username = ?").get(username) as Row | undefined;
      return r && toAccount(r);
    },
    passwordHash: async (username) =>
      (db.prepare("SELECT password_hash FROM accounts WHERE username = ?").get(username) as Row | undefined)
        ?.password_hash as string | undefined,
    list: async () => (db.prepare("SELECT * FROM accounts ORDER BY username").all() as Row[]).map(toAccount),
    update: async (a, passwordHash) => {
      db.prepare(
        `UPDATE accounts SET role = ?, person_id = ?, disabled_at = ?,
           password_hash = COALESCE(?, password_hash) WHERE username = ?`,
      ).run(a.role, a.personId, a.disabledAt, passwordHash ?? null, a.username);
      return a;
    },
    remove: async (username) => {
      db.prepare("DELETE FROM accounts WHERE username = ?").run(username);
    },
    count: async () => (db.prepare("SELECT COUNT(*) AS n FROM accounts").get() as Row).n as number,
  };
}

export function sqliteSessions(db: Database.Database): SessionRepository {
  return {
    create: async (s) => {
      db.prepare(
        "INSERT INTO sessions (id_hash, username, csrf_token, created_at, expires_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?)",
      ).run(s.idHash, s.username, s.csrfToken, s.createdAt, s.expiresAt, s.lastSeenAt);
    },
    get: async (idHash) => {
      const r = db.prepare("SELECT * FROM sessions WHERE id_hash = ?").get(idHash) as Row | undefined;
      return (
        r &&
        ({
          idHash: r.id_hash,
          username: r.username,
          csrfToken: r.csrf_token,
          createdAt: r.created_at,
          expiresAt: r.expires_at,
          lastSeenAt: r.last_seen_at ?? r.created_at,
        } as Session)
      );
    },
    remove: async (idHash) => {
      db.prepare("DELETE FROM sessions WHERE id_hash = ?").run(idHash);
    },
    removeFor: async (username) => {
      db.prepare("DELETE FROM sessions WHERE username = ?").run(username);
    },
    prune: async (now) => db.prepare("DELETE FROM sessions WHERE expires_at <= ?").run(now).changes,
    touch: async (idHash, at) => {
      db.prepare("UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?").run(at, idHash);
    },
  };
}

export function sqliteThrottles(db: Database.Database): SignInThrottleRepository {
  return {
    get: async (key) => {
      const r = db.prepare("SELECT * FROM signin_throttle WHERE key = ?").get(key) as Row | undefined;
      return (
        r && {
          key: r.key as string,
          username: (r.username as string | null) ?? null,
          failures: r.failures as number,
          strikes: r.strikes as number,
          blockedUntil: r.blocked_until as number,
          audited: r.audited === 1,
          updatedAt: r.updated_at as number,
        }
      );
    },
    put: async (t) => {
      db.prepare(
        `INSERT INTO signin_throttle (key, username, failures, strikes, blocked_until, audited, updated_at)
         VALUES (@key, @username, @failures, @strikes, @blockedUntil, @audited, @updatedAt)
         ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, strikes = excluded.strikes,
           blocked_until = excluded.blocked_until, audited = excluded.audited, updated_at = excluded.updated_at`,
      ).run({ ...t, audited: t.audited ? 1 : 0 });
    },
    remove: async (key) => {
      db.prepare("DELETE FROM signin_throttle WHERE key = ?").run(key);
    },
    removeFor: async (username) =>
      db.prepare("DELETE FROM signin_throttle WHERE username = ?").run(username).changes,
    prune: async (before) =>
      db.prepare("DELETE FROM signin_throttle WHERE updated_at < ? AND blocked_until < ?").run(before, before)
        .changes,
  };
}

export function sqliteAudit(db: Database.Database): AuditRepository {
  const insert = db.prepare(
    "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (@at, @actor, @action, @target, @detail)",
  );
  return {
    record: async (e) => {
      insert.run({ ...e, detail: e.detail ? JSON.stringify(e.detail) : null });
    },
    list: async ({ actor, action, target, from, to, limit }) =>
      (
        db
          .prepare(
            `SELECT * FROM audit_log WHERE (@actor IS NULL OR actor = @actor)
               AND (@action IS NULL OR action = @action) AND (@target IS NULL OR target = @target)
               AND (@from IS NULL OR at >= @from) AND (@to IS NULL OR at < @to)
             ORDER BY id DESC LIMIT @limit`,
          )
          .all({
            actor: actor ?? null,
            action: action ?? null,
            target: target ?? null,
            from: from ?? null,
            to: to ?? null,
            limit,
          }) as Row[]
      ).map(
        (r): AuditEntry => ({
          id: r.id as number,
          at: r.at as number,
          actor: r.actor as string,
          action: r.action as string,
          target: (r.target as string | null) ?? null,
          detail: r.detail ? JSON.parse(r.detail as string) : null,
        }),
      ),
    prune: async (before) => db.prepare("DELETE FROM audit_log WHERE at < ?").run(before).changes,
  };
}
