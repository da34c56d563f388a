import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitFor } from "./wait.ts";

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });

/**
 * A real InfluxDB 1.x (Debian's `influxd`) on free ports with a temporary data directory.
 * `stop()` and `start()` again keep the data, for outage tests.
 */
export async function startInfluxd() {
  const dir = mkdtempSync(join(tmpdir(), "influxd-test-"));
  const [httpPort, rpcPort] = [await freePort(), await freePort()];
  const config = join(dir, "influxdb.conf");
  writeFileSync(
    config,
    `reporting-disabled = true
bind-address = "127.0.0.1:${rpcPort}"
[meta]
  dir = "${dir}/meta"
[data]
  dir = "${dir}/data"
  wal-dir = "${dir}/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:${httpPort}"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
`,
  );
  const url = `http://127.0.0.1:${httpPort}`;
  let process: ChildProcess | undefined;

  const start = async () => {
    process = spawn("influxd", ["-config", config], { stdio: "ignore" });
    await waitFor(
      async () => (await fetch(`${url}/ping`).catch(() => undefined))?.status === 204,
      20_000,
      "influxd to answer /ping",
    );
  };
  const stop = async () => {
    const p = process;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((resolve) => p.once("exit", resolve));
    p.kill("SIGTERM");
    await exited;
  };
  /** Runs an InfluxQL query and returns the first series' rows. */
  const query = async (db: string, q: string) => {
    const res = await fetch(`${url}/query?${new URLSearchParams({ db, q, epoch: "ms" })}`);
    const body = (await res.json()) as {
      results: { series?: { columns: string[]; values: unknown[][] }[] }[];
    };
    return body.results[0]?.series?.[0]?.values ?? [];
  };
  await start();
  return { url, start, stop, query };
}
