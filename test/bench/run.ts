/**
 * `npm run bench`: the gateway in its own process, device-sim's load mode in worker processes on
 * several loopback source addresses, and this process as the prober (presses, the dashboard's
 * stream, the level-1 webhook). Then the same load and probes against Debian's Mosquitto for a
 * baseline, and the same load against aedes alone (bare-aedes.ts). The measured broker gets a core of its own where `taskset` allows (cores.ts). Prints
 * the tables, the cost per message and the targets met or missed, and writes BENCHMARKS.md;
 * `--quick` is a smoke run of a minute or two that writes nothing. `--cluster` measures three
 * gateways on PostgreSQL and Redis instead (cluster.ts).
 */
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import Database from "better-sqlite3";
import mqtt from "mqtt";
import { DEVICE_SECRET_KEY_FILE, DeviceSecrets } from "../../gateway/broker/secrets.ts";
import { openSqliteStore } from "../../gateway/store/sqlite.ts";
import { benchCluster, joinBenchmarks, splitBenchmarks } from "./cluster.ts";
import { pinProber, planCores } from "./cores.ts";
import {
  catchUp,
  connectAll,
  connectProbes,
  cpuSeconds,
  cpuShare,
  fmt,
  followOpenedAlerts,
  freePort,
  gatewayNodeFlags,
  hardOpenFileLimit,
  heartbeatEvery,
  ingestStep,
  ipcRequest,
  kb,
  latencies,
  metrics,
  micros,
  pct,
  pressPayload,
  probeRounds,
  quiet,
  RAISE_OPEN_FILES,
  rssBytes,
  sleep,
  startGatewayProcess,
  startWorker,
  stopWorkers,
} from "./harness.ts";
import type { LatencySummary } from "./stats.ts";
import {
  CATCH_UP_S,
  type IngestStep,
  judgeTargets,
  microsPerMessage,
  sentRate,
  TARGET_DEVICES,
} from "./targets.ts";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    points: { type: "string" },
    cluster: { type: "boolean", default: false },
  },
});
const QUICK = values.quick;
const POINTS = values.points ? values.points.split(",").map(Number) : QUICK ? [1000] : [1000, 10_000, 50_000];
const WORKERS = QUICK ? 1 : 3;
const PROBES = QUICK ? 50 : 200;
const ROUNDS = QUICK ? 2 : 5;
const BURST_SECONDS = QUICK ? 4 : 10;
// Up to past the 60,000/s target, so that a gateway that reaches it shows it.
const RATES = QUICK ? [5000, 10_000] : [10_000, 20_000, 40_000, 60_000, 80_000];
/** How long the brokers' idle CPU (devices connected and silent) is measured. */
const IDLE_SECONDS = 3;
const SECRET = "bench-secret-shared-by-all-devices";
const CORES = planCores();
const rows: string[] = [];
const log = (line: string) => {
  console.log(line);
  rows.push(line);
};

// ---------- processes ----------

async function startWorkers(n: number, port: number, prefix = "dev-") {
  const per = Math.ceil(n / WORKERS);
  return Promise.all(
    Array.from({ length: WORKERS }, (_, w) => {
      const ids = Array.from(
        { length: Math.max(0, Math.min(per, n - w * per)) },
        (_, k) => `${prefix}${w * per + k}`,
      );
      return startWorker({ ids, port, index: w, secret: SECRET, launcher: CORES.load });
    }),
  );
}

