import { type BlockList, createServer, isIP, type Server, type Socket } from "node:net";
import { ConnectionRateLimit, PublishAllowance, type Rate } from "../../broker/limits.ts";
import type { DeviceCommand } from "../../ingest/index.ts";
import { addressesOf } from "../../notify/outbound.ts";
import type { Device } from "../../store/types.ts";
import type { AlarmBitsOverrides } from "./alarm.ts";
import { encodeFrame, utf16beHex, type WatchFrame, WatchFrameDecoder } from "./frame.ts";
import { parseContent } from "./message.ts";
import { type WatchDeps, type WatchLink, WatchReports } from "./reports.ts";

/** Connections a listener holds at most: beyond the open-file limit a process has here. */
const MAX_CONNECTIONS = 20_000;
/** How long a new connection has to send a frame naming its watch (the idle timeout, if shorter). */
const IDENTIFY_WITHIN_MS = 30_000;

export interface WatchSettings {
  /** A frame longer than this (bytes, brackets included) closes its connection. */
  maxFrameBytes: number;
  /** A connection silent this long is closed (watches send `LK` every few minutes). */
  idleTimeoutMs: number;
  /** New connections a second per source address; 0 turns the limit off. */
  connectRatePerIp: Rate;
  /** Frames a second per watch, as MQTT publishes per device; alarms have an allowance of their own. */
  publishRate: Rate;
  /** Source networks watches may connect from (IPs or CIDR ranges); empty: any. */
  allowFrom: string[];
  alarmBits: AlarmBitsOverrides;
  /** How far ahead of the gateway's clock a watch's time may be before it is not believed. */
  maxClockSkewMs: number;
}

/** Frames of one connection waiting to be handled; beyond, the watch is flooding and is closed. */
const MAX_QUEUED_FRAMES = 64;

/** Rate limits act in real time even when the gateway's clock is faked: they protect the process. */
const monotonicMs = () => performance.now();

interface Session extends WatchLink {
  socket: Socket;
  index?: string;
  queued: number;
  allowance: PublishAllowance;
  /** Handles this connection's frames one after another, in order. */
  tail: Promise<void>;
  /** Commands sent and not confirmed yet: the watch's word for each, and the outbox's payload. */
  commands: { word: string; payload: string }[];
}

/**
 * The TCP side of off-the-shelf 4G watches and SOS pendants (the "watch" / 3G / SeTracker
 * protocol). A watch is known by the id in its frames, registered beforehand with protocol
 * `watch`; the protocol has no password. Owns the connections (limits, one per watch, commands
 * out and their echoes); `WatchReports` turns the frames into the device contract. A frame is
 * answered only once it is stored, as a PUBACK is.
 */
export class WatchListener {
  private server: Server | undefined;
  private forgetTimer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly sessions = new Map<string, Session>();
  private readonly sockets = new Set<Socket>();
  readonly reports: WatchReports;
  private readonly connectLimit: ConnectionRateLimit;
  private readonly allowed: BlockList | undefined;

  constructor(
    private readonly deps: WatchDeps,
    private readonly settings: WatchSettings,
  ) {
    this.reports = new WatchReports(deps, settings);
    this.connectLimit = new ConnectionRateLimit(settings.connectRatePerIp);
    if (settings.allowFrom.length > 0) this.allowed = addressesOf(settings.allowFrom);
  }

