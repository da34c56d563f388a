/** What the measurement scripts share: a gateway in its own process, registered and connected devices. */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { get as httpGet } from "node:http";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import WebSocket from "ws";
import { LOCAL_RECEIVERS } from "../support/gateway.ts";
import { type LatencySummary, summarise } from "./stats.ts";
import { type IngestStep, keptUp, lostIn, microsPerMessage, sentRate } from "./targets.ts";

/**
 * Raises the open-file limit (every connection is a file descriptor) as far as the hard limit
 * allows; only a privileged process can go past that. `ulimit -n hard` in the child's shell.
 */
export const RAISE_OPEN_FILES = 'ulimit -n "$(ulimit -Hn)"';
/**
 * The gateway's V8 flags, or GATEWAY_NODE_FLAGS. Started with a `launcher` (`taskset`, pinning it
 * to one core): the README's for a gateway with one core to itself (How far one node goes); else
 * as `npm run gateway` and the Dockerfile set them.
 */
export const gatewayNodeFlags = (launcher: string) =>
  process.env.GATEWAY_NODE_FLAGS ??
  (launcher ? "--max-semi-space-size=8 --single-threaded-gc" : "--max-semi-space-size=32");
export const hardOpenFileLimit = (): number =>
  Number(execFileSync("bash", ["-c", "ulimit -Hn"]).toString().trim()) || Number.POSITIVE_INFINITY;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU time a process has used so far, user and system, in seconds (clock ticks of 10 ms). */
export const cpuSeconds = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
};

/**
 * CPU time, in seconds, of a process and its children: the living ones' own, and the exited
 * ones' as the parent counts it (cutime, cstime). A server that forks a process per connection
 * (PostgreSQL) is measured whole this way.
 */
export const cpuSecondsWithChildren = (pid: number) => {
  const stat = (p: string) => readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  const own = stat(String(pid));
  let seconds = (Number(own[13]) + Number(own[14])) / 100 + cpuSeconds(pid);
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (Number(stat(entry)[1]) === pid) seconds += cpuSeconds(Number(entry));
    } catch {
      // Exited while read: its time is in the parent's count now or soon.
    }
  }
  return seconds;
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
      `${RAISE_OPEN_FILES} && exec ${launcher} "${process.execPath}" ${gatewayNodeFlags(launcher)} --inspect=127.0.0.1:${inspectorPort} --import tsx gateway/main.ts`,
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

/**
 * `count` locator tags of one child, registered and connected, all guarded by one safe zone: a
 * heartbeat goes through every rule (battery, supervision, the zone).
 */
export async function connectTagsInAZone(gw: GatewayProcess, count: number) {
  await gw.post("/api/communities", { id: "c", name: "Bench" });
  await gw.post("/api/people", { id: "child", name: "Child", role: "resident", communityId: "c" });
  const creds = await registerDevices(gw, count, "tag-", "locator-tag", "child");
  await gw.post("/api/geofences", {
    id: "zone",
    name: "Zone",
    shape: { type: "Circle", center: [91.1321, 29.6525], radiusM: 500 },
    deviceIds: creds.map((c) => c.id),
  });
  return { creds, clients: await connectDevices(gw.mqttUrl, creds) };
}

// ---------- load workers (device-sim/load.ts), driven over IPC ----------

export interface Worker {
  child: ChildProcess;
  request(cmd: Record<string, unknown>, until: string): Promise<Record<string, number>>;
}

/**
 * A load worker for devices `ids`, connecting to 127.0.0.1:`port` from source address
 * 127.0.0.(10 + `index`): each source address has its own ephemeral ports. `launcher` prefixes
 * its command (nice, taskset): the load must not take the CPU from the broker it measures.
 */
export function startWorker(options: {
  ids: string[];
  port: number;
  index: number;
  secret: string;
  launcher: string;
}): Promise<Worker> {
  const opts = {
    host: "127.0.0.1",
    port: options.port,
    sourceAddress: `127.0.0.${10 + options.index}`,
    ids: options.ids,
    secret: options.secret,
    concurrency: 200,
  };
  const child = spawn(
    "bash",
    [
      "-c",
      `${RAISE_OPEN_FILES} && exec ${options.launcher} "${process.execPath}" --import tsx device-sim/load.ts '${JSON.stringify(opts)}'`,
    ],
    { stdio: ["ignore", "inherit", "inherit", "ipc"] },
  );
  const worker: Worker = { child, request: (cmd, until) => ipcRequest(child, cmd, until) };
  return new Promise((resolve) => child.once("message", () => resolve(worker)));
}

/**
 * Sends `cmd` (none: only waits) to a child process over IPC; resolves with its first message
 * whose `event` is `until`, rejects if the child exits first.
 */
