import { workerData } from "node:worker_threads";
import Database from "better-sqlite3";

// Plain JavaScript: a worker thread does not inherit the TypeScript loader the gateway runs with.

/**
 * The Checkpointer's thread: every `everyMs`, a passive checkpoint of each database (it never
 * waits for a writer, and a busy one is simply tried again next time). With synchronous=NORMAL it
 * flushes the WAL before copying and the database after, here, off the gateway's event loop.
 */
/** @type {{ files: string[]; everyMs: number }} */
const { files, everyMs } = workerData;
const connections = files.map((file) => {
  const db = new Database(file, { fileMustExist: true });
  db.pragma("synchronous = NORMAL");
  db.pragma("busy_timeout = 0");
  return db;
});

setInterval(() => {
  for (const db of connections) {
    try {
      db.pragma("wal_checkpoint(PASSIVE)");
    } catch {
      // Locked by another connection (an operator's shell, a backup): next time.
    }
  }
}, everyMs);
