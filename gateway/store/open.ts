import type { Logger } from "pino";
import { openPostgresStore } from "./postgres.ts";
import { openSqliteStore, type SqliteOptions } from "./sqlite.ts";
import type { Store } from "./types.ts";

/**
 * The gateway's store: PostgreSQL when a `databaseUrl` is given (several gateways may share it),
 * otherwise the embedded SQLite file in `dataDir`.
 */
export async function openStore(options: {
  databaseUrl: string | undefined;
  dataDir: string;
  log: Logger;
  sqlite: Omit<SqliteOptions, "log">;
}): Promise<Store> {
  const { databaseUrl, dataDir, log } = options;
  if (databaseUrl) return openPostgresStore(databaseUrl, { log });
  return openSqliteStore(dataDir, { ...options.sqlite, log });
}
