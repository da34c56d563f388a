import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";

// Plain JavaScript: a worker thread does not inherit the TypeScript loader the gateway runs with.

/**
 * The Checkpointer's thread: every `everyMs`, a passive checkpoint of each database (it never
 * waits for a writer, and a busy one is simply tried again next time). With synchronous=NORMAL it
 * flushes the WAL before copying and the database after, here, off the gateway's event loop.
 *
 * Once a checkpoint has copied the whole WAL, the next write starts the WAL again from its
 * beginning, and SQLite flushes the new WAL header to disk in that write, on the thread that
 * makes it. Left to the gateway, that was its first commit after each checkpoint: a flush on the
 * event loop every second per database, usually 1 ms, now and then over 10. So this thread makes
 * that write itself (a counter in `wal_restarts`), at once: the gateway's commits then append.
 */
/** @type {{ files: string[]; everyMs: number }} */
const { files, everyMs } = workerData;
const databases = files.map((file) => {
  const db = new Database(file, { fileMustExist: true });
  db.pragma("synchronous = NORMAL");
  db.pragma("busy_timeout = 0");
  return {
    db,
    restart: db.prepare(
      "INSERT INTO wal_restarts (id, restarts) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET restarts = restarts + 1",
    ),
    /** `data_version` when the WAL was last restarted here: unchanged, nobody else has written since. */
    restartedAt: undefined,
  };
});

function checkpointAll() {
  for (const database of databases) {
    const { db, restart } = database;
    try {
      const version = db.pragma("data_version", { simple: true });
      if (version === database.restartedAt) continue;
      const [{ busy, log, checkpointed }] = db.pragma("wal_checkpoint(PASSIVE)");
      if (busy !== 0 || log === 0 || checkpointed !== log) continue;
      restart.run();
      database.restartedAt = db.pragma("data_version", { simple: true });
    } catch {
      // Locked by another connection (the gateway writing, an operator's shell, a backup): next time.
    }
  }
}

setInterval(checkpointAll, everyMs);
// `Checkpointer.checkpoint()`: one round now, answered when done.
parentPort?.on("message", () => {
  checkpointAll();
  parentPort?.postMessage("checkpointed");
});
