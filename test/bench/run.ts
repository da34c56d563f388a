/**
 * `npm run bench`: the gateway in its own process, device-sim's load mode in worker processes on
 * several loopback source addresses, and this process as the prober (presses, the dashboard's
 * stream, the level-1 webhook). Then the same load against Debian's Mosquitto for a baseline.
 * Prints a table and writes BENCHMARKS.md. `--quick` is a one-minute smoke run.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, get as httpGet } from "node:http";
import type { AddressInfo } from "node:net";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import Database from "better-sqlite3";
import mqtt from "mqtt";
import { hashSecret } from "../../gateway/broker/secrets.ts";
import { openSqliteStore } from "../../gateway/store/sqlite.ts";
import {
  freePort,
  type GatewayProcess,
  hardOpenFileLimit,
  RAISE_OPEN_FILES,
  sleep,
  startGatewayProcess,
} from "./harness.ts";
import { type LatencySummary, summarise } from "./stats.ts";

const { values } = parseArgs({
  options: { quick: { type: "boolean", default: false }, points: { type: "string" } },
});
const QUICK = values.quick;
const POINTS = values.points ? values.points.split(",").map(Number) : QUICK ? [1000] : [1000, 10_000, 50_000];
const WORKERS = QUICK ? 1 : 3;
const PROBES = QUICK ? 50 : 200;
const ROUNDS = QUICK ? 2 : 5;
const BURST_SECONDS = QUICK ? 4 : 10;
const RATES = QUICK ? [5000, 10_000] : [10_000, 20_000, 40_000, 60_000];
const SECRET = "bench-secret-shared-by-all-devices";
const rows: string[] = [];
const log = (line: string) => {
  console.log(line);
  rows.push(line);
};

// ---------- processes ----------

interface Worker {
  child: ChildProcess;
  request(cmd: Record<string, unknown>, until: string): Promise<Record<string, number>>;
}

function startWorker(ids: string[], port: number, index: number): Promise<Worker> {
  const opts = {
    host: "127.0.0.1",
    port,
    sourceAddress: `127.0.0.${10 + index}`,
    ids,
    secret: SECRET,
    concurrency: 200,
  };
  const child = spawn(
    "bash",
    [
      "-c",
      // Niced: on one 2-core machine the load must not take the CPU from the broker it measures.
      `${RAISE_OPEN_FILES} && exec nice -n 10 "${process.execPath}" --import tsx device-sim/load.ts '${JSON.stringify(opts)}'`,
    ],
    { stdio: ["ignore", "inherit", "inherit", "ipc"] },
  );
  const worker: Worker = {
    child,
    request: (cmd, until) =>
      new Promise((resolve) => {
        const onMessage = (m: Record<string, number> & { event: string }) => {
          if (m.event !== until) return;
          child.off("message", onMessage);
          resolve(m);
        };
        child.on("message", onMessage);
        child.send(cmd);
      }),
  };
  return new Promise((resolve) => child.once("message", () => resolve(worker)));
}

async function startWorkers(n: number, port: number, prefix = "dev-") {
  const per = Math.ceil(n / WORKERS);
  return Promise.all(
    Array.from({ length: WORKERS }, (_, w) => {
      const ids = Array.from(
        { length: Math.max(0, Math.min(per, n - w * per)) },
        (_, k) => `${prefix}${w * per + k}`,
      );
      return startWorker(ids, port, w);
    }),
  );
}

const stopWorkers = (workers: Worker[]) =>
  Promise.all(workers.map((w) => w.request({ cmd: "stop" }, "stopped")));

/** Offers `rate` heartbeats a second in total for BURST_SECONDS; returns what was sent and the broker's CPU. */
async function burst(workers: Worker[], rate: number, pid: number) {
  const c0 = cpuSeconds(pid);
  const started = performance.now();
  const bursts = await Promise.all(
    workers.map((w) => w.request({ cmd: "burst", rate: rate / WORKERS, seconds: BURST_SECONDS }, "burst")),
  );
  const seconds = (performance.now() - started) / 1000;
  return {
    sent: bursts.reduce((a, b) => a + (b.sent ?? 0), 0),
    seconds,
    cpu: (cpuSeconds(pid) - c0) / seconds,
  };
}

