import pg from "pg";

import type { Row } from "./rows.ts";

export type { Row };
/** A pool (one statement, its own implicit transaction) or a client inside a transaction. */
export type Queryable = Pick<pg.Pool | pg.PoolClient, "query">;

/** Advisory lock keys, one per thing serialised across every gateway sharing the database. */
export const LOCKS = {
  /** Migrations: several instances starting at once migrate once. */
  migrations: 0x67_6174_6501,
  /** Stream keys of alert events: strictly increasing in the order events are committed. */
  streamKeys: 0x67_6174_6502,
} as const;

/**
 * Times in ms and ids are BIGINT: PostgreSQL sends them as text, read here as numbers (every value
 * the gateway stores is below 2^53: ms since 1970 times 1024 is about 2^51).
 */
const types = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === pg.types.builtins.INT8
      ? Number
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

const pools = new Set<pg.Pool>();

export function openPool(url: string, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, types, connectionTimeoutMillis: 10_000 });
  pools.add(pool);
  return pool;
}

export async function closePool(pool: pg.Pool): Promise<void> {
  try {
    await pool.end();
  } finally {
    pools.delete(pool);
  }
}

/**
 * Whether a query of this process is waiting for PostgreSQL (a connection in use or awaited): a
 * fake clock lets it finish before firing the next timer, as it does SQLite's disk flushes.
 */
export const postgresBusy = () => [...pools].some((p) => p.waitingCount > 0 || p.totalCount > p.idleCount);

export async function rows(db: Queryable, sql: string, params: unknown[] = []): Promise<Row[]> {
  return (await db.query(sql, params)).rows as Row[];
}

export async function row(db: Queryable, sql: string, params: unknown[] = []): Promise<Row | undefined> {
  return (await rows(db, sql, params))[0];
}

/** Rows the statement changed. */
export async function changes(db: Queryable, sql: string, params: unknown[] = []): Promise<number> {
  return (await db.query(sql, params)).rowCount ?? 0;
}

/** Runs `fn` in a transaction on one connection: committed if it resolves, rolled back if it throws. */
export async function transaction<T>(pool: pg.Pool, fn: (tx: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query("BEGIN");
    const result = await fn(client);
    await client.query("COMMIT");
    return result;
  } catch (err) {
    // A connection that cannot even roll back is dropped rather than handed to the next caller.
    await client.query("ROLLBACK").catch((e: Error) => {
      broken = e;
    });
    throw err;
  } finally {
    client.release(broken);
  }
}

/** PostgreSQL's unique_violation. */
export const isUniqueViolation = (err: unknown) => (err as { code?: string }).code === "23505";

/** JSON for a JSONB parameter (node-postgres would send a JS array as a PostgreSQL array). */
export const json = (value: unknown) =>
  value === null || value === undefined ? null : JSON.stringify(value);
