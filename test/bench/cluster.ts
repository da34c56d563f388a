/**
 * `npm run bench -- --cluster`: three gateways on this machine sharing one PostgreSQL and one
 * Redis (started as the tests start them), device-sim's load workers connecting the devices
 * straight to the three (one HAProxy process would need two files per connection, past the
 * 20,000 one process may hold), and this process pressing probe devices spread over the three
 * while it follows every gateway's live stream: a press on one instance must show on the others'.
 * Reports connect time, memory per device per instance, press latencies and heartbeat throughput
 * beside the single-node figures of BENCHMARKS.md, and writes its own section there.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { cpus, loadavg, totalmem } from "node:os";
import pg from "pg";
import { DeviceSecrets } from "../../gateway/broker/secrets.ts";
import { openPostgresStore } from "../../gateway/store/postgres.ts";
import { startInfluxd } from "../support/influxd.ts";
import { startPostgres } from "../support/postgres.ts";
import { startRedis } from "../support/redis.ts";
import {
  catchUp,
  connectAll,
  connectProbes,
  cpuSecondsOf,
  cpuSecondsWithChildren,
  cpuShare,
  fmt,
  followOpenedAlerts,
  type GatewayProcess,
  hardOpenFileLimit,
  heartbeatEvery,
  ingestStep,
  kb,
  machineBusy,
  metrics,
  pct,
  pressPayload,
  probeRounds,
  quiet,
  rssBytes,
  sleep,
  startGatewayProcess,
  startWorker,
  stopWorkers,
  type Worker,
} from "./harness.ts";
import { type LatencySummary, summarise } from "./stats.ts";
import { type IngestStep, sentRate, sustainedRate } from "./targets.ts";

const INSTANCES = 3;
/** Devices one load worker connects: under its 20,000 open files and one source address's ephemeral ports. */
const DEVICES_PER_WORKER = 10_000;
/** Files a gateway needs beyond its devices' connections: PostgreSQL, Redis, probes, streams, its own. */
const FILES_BESIDES_DEVICES = 500;
/**
 * The devices' heartbeats together, per second: the single-node run's (10,000 devices every 5 s),
 * so that the cluster carries the same background load; 50,000 devices heartbeat every 25 s.
 */
const HEARTBEATS_PER_S = 2000;
/** The quieter pace of presses, across the cluster. */
const PACED_GAP_MS = 250;
const SECRET = "bench-secret-shared-by-all-devices";
/** Where the cluster's section of BENCHMARKS.md begins; everything before it is the single-node run's. */
export const CLUSTER_HEADING = "# Cluster:";

/** One load worker's share: the gateway it connects to and its devices' ids. */
export interface WorkerShare {
  instance: number;
  ids: string[];
}

/**
 * Spreads devices `dev-0` … `dev-<devices - 1>` over `instances` gateways in equal blocks, and each
 * gateway's block over as few load workers as hold at most `perWorker` devices each, evenly.
 */
export function spreadDevices(devices: number, instances: number, perWorker: number): WorkerShare[] {
  const shares: WorkerShare[] = [];
  let next = 0;
  for (let instance = 0; instance < instances; instance++) {
    const onInstance = Math.floor(devices / instances) + (instance < devices % instances ? 1 : 0);
    const workers = Math.ceil(onInstance / perWorker);
    for (let w = 0; w < workers; w++) {
      const count = Math.floor(onInstance / workers) + (w < onInstance % workers ? 1 : 0);
      shares.push({ instance, ids: Array.from({ length: count }, (_, k) => `dev-${next + k}`) });
      next += count;
    }
  }
  return shares;
}

/** BENCHMARKS.md split into the single-node run's part and the cluster's section (heading included). */
export function splitBenchmarks(markdown: string): { singleNode: string; cluster?: string } {
  const at = markdown.search(new RegExp(`^${CLUSTER_HEADING}`, "m"));
  if (at < 0) return { singleNode: markdown };
  return { singleNode: markdown.slice(0, at), cluster: markdown.slice(at) };
}

