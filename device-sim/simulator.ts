import { readFileSync } from "node:fs";
import { type DeviceCredentials, SimulatedDevice } from "./device.ts";
import { nextArrivalMs, seededRandom } from "./random.ts";
import type { Scenario } from "./scenario.ts";

export interface SimulationOptions {
  url: string;
  devices: DeviceCredentials[];
  buttons: number;
  tags: number;
  /** Random presses a minute across all buttons; 0 for none. */
  pressesPerMinute: number;
  buttonHeartbeatMs: number;
  tagHeartbeatMs: number;
  seed: number;
  scenario?: Scenario;
  log: (line: string) => void;
}

export function readDeviceFile(file: string): DeviceCredentials[] {
  return JSON.parse(readFileSync(file, "utf8")) as DeviceCredentials[];
}

/** Connects the chosen devices and runs random presses and/or a scenario until `stop()`. */
export async function runSimulation(o: SimulationOptions) {
  const random = seededRandom(o.seed);
  const pick = (kind: DeviceCredentials["kind"], n: number) =>
    o.devices.filter((d) => d.kind === kind && d.protocol !== "watch").slice(0, n);
  const chosen = [...pick("call-button", o.buttons), ...pick("locator-tag", o.tags)];
  const devices = new Map<string, SimulatedDevice>();
  for (const creds of chosen) {
    const tag = creds.kind === "locator-tag";
    devices.set(
      creds.id,
      new SimulatedDevice(creds, {
        url: o.url,
        heartbeatMs: tag ? o.tagHeartbeatMs : o.buttonHeartbeatMs,
        random,
        log: o.log,
        // Tags, with GPS on, last a couple of days; buttons months.
        drainPerHeartbeat: tag ? 0.05 : 0.01,
      }),
    );
  }
  // Connect in small batches, as devices come back after an outage, not as one burst of CONNECTs.
  const all = [...devices.values()];
  for (let i = 0; i < all.length; i += 50) await Promise.all(all.slice(i, i + 50).map((d) => d.connect()));
  o.log(`${devices.size} devices connected to ${o.url}`);

  const timers: NodeJS.Timeout[] = [];
  const buttons = all.filter((d) => d.creds.kind === "call-button");
  if (o.pressesPerMinute > 0 && buttons.length > 0) {
    const schedule = () => {
      timers.push(
        setTimeout(
          () => {
            const device = buttons[Math.floor(random() * buttons.length)];
            device?.event("press");
            schedule();
          },
          nextArrivalMs(random, o.pressesPerMinute),
        ),
      );
    };
    schedule();
  }
  for (const step of o.scenario?.steps ?? []) {
    const device = devices.get(step.device);
    if (!device) {
      o.log(`scenario: unknown device ${step.device}, step skipped`);
      continue;
    }
    timers.push(
      setTimeout(() => {
        if (step.event === "disconnect") device.disconnect();
        else if (step.event === "reconnect") device.reconnect();
        else if (step.event === "fix")
          device.heartbeat({ lat: step.lat ?? 0, lon: step.lon ?? 0, accuracy: step.accuracy ?? 10 });
        else device.event(step.event);
      }, step.at),
    );
  }

  return {
    devices,
    async stop() {
      for (const t of timers) clearTimeout(t);
      await Promise.all(all.map((d) => d.stop()));
    },
  };
}
