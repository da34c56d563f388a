/**
 * Press latency under load: the gateway runs in its own process; this process connects N
 * simulated devices that heartbeat every 5 s, then presses buttons one at a time and measures
 * press publish -> alert on the SSE stream and press publish -> level-1 webhook received.
 *
 *   npm run bench                       1,000 devices, 300 presses
 *   npm run bench -- --devices 200 --presses 50
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { cpus, totalmem } from "node:os";
import { parseArgs } from "node:util";
import { connectDevices, registerDevices, sleep, startGatewayProcess } from "./harness.ts";
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

async function main() {
  // The webhook receiver: one level-1 call per press, keyed by device.
  const webhookAt = new Map<string, number>();
  const hooks = createServer((req, res) => {
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

  const gw = await startGatewayProcess();
  try {
    await gw.post("/api/communities", { id: "c", name: "Bench community" });
    await gw.post("/api/people", {
      id: "doctor",
      name: "Dr Bench",
      role: "doctor",
      communityId: "c",
      contacts: [{ kind: "webhook", address: hookUrl }],
    });
    await gw.post("/api/people", { id: "resident", name: "Resident", role: "resident", communityId: "c" });
    await gw.post("/api/assignments", { residentId: "resident", personId: "doctor", relation: "doctor" });
    const creds = await registerDevices(gw, DEVICES, "btn-", "call-button", "resident");
    const connectStart = performance.now();
    const clients = await connectDevices(gw.mqttUrl, creds, 50);
    const connectMs = performance.now() - connectStart;
    const timers: NodeJS.Timeout[] = [];
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
    const stream = await fetch(`${gw.base}/api/stream`, { signal: controller.signal });
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
    // Wait up to 15 s for every press to arrive on both paths.
    for (
      let waited = 0;
      waited < 15_000 && (streamAt.size < PRESSES || webhookAt.size < PRESSES);
      waited += 50
    ) {
      await sleep(50);
    }

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
    await gw.stop();
    hooks.close();
    hooks.closeAllConnections();
  }
}

await main();
