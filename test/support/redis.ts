import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./process.ts";
import { waitFor } from "./wait.ts";

/** Whether something answers PING with PONG on the port. */
const answersPing = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, "127.0.0.1", () => socket.write("PING\r\n"));
    socket.once("data", (data) => {
      socket.destroy();
      resolve(data.toString().startsWith("+PONG"));
    });
    socket.once("error", () => resolve(false));
  });

/**
 * A real Redis (Debian's `redis-server`) on a free port with a temporary directory. It keeps its
 * data in an append-only file there, so `stop()` and `start()` again is a restart that keeps the
 * sessions, as a production Redis with `appendonly yes` does.
 */
export async function startRedis() {
  const dir = mkdtempSync(join(tmpdir(), "redis-test-"));
  const port = await freePort();
  let server: ChildProcess | undefined;

  const start = async () => {
    server = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "yes"],
      { stdio: "ignore" },
    );
    await waitFor(() => answersPing(port), 10_000, "redis-server to answer PING");
  };
  const stop = async () => {
    const p = server;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((resolve) => p.once("exit", resolve));
    p.kill("SIGTERM");
    await exited;
  };
  await start();
  return { url: `redis://127.0.0.1:${port}`, port, start, stop };
}