const cpuSeconds = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(f[11]) + Number(f[12])) / 100;
};
const rssBytes = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) * 1024;
async function metric(gw: GatewayProcess, name: string): Promise<number> {
  const text = await (await fetch(`${gw.base}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\S+)`, "m").exec(text)?.[1] ?? 0);
}

/** Registers devices straight into the database before the gateway starts: 50,000 API calls would measure scrypt. */
async function seed(dataDir: string, n: number, hookUrl: string): Promise<void> {
  await openSqliteStore(dataDir).close();
  const db = new Database(join(dataDir, "gateway.db"));
  const hash = await hashSecret(SECRET);
  db.transaction(() => {
    db.prepare("INSERT INTO communities VALUES ('c', 'Bench')").run();
    const person = db.prepare("INSERT INTO people (id, name, role, community_id) VALUES (?, ?, ?, 'c')");
    person.run("doctor", "Dr Bench", "doctor");
    person.run("resident", "Resident", "resident");
    db.prepare("INSERT INTO contacts VALUES ('doctor', 'webhook', ?)").run(hookUrl);
    db.prepare(
      "INSERT INTO assignments (resident_id, person_id, relation) VALUES ('resident', 'doctor', 'doctor')",
    ).run();
    const device = db.prepare(
      "INSERT INTO devices (id, kind, owner_id, secret_hash, created_at) VALUES (?, ?, 'resident', ?, ?)",
    );
    for (let i = 0; i < n; i++) device.run(`dev-${i}`, "locator-tag", hash, Date.now());
    for (let i = 0; i < PROBES; i++) device.run(`probe-${i}`, "call-button", hash, Date.now());
  })();
  db.close();
}

// ---------- press latency ----------

interface Arrivals {
  stream: Map<string, number>;
  webhook: Map<string, number>;
  /** `received` back at the pressing device: what the resident hears. */
  device: Map<string, number>;
}

/**
 * Presses each probe device ROUNDS times (cancelling in between) and times the three paths. The
 * probes are stock MQTT.js clients, which leave Nagle's algorithm on, as cheap 4G devices do.
 */
async function pressLatency(mqttUrl: string, arrivals: Arrivals, keyOf: () => Map<string, string>) {
  const probes = await Promise.all(
    Array.from({ length: PROBES }, (_, i) =>
      mqtt.connectAsync(mqttUrl, {
        clientId: `probe-${i}`,
        username: `probe-${i}`,
        password: SECRET,
        protocolVersion: 4,
        reconnectPeriod: 0,
      }),
    ),
  );
  const pressedAt = new Map<string, number>();
  const current = keyOf();
  for (const [i, probe] of probes.entries()) {
    probe.on("message", (_topic, payload) => {
      const key = current.get(`probe-${i}`);
      if (JSON.parse(payload.toString()).type === "received" && key && !arrivals.device.has(key))
        arrivals.device.set(key, performance.now());
    });
    await probe.subscribeAsync(`devices/probe-${i}/command`, { qos: 1 });
  }
  let seq = 0;
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < PROBES; i++) {
      const key = `probe-${i}#${round}`;
      current.set(`probe-${i}`, key);
      pressedAt.set(key, performance.now());
      probes[i]?.publish(
        `devices/probe-${i}/event`,
        JSON.stringify({ type: "press", ts: Date.now(), seq: ++seq }),
        { qos: 1 },
      );
      await sleep(25);
    }
    for (
      let w = 0;
      w < 200 &&
      (arrivals.stream.size < pressedAt.size ||
        arrivals.webhook.size < pressedAt.size ||
        arrivals.device.size < pressedAt.size);
      w++
    )
      await sleep(25);
    for (let i = 0; i < PROBES; i++) {
      probes[i]?.publish(
        `devices/probe-${i}/event`,
        JSON.stringify({ type: "cancel", ts: Date.now(), seq: ++seq }),
        { qos: 1 },
      );
    }
    await sleep(500);
  }
  await Promise.all(probes.map((p) => p.endAsync()));
  const lat = (m: Map<string, number>) =>
    [...pressedAt].flatMap(([k, t0]) => (m.has(k) ? [(m.get(k) ?? 0) - t0] : []));
  return {
    stream: summarise(lat(arrivals.stream), pressedAt.size),
    webhook: summarise(lat(arrivals.webhook), pressedAt.size),
    device: summarise(lat(arrivals.device), pressedAt.size),
  };
}

