/** What the measurement scripts share: a gateway in its own process, registered and connected devices. */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import WebSocket from "ws";
import { LOCAL_RECEIVERS } from "../support/gateway.ts";

/**
 * Raises the open-file limit (every connection is a file descriptor) as far as the hard limit
 * allows; only a privileged process can go past that. `ulimit -n hard` in the child's shell.
 */
export const RAISE_OPEN_FILES = 'ulimit -n "$(ulimit -Hn)"';
/** The gateway's V8 flags, as `npm run gateway` and the Dockerfile set them (GATEWAY_NODE_FLAGS overrides). */
const GATEWAY_NODE_FLAGS = "--max-semi-space-size=32";
export const hardOpenFileLimit = (): number =>
  Number(execFileSync("bash", ["-c", "ulimit -Hn"]).toString().trim()) || Number.POSITIVE_INFINITY;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU time a process has used so far, user and system, in seconds (clock ticks of 10 ms). */
export const cpuSeconds = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
};

export const rssBytes = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) * 1024;

export const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });

/** The first admin of every measured gateway; the scripts sign in as it to register devices. */
const ADMIN_PASSWORD = "bench-admin-password";

export interface GatewayProcess {
  process: ChildProcess;
  base: string;
  /** The admin's session cookie, for requests made outside `post` (the live stream). */
  cookie: string;
  mqttUrl: string;
  post<T = unknown>(path: string, body: unknown): Promise<T>;
  /**
   * The gateway's memory after a full garbage collection, asked through its inspector: what its
   * live objects hold, without the garbage a burst of connections leaves for the next collection.
   */
  memoryCollected(): Promise<{ rss: number; heapUsed: number }>;
  /** The gateway's inspector (DevTools protocol), on this machine only. */
  inspectorPort: number;
  stop(): Promise<void>;
}

/** Runs DevTools protocol commands in one session with a process's inspector at `url`. */
async function inspectAt<T>(url: string, commands: { method: string; params?: object }[]): Promise<T> {
  const socket = new WebSocket(url);
  await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject));
  try {
    let last: unknown;
    for (const [id, command] of commands.entries()) {
      last = await new Promise((resolve) => {
        const onMessage = (data: Buffer) => {
          const message = JSON.parse(data.toString()) as { id?: number; result?: unknown };
          if (message.id !== id) return;
          socket.off("message", onMessage);
          resolve(message.result);
        };
        socket.on("message", onMessage);
        socket.send(JSON.stringify({ id, ...command }));
      });
    }
    return last as T;
  } finally {
    socket.close();
  }
}

/**
 * Starts `gateway/main.ts` in a child process on free ports with a temporary data directory;
 * `launcher` prefixes its command (`taskset -c 0` to pin it to a CPU).
 */
export async function startGatewayProcess(
  env: Record<string, string> = {},
  prepare?: (dataDir: string) => Promise<void>,
  launcher = "",
): Promise<GatewayProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), "gateway-bench-"));
  await prepare?.(dataDir);
  const [httpPort, mqttPort, inspectorPort] = [await freePort(), await freePort(), await freePort()];
  const base = `http://127.0.0.1:${httpPort}`;
  const child = spawn(
    "bash",
    [
      "-c",
      `${RAISE_OPEN_FILES} && exec ${launcher} "${process.execPath}" ${process.env.GATEWAY_NODE_FLAGS ?? GATEWAY_NODE_FLAGS} --inspect=127.0.0.1:${inspectorPort} --import tsx gateway/main.ts`,
    ],
    {
      env: {
        ...process.env,
        PORT: String(httpPort),
        MQTT_PORT: String(mqttPort),
        HOST: "127.0.0.1",
        DATA_DIR: dataDir,
        LOG_LEVEL: "error",
        ADMIN_PASSWORD,
        WEBHOOK_SECRET: "bench-webhook-secret-0123456789",
        ...LOCAL_RECEIVERS,
        ...env,
      },
      stdio: ["ignore", "inherit", "inherit"],
    },
  );
  for (let i = 0; !(await fetch(`${base}/readyz`).catch(() => undefined))?.ok; i++) {
    if (i > 300 || child.exitCode !== null) throw new Error("the gateway did not start");
    await sleep(100);
  }
  const signIn = await fetch(`${base}/api/session`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: "admin", password: ADMIN_PASSWORD }),
  });
  if (!signIn.ok) throw new Error(`sign-in: ${signIn.status} ${await signIn.text()}`);
  const cookie = (signIn.headers.get("set-cookie") ?? "").split(";")[0] as string;
  const { csrfToken } = (await signIn.json()) as { csrfToken: string };
  const inspect = async <T>(commands: { method: string; params?: object }[]) => {
    const list = (await (await fetch(`http://127.0.0.1:${inspectorPort}/json/list`)).json()) as {
      webSocketDebuggerUrl: string;
    }[];
    return inspectAt<T>(list[0]?.webSocketDebuggerUrl as string, commands);
  };
  return {
    process: child,
    base,
    cookie,
    mqttUrl: `mqtt://127.0.0.1:${mqttPort}`,
    async post<T>(path: string, body: unknown): Promise<T> {
      const res = await fetch(base + path, {
        method: "POST",
        headers: { "content-type": "application/json", cookie, "x-csrf-token": csrfToken },
        body: JSON.stringify(body),
      });
      if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
      return (await res.json()) as T;
    },
    inspectorPort,
    async memoryCollected() {
      const { result } = await inspect<{ result: { value: string } }>([
        { method: "HeapProfiler.collectGarbage" },
        { method: "HeapProfiler.collectGarbage" },
        {
          method: "Runtime.evaluate",
          params: { expression: "JSON.stringify(process.memoryUsage())", returnByValue: true },
        },
      ]);
      return JSON.parse(result.value) as { rss: number; heapUsed: number };
    },
    async stop() {
      child.kill("SIGTERM");
      if (child.exitCode === null) await new Promise((r) => child.once("exit", r));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Registers `count` devices named `<prefix><n>` for one owner, 25 at a time. */
export async function registerDevices(
  gw: GatewayProcess,
  count: number,
  prefix: string,
  kind: "call-button" | "locator-tag",
  ownerId: string,
): Promise<{ id: string; secret: string }[]> {
  const creds: { id: string; secret: string }[] = [];
  for (let i = 0; i < count; i += 25) {
    const ids = Array.from({ length: Math.min(25, count - i) }, (_, k) => `${prefix}${i + k}`);
    creds.push(
      ...(await Promise.all(
        ids.map((id) => gw.post<{ id: string; secret: string }>("/api/devices", { id, kind, ownerId })),
      )),
    );
  }
  return creds;
}

/** Connects every device with its credentials, `batch` at a time. */
export async function connectDevices(url: string, creds: { id: string; secret: string }[], batch = 100) {
  const clients: MqttClient[] = [];
  const connect = (c: { id: string; secret: string }) =>
    mqtt.connectAsync(url, {
      clientId: c.id,
      username: c.id,
      password: c.secret,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
  for (let i = 0; i < creds.length; i += batch) {
    const connected = await Promise.all(creds.slice(i, i + batch).map(connect));
    clients.push(...connected);
  }
  return clients;
}