  async start(listen: { host: string; port: number }): Promise<void> {
    this.server = createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      this.server?.once("error", reject);
      this.server?.listen(listen.port, listen.host, () => resolve());
    });
    // A watch that left its safe zone is asked for a fix at once (`CR`): the next one shows where
    // it went. Only useful while it is connected, so it is not kept in the outbox. Alarms it raised
    // get theirs through the outbox (`received`).
    this.unsubscribe = this.deps.bus.on("alert.changed", ({ alert, events }) => {
      if (alert.kind !== "geofence-exit" || !events.some((e) => e.type === "opened")) return;
      const session = this.sessions.get(alert.deviceId);
      if (session && !session.socket.destroyed) session.socket.write(encodeFrame(session, "CR"));
    });
    if (this.connectLimit.enabled)
      this.forgetTimer = setInterval(() => this.connectLimit.forgetIdle(monotonicMs()), 60_000).unref();
    this.deps.log.info({ port: this.port }, "listening for watches");
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    clearInterval(this.forgetTimer);
    const server = this.server;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Every connection, named or not yet: the server's close waits for all of them.
    for (const socket of this.sockets) socket.destroy();
    // Frames being stored finish in the ingest; their answers are lost and the watch sends them
    // again to the next run (an alarm is then found stored: one alert).
    await closed;
  }

  get port(): number {
    const address = this.server?.address();
    return typeof address === "object" && address ? address.port : 0;
  }

  isConnected(deviceId: string): boolean {
    return this.sessions.has(deviceId);
  }

  connectedDevices(): Iterable<string> {
    return this.sessions.keys();
  }

  /** Closes a watch's connection (revoked); false when it is not connected. */
  disconnect(deviceId: string, reason: string): boolean {
    const session = this.sessions.get(deviceId);
    if (!session) return false;
    this.close(session.socket, reason, deviceId);
    return true;
  }

  /**
   * Sends a command of the device outbox in the watch's terms: `received` (an alert it raised is
   * open) asks for a fix at once (`CR`); `accepted` and `resolved` show their phrase (`MESSAGE`).
   */
  async publishCommand(deviceId: string, payload: string): Promise<string | undefined> {
    const session = this.sessions.get(deviceId);
    if (!session || session.socket.destroyed) return "watch not connected";
    const command = JSON.parse(payload) as DeviceCommand;
    const word = command.type === "received" ? "CR" : "MESSAGE";
    const text = word === "CR" ? word : `${word},${utf16beHex(command.message ?? "")}`;
    // Bounded: a watch that never confirms keeps only its latest few waiting here.
    if (session.commands.push({ word, payload }) > MAX_QUEUED_FRAMES) session.commands.shift();
    session.socket.write(encodeFrame(session, text));
    return undefined;
  }

  private accept(socket: Socket): void {
    const { metrics, log } = this.deps;
    const ip = socket.remoteAddress ?? "unknown";
    if (this.allowed && !this.allowed.check(ip, isIP(ip) === 6 ? "ipv6" : "ipv4")) {
      metrics.messagesRefused.inc({ reason: "watch-source" });
      log.warn({ ip }, "watch connection from outside WATCH_ALLOW_FROM refused");
      socket.destroy();
      return;
    }
    if (this.connectLimit.enabled) {
      const verdict = this.connectLimit.check(ip, monotonicMs());
      if (verdict !== "admit") {
        metrics.messagesRefused.inc({ reason: "connect-rate" });
        if (verdict === "refuse-starts")
          log.warn(
            { ip },
            "too many new watch connections from this address: closing them until it slows down",
          );
        socket.destroy();
        return;
      }
    }
    if (this.sockets.size >= MAX_CONNECTIONS) {
      metrics.messagesRefused.inc({ reason: "watch-capacity" });
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.setTimeout(this.settings.idleTimeoutMs, () => this.close(socket, "idle", session?.deviceId));
    // A watch names itself in its first frame: a connection that does not, in time, is not one.
    const unnamed = setTimeout(
      () => {
        if (!identifying) this.close(socket, "idle", undefined);
      },
      Math.min(IDENTIFY_WITHIN_MS, this.settings.idleTimeoutMs),
    );
    socket.once("close", () => clearTimeout(unnamed));
    const decoder = new WatchFrameDecoder(this.settings.maxFrameBytes);
    let session: Session | undefined;
    let identifying: Promise<Session | undefined> | undefined;
    socket.on("error", (err) =>
      log.debug({ err: err.message, deviceId: session?.deviceId }, "watch socket error"),
    );
    socket.on("close", () => {
      this.sockets.delete(socket);
      if (session && this.sessions.get(session.deviceId) === session) {
        this.sessions.delete(session.deviceId);
        metrics.watchesConnected.set(this.sessions.size);
        this.deps.bus.emit("device.disconnected", { deviceId: session.deviceId });
      }
    });
    socket.on("data", (chunk: Buffer) => {
      const { frames, problems } = decoder.push(chunk);
      for (const problem of problems) {
        if (problem.kind === "oversized") {
          metrics.messagesRefused.inc({ reason: "watch-oversized" });
          this.close(socket, `frame over ${this.settings.maxFrameBytes} bytes`, session?.deviceId);
          return;
        }
        metrics.messagesRefused.inc({ reason: "watch-malformed" });
        log.warn({ deviceId: session?.deviceId, detail: problem.detail }, "watch frame refused");
      }
      for (const frame of frames) {
        // The first frame names the watch; every frame is handled after it is known.
        identifying ??= this.identify(socket, frame).then((s) => {
          session = s;
          return s;
        });
        void identifying.then((s) => {
          if (s) this.enqueue(s, frame);
        });
      }
    });
  }

  /** A registered, unrevoked watch, bound to this connection; else the connection is closed. */
  private async identify(socket: Socket, frame: WatchFrame): Promise<Session | undefined> {
    const { store, bus, metrics, log } = this.deps;
    let device: Device | undefined;
    try {
      device = await store.registry.getDevice(frame.deviceId);
    } catch (err) {
      // Not the watch's fault: closed uncounted, it reconnects and is looked up again.
      log.error({ err, deviceId: frame.deviceId }, "could not look up a watch; connection closed");
      socket.destroy();
      return undefined;
    }
    const reason = !device
      ? "unknown watch"
      : device.protocol !== "watch"
        ? "not registered as a watch"
        : device.revokedAt !== null
          ? "revoked"
          : undefined;
    if (reason) {
      metrics.messagesRefused.inc({ reason: "watch-unknown" });
      log.warn({ deviceId: frame.deviceId, ip: socket.remoteAddress, reason }, "watch connection refused");
      socket.destroy();
      return undefined;
    }
    if (socket.destroyed) return undefined;
    const session: Session = {
      socket,
      maker: frame.maker,
      deviceId: frame.deviceId,
      index: frame.index,
      queued: 0,
      allowance: new PublishAllowance(this.settings.publishRate, monotonicMs()),
      tail: Promise.resolve(),
      battery: undefined,
      commands: [],
    };
    const earlier = this.sessions.get(frame.deviceId);
    // The same watch connected twice: it reconnected and the old link is dead; keep the newer.
    this.sessions.set(frame.deviceId, session);
    if (earlier) this.close(earlier.socket, "replaced by a newer connection", frame.deviceId);
    metrics.watchesConnected.set(this.sessions.size);
    bus.emit("device.connected", { deviceId: frame.deviceId });
    // A watch hears commands as soon as it is connected: its outbox can be sent.
    bus.emit("device.listening", { deviceId: frame.deviceId });
    return session;
  }

  private enqueue(session: Session, frame: WatchFrame): void {
    const { log, metrics } = this.deps;
    if (frame.deviceId !== session.deviceId) {
      metrics.messagesRefused.inc({ reason: "watch-unknown" });
      this.close(session.socket, `frame for another id (${frame.deviceId})`, session.deviceId);
      return;
    }
    if (!this.withinRate(session, frame)) return;
    if (++session.queued > MAX_QUEUED_FRAMES) {
      this.close(session.socket, "flood", session.deviceId);
      return;
    }
    session.index = frame.index;
    session.tail = session.tail
      .then(() => this.handle(session, frame))
      .catch((err) => {
        // Not stored: no answer; the watch sends it again (alarms are repeated until answered).
        log.error({ err, deviceId: session.deviceId }, "could not handle watch frame");
      })
      .finally(() => {
        session.queued--;
      });
  }

  /** The watch's frame rate, as the broker's publish rate: throttled (unanswered), a flood closes it. */
  private withinRate(session: Session, frame: WatchFrame): boolean {
    if (this.settings.publishRate.perSecond <= 0) return true;
    const isAlarm = frame.content.subarray(0, 2).toString("latin1") === "AL";
    const verdict = session.allowance.take(isAlarm, monotonicMs());
    if (verdict === "accept") return true;
    this.deps.metrics.messagesRefused.inc({ reason: "rate" });
    if (verdict === "throttle-starts")
      this.deps.log.warn({ deviceId: session.deviceId }, "watch sending over its rate: throttled");
    else if (verdict === "flood") this.close(session.socket, "flood", session.deviceId);
    return false;
  }

  private async handle(session: Session, frame: WatchFrame): Promise<void> {
    const message = parseContent(frame.content);
    const sent = session.commands.findIndex((c) => c.word === message.type);
    if (sent >= 0) {
      // The watch confirms a command by repeating its word: the oldest such sent on this connection.
      const [acked] = session.commands.splice(sent, 1);
      this.deps.bus.emit("device.acknowledged", {
        deviceId: session.deviceId,
        payload: acked?.payload ?? null,
      });
      return;
    }
    const answer = await this.reports.handle(session, message, frame.content.toString("utf8"));
    // The answer repeats the frame's own index (ZJ): a later frame may have arrived meanwhile.
    const to = { maker: session.maker, deviceId: session.deviceId, index: frame.index };
    if (answer && !session.socket.destroyed) session.socket.write(encodeFrame(to, answer));
  }

  private close(socket: Socket, reason: string, deviceId: string | undefined): void {
    if (socket.destroyed) return;
    this.deps.metrics.devicesDisconnected.inc({
      reason: reason.startsWith("frame over") ? "packet-size" : reason === "idle" ? "idle" : "watch",
    });
    this.deps.log.warn({ deviceId, reason }, "watch connection closed by the gateway");
    socket.destroy();
  }
}
