import { connect, type Socket } from "node:net";
import { encodeFrame, WatchFrameDecoder } from "../gateway/protocols/watch/frame.ts";
import type { DeviceCredentials } from "./device.ts";
import { nextArrivalMs, seededRandom } from "./random.ts";
import { type Fix, LANDMARKS, type LatLon, Walk } from "./walks.ts";

/** `ddmmyy,hhmmss` in UTC, as watches write their time. */
export function watchTime(ms: number): string {
  const d = new Date(ms);
  const two = (n: number) => String(n).padStart(2, "0");
  return `${two(d.getUTCDate())}${two(d.getUTCMonth() + 1)}${two(d.getUTCFullYear() % 100)},${two(d.getUTCHours())}${two(d.getUTCMinutes())}${two(d.getUTCSeconds())}`;
}

/** Cell towers and one access point near Lhasa's Chengguan district, as a watch indoors sees them. */
const NEARBY = "2,1,460,0,9360,4082,-71,9360,4092,-83,1,chengguan-cafe,1c:fa:68:13:a5:b4,-61";

/** A position report's fields after its type: time, fix, battery, status word, cells and access points. */
export function reportFields(
  at: number,
  o: { fix?: Fix | undefined; battery: number; status?: number; cells?: boolean },
): string {
  const { fix } = o;
  return [
    watchTime(at),
    fix ? "A" : "V",
    Math.abs(fix?.lat ?? 0).toFixed(6),
    (fix?.lat ?? 0) < 0 ? "S" : "N",
    Math.abs(fix?.lon ?? 0).toFixed(6),
    (fix?.lon ?? 0) < 0 ? "W" : "E",
    "0.0,0.0,3650",
    fix ? 8 : 0,
    60,
    Math.round(o.battery),
    "0,0",
    (o.status ?? 0).toString(16).padStart(8, "0"),
    o.cells ? NEARBY : "0,0",
    fix ? fix.accuracy : "",
  ].join(",");
}

export const SOS_BIT = 1 << 16;
export const FALL_BIT = 1 << 21;
const ALARM_RETRY_MS = 10_000;
const RECONNECT_MS = 5_000;

export interface WatchOptions {
  host: string;
  port: number;
  heartbeatMs: number;
  random: () => number;
  log: (line: string) => void;
  /** Indoors: reports carry cell towers and access points but no GPS fix. */
  indoors?: boolean;
}

/**
 * An off-the-shelf 4G watch on the "watch" (3G / SeTracker) protocol: `LK` and a `UD` every
 * heartbeat, an `AL` re-sent until answered, positions buffered during a coverage gap and sent as
 * `UD2` afterwards; shows `MESSAGE` texts and answers `CR` with a fix.
 */
export class SimulatedWatch {
  private socket: Socket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private alarmTimer: NodeJS.Timeout | undefined;
  private battery: number;
  private readonly walk: Walk;
  /** Reports made while out of coverage, sent as `UD2` when back. */
  private buffered: string[] = [];
  private gapUntil = 0;
  private stopped = false;
  readonly maker = "3G";

  constructor(
    readonly creds: DeviceCredentials,
    private readonly options: WatchOptions,
  ) {
    this.battery = creds.battery ?? 60 + options.random() * 40;
    const home: LatLon = creds.home ?? LANDMARKS[0] ?? { lat: 29.65, lon: 91.13 };
    this.walk = new Walk(home, creds.zoneRadiusM ?? 250, creds.behaviour ?? "stays", options.random);
  }