/** BENCHMARKS.md with the given parts, each ending in one newline, the cluster's last. */
export function joinBenchmarks({ singleNode, cluster }: { singleNode: string; cluster?: string }): string {
  const parts = [singleNode, cluster].filter((p): p is string => Boolean(p?.trim()));
  return `${parts.map((p) => p.trimEnd()).join("\n\n")}\n`;
}

/** What the single-node run measured at its largest number of devices, as BENCHMARKS.md shows it. */
export interface SingleNodeFigures {
  devices: number;
  connect: string;
  rssPerDevice: string;
  /** p50 / p99 in ms. */
  received: string;
  sse: string;
  heartbeats: string;
  /** The run's header line. */
  run: string;
}

/** Reads the single-node figures from BENCHMARKS.md's first table and targets; undefined when absent. */
export function singleNodeFigures(markdown: string): SingleNodeFigures | undefined {
  const { singleNode } = splitBenchmarks(markdown);
  // The first table's rows that measured something: | devices | N of N in S s (...) | K KB RSS, ... |
  const rows = singleNode
    .split("\n")
    .filter((line) => /^\| \d+ \| \d+ of \d+ in /.test(line))
    .map((line) => line.split("|").map((cell) => cell.trim()));
  const largest = rows.at(-1);
  if (!largest) return undefined;
  const p50p99 = (cell = "") => cell.split(" / ").slice(0, 2).join(" / ");
  return {
    devices: Number(largest[1]),
    connect: /^\d+ of \d+ in [\d.]+ s/.exec(largest[2] ?? "")?.[0] ?? "",
    rssPerDevice: /^[\d.]+ KB/.exec(largest[3] ?? "")?.[0] ?? "",
    received: p50p99(largest[4]),
    sse: p50p99(largest[5]),
    heartbeats: /kept up with ([\d,]+\/s) sent/.exec(singleNode)?.[1] ?? "not measured",
    run: /^# (.*)$/m.exec(singleNode)?.[1] ?? "",
  };
}

const thousands = (n: number) => Math.round(n).toLocaleString("en-US");

/**
 * Registers the devices straight into the shared database once the gateway's migrations have run
 * (50,000 API calls would measure the API): the same rows and keyed secret hash as the
 * single-node seed, one INSERT … SELECT per kind of device.
 */
async function seed(databaseUrl: string, devices: number, probes: number, key: Buffer, hookUrl: string) {
  await (await openPostgresStore(databaseUrl)).close();
  const hash = new DeviceSecrets(key).hash(SECRET);
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    await db.query("BEGIN");
    await db.query("INSERT INTO communities (id, name) VALUES ('c', 'Bench')");
    await db.query(
      "INSERT INTO people (id, name, role, community_id) VALUES ('doctor', 'Dr Bench', 'doctor', 'c'), ('resident', 'Resident', 'resident', 'c')",
    );
    await db.query(
      "INSERT INTO person_contacts (person_id, position, kind, address) VALUES ('doctor', 1, 'webhook', $1)",
      [hookUrl],
    );
    await db.query(
      "INSERT INTO assignments (resident_id, person_id, relation) VALUES ('resident', 'doctor', 'doctor')",
    );
    const insertDevices = (prefix: string, kind: string, count: number) =>
      db.query(
        `INSERT INTO devices (id, kind, owner_id, secret_hash, created_at)
         SELECT $1 || n, $2, 'resident', $3, $4 FROM generate_series(0, $5 - 1) AS n`,
        [prefix, kind, hash, Date.now(), count],
      );
    await insertDevices("dev-", "locator-tag", devices);
    await insertDevices("probe-", "call-button", probes);
    await db.query("COMMIT");
  } finally {
    await db.end();
  }
}

