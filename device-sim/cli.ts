import { parseArgs } from "node:util";
import { loadScenario } from "./scenario.ts";
import { readDeviceFile, runSimulation } from "./simulator.ts";
import { runWatchSimulation } from "./watch.ts";

const usage = `Usage: npm run sim -- [options]
  --protocol P         mqtt (default): devices of contract v1; watch: off-the-shelf watches over TCP
  --url URL            broker (default mqtt://127.0.0.1:1883; ws://host:8080/mqtt works too);
                       with --protocol watch, the gateway's WATCH_PORT (default tcp://127.0.0.1:5093)
  --devices FILE       device credentials, JSON [{id, kind, secret}] (default ./data/demo-devices.json,
                       written by 'npm start' when it seeds the demo community)
  --buttons N          call buttons to simulate (default: all in the file)
  --tags N             locator tags to simulate (default: all in the file)
  --rate N             random presses a minute across all buttons (default 2; 0 for none)
  --button-heartbeat S seconds between call-button heartbeats (default 300)
  --tag-heartbeat S    seconds between locator-tag heartbeats (default 30)
  --scenario FILE      scripted steps, see device-sim/scenarios/
  --seed N             random seed (default 1)
  --watches N          watches to simulate (default: all in the file), --protocol watch only
  --alarm-rate N       random watch alarms a minute, one in four a fall (default 1; 0 for none)
  --watch-heartbeat S  seconds between a watch's LK + UD (default 60)
  --gap-every S        every S seconds a watch loses coverage and sends UD2 after (default 300; 0 never)
  --duration S         stop after S seconds (default: run until Ctrl-C)`;

const { values } = parseArgs({
  options: {
    protocol: { type: "string", default: "mqtt" },
    url: { type: "string" },
    watches: { type: "string" },
    "alarm-rate": { type: "string", default: "1" },
    "watch-heartbeat": { type: "string", default: "60" },
    "gap-every": { type: "string", default: "300" },
    devices: { type: "string", default: "./data/demo-devices.json" },
    buttons: { type: "string" },
    tags: { type: "string" },
    rate: { type: "string", default: "2" },
    "button-heartbeat": { type: "string", default: "300" },
    "tag-heartbeat": { type: "string", default: "30" },
    scenario: { type: "string" },
    seed: { type: "string", default: "1" },
    duration: { type: "string" },
    help: { type: "boolean", default: false },
  },
});

if (values.help) {
  console.log(usage);
  process.exit(0);
}

const number = (name: string, raw: string | undefined, fallback: number) => {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) {
    console.error(`--${name}: expected a number >= 0, got '${raw}'\n\n${usage}`);
    process.exit(2);
  }
  return n;
};

let devices: ReturnType<typeof readDeviceFile>;
try {
  devices = readDeviceFile(values.devices);
} catch (err) {
  console.error(
    `--devices: cannot read ${values.devices}: ${(err as Error).message}\nRun 'npm start' once to seed the demo.`,
  );
  process.exit(2);
}

if (values.protocol !== "mqtt" && values.protocol !== "watch") {
  console.error(`--protocol: expected mqtt or watch, got '${values.protocol}'\n\n${usage}`);
  process.exit(2);
}

const log = (line: string) => console.log(`${new Date().toISOString()} ${line}`);
const sim =
  values.protocol === "watch"
    ? await startWatches()
    : await runSimulation({
        url: values.url ?? "mqtt://127.0.0.1:1883",
        devices,
        buttons: number("buttons", values.buttons, Number.POSITIVE_INFINITY),
        tags: number("tags", values.tags, Number.POSITIVE_INFINITY),
        pressesPerMinute: number("rate", values.rate, 2),
        buttonHeartbeatMs: number("button-heartbeat", values["button-heartbeat"], 300) * 1000,
        tagHeartbeatMs: number("tag-heartbeat", values["tag-heartbeat"], 30) * 1000,
        seed: number("seed", values.seed, 1),
        scenario: values.scenario ? loadScenario(values.scenario) : undefined,
        log,
      });

async function startWatches() {
  const url = new URL(values.url ?? "tcp://127.0.0.1:5093");
  return runWatchSimulation({
    host: url.hostname,
    port: Number(url.port),
    watches: devices
      .filter((d) => d.protocol === "watch")
      .slice(0, number("watches", values.watches, Number.POSITIVE_INFINITY)),
    heartbeatMs: number("watch-heartbeat", values["watch-heartbeat"], 60) * 1000,
    alarmsPerMinute: number("alarm-rate", values["alarm-rate"], 1),
    gapEveryMs: number("gap-every", values["gap-every"], 300) * 1000,
    seed: number("seed", values.seed, 1),
    log,
  });
}

const stop = async () => {
  await sim.stop();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
if (values.duration) setTimeout(stop, number("duration", values.duration, 0) * 1000);