const fmt = (s: LatencySummary) =>
  `${s.p50.toFixed(1)} / ${s.p99.toFixed(1)} / ${s.p999.toFixed(1)} / ${s.max.toFixed(1)}${s.lost ? ` (${s.lost} lost)` : ""}`;

// ---------- the run ----------

async function gatewayPoint(n: number, withIngest: boolean) {
  const current = new Map<string, string>();
  const arrivals: Arrivals = { stream: new Map(), webhook: new Map(), device: new Map() };
  const hooks = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      const { deviceId, level, event } = JSON.parse(body);
      const key = current.get(deviceId);
      if (event === "paged" && level === 1 && key && !arrivals.webhook.has(key))
        arrivals.webhook.set(key, performance.now());
      res.end();
    });
  });
  await new Promise<void>((r) => hooks.listen(0, "127.0.0.1", r));
  const hookUrl = `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/`;
  // The load comes from three addresses at rates no real device reaches: lift the device limits.
  const unlimited = { MQTT_CONNECT_RATE_PER_IP: "0", DEVICE_PUBLISH_RATE: "0" };
  const gw = await startGatewayProcess(
    { LOG_LEVEL: "warn", HEARTBEAT_SEC_LOCATOR_TAG: "60", ...unlimited },
    (dir) => seed(dir, n, hookUrl),
  );
  const pid = gw.process.pid ?? 0;
  const port = Number(new URL(gw.mqttUrl).port);
  const result: Record<string, string> = {};
  try {
    await sleep(1000);
    const rss0 = rssBytes(pid);
    const heap0 = await metric(gw, "nodejs_heap_size_used_bytes");
    const workers = await startWorkers(n, port);
    const t0 = performance.now();
    const connected = await Promise.all(workers.map((w) => w.request({ cmd: "connect" }, "connected")));
    const connectS = (performance.now() - t0) / 1000;
    const ok = connected.reduce((a, c) => a + (c.count ?? 0), 0);
    await sleep(2000);
    const rss = rssBytes(pid);
    const heap = await metric(gw, "nodejs_heap_size_used_bytes");
    result.connect = `${ok} of ${n} in ${connectS.toFixed(1)} s`;
    result.memory = `${((rss - rss0) / n / 1024).toFixed(1)} KB RSS, ${((heap - heap0) / n / 1024).toFixed(1)} KB heap`;
    await Promise.all(workers.map((w) => w.request({ cmd: "heartbeat", everyMs: 5000 }, "heartbeating")));
    await sleep(5000);
    const idle0 = cpuSeconds(pid);
    await sleep(5000);
    result.cpuHeartbeatOnly = `${(((cpuSeconds(pid) - idle0) / 5) * 100).toFixed(0)}%`;
    console.log(`  gateway CPU with ${n} devices heartbeating, nothing else: ${result.cpuHeartbeatOnly}`);

    // Read the stream with node:http (undici's fetch body adds milliseconds of buffering of its own).
    const streamRequest = httpGet(`${gw.base}/api/stream`, { headers: { cookie: gw.cookie } }, (res) => {
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
          const key = current.get(alert.deviceId);
          if (event.type === "opened" && key && !arrivals.stream.has(key))
            arrivals.stream.set(key, performance.now());
        }
      });
    });
    streamRequest.on("error", () => undefined);
    const cpu0 = cpuSeconds(pid);
    const tp = performance.now();
    const latency = await pressLatency(gw.mqttUrl, arrivals, () => current);
    result.cpuHeartbeating = `${(((cpuSeconds(pid) - cpu0) / ((performance.now() - tp) / 1000)) * 100).toFixed(0)}%`;
    streamRequest.destroy();
    const inside = async (channel: string) =>
      ((await metric(gw, `gateway_press_to_notify_seconds_sum\\{channel="${channel}"\\}`)) /
        (await metric(gw, `gateway_press_to_notify_seconds_count\\{channel="${channel}"\\}`))) *
      1000;
    result.inside = `stream ${(await inside("stream")).toFixed(2)} ms, webhook ${(await inside("webhook")).toFixed(2)} ms`;
    console.log(`  mean press-to-notify measured inside the gateway: ${result.inside}`);
    result.received = fmt(latency.device);
    result.sse = fmt(latency.stream);
    result.webhook = fmt(latency.webhook);

    if (withIngest) {
      result.ingest = "";
      for (const rate of RATES) {
        const written0 = await metric(gw, "gateway_telemetry_points_written_total");
        const heartbeats0 = await metric(gw, 'gateway_messages_in_total\\{channel="heartbeat"\\}');
        const { sent: burstSent, seconds, cpu } = await burst(workers, rate, pid);
        // Heartbeats keep going during the burst: compare what the broker took in with what was stored.
        let stored = 0;
        let received = 0;
        const drainStart = performance.now();
        for (let i = 0; i < 120; i++) {
          received = (await metric(gw, 'gateway_messages_in_total\\{channel="heartbeat"\\}')) - heartbeats0;
          stored = (await metric(gw, "gateway_telemetry_points_written_total")) - written0;
          if (stored >= received && received >= burstSent) break;
          await sleep(250);
        }
        // Kept up: everything stored within 2 s of the burst (one telemetry flush and a little).
        const drainS = (performance.now() - drainStart) / 1000;
        const line = `${rate}/s offered: ${(burstSent / seconds).toFixed(0)}/s sent, ${received} received, ${stored} stored, ${drainS.toFixed(1)} s to catch up, CPU ${(cpu * 100).toFixed(0)}%`;
        result.ingest += `${line}; `;
        console.log(`  ingest ${line}`);
      }
    }
    await stopWorkers(workers);
  } finally {
    await gw.stop();
    hooks.close();
    hooks.closeAllConnections();
  }
  return result;
}

