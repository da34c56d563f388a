import mqtt, { type MqttClient } from "mqtt";
import { type Behaviour, type LatLon, Walk } from "./walks.ts";

export interface DeviceCredentials {
  id: string;
  kind: "call-button" | "locator-tag";
  /** `watch`: an off-the-shelf watch on the 3G / SeTracker protocol, known by its id; no secret. */
  protocol?: "mqtt" | "watch";
  secret: string;
  /** Locator tags: the centre and radius of their safe zone, and how they behave. */
  home?: LatLon;
  zoneRadiusM?: number;
  behaviour?: Behaviour;
  /** Starting battery level, percent. */
  battery?: number;
}

export interface DeviceOptions {
  url: string;
  heartbeatMs: number;
  random: () => number;
  log: (line: string) => void;
  /** Percent lost per heartbeat, on average. */
  drainPerHeartbeat: number;
}

const MIN_BACKOFF_MS = 1_000;
const MAX_BACKOFF_MS = 30_000;
/** A press not confirmed within this time is sent again (same seq and ts: the gateway de-duplicates). */
const PRESS_RETRY_MS = 10_000;

/**
 * One simulated device speaking contract v1 with its real credentials. It heartbeats, presses on
 * request, and obeys commands: keeps re-sending a press until `received`, shows `accepted` and
 * `resolved`. Reconnects with exponential backoff and jitter.
 */
export class SimulatedDevice {
  private client: MqttClient | undefined;
  private seq = Date.now();
  private battery: number;
  private readonly walk: Walk | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private unconfirmed = new Map<number, { payload: string; timer: NodeJS.Timeout }>();
  state: "idle" | "waiting" | "received" | "accepted" = "idle";

  constructor(
    readonly creds: DeviceCredentials,
    private readonly options: DeviceOptions,
  ) {
    this.battery = creds.battery ?? 60 + options.random() * 40;
    if (creds.kind === "locator-tag" && creds.home) {
      this.walk = new Walk(creds.home, creds.zoneRadiusM ?? 250, creds.behaviour ?? "stays", options.random);
    }
  }

  async connect(): Promise<void> {
    const { creds, options } = this;
    const client = mqtt.connect(options.url, {
      clientId: creds.id,
      username: creds.id,
      password: creds.secret,
      protocolVersion: 4,
      clean: false,
      reconnectPeriod: MIN_BACKOFF_MS,
      connectTimeout: 10_000,
    });
    this.client = client;
    client.on("connect", () => {
      client.options.reconnectPeriod = MIN_BACKOFF_MS;
      client.subscribe(`devices/${creds.id}/command`, { qos: 1 });
    });
    client.on("close", () => {
      // Exponential backoff with jitter, so a district of devices does not reconnect in lockstep.
      const next = Math.min(MAX_BACKOFF_MS, (client.options.reconnectPeriod ?? MIN_BACKOFF_MS) * 2);
      client.options.reconnectPeriod = Math.round(next * (0.5 + this.options.random() / 2));
    });
    client.on("error", (err) => options.log(`${creds.id} error: ${err.message}`));
    client.on("message", (_topic, payload) => this.obey(payload.toString()));
    await new Promise<void>((resolve) => client.once("connect", () => resolve()));
    // Spread the first heartbeats over the interval instead of sending them all at once.
    const first = options.random() * options.heartbeatMs;
    this.heartbeatTimer = setTimeout(() => {
      this.heartbeat();
      this.heartbeatTimer = setInterval(() => this.heartbeat(), options.heartbeatMs);
    }, first);
  }

  event(type: "press" | "cancel" | "sos" | "fall"): void {
    const seq = ++this.seq;
    const payload = JSON.stringify({ type, ts: Date.now(), seq });
    this.options.log(`${this.creds.id} ${type} (seq ${seq})`);
    if (type !== "cancel") this.state = "waiting";
    this.send(seq, payload);
  }

  disconnect(): void {
    this.client?.end(true);
  }

  reconnect(): void {
    this.client?.reconnect();
  }

  async stop(): Promise<void> {
    clearTimeout(this.heartbeatTimer);
    clearInterval(this.heartbeatTimer);
    for (const { timer } of this.unconfirmed.values()) clearTimeout(timer);
    await this.client?.endAsync();
  }

  private send(seq: number, payload: string): void {
    this.client?.publish(`devices/${this.creds.id}/event`, payload, { qos: 1 });
    const timer = setTimeout(() => {
      if (this.unconfirmed.has(seq)) this.send(seq, payload);
    }, PRESS_RETRY_MS);
    this.unconfirmed.set(seq, { payload, timer });
  }

  private obey(text: string): void {
    let command: { type?: string; alertId?: string; message?: string };
    try {
      command = JSON.parse(text);
    } catch {
      this.options.log(`${this.creds.id} ignored an unreadable command`);
      return;
    }
    if (command.type === "received") {
      for (const { timer } of this.unconfirmed.values()) clearTimeout(timer);
      this.unconfirmed.clear();
      this.state = "received";
    } else if (command.type === "accepted") {
      this.state = "accepted";
    } else if (command.type === "resolved") {
      this.state = "idle";
    }
    this.options.log(
      `${this.creds.id} <- ${command.type} ${command.alertId ?? ""} ${command.message ?? ""}`.trim(),
    );
  }

  /** Sends a heartbeat; a locator tag reports `at`, or where its walk has taken it. */
  heartbeat(at?: { lat: number; lon: number; accuracy: number }): void {
    const { random, heartbeatMs, drainPerHeartbeat } = this.options;
    this.battery = Math.max(0, this.battery - random() * 2 * drainPerHeartbeat);
    const message: Record<string, unknown> = {
      ts: Date.now(),
      seq: ++this.seq,
      battery: Math.round(this.battery),
    };
    const fix = at ?? this.walk?.step(heartbeatMs / 1000);
    if (this.walk && !at && !this.walk.transmitting) return;
    if (fix) {
      Object.assign(message, {
        lat: Number(fix.lat.toFixed(6)),
        lon: Number(fix.lon.toFixed(6)),
        accuracy: fix.accuracy,
        source: "gps",
      });
    }
    this.client?.publish(`devices/${this.creds.id}/heartbeat`, JSON.stringify(message), { qos: 0 });
  }
}