  async connect(): Promise<void> {
    const socket = connect(this.options.port, this.options.host);
    this.socket = socket;
    const decoder = new WatchFrameDecoder(65_536);
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      for (const f of decoder.push(chunk).frames) this.obey(f.content.toString("utf8"));
    });
    socket.on("error", (err) => this.options.log(`${this.creds.id} error: ${err.message}`));
    socket.on("close", () => {
      if (!this.stopped && this.socket === socket && Date.now() >= this.gapUntil)
        setTimeout(() => void this.connect().catch(() => undefined), RECONNECT_MS).unref();
    });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    this.send(`LK,0,0,${Math.round(this.battery)}`);
    for (const ud2 of this.buffered.splice(0)) this.send(ud2);
    clearInterval(this.timer);
    this.timer = setInterval(() => this.heartbeat(), this.options.heartbeatMs);
  }

  /** The SOS button: an `AL` with the SOS bit, re-sent until the gateway answers. */
  sos(): void {
    this.alarm(SOS_BIT, "SOS");
  }

  fall(): void {
    this.alarm(FALL_BIT, "fall");
  }

  /** Out of coverage for `ms`: reports made meanwhile are kept and sent as `UD2` afterwards. */
  gap(ms: number): void {
    this.options.log(`${this.creds.id} out of coverage for ${Math.round(ms / 1000)} s`);
    this.gapUntil = Date.now() + ms;
    this.socket?.destroy();
    setTimeout(() => {
      if (!this.stopped) void this.connect().catch(() => undefined);
    }, ms).unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.alarmTimer);
    this.socket?.destroy();
  }

  heartbeat(): void {
    const { heartbeatMs, random, indoors } = this.options;
    this.battery = Math.max(0, this.battery - random() * 0.1);
    const fix = indoors ? undefined : this.walk.step(heartbeatMs / 1000);
    const fields = reportFields(Date.now(), { fix, battery: this.battery, cells: indoors });
    if (Date.now() < this.gapUntil) {
      this.buffered.push(`UD2,${fields}`);
      return;
    }
    this.send(`LK,0,0,${Math.round(this.battery)}`);
    this.send(`UD,${fields}`);
  }

  private alarm(bit: number, name: string): void {
    const fix = this.options.indoors ? undefined : this.walk.step(0);
    const content = `AL,${reportFields(Date.now(), { fix, battery: this.battery, status: bit, cells: true })}`;
    this.options.log(`${this.creds.id} ${name}`);
    clearTimeout(this.alarmTimer);
    const attempt = () => {
      this.send(content);
      this.alarmTimer = setTimeout(attempt, ALARM_RETRY_MS);
    };
    attempt();
  }

  private obey(content: string): void {
    const [word = "", text] = content.split(",");
    if (word === "AL") clearTimeout(this.alarmTimer);
    else if (word === "CR") {
      this.send("CR");
      this.heartbeat();
    } else if (word === "MESSAGE") {
      this.send("MESSAGE");
      const utf16be = Buffer.from(text ?? "", "hex");
      const shown = utf16be.length % 2 === 0 ? Buffer.from(utf16be).swap16().toString("utf16le") : "?";
      this.options.log(`${this.creds.id} screen: ${shown}`);
    }
  }

  private send(content: string): void {
    if (this.socket && !this.socket.destroyed)
      this.socket.write(encodeFrame({ maker: this.maker, deviceId: this.creds.id }, content));
  }
}

export interface WatchSimulationOptions {
  host: string;
  port: number;
  watches: DeviceCredentials[];
  heartbeatMs: number;
  /** Random alarms a minute across all watches (one in four a fall); 0 for none. */
  alarmsPerMinute: number;
  /** Every this often, one watch loses coverage for three heartbeats and sends `UD2` after; 0 for never. */
  gapEveryMs: number;
  seed: number;
  log: (line: string) => void;
}

/** Connects the watches (every third one indoors: cells and Wi-Fi only) and runs alarms and gaps until `stop()`. */
export async function runWatchSimulation(o: WatchSimulationOptions) {
  const random = seededRandom(o.seed);
  const watches = o.watches.map(
    (creds, i) =>
      new SimulatedWatch(creds, {
        ...o,
        random,
        log: o.log,
        indoors: i % 3 === 2,
        heartbeatMs: o.heartbeatMs,
      }),
  );
  await Promise.all(watches.map((w) => w.connect()));
  o.log(`${watches.length} watches connected to ${o.host}:${o.port}`);
  const timers: NodeJS.Timeout[] = [];
  const pick = () => watches[Math.floor(random() * watches.length)];
  if (o.alarmsPerMinute > 0 && watches.length > 0) {
    const schedule = () => {
      const timer = setTimeout(
        () => {
          const watch = pick();
          if (random() < 0.25) watch?.fall();
          else watch?.sos();
          schedule();
        },
        nextArrivalMs(random, o.alarmsPerMinute),
      );
      timers.push(timer);
    };
    schedule();
  }
  if (o.gapEveryMs > 0 && watches.length > 0)
    timers.push(setInterval(() => pick()?.gap(o.heartbeatMs * 3.5), o.gapEveryMs));
  return {
    watches,
    async stop() {
      for (const t of timers) clearTimeout(t);
      await Promise.all(watches.map((w) => w.stop()));
    },
  };
}