async function mosquittoBaseline(n: number) {
  const dir = mkdtempSync(join(tmpdir(), "mosquitto-bench-"));
  const port = await freePort();
  writeFileSync(
    join(dir, "mosquitto.conf"),
    `listener ${port} 127.0.0.1\nallow_anonymous true\nmax_connections -1\npersistence false\nlog_type error\nsys_interval 1\n`,
  );
  const broker = spawn(
    "bash",
    ["-c", `${RAISE_OPEN_FILES} && exec mosquitto -c ${join(dir, "mosquitto.conf")}`],
    { stdio: "ignore" },
  );
  await sleep(500);
  const url = `mqtt://127.0.0.1:${port}`;
  const result: Record<string, string> = {};
  // The broker's own count of PUBLISH packets received ($SYS, updated every second): a subscriber
  // of every heartbeat would measure itself, not Mosquitto.
  let received = 0;
  const pressAt = new Map<string, number>();
  const arrived = new Map<string, number>();
  const sub = await mqtt.connectAsync(url, { clientId: "bench-sub", protocolVersion: 4 });
  sub.on("message", (topic, payload) => {
    if (topic.startsWith("$SYS")) received = Number(payload.toString());
    else arrived.set(String(JSON.parse(payload.toString()).seq), performance.now());
  });
  await sub.subscribeAsync(["$SYS/broker/publish/messages/received", "devices/+/event"], { qos: 0 });
  const pid = broker.pid ?? 0;
  try {
    const workers = await startWorkers(n, port);
    const t0 = performance.now();
    const connected = await Promise.all(workers.map((w) => w.request({ cmd: "connect" }, "connected")));
    result.connect = `${connected.reduce((a, c) => a + (c.count ?? 0), 0)} of ${n} in ${((performance.now() - t0) / 1000).toFixed(1)} s (no authentication)`;
    await Promise.all(workers.map((w) => w.request({ cmd: "heartbeat", everyMs: 5000 }, "heartbeating")));
    await sleep(5000);
    const probe = await mqtt.connectAsync(url, { clientId: "probe", protocolVersion: 4 });
    for (let i = 0; i < PROBES * ROUNDS; i++) {
      pressAt.set(String(i), performance.now());
      probe.publish(`devices/probe/event`, JSON.stringify({ type: "press", ts: Date.now(), seq: i }), {
        qos: 1,
      });
      await sleep(10);
    }
    await sleep(1000);
    await probe.endAsync();
    result.latency = fmt(
      summarise(
        [...pressAt].flatMap(([k, t]) => (arrived.has(k) ? [(arrived.get(k) ?? 0) - t] : [])),
        pressAt.size,
      ),
    );
    result.ingest = "";
    for (const rate of RATES) {
      const r0 = received;
      const { sent: burstSent, seconds, cpu } = await burst(workers, rate, pid);
      await sleep(2500);
      const line = `${rate}/s offered: ${(burstSent / seconds).toFixed(0)}/s sent, ${received - r0} received by the broker (heartbeats included), CPU ${(cpu * 100).toFixed(0)}%`;
      result.ingest += `${line}; `;
      console.log(`  mosquitto ${line}`);
    }
    await stopWorkers(workers);
  } finally {
    await sub.endAsync();
    broker.kill();
  }
  return result;
}

