/**
 * Press latency under load: the gateway runs in its own process; this process connects N
 * simulated devices that heartbeat every 5 s, then presses buttons one at a time and measures
 * press publish -> alert on the SSE stream and press publish -> level-1 webhook received.
 *
 *   npm run bench                       1,000 devices, 300 presses
 *   npm run bench -- --devices 200 --presses 50
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { type AddressInfo, createServer } from "node:net";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import mqtt, { type MqttClient } from "mqtt";
import { type LatencySummary, summarise } from "./stats.ts";

const { values } = parseArgs({
  options: {
    devices: { type: "string", default: "1000" },
    presses: { type: "string", default: "300" },
    "heartbeat-sec": { type: "string", default: "5" },
    quick: { type: "boolean", default: false },
  },
});
const DEVICES = values.quick ? 200 : Number(values.devices);
const PRESSES = Math.min(DEVICES, values.quick ? 50 : Number(values.presses));
const HEARTBEAT_MS = Number(values["heartbeat-sec"]) * 1000;

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });

async function main() {
  const dataDir = mkdtempSync(join(tmpdir(), "gateway-bench-"));
  const [httpPort, mqttPort] = [await freePort(), await freePort()];
  const base = `http://127.0.0.1:${httpPort}`;

  // The webhook receiver: one level-1 call per press, keyed by device.
  const webhookAt = new Map<string, number>();
  const hooks = createHttpServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      const { deviceId, level } = JSON.parse(body);
      if (level === 1 && !webhookAt.has(deviceId)) webhookAt.set(deviceId, performance.now());
      res.end();
    });
  });
  await new Promise<void>((r) => hooks.listen(0, "127.0.0.1", r));
  const hookUrl = `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/doctor`;

  const gateway = spawn(process.execPath, ["--import", "tsx", "gateway/main.ts"], {
    env: {
      ...process.env,
      PORT: String(httpPort),
      MQTT_PORT: String(mqttPort),
      HOST: "127.0.0.1",
      DATA_DIR: dataDir,
      LOG_LEVEL: "error",
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  try {
    await waitUntil(async () => (await fetch(`${base}/readyz`).catch(() => undefined))?.ok === true);
    const post = async (path: string, body: unknown) => {
      const res = await fetch(base + path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
      return res.json();
    };
    await post("/api/communities", { id: "c", name: "Bench community" });
    await post("/api/people", {
      id: "doctor",
      name: "Dr Bench",
      role: "doctor",
      communityId: "c",
      contacts: [{ kind: "webhook", address: hookUrl }],
    });
    await post("/api/people", { id: "resident", name: "Resident", role: "resident", communityId: "c" });
    await post("/api/assignments", { residentId: "resident", personId: "doctor", relation: "doctor" });
    const creds: { id: string; secret: string }[] = [];
    for (let i = 0; i < DEVICES; i += 20) {
      const batch = Array.from({ length: Math.min(20, DEVICES - i) }, (_, k) =>
        post("/api/devices", { id: `btn-${i + k}`, kind: "call-button", ownerId: "resident" }),
      );
      creds.push(...(await Promise.all(batch)));
    }

    const clients: MqttClient[] = [];
    const timers: NodeJS.Timeout[] = [];
    const connectStart = performance.now();
    for (let i = 0; i < creds.length; i += 50) {
      clients.push(
        ...(await Promise.all(
          creds.slice(i, i + 50).map((c) =>
            mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
              clientId: c.id,
              username: c.id,
              password: c.secret,
              protocolVersion: 4,
              reconnectPeriod: 0,
            }),
          ),
        )),
      );
    }
    const connectMs = performance.now() - connectStart;
    let seq = 0;
    clients.forEach((client, i) => {
      const beat = () =>
        client.publish(
          `devices/${creds[i]?.id}/heartbeat`,
          JSON.stringify({ ts: Date.now(), seq: ++seq, battery: 80 }),
          { qos: 0 },
        );
      timers.push(
        setTimeout(() => timers.push(setInterval(beat, HEARTBEAT_MS)), Math.random() * HEARTBEAT_MS),
      );
    });

    // The dashboard's stream: first 'opened' event per device.
    const streamAt = new Map<string, number>();
    const controller = new AbortController();
    const stream = await fetch(`${base}/api/stream`, { signal: controller.signal });
    void (async () => {
      const decoder = new TextDecoder();
      let buffer = "";
      for await (const chunk of stream.body as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end = buffer.indexOf("\n\n");
        while (end >= 0) {
          const data = buffer
            .slice(0, end)
            .split("\n")
            .find((l) => l.startsWith("data: "));
          buffer = buffer.slice(end + 2);
          if (data) {
            const { alert, event } = JSON.parse(data.slice(6));
            if (event.type === "opened" && !streamAt.has(alert.deviceId))
              streamAt.set(alert.deviceId, performance.now());
          }
          end = buffer.indexOf("\n\n");
        }
      }
    })().catch(() => undefined);

    await sleep(HEARTBEAT_MS); // let the heartbeat load settle
    const pressedAt = new Map<string, number>();
    for (let i = 0; i < PRESSES; i++) {
      const id = creds[i]?.id ?? "";
      pressedAt.set(id, performance.now());
      clients[i]?.publish(
        `devices/${id}/event`,
        JSON.stringify({ type: "press", ts: Date.now(), seq: ++seq }),
        { qos: 1 },
      );
      await sleep(20);
    }
    await waitUntil(async () => streamAt.size >= PRESSES && webhookAt.size >= PRESSES, 15_000).catch(
      () => undefined,
    );

    const latencies = (arrived: Map<string, number>) =>
      [...pressedAt].flatMap(([id, t0]) => (arrived.has(id) ? [(arrived.get(id) ?? 0) - t0] : []));
    const results: [string, LatencySummary][] = [
      ["press -> SSE alert", summarise(latencies(streamAt), PRESSES)],
      ["press -> level-1 webhook", summarise(latencies(webhookAt), PRESSES)],
    ];
    const fmt = (n: number) => n.toFixed(2).padStart(8);
    console.log(
      `\n${new Date().toISOString()}  ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`,
    );
    console.log(
      `${DEVICES} devices connected in ${(connectMs / 1000).toFixed(1)} s, heartbeating every ${HEARTBEAT_MS / 1000} s (${((DEVICES / HEARTBEAT_MS) * 1000).toFixed(0)} msg/s); ${PRESSES} presses, 20 ms apart\n`,
    );
    console.log("| path                     |  p50 ms  |  p99 ms  |  max ms  | arrived | lost |");
    console.log("| ------------------------ | -------- | -------- | -------- | ------- | ---- |");
    for (const [name, s] of results) {
      console.log(
        `| ${name.padEnd(24)} | ${fmt(s.p50)} | ${fmt(s.p99)} | ${fmt(s.max)} | ${String(s.count).padStart(7)} | ${String(s.lost).padStart(4)} |`,
      );
    }
    controller.abort();
    for (const t of timers) clearInterval(t);
    await Promise.all(clients.map((c) => c.endAsync()));
    if (results.some(([, s]) => s.lost > 0)) process.exitCode = 1;
  } finally {
    gateway.kill("SIGTERM");
    hooks.close();
    hooks.closeAllConnections();
    await new Promise((r) => gateway.once("exit", r));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitUntil(check: () => Promise<boolean> | boolean, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await sleep(50);
  }
}

await main();
