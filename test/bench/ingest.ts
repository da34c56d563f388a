/**
 * Sustained heartbeat ingest with every rule on (supervision, battery, safe zones) and the
 * telemetry store on: the gateway runs in its own process; this one connects tags and sends
 * heartbeats at stepped rates, then counts what reached the telemetry store.
 *
 *   npx tsx test/bench/ingest.ts                      embedded SQLite telemetry
 *   npx tsx test/bench/ingest.ts --influx             Debian's influxd on a free port
 *   options: --devices 1000 --seconds 10 --rates 2000,5000,10000
 */
import { parseArgs } from "node:util";
import { startInfluxd } from "../support/influxd.ts";
import { connectTagsInAZone, cpuSeconds, sleep, startGatewayProcess } from "./harness.ts";

const { values } = parseArgs({
  options: {
    devices: { type: "string", default: "1000" },
    seconds: { type: "string", default: "10" },
    rates: { type: "string", default: "2000,5000,10000,20000" },
    influx: { type: "boolean", default: false },
  },
});
const DEVICES = Number(values.devices);
const SECONDS = Number(values.seconds);
const RATES = values.rates.split(",").map(Number);

async function main() {
  const influx = values.influx ? await startInfluxd() : undefined;
  // Each tag heartbeats far faster than a real one may: lift the device limits.
  const unlimited = { MQTT_CONNECT_RATE_PER_IP: "0", DEVICE_PUBLISH_RATE: "0" };
  const gw = await startGatewayProcess({
    ...unlimited,
    ...(influx ? { INFLUX_URL: influx.url, INFLUX_DB: "bench" } : {}),
  });
  const pid = gw.process.pid ?? 0;
  try {
    const { clients } = await connectTagsInAZone(gw, DEVICES);

    const t0 = Date.now() - 4 * 60_000;
    const tsOf = new Array<number>(DEVICES).fill(0);
    let sent = 0;
    const counted = async () => {
      if (!influx) {
        const text = await (await fetch(`${gw.base}/metrics`)).text();
        return Number(text.match(/^gateway_telemetry_points_written_total (\d+)/m)?.[1] ?? 0);
      }
      const rows = await influx.query("bench", "SELECT COUNT(battery) FROM telemetry");
      return Number(rows[0]?.[1] ?? 0);
    };
    console.log(
      `\n${DEVICES} tags, one safe zone each, telemetry in ${influx ? "InfluxDB 1.6 (Debian)" : "embedded SQLite"}; ${SECONDS} s per rate\n`,
    );
    console.log("| offered/s | sent/s | stored (all so far) | of all sent | gateway CPU |");
    console.log("| --------- | ------ | ------------------- | ----------- | ----------- |");
    for (const rate of RATES) {
      const cpu0 = cpuSeconds(pid);
      const start = performance.now();
      const sentBefore = sent;
      // Send in 10 ms slices so the offered rate is smooth.
      while (performance.now() - start < SECONDS * 1000) {
        const due = Math.floor(((performance.now() - start) / 1000) * rate) - (sent - sentBefore);
        for (let k = 0; k < due; k++) {
          const d = sent % DEVICES;
          tsOf[d] = (tsOf[d] ?? 0) + 1;
          const lat = 29.6525 + ((sent % 100) - 50) * 1e-5;
          clients[d]?.publish(
            `devices/tag-${d}/heartbeat`,
            `{"ts":${t0 + (tsOf[d] ?? 0)},"seq":${sent},"battery":80,"lat":${lat},"lon":91.1321,"accuracy":8,"source":"gps"}`,
            { qos: 0 },
          );
          sent++;
        }
        await sleep(10);
      }
      const elapsed = (performance.now() - start) / 1000;
      const cpu = (cpuSeconds(pid) - cpu0) / elapsed;
      // Give the gateway up to 30 s to drain what it accepted.
      let stored = 0;
      for (let i = 0; i < 60; i++) {
        stored = await counted();
        if (stored >= sent) break;
        await sleep(500);
      }
      const sentRate = (sent - sentBefore) / elapsed;
      console.log(
        `| ${String(rate).padStart(9)} | ${sentRate.toFixed(0).padStart(6)} | ${String(stored).padStart(19)} | ${((stored / sent) * 100).toFixed(2).padStart(10)}% | ${(cpu * 100).toFixed(0).padStart(9)}% |`,
      );
    }
    await Promise.all(clients.map((c) => c.endAsync()));
  } finally {
    await gw.stop();
    await influx?.stop();
  }
}

await main();
