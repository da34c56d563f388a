import type Database from "better-sqlite3";
import type { Logger } from "pino";
import type { WalFlusher } from "./durability.ts";

export interface StorageHealthOptions {
  log?: Logger;
  /** Told of each storage failure, with its SQLite code (for the metric). */
  onStorageFailure?: (code: string) => void;
}

/**
 * Codes saying the storage cannot serve (locked, full, read-only, failing, unreachable), not that
 * the data was wrong: SQLite's, the system's for a flush that failed, and PostgreSQL's (SQLSTATE
 * classes 08 connection and 53 resources, 57P01-03 shutting down or starting, 25006 read-only;
 * a server it cannot reach).
 */
const STORAGE_FAILURE =
  /^(SQLITE_(BUSY|LOCKED|FULL|IOERR|READONLY|CANTOPEN|CORRUPT|NOTADB|PROTOCOL|NOMEM|PERM)|EIO$|ENOSPC$|EROFS$|EDQUOT$|08...$|53...$|57P0[123]$|25006$|ECONNREFUSED$|ECONNRESET$|ETIMEDOUT$)/;

/** The code of a storage failure, or undefined for any other error. */
export function storageFailure(err: unknown): string | undefined {
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string") return STORAGE_FAILURE.test(code) ? code : undefined;
  // node-postgres names a connection it could not make or lost in words only.
  return LOST_CONNECTION.test((err as { message?: unknown }).message as string) ? "08006" : undefined;
}
const LOST_CONNECTION = /^(timeout exceeded when trying to connect|Connection terminated)/;

/** Caps the database (max_page_count, per connection): a write needing more room fails with SQLITE_FULL. */
export function capSize(db: Database.Database, maxSizeMb: number, log: Logger | undefined): void {
  const pageSize = db.pragma("page_size", { simple: true }) as number;
  const wanted = Math.max(1, Math.floor((maxSizeMb * 1024 * 1024) / pageSize));
  // SQLite will not set the cap below the current size; it caps there instead.
  const pages = db.pragma(`max_page_count = ${wanted}`, { simple: true }) as number;
  if (pages > wanted) {
    log?.warn(
      { maxSizeMb, sizeMb: Math.round((pages * pageSize) / 10_485.76) / 100 },
      "the database is already larger than DB_MAX_SIZE_MB: capped at its current size",
    );
  }
}

/**
 * Watches every repository call for storage failures: counts each, logs the start and the end of
 * an episode, and makes `check` (so /readyz) fail from the first failure until the database takes
 * writes again. The failed call still throws and its caller decides (ingest withholds the PUBACK,
 * so the device re-sends). A call that changed rows resolves only once they are flushed to disk,
 * unless made under `committed`. A call's writes are those it makes before it first yields: the
 * repositories write synchronously (a multi-chunk save writes its first chunk at once), and a
 * read is never taken for a write because another device committed before it resolved.
 *
 * Whether it takes writes again is decided by a probe, not by the next write that happens to go
 * through: a database at its cap still takes writes that fit in its free space, and readiness
 * would flap with every one of them.
 */
export class StorageHealth {
  private failure: { code: string; message: string; since: number } | undefined;
  /** Set while `committed` runs its write. */
  private deferring = false;

  private readonly changes: () => number;

  constructor(
    private readonly db: Database.Database,
    private readonly flusher: WalFlusher,
    private readonly options: StorageHealthOptions,
  ) {
    const total = db.prepare("SELECT total_changes()").pluck();
    this.changes = () => total.get() as number;
  }

  /** Throws, naming the error, from a storage failure until the probe succeeds and a flush too. */
  async check(): Promise<void> {
    if (!this.failure) return;
    if (this.probe() && (await this.flushes())) {
      const since = new Date(this.failure.since).toISOString();
      this.options.log?.info({ since }, "the database takes writes again: ready");
      this.failure = undefined;
      return;
    }
    const { code, message, since } = this.failure;
    throw new Error(
      `${message} (${code}) since ${new Date(since).toISOString()}; ready again once the database takes writes`,
    );
  }

  /** The same store, with the functions of each of its repositories watched. */
  watch<T extends object>(store: T): T {
    const watched: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(store)) {
      if (typeof value !== "object" || value === null) {
        watched[name] = value;
        continue;
      }
      const repo: Record<string, unknown> = { ...value };
      for (const [key, fn] of Object.entries(repo)) {
        if (typeof fn !== "function") continue;
        repo[key] = (...args: unknown[]) => this.call(fn as (...a: unknown[]) => unknown, value, args);
      }
      watched[name] = repo;
    }
    return watched as T;
  }

  /** See `Store.committed`: the calls `write` makes synchronously do not wait for their flush. */
  committed<T>(write: () => Promise<T>): Promise<T> {
    const outer = this.deferring;
    this.deferring = true;
    try {
      return write();
    } finally {
      this.deferring = outer;
    }
  }

  /** See `Store.durable`: a flush that fails counts as a failed write. */
  durable(): Promise<void> {
    return this.flusher.flushed().catch((err) => this.failed(err));
  }

  private call(fn: (...args: unknown[]) => unknown, self: unknown, args: unknown[]): unknown {
    const before = this.changes();
    try {
      const result = fn.apply(self, args);
      const flush = !this.deferring && this.changes() !== before;
      const durable = (r: unknown) => (flush ? this.flusher.flushed().then(() => r) : r);
      return result instanceof Promise
        ? result.then(durable).catch((err) => this.failed(err))
        : durable(result);
    } catch (err) {
      return this.failed(err);
    }
  }

  private failed(err: unknown): never {
    const code = storageFailure(err);
    if (code) {
      this.options.onStorageFailure?.(code);
      this.record(code, (err as Error).message);
    }
    throw err;
  }

  /** Whether the disk flushes again (after a failed flush; a cheap no-op otherwise). */
  private async flushes(): Promise<boolean> {
    try {
      await this.flusher.flushed();
      return true;
    } catch (err) {
      this.record(storageFailure(err) ?? "EIO", (err as Error).message);
      return false;
    }
  }

  private record(code: string, message: string): void {
    if (this.failure?.code === code) return;
    this.failure = { code, message, since: Date.now() };
    this.options.log?.error(
      { code, err: message },
      `database write failed: ${message} (${code}); not ready until the database takes writes again`,
    );
  }

  /**
   * Takes the write lock without waiting and allocates a page, then rolls back, changing nothing:
   * not locked, not at its cap, not read-only. (A full disk shows only when a commit is written,
   * so that one may come back with the next write.)
   */
  private probe(): boolean {
    if (this.db.inTransaction) return false;
    const timeout = this.db.pragma("busy_timeout", { simple: true }) as number;
    this.db.pragma("busy_timeout = 0");
    try {
      this.db.exec("BEGIN IMMEDIATE");
      this.db.exec("CREATE TABLE readiness_probe (x)");
      return true;
    } catch (err) {
      const code = storageFailure(err);
      if (code) this.record(code, (err as Error).message);
      return false;
    } finally {
      if (this.db.inTransaction) this.db.exec("ROLLBACK");
      this.db.pragma(`busy_timeout = ${timeout}`);
    }
  }
}
