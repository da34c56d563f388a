import type pg from "pg";
import { Errors } from "../errors.ts";
import { changes, isUniqueViolation, json, row, rows } from "./postgres-db.ts";
import { toAccount } from "./rows.ts";
import type {
  AccountRepository,
  AuditEntry,
  AuditRepository,
  SessionRepository,
  SignInThrottleRepository,
} from "./types.ts";

export function postgresAccounts(pool: pg.Pool): AccountRepository {
  return {
    create: async (a, passwordHash) => {
      try {
        await pool.query(
          "INSERT INTO accounts (username, password_hash, role, person_id, created_at, disabled_at) VALUES ($1, $2, $3, $4, $5, $6)",
          [a.username, passwordHash, a.role, a.personId, a.createdAt, a.disabledAt],
        );
      } catch (err) {
        if (isUniqueViolation(err)) throw Errors.alreadyExists("account", a.username);
        throw err;
      }
      return a;
    },
    get: async (username) => {
      const r = await row(pool, "SELECT * FROM accounts WHERE username = $1", [username]);
      return r && toAccount(r);
    },
    passwordHash: async (username) =>
      (await row(pool, "SELECT password_hash FROM accounts WHERE username = $1", [username]))
        ?.password_hash as string | undefined,
    list: async () => (await rows(pool, "SELECT * FROM accounts ORDER BY username")).map(toAccount),
    update: async (a, passwordHash) => {
      await pool.query(
        `UPDATE accounts SET role = $1, person_id = $2, disabled_at = $3,
           password_hash = COALESCE($4, password_hash) WHERE username = $5`,
        [a.role, a.personId, a.disabledAt, passwordHash ?? null, a.username],
      );
      return a;
    },
    remove: async (username) => {
      await pool.query("DELETE FROM accounts WHERE username = $1", [username]);
    },
    count: async () => (await row(pool, "SELECT COUNT(*) AS n FROM accounts"))?.n as number,
  };
}

export function postgresSessions(pool: pg.Pool): SessionRepository {
  return {
    create: async (s) => {
      await pool.query(
        "INSERT INTO sessions (id_hash, username, csrf_token, created_at, expires_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6)",
        [s.idHash, s.username, s.csrfToken, s.createdAt, s.expiresAt, s.lastSeenAt],
      );
    },
    get: async (idHash) => {
      const r = await row(pool, "SELECT * FROM sessions WHERE id_hash = $1", [idHash]);
      return (
        r && {
          idHash: r.id_hash as string,
          username: r.username as string,
          csrfToken: r.csrf_token as string,
          createdAt: r.created_at as number,
          expiresAt: r.expires_at as number,
          lastSeenAt: r.last_seen_at as number,
        }
      );
    },
    remove: async (idHash) => {
      await pool.query("DELETE FROM sessions WHERE id_hash = $1", [idHash]);
    },
    removeFor: async (username) => {
      await pool.query("DELETE FROM sessions WHERE username = $1", [username]);
    },
    prune: (now) => changes(pool, "DELETE FROM sessions WHERE expires_at <= $1", [now]),
    touch: async (idHash, at) => {
      await pool.query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2", [at, idHash]);
    },
  };
}

export function postgresThrottles(pool: pg.Pool): SignInThrottleRepository {
  return {
    get: async (key) => {
      const r = await row(pool, "SELECT * FROM signin_throttle WHERE key = $1", [key]);
      return (
        r && {
          key: r.key as string,
          username: (r.username as string | null) ?? null,
          failures: r.failures as number,
          strikes: r.strikes as number,
          blockedUntil: r.blocked_until as number,
          audited: r.audited as boolean,
          updatedAt: r.updated_at as number,
        }
      );
    },
    put: async (t) => {
      await pool.query(
        `INSERT INTO signin_throttle (key, username, failures, strikes, blocked_until, audited, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, strikes = excluded.strikes,
           blocked_until = excluded.blocked_until, audited = excluded.audited, updated_at = excluded.updated_at`,
        [t.key, t.username, t.failures, t.strikes, t.blockedUntil, t.audited, t.updatedAt],
      );
    },
    remove: async (key) => {
      await pool.query("DELETE FROM signin_throttle WHERE key = $1", [key]);
    },
    removeFor: (username) => changes(pool, "DELETE FROM signin_throttle WHERE username = $1", [username]),
    prune: (before) =>
      changes(pool, "DELETE FROM signin_throttle WHERE updated_at < $1 AND blocked_until < $1", [before]),
  };
}

export function postgresAudit(pool: pg.Pool): AuditRepository {
  return {
    record: async (e) => {
      await pool.query(
        "INSERT INTO audit_log (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
        [e.at, e.actor, e.action, e.target, e.detail ? json(e.detail) : null],
      );
    },
    list: async ({ actor, action, target, from, to, limit }) =>
      (
        await rows(
          pool,
          `SELECT * FROM audit_log WHERE ($1::text IS NULL OR actor = $1)
             AND ($2::text IS NULL OR action = $2) AND ($3::text IS NULL OR target = $3)
             AND ($4::bigint IS NULL OR at >= $4) AND ($5::bigint IS NULL OR at < $5)
           ORDER BY id DESC LIMIT $6`,
          [actor ?? null, action ?? null, target ?? null, from ?? null, to ?? null, limit],
        )
      ).map(
        (r): AuditEntry => ({
          id: r.id as number,
          at: r.at as number,
          actor: r.actor as string,
          action: r.action as string,
          target: (r.target as string | null) ?? null,
          detail: (r.detail as Record<string, unknown> | null) ?? null,
        }),
      ),
    prune: (before) => changes(pool, "DELETE FROM audit_log WHERE at < $1", [before]),
  };
}
