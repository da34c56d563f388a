import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadScenario } from "../device-sim/scenario.ts";
import { readDeviceFile, runSimulation } from "../device-sim/simulator.ts";
import { runWatchSimulation } from "../device-sim/watch.ts";
import { dashboardDist } from "./api/dashboard.ts";
import { seedDemo } from "./demo-seed.ts";
import { main } from "./main.ts";

/**
 * `npm start`: the gateway on the embedded store, a demo district seeded on first run, and
 * simulated devices pressing now and then. No services needed. `DEMO_SIMULATOR=off` seeds and
 * serves without the in-process simulator (docker-compose runs it as its own service).
 */
const env = process.env;
if (!existsSync(join(dashboardDist, "index.html"))) {
  console.log("Building the dashboard (once)…");
  const { build } = await import("vite");
  await build({
    configFile: fileURLToPath(new URL("../dashboard/vite.config.ts", import.meta.url)),
    logLevel: "warn",
  });
}
const dataDir = env.DATA_DIR ?? "./data";
const devicesFile = join(dataDir, "demo-devices.json");
/** The demo's sign-ins, one per role, sharing one password; kept beside the data (mode 600). */
const accountsFile = join(dataDir, "demo-accounts.json");
const demoAccounts = [
  { username: "admin", role: "admin", personId: null },
  { username: "staff", role: "staff", personId: "chongsaikang-staff" },
  { username: "doctor", role: "doctor", personId: "chongsaikang-g1-doctor" },
  { username: "family", role: "family", personId: "family-0001" },
] as const;
// The demo listens for off-the-shelf watches on Traccar's port for their protocol.
env.WATCH_PORT ??= "5093";
// The demo's people have no webhooks; a real deployment must set its own secret.
env.WEBHOOK_SECRET ??= randomBytes(24).toString("base64url");
const gateway = await main(env, async (gw) => {
  if (!(await gw.store.registry.isEmpty())) return;
  await seedDemo(gw, dataDir, { buttons: 50, tags: 20, watches: 4 }, Date.now());
  const password = env.ADMIN_PASSWORD ?? randomBytes(9).toString("base64url");
  for (const a of demoAccounts) await gw.auth.createAccount(a, password, "demo");
  writeFileSync(accountsFile, JSON.stringify({ usernames: demoAccounts.map((a) => a.username), password }), {
    mode: 0o600,
  });
  gw.log.info({ devicesFile, accountsFile }, "seeded the demo district and its accounts");
});
const signIn = existsSync(accountsFile)
  ? (JSON.parse(readFileSync(accountsFile, "utf8")) as { usernames: string[]; password: string })
  : undefined;

const host = env.HOST && env.HOST !== "0.0.0.0" ? env.HOST : "localhost";
if (env.DEMO_SIMULATOR === "off") {
  gateway.log.info("demo simulator off");
} else if (existsSync(devicesFile)) {
  const sim = await runSimulation({
    url: `mqtt://127.0.0.1:${gateway.ports.mqtt}`,
    devices: readDeviceFile(devicesFile),
    buttons: Number.POSITIVE_INFINITY,
    tags: Number.POSITIVE_INFINITY,
    pressesPerMinute: Number(env.DEMO_PRESSES_PER_MINUTE ?? 1),
    buttonHeartbeatMs: 300_000,
    tagHeartbeatMs: 30_000,
    seed: 1,
    scenario: env.DEMO_SCENARIO ? loadScenario(env.DEMO_SCENARIO) : undefined,
    log: (line) => gateway.log.info({ sim: true }, line),
  });
  const watches = readDeviceFile(devicesFile).filter((d) => d.protocol === "watch");
  const watchSim =
    gateway.ports.watch > 0 && watches.length > 0
      ? await runWatchSimulation({
          host: "127.0.0.1",
          port: gateway.ports.watch,
          watches,
          heartbeatMs: 60_000,
          alarmsPerMinute: Number(env.DEMO_WATCH_ALARMS_PER_MINUTE ?? 0.2),
          gapEveryMs: 600_000,
          seed: 2,
          log: (line) => gateway.log.info({ sim: true, protocol: "watch" }, line),
        })
      : undefined;
  const stopSims = () => void Promise.all([sim.stop(), watchSim?.stop()]);
  process.once("SIGINT", stopSims);
  process.once("SIGTERM", stopSims);
} else {
  gateway.log.warn({ devicesFile }, "no demo device credentials: the simulator is not started");
}

console.log(`
  Community safety gateway is running.
    Dashboard     http://${host}:${gateway.ports.http}/${
      signIn ? `  sign in as ${signIn.usernames.join(", ")}, password ${signIn.password}` : ""
    }
    API docs      http://${host}:${gateway.ports.http}/docs
    Live stream   http://${host}:${gateway.ports.http}/api/stream
    Metrics       http://${host}:${gateway.ports.http}/metrics
    MQTT          mqtt://${host}:${gateway.ports.mqtt}  and  ws://${host}:${gateway.ports.http}/mqtt
    Watches       tcp://${host}:${gateway.ports.watch}  (3G / SeTracker protocol; ${gateway.ports.watch > 0 ? "on" : "off"})
  Simulated devices: ${devicesFile}. Stop with Ctrl-C.
`);