interface ClusterResult {
  devices: number;
  connected: number;
  connectS: number;
  /** The gateways' CPU over the connect, together, as a share of one core. */
  cpuConnect: number;
  /** Per instance: devices connected, retained RSS and heap per device, RSS per device before a collection. */
  instances: {
    devices: number;
    rssPerDevice: number;
    heapPerDevice: number;
    rssUncollectedPerDevice: number;
  }[];
  /** Shares of one core, the three gateways together. */
  cpuIdle: number;
  cpuHeartbeats: number;
  /** At the single-node run's pace, then at PACED_GAP_MS. */
  presses: Pressed[];
  ingest: IngestStep[];
}

interface Pressed {
  pace: { rounds: number; probes: number; gapMs: number; waitMs: number };
  received: LatencySummary;
  /** On the stream of the gateway the press came in on, and on the other two's. */
  sseSame: LatencySummary;
  sseOther: LatencySummary;
  /** While pressing: the machine's cores, busy (0 to 1), and the three gateways' CPU together, as a share of one core. */
  machineBusy: number;
  gatewaysCpu: number;
  /** PostgreSQL's CPU, its backends' included, as a share of one core. */
  postgresCpu: number;
}

interface Plan {
  devices: number;
  probes: number;
  rounds: number;
  /** The devices' heartbeat period, so that they send HEARTBEATS_PER_S together (5 s at least). */
  heartbeatEveryMs: number;
  /** Probes pressing once each at PACED_GAP_MS. */
  pacedProbes: number;
  rates: number[];
  burstSeconds: number;
}