export function ipcRequest(
  child: ChildProcess,
  cmd: Record<string, unknown> | undefined,
  until: string,
): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: Record<string, number> & { event: string }) => {
      if (m.event !== until) return;
      child.off("message", onMessage);
      child.off("exit", onExit);
      resolve(m);
    };
    const onExit = (code: number | null) => {
      child.off("message", onMessage);
      reject(new Error(`the child exited (${code}) before answering '${until}'`));
    };
    child.on("message", onMessage);
    child.once("exit", onExit);
    if (cmd) child.send(cmd);
  });
}

export const stopWorkers = (workers: Worker[]) =>
  Promise.all(workers.map((w) => w.request({ cmd: "stop" }, "stopped")));

/** Connects every worker's devices; returns how many connected and how long it took. */
export async function connectAll(workers: Worker[], brokerPids: readonly number[] = []) {
  const started = performance.now();
  const cpu0 = cpuSecondsOf(brokerPids);
  const connected = await Promise.all(workers.map((w) => w.request({ cmd: "connect" }, "connected")));
  const connectS = (performance.now() - started) / 1000;
  const count = connected.reduce((a, c) => a + (c.count ?? 0), 0);
  return {
    connected: count,
    connectS,
    /** The load generator's CPU over the connect, as a share of one core. */
    generatorCpu: connected.reduce((a, c) => a + (c.cpuMs ?? 0), 0) / 1000 / connectS,
    /** The brokers' CPU per connect, in µs: unlike the wall time, not set by the generator or the machine's other work. */
    brokerMicrosPerConnect: count ? ((cpuSecondsOf(brokerPids) - cpu0) / count) * 1e6 : Number.NaN,
  };
}

/** Every device heartbeats every `everyMs`, the devices spread evenly over that time. */
export const heartbeatEvery = (workers: Worker[], everyMs: number) =>
  Promise.all(workers.map((w) => w.request({ cmd: "heartbeat", everyMs }, "heartbeating")));

/** Pauses the periodic heartbeats, so that a step's counts hold its burst and nothing else. */
export async function quiet(workers: Worker[]) {
  await Promise.all(workers.map((w) => w.request({ cmd: "quiet" }, "quiet")));
  await sleep(1500);
}

/** The brokers' CPU time together, in seconds. */
export const cpuSecondsOf = (pids: readonly number[]) => pids.reduce((a, pid) => a + cpuSeconds(pid), 0);

/**
 * Starts measuring the whole machine (every core, every process): the function returned gives the
 * share of the cores' time spent busy since, from /proc/stat's first eight counters.
 */
export function machineBusy(): () => number {
  const ticks = () => {
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = (
      readFileSync("/proc/stat", "utf8").split("\n")[0] ?? ""
    )
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    const waiting = idle + iowait;
    return {
      busy: user + nice + system + irq + softirq + steal,
      all: user + nice + system + irq + softirq + steal + waiting,
    };
  };
  const start = ticks();
  return () => {
    const now = ticks();
    return (now.busy - start.busy) / Math.max(1, now.all - start.all);
  };
}

/** The brokers' share of one core over the next `seconds`, together (1.5 is one and a half cores). */
export async function cpuShare(pids: readonly number[], seconds: number): Promise<number> {
  const c0 = cpuSecondsOf(pids);
  await sleep(seconds * 1000);
  return (cpuSecondsOf(pids) - c0) / seconds;
}

/** Values of the gateway's Prometheus metrics `names` (regular expressions), 0 when absent. */
export async function metrics(gw: GatewayProcess, ...names: string[]): Promise<number[]> {
  const text = await (await fetch(`${gw.base}/metrics`)).text();
  return names.map((name) => Number(new RegExp(`^${name} (\\S+)`, "m").exec(text)?.[1] ?? 0));
}

/**
 * One ingest step: heartbeats at `rate`/s in total, shared evenly by the workers, for `seconds`,
 * then up to 30 s for the brokers' own counters (`counts.read`, running totals, up to
 * `counts.lagS` stale) to show all of them received and stored. `pids`: the measured brokers;
 * `idleCpu`: their share of one core with the devices connected and silent.
 */
export async function ingestStep(
  workers: Worker[],
  burst: { rate: number; seconds: number },
  pids: readonly number[],
  idleCpu: number,
  counts: { read(): Promise<{ received: number; stored?: number }>; lagS: number },
): Promise<IngestStep> {
  const { rate, seconds: burstSeconds } = burst;
  const before = await counts.read();
  const c0 = cpuSecondsOf(pids);
  const started = performance.now();
  const bursts = await Promise.all(
    workers.map((w) =>
      w.request({ cmd: "burst", rate: rate / workers.length, seconds: burstSeconds }, "burst"),
    ),
  );
  const sent = bursts.reduce((a, b) => a + (b.sent ?? 0), 0);
  const seconds = (performance.now() - started) / 1000;
  const cpu = (cpuSecondsOf(pids) - c0) / seconds;
  let received = 0;
  let stored: number | undefined;
  for (let i = 0; i < 120; i++) {
    const now = await counts.read();
    received = now.received - before.received;
    stored = now.stored === undefined ? undefined : now.stored - (before.stored ?? 0);
    if (received >= sent && (stored ?? received) >= sent) break;
    await sleep(250);
  }
  const windowS = (performance.now() - started) / 1000;
  const step: IngestStep = {
    offered: rate,
    sent,
    seconds,
    received,
    stored,
    catchUpS: windowS - seconds,
    countLagS: counts.lagS,
    cpu,
    netCpuS: cpuSecondsOf(pids) - c0 - idleCpu * windowS,
  };
  console.log(`  ${describeStep(step)}`);
  return step;
}

