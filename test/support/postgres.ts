import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { chownSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { freePort } from "./process.ts";
import { waitFor } from "./wait.ts";

const run = promisify(execFile);

/**
 * initdb and postgres refuse to run as root: as root, they run as Debian's `postgres` user, owning
 * the temporary directory; as anyone else, as that user.
 */
function serverUser(dir: string): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
  const [uid, gid] = [id("-u"), id("-g")];
  chownSync(dir, uid, gid);
  return { uid, gid };
}

/**
 * A real PostgreSQL 15 (Debian's postgresql-15) in a temporary directory, on a free port of
 * 127.0.0.1, its socket in that directory. Trust authentication: only this machine can reach it.
 * `stop()` and `start()` again keep the data (for restart tests); `destroy()` stops it and removes
 * the directory. `createDatabase()` gives each test its own empty database, `dropDatabase()`
 * removes it.
 */
export async function startPostgres() {
  const dir = mkdtempSync(join(tmpdir(), "postgres-test-"));
  const data = join(dir, "data");
  const user = serverUser(dir);
  await run(
    "/usr/lib/postgresql/15/bin/initdb",
    ["-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync"],
    user,
  );
  const port = await freePort();
  const url = (database = "postgres") => `postgres://postgres@127.0.0.1:${port}/${database}`;
  let server: ChildProcess | undefined;
  let output = "";

  const start = async () => {
    output = "";
    server = spawn(
      "/usr/lib/postgresql/15/bin/postgres",
      [
        "-D",
        data,
        "-p",
        String(port),
        "-k",
        dir,
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "max_connections=200",
      ],
      { ...user, stdio: ["ignore", "ignore", "pipe"] },
    );
    server.stderr?.on("data", (chunk) => {
      output += chunk;
    });
    const answers = async () => {
      if (server?.exitCode !== null) throw new Error(`postgres exited while starting:\n${output}`);
      const client = new pg.Client({ connectionString: url() });
      try {
        await client.connect();
        return true;
      } catch {
        return false;
      } finally {
        await client.end().catch(() => {});
      }
    };
    await waitFor(answers, 30_000, "PostgreSQL to accept connections");
  };
  const stop = async () => {
    const p = server;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((resolve) => p.once("exit", resolve));
    p.kill("SIGINT"); // fast shutdown: sessions ended, everything committed kept
    await exited;
  };
  const admin = async (sql: string) => {
    const client = new pg.Client({ connectionString: url() });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  let databases = 0;
  /** A new empty database; its URL. */
  const createDatabase = async () => {
    const name = `test_${++databases}`;
    // An identifier cannot be a parameter; the name is ours, made of letters, digits and `_`.
    await admin(`CREATE DATABASE ${name}`);
    return url(name);
  };
  /** Drops a database `createDatabase` made, once nothing uses it: the disk is shared. */
  const dropDatabase = async (databaseUrl: string) => {
    const name = new URL(databaseUrl).pathname.slice(1);
    if (!/^test_\d+$/.test(name)) throw new Error(`not a test database: ${name}`);
    await admin(`DROP DATABASE ${name} WITH (FORCE)`);
  };
  const destroy = async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  };
  await start();
  /** The server's main process (its backends are its children), while it runs. */
  const pid = () => server?.pid;
  return { url, start, stop, destroy, createDatabase, dropDatabase, pid };
}
export type TestPostgres = Awaited<ReturnType<typeof startPostgres>>;
