import { closeSync, fdatasync, fsyncSync, openSync } from "node:fs";
import { dirname } from "node:path";
import { promisify } from "node:util";
import { Worker } from "node:worker_threads";

const datasync = promisify(fdatasync);

/**
 * Group commit without a disk flush on the event loop. The database runs WAL with
 * synchronous=NORMAL, so a commit only hands its pages to the operating system (microseconds).
 * A write is reported done once an fdatasync of the WAL, run in libuv's thread pool, has covered
 * it: a press is acknowledged only when it would survive a power cut. A flush starts at the end of
 * the turn of the event loop that asked for it, so the writes made in one turn (a press and its
 * alert) share it; commits made while one flush runs share the next, so under load many writes
 * cost one flush.
 */
export class WalFlusher {
  /** Flushes asked for or running in this process, of every store: a fake clock waits for them to settle. */
  static inFlight = 0;
  private running: Promise<void> | undefined;
  /** The flush that has not started yet: it covers every commit made until it does. */
  private next: Promise<void> | undefined;
  /** Flushes done, and writes they covered: the ratio is the group commit's gain. */
  readonly counts = { flushes: 0, writes: 0 };
  private fd: number | undefined;

  constructor(
    walFile: string,
    private readonly sync: (fd: number) => Promise<void> = datasync,
    /** Told how long each flush took, in seconds: every press waits for one. */
    private readonly onFlushed: (seconds: number) => void = () => {},
  ) {
    this.fd = openSync(walFile, "r+");
    // The WAL's directory entry must be on disk too, once, or a power cut could lose the file.
    const dir = openSync(dirname(walFile), "r");
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  }

  /** Resolves once every commit made before the call is on disk; rejects if the flush failed. */
  flushed(): Promise<void> {
    this.counts.writes++;
    if (this.next) return this.next;
    WalFlusher.inFlight++;
    // After the one running (which may have started before this commit), and after this turn's other writes.
    const next = (this.running ?? Promise.resolve())
      .catch(() => {})
      .then(() => new Promise((resolve) => setImmediate(resolve)))
      .then(() => this.start())
      .finally(() => WalFlusher.inFlight--);
    this.next = next;
    return next;
  }

  /** Closes the WAL once the flushes asked for are done (a flush never runs on a closed or reused fd). */
  async close(): Promise<void> {
    await (this.next ?? this.running)?.catch(() => {});
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private start(): Promise<void> {
    this.next = undefined;
    this.counts.flushes++;
    const { fd } = this;
    const began = performance.now();
    const flush = (
      fd === undefined
        ? Promise.reject(new Error("the database is closed"))
        : this.sync(fd).then(() => {
            try {
              this.onFlushed((performance.now() - began) / 1000);
            } catch {
              // A flush that succeeded is not failed by its timing.
            }
          })
    ).finally(() => {
      if (this.running === flush) this.running = undefined;
    });
    this.running = flush;
    return flush;
  }
}

/**
 * Checkpoints (copying the WAL into the database, with their own flushes) run on a connection in
 * a worker thread, never on the event loop: the gateway's connections turn automatic
 * checkpoints off.
 */
export class Checkpointer {
  private readonly worker: Worker;

  constructor(files: string[], everyMs: number) {
    this.worker = new Worker(new URL("./checkpoint-worker.js", import.meta.url), {
      workerData: { files, everyMs },
    });
    this.worker.unref();
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