/** Registers devices straight into the database before the gateway starts: 50,000 API calls would measure the API. */
async function seed(dataDir: string, n: number, hookUrl: string): Promise<void> {
  await openSqliteStore(dataDir).close();
  const db = new Database(join(dataDir, "gateway.db"));
  // The key file the gateway reads at its start, as if it had created it.
  const key = randomBytes(32);
  writeFileSync(join(dataDir, DEVICE_SECRET_KEY_FILE), key.toString("base64"), { mode: 0o600 });
  const hash = new DeviceSecrets(key).hash(SECRET);
  db.transaction(() => {
    db.prepare("INSERT INTO communities VALUES ('c', 'Bench')").run();
    const person = db.prepare("INSERT INTO people (id, name, role, community_id) VALUES (?, ?, ?, 'c')");
    person.run("doctor", "Dr Bench", "doctor");
    person.run("resident", "Resident", "resident");
    db.prepare(
      "INSERT INTO person_contacts (person_id, position, kind, address) VALUES ('doctor', 1, 'webhook', ?)",
    ).run(hookUrl);
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

// ---------- probes: a press and what comes back ----------

interface Arrivals {
  stream: Map<string, number>;
  webhook: Map<string, number>;
  /** `received` back at the pressing device: what the resident hears. */
  device: Map<string, number>;
}

/**
 * Presses each probe device ROUNDS times (cancelling in between) and times the three paths; also
 * returns the gateway's CPU time and the wall time of the pressing itself (not of connecting).
 */
async function pressLatency(mqttUrl: string, pid: number, arrivals: Arrivals, current: Map<string, string>) {
  const probes = await connectProbes(PROBES, () => mqttUrl, SECRET);
  for (const [i, probe] of probes.entries()) {
    probe.on("message", (_topic, payload) => {
      const key = current.get(`probe-${i}`);
      if (JSON.parse(payload.toString()).type === "received" && key && !arrivals.device.has(key))
        arrivals.device.set(key, performance.now());
    });
    await probe.subscribeAsync(`devices/probe-${i}/command`, { qos: 1 });
  }
  let seq = 0;
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  const sentAt = await probeRounds(
    { rounds: ROUNDS, probes: PROBES },
    current,
    (i) => probes[i]?.publish(`devices/probe-${i}/event`, pressPayload(++seq), { qos: 1 }),
    () => Math.min(arrivals.stream.size, arrivals.webhook.size, arrivals.device.size),
    () => {
      for (const [i, probe] of probes.entries())
        probe.publish(
          `devices/probe-${i}/event`,
          JSON.stringify({ type: "cancel", ts: Date.now(), seq: ++seq }),
          { qos: 1 },
        );
    },
  );
  const cpuS = cpuSeconds(pid) - cpu0;
  const seconds = (performance.now() - t0) / 1000;
  await Promise.all(probes.map((p) => p.endAsync()));
  return {
    presses: sentAt.size,
    cpuS,
    seconds,
    stream: latencies(sentAt, arrivals.stream),
    webhook: latencies(sentAt, arrivals.webhook),
    device: latencies(sentAt, arrivals.device),
  };
}

/**
 * Mosquitto's counterpart of press -> `received`: each probe publishes QoS 1 to a topic it is
 * itself subscribed to with QoS 1, so the PUBACK and a PUBLISH come back on the same connection.
 */
async function roundTrip(url: string) {
  const probes = await connectProbes(PROBES, () => url);
  const current = new Map<string, string>();
  const arrivedAt = new Map<string, number>();
  for (const [i, probe] of probes.entries()) {
    probe.on("message", () => {
      const key = current.get(`probe-${i}`);
      if (key && !arrivedAt.has(key)) arrivedAt.set(key, performance.now());
    });
    await probe.subscribeAsync(`devices/probe-${i}/command`, { qos: 1 });
  }
  let seq = 0;
  const sentAt = await probeRounds(
    { rounds: ROUNDS, probes: PROBES },
    current,
    (i) => probes[i]?.publish(`devices/probe-${i}/command`, pressPayload(++seq), { qos: 1 }),
    () => arrivedAt.size,
  );
  await Promise.all(probes.map((p) => p.endAsync()));
  return latencies(sentAt, arrivedAt);
}

// ---------- the run ----------

/** The disk's share of a press's latency: every press waits for one flush of the database's log. */
const flushLine = (p: GatewayPoint) =>
  `disk flushes (fdatasync of gateway.db's log, timed until the event loop saw them done) while the probes pressed, ${p.devices} devices connected: ${p.flushes.count}, mean ${p.flushes.meanMs.toFixed(2)} ms, ${(p.flushes.over10msShare * 100).toFixed(1)}% over 10 ms (a press waits for one)`;

interface GatewayPoint {
  devices: number;
  connected: number;
  connectS: number;
  generatorCpu: number;
  /** The gateway's CPU per connect, in µs. */
  connectMicros: number;
  /** Retained: after a full collection, before and after the devices connected. */
  rssPerDevice: number;
  heapPerDevice: number;
  /** What `top` shows two seconds after the connections, garbage of the burst included. */
  rssUncollectedPerDevice: number;
  /** Shares of one core: devices connected and silent; heartbeating every 5 s; and while pressing. */
  cpuIdle: number;
  cpuHeartbeats: number;
  cpuPresses: number;
  /** CPU time per press and its cancel, the heartbeats' CPU over that time taken out. */
  microsPerPress: number;
  received: LatencySummary;
  sse: LatencySummary;
  webhook: LatencySummary;
  /** Mean press -> notification measured inside the gateway, in ms. */
  inside: { stream: number; webhook: number };
  /** The disk's flushes while pressing (a press waits for one): how many, their mean, the share over 10 ms. */
  flushes: { count: number; meanMs: number; over10msShare: number };
  ingest: IngestStep[];
}

async function gatewayPoint(n: number, withIngest: boolean): Promise<GatewayPoint> {
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
    CORES.broker,
  );
  const pid = gw.process.pid ?? 0;
  const port = Number(new URL(gw.mqttUrl).port);
  try {
    await sleep(1000);
    const before = await gw.memoryCollected();
    const rss0 = rssBytes(pid);
    const workers = await startWorkers(n, port);
    const { connected, connectS, generatorCpu, brokerMicrosPerConnect } = await connectAll(workers, [pid]);
    await sleep(2000);
    const rssUncollected = rssBytes(pid);
    const cpuIdle = await cpuShare([pid], IDLE_SECONDS);
    await heartbeatEvery(workers, 5000);
    await sleep(5000);
    const cpuHeartbeats = await cpuShare([pid], 5);
    console.log(
      `  gateway CPU with ${n} devices connected: ${pct(cpuIdle)} silent, ${pct(cpuHeartbeats)} heartbeating every 5 s`,
    );

    const streamRequest = followOpenedAlerts(gw, (deviceId) => {
      const key = current.get(deviceId);
      if (key && !arrivals.stream.has(key)) arrivals.stream.set(key, performance.now());
    });
    const flushed = () =>
      metrics(
        gw,
        "gateway_store_flush_seconds_count",
        "gateway_store_flush_seconds_sum",
        'gateway_store_flush_seconds_bucket\\{le="0.01"\\}',
      );
    const [count0 = 0, sum0 = 0, within0 = 0] = await flushed();
    const pressed = await pressLatency(gw.mqttUrl, pid, arrivals, current);
    const [count1 = 0, sum1 = 0, within1 = 0] = await flushed();
    const flushes = count1 - count0;
    if (flushes === 0)
      throw new Error("no flush timed while pressing: is gateway_store_flush_seconds exported?");
    streamRequest.destroy();
    // Collected last: a forced full collection re-sizes the heap, and the presses above would pay for it.
    const after = await gw.memoryCollected();
    const inside = async (channel: string) => {
      const [sum = 0, count = 0] = await metrics(
        gw,
        `gateway_press_to_notify_seconds_sum\\{channel="${channel}"\\}`,
        `gateway_press_to_notify_seconds_count\\{channel="${channel}"\\}`,
      );
      return (sum / count) * 1000;
    };
    const point: GatewayPoint = {
      devices: n,
      connected,
      connectS,
      generatorCpu,
      connectMicros: brokerMicrosPerConnect,
      rssPerDevice: (after.rss - before.rss) / n,
      heapPerDevice: (after.heapUsed - before.heapUsed) / n,
      rssUncollectedPerDevice: (rssUncollected - rss0) / n,
      cpuIdle,
      cpuHeartbeats,
      cpuPresses: pressed.cpuS / pressed.seconds,
      microsPerPress: ((pressed.cpuS - cpuHeartbeats * pressed.seconds) / pressed.presses) * 1e6,
      received: pressed.device,
      sse: pressed.stream,
      webhook: pressed.webhook,
      inside: { stream: await inside("stream"), webhook: await inside("webhook") },
      flushes: {
        count: flushes,
        meanMs: ((sum1 - sum0) / flushes) * 1000,
        over10msShare: 1 - (within1 - within0) / flushes,
      },
      ingest: [],
    };
    console.log(
      `  mean press-to-notify measured inside the gateway: stream ${point.inside.stream.toFixed(2)} ms, webhook ${point.inside.webhook.toFixed(2)} ms`,
    );
    console.log(`  ${flushLine(point)}`);

    if (withIngest) {
      await quiet(workers);
      const counts = {
        async read() {
          const [received = 0, stored = 0] = await metrics(
            gw,
            'gateway_messages_in_total\\{channel="heartbeat"\\}',
            "gateway_telemetry_points_written_total",
          );
          return { received, stored };
        },
        lagS: 0,
      };
      for (const rate of RATES)
        point.ingest.push(
          await ingestStep(workers, { rate, seconds: BURST_SECONDS }, [pid], cpuIdle, counts),
        );
    }
    await stopWorkers(workers);
    return point;
  } finally {
    await gw.stop();
    hooks.close();
    hooks.closeAllConnections();
  }
}

/** How often Mosquitto publishes its `$SYS` counters; its least. */
const SYS_INTERVAL_S = 1;

async function mosquittoBaseline(n: number) {
  const dir = mkdtempSync(join(tmpdir(), "mosquitto-bench-"));
  const port = await freePort();
  writeFileSync(
    join(dir, "mosquitto.conf"),
    `listener ${port} 127.0.0.1\nallow_anonymous true\nmax_connections -1\npersistence false\nlog_type error\nsys_interval ${SYS_INTERVAL_S}\n`,
  );
  const broker = spawn(
    "bash",
    ["-c", `${RAISE_OPEN_FILES} && exec ${CORES.broker} mosquitto -c ${join(dir, "mosquitto.conf")}`],
    { stdio: "ignore" },
  );
  await sleep(500);
  const url = `mqtt://127.0.0.1:${port}`;
  // The broker's own count of PUBLISH packets received ($SYS, updated every second): a subscriber
  // of every heartbeat would measure itself, not Mosquitto.
  let received = 0;
  const sub = await mqtt.connectAsync(url, { clientId: "bench-sub", protocolVersion: 4 });
  sub.on("message", (_topic, payload) => {
    received = Number(payload.toString());
  });
  await sub.subscribeAsync("$SYS/broker/publish/messages/received", { qos: 0 });
  try {
    return await baseline(n, port, broker.pid ?? 0, {
      // The round trip, while the devices heartbeat every 5 s as in the gateway's.
      beforeIngest: async (workers) => {
        await heartbeatEvery(workers, 5000);
        await sleep(5000);
        const latency = await roundTrip(url);
        await quiet(workers);
        return latency;
      },
      received: async () => received,
      lagS: SYS_INTERVAL_S,
    });
  } finally {
    await sub.endAsync();
    broker.kill();
  }
}

/**
 * A broker without the gateway's rules, through the gateway's connects and heartbeat steps: how
 * long the connects took and their CPU, its idle CPU, what `beforeIngest` measures, the steps.
 * `received`: the broker's own count of PUBLISH packets, up to `lagS` stale.
 */
async function baseline<T>(
  n: number,
  port: number,
  pid: number,
  probe: {
    beforeIngest: (workers: Awaited<ReturnType<typeof startWorkers>>) => Promise<T>;
    received: () => Promise<number>;
    lagS: number;
  },
) {
  const workers = await startWorkers(n, port);
  const { connected, connectS, generatorCpu, brokerMicrosPerConnect } = await connectAll(workers, [pid]);
  await sleep(1000);
  const cpuIdle = await cpuShare([pid], IDLE_SECONDS);
  const measured = await probe.beforeIngest(workers);
  const ingest: IngestStep[] = [];
  for (const rate of RATES)
    ingest.push(
      await ingestStep(workers, { rate, seconds: BURST_SECONDS }, [pid], cpuIdle, {
        read: async () => ({ received: await probe.received() }),
        lagS: probe.lagS,
      }),
    );
  await stopWorkers(workers);
  return {
    devices: n,
    connected,
    connectS,
    generatorCpu,
    connectMicros: brokerMicrosPerConnect,
    cpuIdle,
    measured,
    ingest,
  };
}

/**
 * aedes alone (bare-aedes.ts): the same connects and heartbeat steps against the broker library
 * the gateway is built on, with no authentication, rules or store: about the least the gateway
 * can cost.
 */
async function aedesBaseline(n: number) {
  const port = await freePort();
  const broker = spawn(
    "bash",
    [
      "-c",
      `${RAISE_OPEN_FILES} && exec ${CORES.broker} "${process.execPath}" ${gatewayNodeFlags(CORES.broker)} --import tsx test/bench/bare-aedes.ts ${port}`,
    ],
    { stdio: ["ignore", "inherit", "inherit", "ipc"] },
  );
  const listening = ipcRequest(broker, undefined, "listening");
  try {
    await listening;
    return await baseline(n, port, broker.pid ?? 0, {
      beforeIngest: async () => undefined,
      received: async () => (await ipcRequest(broker, { cmd: "count" }, "count")).received ?? 0,
      lagS: 0,
    });
  } finally {
    broker.kill();
  }
}

async function main() {
  try {
    execFileSync("bash", ["-c", "command -v mosquitto"]);
  } catch {
    throw new Error("Debian's mosquitto is needed for the baseline: run `bash test/setup/system-deps.sh`");
  }
  pinProber(CORES);
  const header = `Benchmarks, ${new Date().toISOString().slice(0, 10)}: ${cpus().length} cores (${cpus()[0]?.model.trim()}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}${QUICK ? ", --quick" : ""}`;
  log(`# ${header}\n`);
  log(
    `How the cores were shared: ${CORES.description} The gateway and aedes alone ran with the V8 flags \`${gatewayNodeFlags(CORES.broker)}\`.\n`,
  );
  log(
    "Press latency is p50 / p99 / p99.9 / max in ms, from the press publish to `received` back at the device (a stock MQTT.js client, Nagle on), to the alert on the dashboard's stream, and to the level-1 webhook received. Devices heartbeat every 5 s while it is measured. Connect is the time for every device to connect and authenticate, with the load generator's CPU over it as a share of its one core (near 100%, the generator, not the broker, set the pace). Gateway memory per device is what the connected devices added to the gateway's resident set and to its JavaScript heap, each measured after a full garbage collection (asked through the gateway's inspector) before they connected and, with them still connected, after the presses (so that the collection does not weigh on them); in brackets, the resident set two seconds after the connections without a collection, which still holds the garbage of the burst. Gateway CPU is its share of one core with the devices connected and silent, heartbeating, and heartbeating while the probes press; CPU per press is the CPU time of a press and its cancel (with the alert, stream event and webhook they cause), the heartbeats' share taken out.\n",
  );
  log(
    "| devices | connect (auth) | gateway memory per device | press -> received | press -> SSE | press -> webhook | gateway CPU: silent / heartbeating / pressing | gateway CPU per press |",
  );
  log("| ---: | --- | --- | --- | --- | --- | ---: | ---: |");
  const limit = hardOpenFileLimit();
  const ingestAt = POINTS.includes(TARGET_DEVICES) ? TARGET_DEVICES : (POINTS[0] ?? 1000);
  const points: GatewayPoint[] = [];
  for (const n of POINTS) {
    if (n + PROBES + 500 > limit) {
      log(
        `| ${n} | not measurable here: one process may hold at most ${limit} open files (hard limit), and the gateway needs one per connection | | | | | | |`,
      );
      continue;
    }
    const p = await gatewayPoint(n, n === ingestAt);
    points.push(p);
    log(
      `| ${n} | ${p.connected} of ${n} in ${p.connectS.toFixed(1)} s (load generator ${pct(p.generatorCpu)}; ${micros(p.connectMicros)} of gateway CPU each) | ${kb(p.rssPerDevice)} RSS, ${kb(p.heapPerDevice)} heap (${kb(p.rssUncollectedPerDevice)} RSS before collection) | ${fmt(p.received)} | ${fmt(p.sse)} | ${fmt(p.webhook)} | ${pct(p.cpuIdle)} / ${pct(p.cpuHeartbeats)} / ${pct(p.cpuPresses)} | ${micros(p.microsPerPress)} |`,
    );
  }
  const mosquitto = await mosquittoBaseline(ingestAt);
  const aedes = await aedesBaseline(ingestAt);
  const gateway = points.find((p) => p.devices === ingestAt);

  log(`\n## Round trip to the device: gateway and Mosquitto side by side\n`);
  log(
    `${ingestAt} devices heartbeating every 5 s; ${PROBES} stock MQTT.js clients (Nagle on) publish QoS 1, ${ROUNDS} rounds, 25 ms apart; p50 / p99 / p99.9 / max in ms.\n`,
  );
  log("| broker | from the publish to | p50 / p99 / p99.9 / max |");
  log("| --- | --- | --- |");
  log(
    `| gateway | \`received\` back at the pressing device | ${gateway ? fmt(gateway.received) : "not measured"} |`,
  );
  log(
    `| Mosquitto (Debian) | the message back at the publisher, subscribed to its own topic with QoS 1 | ${fmt(mosquitto.measured)} |`,
  );

  log(`\n## Ingest\n`);
  log(
    `${ingestAt} devices; the gateway with every rule and the embedded telemetry store on, Mosquitto as raw pub/sub with no rules. Each step sends heartbeats at the offered rate for ${BURST_SECONDS} s with the periodic heartbeats paused, then waits up to 30 s for the broker's own counters to show them all; it kept up when nothing was lost and all were in within ${CATCH_UP_S} s of the burst's end (Mosquitto: ${CATCH_UP_S + SYS_INTERVAL_S} s, as it publishes its \`$SYS\` counters every ${SYS_INTERVAL_S} s). CPU is the broker's share of one core during the burst; CPU per message is its CPU time from the burst's start until all were in, less its idle CPU, divided by the messages received.\n`,
  );
  log(
    "| offered/s | gateway sent/s | gateway received, stored | gateway caught up | gateway CPU | gateway CPU per heartbeat | Mosquitto sent/s | Mosquitto received | Mosquitto caught up | Mosquitto CPU | Mosquitto CPU per message |",
  );
  log("| ---: | ---: | --- | --- | ---: | ---: | ---: | --- | --- | ---: | ---: |");
  for (const rate of RATES) {
    const g = gateway?.ingest.find((s) => s.offered === rate);
    const m = mosquitto.ingest.find((s) => s.offered === rate);
    const gCells = g
      ? [
          sentRate(g).toFixed(0),
          `${g.received}, ${g.stored}`,
          catchUp(g),
          pct(g.cpu),
          micros(microsPerMessage([g])),
        ]
      : ["", "", "", "", ""];
    const mCells = m
      ? [sentRate(m).toFixed(0), String(m.received), catchUp(m), pct(m.cpu), micros(microsPerMessage([m]))]
      : ["", "", "", "", ""];
    log(`| ${rate} | ${[...gCells, ...mCells].join(" | ")} |`);
  }

  log(`\n## Cost per message\n`);
  log(
    "Broker CPU time per message, less its idle CPU with the devices connected and silent (both measured in this run).\n",
  );
  if (gateway) {
    const gw = microsPerMessage(gateway.ingest);
    const mq = microsPerMessage(mosquitto.ingest);
    log(
      `- gateway, per heartbeat (all ingest steps together, ${ingestAt} devices, idle ${pct(gateway.cpuIdle)}): ${micros(gw)}`,
    );
    log(
      `- Mosquitto, per message (all ingest steps together, idle ${pct(mosquitto.cpuIdle)}): ${micros(mq)}`,
    );
    log(`- gateway per heartbeat over Mosquitto per message: ${(gw / mq).toFixed(1)}x`);
    const ae = microsPerMessage(aedes.ingest);
    log(
      `- aedes alone, per message (all ingest steps together, idle ${pct(aedes.cpuIdle)}): ${micros(ae)}; the gateway per heartbeat over it: ${(gw / ae).toFixed(1)}x`,
    );
  }
  for (const p of points)
    log(
      `- gateway, per press and its cancel, ${p.devices} devices heartbeating every 5 s (their CPU taken out): ${micros(p.microsPerPress)}`,
    );
  for (const p of points) log(`- ${flushLine(p)}`);

  log(`\n## Targets\n`);
  const atTarget = points.find((p) => p.devices === TARGET_DEVICES) ?? points.at(-1);
  for (const line of judgeTargets({
    point: atTarget && {
      devices: atTarget.devices,
      connected: atTarget.connected,
      connectS: atTarget.connectS,
      rssPerDeviceKB: atTarget.rssPerDevice / 1024,
      rssUncollectedPerDeviceKB: atTarget.rssUncollectedPerDevice / 1024,
      received: atTarget.received,
      sse: atTarget.sse,
    },
    ingest: gateway && { devices: ingestAt, gateway: gateway.ingest, mosquitto: mosquitto.ingest },
  }))
    log(line);

  log(`\n## Baselines: Mosquitto, and aedes alone\n`);
  log(
    "aedes alone is the broker library the gateway is built on, in the same Node with the same flags, with no authentication, rules or store (`test/bench/bare-aedes.ts`): about the least the gateway can cost (the gateway skips aedes' routing of device messages, which aedes alone still does).\n",
  );
  const connectLine = (name: string, b: typeof aedes | typeof mosquitto) =>
    `- ${name}, connect: ${b.connected} of ${b.devices} in ${b.connectS.toFixed(1)} s, ${micros(b.connectMicros)} of broker CPU each (no authentication; load generator ${pct(b.generatorCpu)} of its core)`;
  log(connectLine("Mosquitto", mosquitto));
  log(connectLine("aedes alone", aedes));
  if (gateway)
    log(
      `- the gateway, connect with authentication: ${micros(gateway.connectMicros)} of CPU each, ${(gateway.connectMicros / aedes.connectMicros).toFixed(1)}x aedes alone; at aedes' own cost, ${TARGET_DEVICES.toLocaleString("en-US")} connects would take ${((aedes.connectMicros * TARGET_DEVICES) / 1e6).toFixed(1)} s of one core`,
    );
  for (const s of aedes.ingest)
    log(
      `- aedes alone, ${s.offered}/s offered: ${sentRate(s).toFixed(0)}/s sent, ${s.received} received, ${catchUp(s)}, CPU ${pct(s.cpu)}, ${micros(microsPerMessage([s]))} per message`,
    );
  // The cluster's section, written by `--cluster`, is kept.
  const previous = existsSync("BENCHMARKS.md") ? readFileSync("BENCHMARKS.md", "utf8") : "";
  if (!QUICK)
    writeFileSync(
      "BENCHMARKS.md",
      joinBenchmarks({ singleNode: rows.join("\n"), cluster: splitBenchmarks(previous).cluster }),
    );
}

// `--cluster` alone: three gateways on PostgreSQL and Redis (cluster.ts); `--points N` sets its devices.
if (values.cluster) await benchCluster({ quick: QUICK, devices: values.points ? POINTS[0] : undefined });
else await main();
process.exit(0);