// ---------- probes: a press and what comes back ----------

/**
 * `count` stock MQTT.js clients `probe-<i>`, each to `urlOf(i)`: they leave Nagle's algorithm on,
 * as cheap 4G devices do.
 */
export function connectProbes(count: number, urlOf: (i: number) => string, password?: string) {
  return Promise.all(
    Array.from({ length: count }, (_, i) =>
      mqtt.connectAsync(urlOf(i), {
        clientId: `probe-${i}`,
        ...(password ? { username: `probe-${i}`, password } : {}),
        protocolVersion: 4,
        reconnectPeriod: 0,
      }),
    ),
  );
}

export const pressPayload = (seq: number) => JSON.stringify({ type: "press", ts: Date.now(), seq });

/**
 * `rounds` rounds of: each of `probes` probes in turn publishes (`send`) `gapMs` (25 by default)
 * after the one before; then up to `waitMs` (5 s by default) for `arrived()` to count them all,
 * `endRound`, and half a second's pause. `current` maps a probe's device id to the key of its
 * latest press: what arrives after the wait may be taken for the next round's. Returns when each
 * press was sent, by key.
 */
export async function probeRounds(
  {
    rounds,
    probes,
    gapMs = 25,
    waitMs = 5000,
  }: { rounds: number; probes: number; gapMs?: number; waitMs?: number },
  current: Map<string, string>,
  send: (i: number) => void,
  arrived: () => number,
  endRound: () => void = () => undefined,
) {
  const sentAt = new Map<string, number>();
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < probes; i++) {
      const key = `probe-${i}#${round}`;
      current.set(`probe-${i}`, key);
      sentAt.set(key, performance.now());
      send(i);
      await sleep(gapMs);
    }
    for (let w = 0; w < waitMs / 25 && arrived() < sentAt.size; w++) await sleep(25);
    endRound();
    await sleep(500);
  }
  return sentAt;
}

export const latencies = (sentAt: Map<string, number>, arrivedAt: Map<string, number>) =>
  summarise(
    [...sentAt].flatMap(([k, t0]) => {
      const t = arrivedAt.get(k);
      return t === undefined ? [] : [t - t0];
    }),
    sentAt.size,
  );

/**
 * Follows the gateway's live stream as the dashboard does, calling `opened` with the device id of
 * each alert opened, when it arrives. Read with node:http: undici's fetch body adds milliseconds
 * of buffering of its own. Returns the request, to destroy when done.
 */
export function followOpenedAlerts(gw: GatewayProcess, opened: (deviceId: string) => void) {
  const request = httpGet(`${gw.base}/api/stream`, { headers: { cookie: gw.cookie } }, (res) => {
    let buffer = "";
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => {
      buffer += chunk;
      for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
        const data = buffer
          .slice(0, end)
          .split("\n")
          .find((l) => l.startsWith("data: "));
        buffer = buffer.slice(end + 2);
        if (!data) continue;
        const { alert, event } = JSON.parse(data.slice(6));
        if (event.type === "opened") opened(alert.deviceId);
      }
    });
  });
  request.on("error", () => undefined);
  return request;
}

// ---------- formatting ----------

export const fmt = (s: LatencySummary) =>
  `${s.p50.toFixed(1)} / ${s.p99.toFixed(1)} / ${s.p999.toFixed(1)} / ${s.max.toFixed(1)}${s.lost ? ` (${s.lost} lost)` : ""}`;
export const pct = (share: number) => `${(share * 100).toFixed(0)}%`;
export const micros = (us: number) => `${us.toFixed(0)} µs`;
export const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;

export const catchUp = (s: IngestStep) =>
  lostIn(s)
    ? `${lostIn(s)} missing after ${s.catchUpS.toFixed(0)} s`
    : `all in ${s.catchUpS.toFixed(1)} s${keptUp(s) ? "" : " (fell behind)"}`;

const describeStep = (s: IngestStep) =>
  `${s.offered}/s offered: ${sentRate(s).toFixed(0)}/s sent, ${s.received} received${s.stored === undefined ? "" : `, ${s.stored} stored`}, ${catchUp(s)}, CPU ${pct(s.cpu)}, ${micros(microsPerMessage([s]))} per message`;
