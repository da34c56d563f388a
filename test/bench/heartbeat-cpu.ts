/**
 * Gateway CPU time per heartbeat, every rule and the embedded telemetry store on: a figure that
 * holds on a shared machine, where throughput and wall time do not. The gateway runs in its own
 * process; this one connects tags (one safe zone each), sends heartbeats at a steady rate, waits
 * until every one is stored, and divides the gateway's CPU time over that window, its idle CPU
 * taken out, by the heartbeats. One warm-up round, then `--rounds` measured ones; prints each and
 * the median.
 *
 *   npx tsx test/bench/heartbeat-cpu.ts
 *   options: --devices 1000 --heartbeats 200000 --rate 10000 --rounds 3
 */
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { connectTagsInAZone, cpuSeconds, sleep, startGatewayProcess } from "./harness.ts";

const { values } = parseArgs({
  options: {
    devices: { type: "string", default: "1000" },
    heartbeats: { type: "string", default: "200000" },
    rate: { type: "string", default: "10000" },
    rounds: { type: "string", default: "3" },
  },
});
const DEVICES = Number(values.devices);
const HEARTBEATS = Number(values.heartbeats);
const RATE = Number(values.rate);
const ROUNDS = Number(values.rounds);

const gw = await startGatewayProcess({ MQTT_CONNECT_RATE_PER_IP: "0", DEVICE_PUBLISH_RATE: "0" });
const pid = gw.process.pid ?? 0;
const counter = async (pattern: RegExp) =>
  Number(pattern.exec(await (await fetch(`${gw.base}/metrics`)).text())?.[1] ?? 0);
const stored = () => counter(/^gateway_telemetry_points_written_total (\d+)/m);
const idleCpuShare = async (seconds: number) => {
  const c0 = cpuSeconds(pid);
  await sleep(seconds * 1000);
  return (cpuSeconds(pid) - c0) / seconds;
};
try {
  const { clients } = await connectTagsInAZone(gw, DEVICES);
  await sleep(2000);
  const idle = await idleCpuShare(5);
  const t0 = Date.now() - 4 * 60_000;
  let sent = 0;
  const results: number[] = [];
  for (let round = 0; round <= ROUNDS; round++) {
    const storedBefore = await stored();
    const target = sent + HEARTBEATS;
    const c0 = cpuSeconds(pid);
    const start = performance.now();
    const first = sent;
    while (sent < target) {
      const due = Math.min(target, first + Math.floor(((performance.now() - start) / 1000) * RATE));
      for (; sent < due; sent++) {
        const d = sent % DEVICES;
        const lat = 29.6525 + ((sent % 100) - 50) * 1e-5;
        clients[d]?.publish(
          `devices/tag-${d}/heartbeat`,
          `{"ts":${t0 + Math.floor(sent / DEVICES)},"seq":${sent},"battery":80,"lat":${lat},"lon":91.1321,"accuracy":8,"source":"gps"}`,
          { qos: 0 },
        );
      }
      await sleep(10);
    }
    let n = 0;
    for (let i = 0; i < 240 && n < HEARTBEATS; i++) {
      await sleep(250);
      n = (await stored()) - storedBefore;
    }
    const windowS = (performance.now() - start) / 1000;
    const micros = ((cpuSeconds(pid) - c0 - idle * windowS) / HEARTBEATS) * 1e6;
    console.log(
      `${round === 0 ? "warm-up" : `round ${round}`}: ${n} of ${HEARTBEATS} stored in ${windowS.toFixed(1)} s, ${micros.toFixed(1)} µs gateway CPU per heartbeat (load ${loadavg()[0]?.toFixed(1)})`,
    );
    if (round > 0) results.push(micros);
  }
  results.sort((a, b) => a - b);
  console.log(
    `idle ${(idle * 100).toFixed(1)}% of a core; median ${results[Math.floor(results.length / 2)]?.toFixed(1)} µs per heartbeat`,
  );
  await Promise.all(clients.map((c) => c.endAsync()));
} finally {
  await gw.stop();
}