async function main() {
  try {
    execFileSync("bash", ["-c", "command -v mosquitto"]);
  } catch {
    throw new Error("Debian's mosquitto is needed for the baseline: run `bash test/setup/system-deps.sh`");
  }
  // Source addresses for the workers: each has its own range of ephemeral ports.
  const header = `Benchmarks, ${new Date().toISOString().slice(0, 10)}: ${cpus().length} cores (${cpus()[0]?.model.trim()}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}${QUICK ? ", --quick" : ""}`;
  log(`# ${header}\n`);
  log(
    "Press latency is p50 / p99 / p99.9 / max in ms, from the press publish to `received` back at the device (a stock MQTT.js client, Nagle on), to the alert on the dashboard's stream, and to the level-1 webhook received. Devices heartbeat every 5 s while it is measured.\n",
  );
  log(
    "| devices | connect (auth) | gateway memory per device | press -> received | press -> SSE | press -> webhook | gateway CPU while heartbeating |",
  );
  log("| ---: | --- | --- | --- | --- | --- | ---: |");
  const limit = hardOpenFileLimit();
  const ingestAt = POINTS.includes(10_000) ? 10_000 : POINTS[0];
  const ingest: string[] = [];
  for (const n of POINTS) {
    if (n + PROBES + 500 > limit) {
      log(
        `| ${n} | not measurable here: one process may hold at most ${limit} open files (hard limit), and the gateway needs one per connection | | | | | |`,
      );
      continue;
    }
    const r = await gatewayPoint(n, n === ingestAt);
    log(
      `| ${n} | ${r.connect} | ${r.memory} | ${r.received} | ${r.sse} | ${r.webhook} | ${r.cpuHeartbeating} |`,
    );
    if (r.ingest)
      ingest.push(`Gateway, ${n} devices, every rule and the embedded telemetry store on: ${r.ingest}`);
  }
  const baseline = await mosquittoBaseline(ingestAt ?? 1000);
  log(`\n## Ingest\n`);
  for (const line of ingest) log(`- ${line}`);
  log(`- Mosquitto (Debian), ${ingestAt} devices, raw pub/sub, no rules: ${baseline.ingest}`);
  log(`\n## Mosquitto baseline\n`);
  log(`- connect: ${baseline.connect}`);
  log(`- publish -> subscriber latency (p50 / p99 / p99.9 / max ms): ${baseline.latency}`);
  if (!QUICK) writeFileSync("BENCHMARKS.md", `${rows.join("\n")}\n`);
}

await main();
process.exit(0);