async function measure(plan: Plan, shares: WorkerShare[]): Promise<ClusterResult> {
  const cleanup: (() => Promise<unknown> | unknown)[] = [];
  try {
    const postgres = await startPostgres();
    cleanup.push(() => postgres.destroy());
    const redis = await startRedis();
    cleanup.push(() => redis.stop());
    // Telemetry goes to InfluxDB, as the compose file's cluster profile deploys it.
    const influx = await startInfluxd();
    cleanup.push(() => influx.stop());
    // The level-1 webhook, answered at once: the same escalation work as the single-node run.
    const hooks = createServer((req, res) => req.resume().on("end", () => res.end()));
    await new Promise<void>((r) => hooks.listen(0, "127.0.0.1", r));
    cleanup.push(() => {
      hooks.close();
      hooks.closeAllConnections();
    });
    const databaseUrl = await postgres.createDatabase();
    const postgresPid = postgres.pid();
    if (postgresPid === undefined) throw new Error("PostgreSQL is not running");
    const key = randomBytes(32);
    await seed(
      databaseUrl,
      plan.devices,
      plan.probes,
      key,
      `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/`,
    );
    const env = {
      DATABASE_URL: databaseUrl,
      REDIS_URL: redis.url,
      INFLUX_URL: influx.url,
      DEVICE_SECRET_KEY: key.toString("base64"),
      LOG_LEVEL: "warn",
      // Connecting 50,000 takes minutes here, and the first to connect stay silent until all have:
      // at 60 s they would be reported offline (three missed) and their alarms measured instead.
      HEARTBEAT_SEC_LOCATOR_TAG: "3600",
      // The load comes from a few addresses at rates no real device reaches: lift the device limits.
      MQTT_CONNECT_RATE_PER_IP: "0",
      DEVICE_PUBLISH_RATE: "0",
    };
    // One after the other: the first creates the admin account the others then find.
    const gateways: GatewayProcess[] = [];
    for (let i = 0; i < INSTANCES; i++) {
      const gw = await startGatewayProcess(env);
      cleanup.push(() => gw.stop());
      gateways.push(gw);
    }
    const pids = gateways.map((gw) => gw.process.pid ?? 0);
    const gatewayOf = (instance: number) => gateways[instance] as GatewayProcess;
    await sleep(1000);
    const before = await Promise.all(gateways.map((gw) => gw.memoryCollected()));
    const rss0 = pids.map(rssBytes);

    const workers: Worker[] = await Promise.all(
      shares.map((share, index) =>
        startWorker({
          ids: share.ids,
          port: Number(new URL(gatewayOf(share.instance).mqttUrl).port),
          index,
          secret: SECRET,
          // Not pinned: three gateways, PostgreSQL and Redis need both cores; the load only yields.
          launcher: "nice -n 10",
        }),
      ),
    );
    cleanup.push(() => stopWorkers(workers));
    console.log(`  connecting ${thousands(plan.devices)} devices with ${workers.length} load workers`);
    const connectCpu0 = cpuSecondsOf(pids);
    const { connected, connectS } = await connectAll(workers);
    const cpuConnect = (cpuSecondsOf(pids) - connectCpu0) / connectS;
    console.log(
      `  ${thousands(connected)} of ${thousands(plan.devices)} connected in ${connectS.toFixed(1)} s`,
    );
    await sleep(2000);
    const connectedOn = await Promise.all(
      gateways.map(async (gw) => (await metrics(gw, "gateway_devices_connected"))[0] ?? 0),
    );
    const rssUncollected = pids.map(rssBytes);
    const cpuIdle = await cpuShare(pids, 3);
    await heartbeatEvery(workers, plan.heartbeatEveryMs);
    await sleep(plan.heartbeatEveryMs);
    const cpuHeartbeats = await cpuShare(pids, 5);
    console.log(
      `  gateways' CPU together: ${pct(cpuIdle)} silent, ${pct(cpuHeartbeats)} heartbeating every ${plan.heartbeatEveryMs / 1000} s`,
    );

    // Probe i presses on instance i % 3; every instance's stream is followed.
    const instanceOfProbe = (i: number) => i % INSTANCES;
    const current = new Map<string, string>();
    const device = new Map<string, number>();
    const streams = gateways.map(() => new Map<string, number>());
    const following = gateways.map((gw, k) =>
      followOpenedAlerts(gw, (deviceId) => {
        const pressKey = current.get(deviceId);
        if (pressKey && !streams[k]?.has(pressKey)) streams[k]?.set(pressKey, performance.now());
      }),
    );
    const probes = await connectProbes(plan.probes, (i) => gatewayOf(instanceOfProbe(i)).mqttUrl, SECRET);
    for (const [i, probe] of probes.entries()) {
      probe.on("message", (_topic, payload) => {
        const pressKey = current.get(`probe-${i}`);
        if (JSON.parse(payload.toString()).type === "received" && pressKey && !device.has(pressKey))
          device.set(pressKey, performance.now());
      });
      await probe.subscribeAsync(`devices/probe-${i}/command`, { qos: 1 });
    }
    let seq = 0;
    /** Presses at `pace`, timed as `received` at the device and as the alert on every gateway's stream. */
    const pressPass = async (pace: Pressed["pace"]): Promise<Pressed> => {
      for (const arrivals of [current, device, ...streams]) arrivals.clear();
      const busy = machineBusy();
      const postgresCpu0 = cpuSecondsWithChildren(postgresPid);
      const [cpu0, t0] = [cpuSecondsOf(pids), performance.now()];
      const sentAt = await probeRounds(
        pace,
        current,
        (i) => probes[i]?.publish(`devices/probe-${i}/event`, pressPayload(++seq), { qos: 1 }),
        () => Math.min(device.size, ...streams.map((s) => s.size)),
        () => {
          for (const [i, probe] of probes.slice(0, pace.probes).entries())
            probe.publish(
              `devices/probe-${i}/event`,
              JSON.stringify({ type: "cancel", ts: Date.now(), seq: ++seq }),
              { qos: 1 },
            );
        },
      );
      const seconds = (performance.now() - t0) / 1000;
      const gatewaysCpu = (cpuSecondsOf(pids) - cpu0) / seconds;
      const postgresCpu = (cpuSecondsWithChildren(postgresPid) - postgresCpu0) / seconds;
      const machine = busy();
      const same: number[] = [];
      const other: number[] = [];
      const received: number[] = [];
      for (const [pressKey, sent] of sentAt) {
        const at = Number(/^probe-(\d+)#/.exec(pressKey)?.[1]);
        const t = device.get(pressKey);
        if (t !== undefined) received.push(t - sent);
        for (const [k, stream] of streams.entries()) {
          const arrived = stream.get(pressKey);
          if (arrived !== undefined) (k === instanceOfProbe(at) ? same : other).push(arrived - sent);
        }
      }
      return {
        pace,
        received: summarise(received, sentAt.size),
        sseSame: summarise(same, sentAt.size),
        sseOther: summarise(other, sentAt.size * (INSTANCES - 1)),
        machineBusy: machine,
        gatewaysCpu,
        postgresCpu,
      };
    };
    // The single-node run's pace first, then one press at a time on a quieter pace: the first
    // shows whether the cluster keeps up, the second what one press costs in time when it does.
    const atPace = await pressPass({ rounds: plan.rounds, probes: plan.probes, gapMs: 25, waitMs: 30_000 });
    const busyLine = (p: Pressed) =>
      `machine ${pct(p.machineBusy)} busy; CPU, as shares of a core: gateways ${pct(p.gatewaysCpu)}, PostgreSQL ${pct(p.postgresCpu)}`;
    console.log(
      `  pressed every 25 ms: received ${fmt(atPace.received)}, SSE ${fmt(atPace.sseSame)}; ${busyLine(atPace)}`,
    );
    const paced = await pressPass({
      rounds: 1,
      probes: plan.pacedProbes,
      gapMs: PACED_GAP_MS,
      waitMs: 30_000,
    });
    console.log(
      `  pressed every ${PACED_GAP_MS} ms: received ${fmt(paced.received)}, SSE ${fmt(paced.sseSame)}; ${busyLine(paced)}`,
    );
    for (const request of following) request.destroy();
    await Promise.all(probes.map((p) => p.endAsync()));
    // Collected last, as in the single-node run: a forced collection would weigh on the presses.
    const after = await Promise.all(gateways.map((gw) => gw.memoryCollected()));
    const instances = gateways.map((_, k) => {
      const n = connectedOn[k] || 1;
      return {
        devices: connectedOn[k] ?? 0,
        rssPerDevice: ((after[k]?.rss ?? 0) - (before[k]?.rss ?? 0)) / n,
        heapPerDevice: ((after[k]?.heapUsed ?? 0) - (before[k]?.heapUsed ?? 0)) / n,
        rssUncollectedPerDevice: ((rssUncollected[k] ?? 0) - (rss0[k] ?? 0)) / n,
      };
    });

    await quiet(workers);
    const counts = {
      async read() {
        const each = await Promise.all(
          gateways.map((gw) =>
            metrics(
              gw,
              'gateway_messages_in_total\\{channel="heartbeat"\\}',
              "gateway_telemetry_points_written_total",
            ),
          ),
        );
        return {
          received: each.reduce((a, [r = 0]) => a + r, 0),
          stored: each.reduce((a, [, s = 0]) => a + s, 0),
        };
      },
      lagS: 0,
    };
    const ingest: IngestStep[] = [];
    for (const rate of plan.rates)
      ingest.push(await ingestStep(workers, { rate, seconds: plan.burstSeconds }, pids, cpuIdle, counts));
    return {
      devices: plan.devices,
      connected,
      connectS,
      cpuConnect,
      instances,
      cpuIdle,
      cpuHeartbeats,
      presses: [atPace, paced],
      ingest,
    };
  } finally {
    for (const fn of cleanup.reverse()) await fn();
  }
}

/**
 * Runs the cluster benchmark: 3 × 1,000 devices with `quick` (a smoke run that writes nothing),
 * else `devices` (50,000 by default), and writes its section of BENCHMARKS.md.
 */
export async function benchCluster(options: { quick: boolean; devices?: number }): Promise<void> {
  const { quick } = options;
  const devices = options.devices ?? (quick ? 3000 : 50_000);
  const plan: Plan = {
    devices,
    probes: quick ? 30 : 201,
    pacedProbes: quick ? 15 : 60,
    heartbeatEveryMs: Math.max(5000, Math.round((devices / HEARTBEATS_PER_S) * 1000)),
    rounds: quick ? 1 : 5,
    rates: quick ? [3000] : [5000, 10_000, 20_000],
    burstSeconds: quick ? 4 : 10,
  };
  const shares = spreadDevices(plan.devices, INSTANCES, DEVICES_PER_WORKER);
  const limit = hardOpenFileLimit();
  const perInstance = Math.ceil(plan.devices / INSTANCES);
  if (perInstance + FILES_BESIDES_DEVICES > limit)
    throw new Error(
      `${thousands(plan.devices)} devices over ${INSTANCES} gateways is ${thousands(perInstance)} connections each, past the ${thousands(limit)} open files one process may hold here`,
    );
  const header = `${CLUSTER_HEADING} ${INSTANCES} gateways on one PostgreSQL and one Redis, ${new Date().toISOString().slice(0, 10)}: ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}${quick ? ", --quick" : ""}`;
  console.log(`${header}\n`);
  const loadBefore = loadavg()[0]?.toFixed(1);
  const result = await measure(plan, shares);

  const previous = existsSync("BENCHMARKS.md") ? readFileSync("BENCHMARKS.md", "utf8") : "";
  const single = singleNodeFigures(previous);
  const p50p99 = (s: LatencySummary) =>
    `${s.p50.toFixed(1)} / ${s.p99.toFixed(1)}${s.lost ? ` (${s.lost} of ${s.count + s.lost} never arrived)` : ""}`;
  const sustained = sustainedRate(result.ingest);
  const busyCells = (p: Pressed) =>
    `${pct(p.machineBusy)}; gateways ${pct(p.gatewaysCpu)}, PostgreSQL ${pct(p.postgresCpu)}`;
  const [atPace, paced] = result.presses as [Pressed, Pressed];
  const lines = [
    `${header}\n`,
    `${INSTANCES} gateway processes (\`DATABASE_URL\`, \`REDIS_URL\`, one \`DEVICE_SECRET_KEY\`), PostgreSQL 15, Redis and InfluxDB (for telemetry, as the compose file's cluster profile deploys it) started as the tests start them, ${shares.length} load workers (device-sim's load mode, each on its own loopback source address, at nice 10) connecting ${thousands(plan.devices)} devices straight to the gateways, ${thousands(Math.ceil(plan.devices / INSTANCES))} at most on each: no load balancer, as one HAProxy process would hold two files per connection and one process may hold ${thousands(limit)}. Nothing is pinned: the gateways, PostgreSQL, Redis, the load and the prober share the machine's cores (load average ${loadBefore} when the run began). Probe devices (stock MQTT.js, Nagle on) press on the three gateways in turn (probe i on gateway i mod 3) while the devices heartbeat every ${plan.heartbeatEveryMs / 1000} s (${thousands(plan.devices / (plan.heartbeatEveryMs / 1000))} heartbeats/s together, as in the single-node run's 10,000 devices every 5 s): ${atPace.pace.probes} probes, ${atPace.pace.rounds} rounds, 25 ms apart as in the single-node run; then ${paced.pace.probes} presses ${PACED_GAP_MS} ms apart. Each round waits up to ${atPace.pace.waitMs / 1000} s for its presses to arrive; what did not by then is counted as never arrived. This process follows every gateway's live stream, so each press is timed on the stream of the gateway it came in on and on the other two's. Latencies are p50 / p99 / p99.9 / max in ms. Memory per device is what the devices connected to a gateway added to its resident set and heap, each after a full garbage collection; in brackets, the resident set two seconds after the connections without one. Connect shows the gateways' CPU over it, together, as a share of one core.\n`,
    `Single node: ${single ? `${thousands(single.devices)} devices, read from BENCHMARKS.md's single-node run above (${single.run}), not measured in this invocation.` : "no single-node run in BENCHMARKS.md."}\n`,
    `| what | single node | cluster, presses 25 ms apart | cluster, presses ${PACED_GAP_MS} ms apart |`,
    "| --- | --- | --- | --- |",
    `| connect (auth) | ${single?.connect ?? ""} | ${thousands(result.connected)} of ${thousands(result.devices)} in ${result.connectS.toFixed(1)} s (gateways' CPU ${pct(result.cpuConnect)}) | |`,
    `| memory per device | ${single ? `${single.rssPerDevice} RSS` : ""} | ${result.instances.map((m, k) => `gateway ${k + 1}: ${kb(m.rssPerDevice)} RSS, ${kb(m.heapPerDevice)} heap (${kb(m.rssUncollectedPerDevice)} RSS before collection), ${thousands(m.devices)} devices`).join("; ")} | |`,
    `| press -> \`received\` p50 / p99 | ${single?.received ?? ""} | ${p50p99(atPace.received)} | ${p50p99(paced.received)} |`,
    `| press -> SSE on the gateway pressed on, p50 / p99 | ${single?.sse ?? ""} | ${p50p99(atPace.sseSame)} | ${p50p99(paced.sseSame)} |`,
    `| press -> SSE on the other gateways, p50 / p99 | (one gateway) | ${p50p99(atPace.sseOther)} | ${p50p99(paced.sseOther)} |`,
    `| while pressing: the machine's ${cpus().length} cores busy; CPU of the gateways together, and of PostgreSQL, as shares of one core | | ${busyCells(atPace)} | ${busyCells(paced)} |`,
    `| heartbeats/s sustained, every one stored within 2 s | ${single?.heartbeats ?? ""} | ${sustained ? `${thousands(sustained)}/s` : "none of the rates offered"} | |`,
    "",
    `Press latencies in full (p50 / p99 / p99.9 / max), 25 ms apart: \`received\` ${fmt(atPace.received)}; SSE on the gateway pressed on ${fmt(atPace.sseSame)}; on the other gateways ${fmt(atPace.sseOther)}. ${PACED_GAP_MS} ms apart: \`received\` ${fmt(paced.received)}; SSE on the gateway pressed on ${fmt(paced.sseSame)}; on the other gateways ${fmt(paced.sseOther)}. The gateways' CPU together, as shares of one core: ${pct(result.cpuIdle)} with the devices silent, ${pct(result.cpuHeartbeats)} heartbeating every ${plan.heartbeatEveryMs / 1000} s.\n`,
    `Heartbeat throughput: each step sends heartbeats at the offered rate for ${plan.burstSeconds} s, spread evenly over the load workers (so over the gateways), with the periodic heartbeats paused; a rate is sustained when every heartbeat was received and stored (in InfluxDB) within 2 s of the burst's end, by the gateways' own counters summed. CPU is the three gateways' together.\n`,
    "| offered/s | sent/s | received, stored | caught up | gateways' CPU |",
    "| ---: | ---: | --- | --- | ---: |",
    ...result.ingest.map(
      (s) =>
        `| ${s.offered} | ${sentRate(s).toFixed(0)} | ${s.received}, ${s.stored} | ${catchUp(s)} | ${pct(s.cpu)} |`,
    ),
  ];
  const section = lines.join("\n");
  console.log(`\n${section}`);
  if (!quick)
    writeFileSync(
      "BENCHMARKS.md",
      joinBenchmarks({ singleNode: splitBenchmarks(previous).singleNode, cluster: section }),
    );
}
