import type { EventEmitter } from "node:events";
import type { Server as HttpServer, IncomingMessage } from "node:http";
import { createServer, type Server, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { createServer as createTlsServer } from "node:tls";
import { Aedes, type AuthenticateError, type Client, type PublishPacket } from "aedes";
import type { Logger } from "pino";
import { createWebSocketStream, WebSocketServer } from "ws";
import type { EventBus } from "../bus/index.ts";
import { commandTopic, type Ingest, type Verdict } from "../ingest/index.ts";
import type { Metrics } from "../metrics.ts";
import type { Store } from "../store/types.ts";
import { ConnectionRateLimit, PublishAllowance, type Rate } from "./limits.ts";
import { guardPacketSize } from "./packet-size.ts";
import type { BrokerRedis } from "./redis.ts";
import type { DeviceSecrets } from "./secrets.ts";

/** Where a refused publish is re-routed: no device may subscribe to it, so it reaches nobody. */
const REFUSED_TOPIC = "$refused";

const BAD_USERNAME_OR_PASSWORD = 4;
const IDENTIFIER_REJECTED = 2;
const NOT_AUTHORIZED = 5;

function refusal(returnCode: number, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

/** Rate limits act in real time even when the gateway's clock is faked: they protect the process. */
const monotonicMs = () => performance.now();

export interface BrokerSettings {
  /** Larger packets close the connection as soon as their fixed header announces them. */
  maxPacketBytes: number;
  /** Per connected device; a rate of 0 turns it off. */
  publishRate: Rate;
  /** New connections per source address, checked before any MQTT byte is read; 0 turns it off. */
  connectRatePerIp: Rate;
  /** With a certificate, the broker also listens for MQTT over TLS. */
  tls?: { cert: Buffer; key: Buffer } | undefined;
}

/**
 * The embedded MQTT broker: device authentication against the registry, the topic ACL of the
 * device contract, and command publishing. Listens on TCP, on TLS when it has a certificate,
 * and, through `attachWebSocket`, on the HTTP server at `/mqtt`; all three get the same
 * authentication, ACL and limits.
 *
 * Refusals: a bad CONNECT gets its CONNACK return code (2 client id is not the username,
 * 4 unknown device or wrong secret, 5 device revoked). A refused SUBSCRIBE gets return code 0x80 in its SUBACK. A
 * refused PUBLISH (wrong topic, bad payload) is acknowledged as MQTT 3.1.1 requires and dropped,
 * so the device stays connected and does not re-send it forever. All are logged and counted.
 *
 * Limits: a connection from an address over its connection rate is closed before any MQTT byte
 * is read; a packet over `maxPacketBytes` closes its connection; a publish over the device's
 * rate is refused like the others (reason `rate`), and a device that floods is disconnected.
 */
export class Broker {
  readonly aedes: Aedes;
  private tcp: Server | undefined;
  private tls: Server | undefined;
  private ws: WebSocketServer | undefined;
  private forgetTimer: NodeJS.Timeout | undefined;
  private readonly connected = new Map<string, Client>();
  private readonly allowances = new WeakMap<Client, PublishAllowance>();
  private readonly connectLimit: ConnectionRateLimit;

  constructor(
    private readonly deps: {
      store: Store;
      deviceSecrets: DeviceSecrets;
      bus: EventBus;
      ingest: Ingest;
      metrics: Metrics;
      log: Logger;
      /** Several instances as one broker; without it, sessions and queues live in this process. */
      redis?: BrokerRedis | undefined;
    },
    private readonly settings: BrokerSettings,
  ) {
    const { metrics, log } = deps;
    this.connectLimit = new ConnectionRateLimit(settings.connectRatePerIp);
    this.aedes = new Aedes({
      ...(deps.redis && { mq: deps.redis.mq, persistence: deps.redis.persistence }),
      authenticate: (client, username, password, done) => {
        this.authenticate(client, username, password).then(
          () => done(null, true),
          (err: AuthenticateError) => {
            metrics.messagesRefused.inc({ reason: "connect" });
            log.warn({ clientId: client.id, username, reason: err.message }, "device connection refused");
            done(err, false);
          },
        );
      },
      authorizePublish: (client, packet, done) => {
        // Retained device messages would replay stale presses to later subscribers.
        packet.retain = false;
        if (!client) return done(new Error("publish without a client"));
        if (!this.withinRate(client, packet.topic)) {
          packet.topic = `${REFUSED_TOPIC}/${client.id}`;
          return done(null);
        }
        const verdict = deps.ingest.receive(client.id, packet.topic, packet.payload as Buffer);
        if (!(verdict instanceof Promise)) return settlePublish(client, packet, verdict, done);
        verdict.then(
          (refused) => settlePublish(client, packet, refused, done),
          // Not stored: no PUBACK, the connection closes and the device sends it again.
          (err: Error) => {
            log.error({ err, deviceId: client.id }, "could not store device message");
            done(err);
          },
        );
      },
      authorizeSubscribe: (client, sub, done) => {
        if (sub.topic === commandTopic(client.id)) return done(null, sub);
        metrics.messagesRefused.inc({ reason: "subscribe" });
        log.warn({ deviceId: client.id, topic: sub.topic }, "device subscription refused");
        done(null, null);
      },
    });
    this.skipRoutingOfDeviceMessages();
    this.aedes.on("clientReady", (client) => {
      // A client whose link dropped while its secret was being checked is still reported ready,
      // but its disconnect never is: counting it would show the device connected forever.
      if (client.closed) return;
      this.connected.set(client.id, client);
      metrics.devicesConnected.set(this.connected.size);
      deps.bus.emit("device.connected", { deviceId: client.id });
      // A persistent session's subscription was restored during the connect.
      if (this.isListening(client.id)) deps.bus.emit("device.listening", { deviceId: client.id });
    });
    this.aedes.on("subscribe", (subs, client) => {
      // Those restored during a connect are announced when the client is ready, above.
      if (!client || this.connected.get(client.id) !== client) return;
      if (subs.some((s) => s.topic === commandTopic(client.id) && s.qos > 0))
        deps.bus.emit("device.listening", { deviceId: client.id });
    });
    this.aedes.on("ack", (packet, client) => {
      if (!client) return;
      // aedes hands back the acknowledged packet only for persistent sessions; for a clean one it
      // is gone, and PUBACKs come in the order the publishes went out (MQTT 3.1.1, 4.6).
      const acked = packet && "topic" in packet ? packet : undefined;
      if (acked && acked.topic !== commandTopic(client.id)) return;
      deps.bus.emit("device.acknowledged", {
        deviceId: client.id,
        payload: acked ? String(acked.payload) : null,
      });
    });
    this.aedes.on("clientDisconnect", (client) => {
      // A reconnect that took over the client id has already replaced this entry.
      if (this.connected.get(client.id) !== client) return;
      this.connected.delete(client.id);
      metrics.devicesConnected.set(this.connected.size);
      deps.bus.emit("device.disconnected", { deviceId: client.id });
    });
    this.aedes.on("clientError", (client, err) =>
      log.debug({ deviceId: client.id, err: err.message }, "client error"),
    );
    // A failed persistence call (Redis): aedes gives up that publish; a command stays in the outbox.
    (this.aedes as unknown as EventEmitter).on("error", (err: Error) =>
      log.error({ err }, "broker persistence failed"),
    );
  }

  /**
   * Sets up the broker's persistence (Redis, with several instances): commands can be published,
   * queued for offline devices, before any device can connect.
   */
  async prepare(): Promise<void> {
    await this.aedes.listen();
  }

  /** Takes device connections. */
  async start(listen: { host: string; port: number; tlsPort: number }): Promise<void> {
    this.tcp = createServer((socket) => {
      if (this.admit(socket.remoteAddress)) this.serve(socket);
      else socket.destroy();
    });
    await listenOn(this.tcp, listen.port, listen.host);
    if (this.settings.tls) {
      // A handshake left hanging would hold its socket for Node's default 120 s.
      const options = { ...this.settings.tls, handshakeTimeout: 10_000 };
      this.tls = createTlsServer(options, (socket) => this.serve(socket));
      // Checked on the TCP connection, before the TLS handshake costs anything.
      this.tls.on("connection", (socket: Socket) => {
        if (!this.admit(socket.remoteAddress)) socket.destroy();
      });
      await listenOn(this.tls, listen.tlsPort, listen.host);
    }
    if (this.connectLimit.enabled) {
      this.forgetTimer = setInterval(() => this.connectLimit.forgetIdle(monotonicMs()), 60_000).unref();
    }
  }

  isConnected(deviceId: string): boolean {
    return this.connected.has(deviceId);
  }

  connectedDevices(): Iterable<string> {
    return this.connected.keys();
  }

  /** Connected and subscribed to its command topic at QoS 1: a command sent now reaches it. */
  isListening(deviceId: string): boolean {
    // aedes keeps a client's subscriptions on it, untyped.
    const client = this.connected.get(deviceId) as
      | { subscriptions?: Record<string, { qos: number }> }
      | undefined;
    const sub = client?.subscriptions?.[commandTopic(deviceId)];
    return sub !== undefined && sub.qos > 0;
  }

  get port(): number {
    return boundPort(this.tcp);
  }

  /** The MQTT-over-TLS port, 0 when no certificate is configured. */
  get tlsPort(): number {
    return boundPort(this.tls);
  }

  /** Closes a device's connection at once (revocation, a new secret); false when it is not connected. */
  disconnect(deviceId: string, reason: string): boolean {
    const client = this.connected.get(deviceId);
    if (!client) return false;
    this.drop(client, reason);
    return true;
  }

  /**
   * Asks every instance, this one too, to close the device's connection (revoked, or given a new
   * secret): with several, it may be connected to another. Through the emitter, as commands go.
   */
  disconnectEverywhere(deviceId: string, reason: string): void {
    const request: DisconnectRequest = { deviceId, reason };
    this.aedes.publish(
      {
        cmd: "publish",
        topic: DISCONNECT_TOPIC,
        payload: Buffer.from(JSON.stringify(request)),
        qos: 0,
        retain: false,
        dup: false,
      },
      () => undefined,
    );
  }

  /** `close` is called on every instance for each disconnectEverywhere, by any instance. */
  onDisconnectRequest(close: (deviceId: string, reason: string) => void): void {
    this.aedes.subscribe(
      DISCONNECT_TOPIC,
      (packet, done) => {
        const { deviceId, reason } = JSON.parse(String(packet.payload)) as DisconnectRequest;
        close(deviceId, reason);
        done();
      },
      () => undefined,
    );
  }

  /**
   * Several instances: every command published on the shared emitter, by any instance, is also
   * handed to `deliver` here, for devices this instance holds outside MQTT (watches).
   */
  onCommand(deliver: (deviceId: string, payload: string) => void): void {
    this.aedes.subscribe(
      commandTopic("+"),
      (packet, done) => {
        const deviceId = packet.topic.split("/")[1];
        if (deviceId) deliver(deviceId, String(packet.payload));
        done();
      },
      () => undefined,
    );
  }

  /** Serves MQTT over WebSocket at `/mqtt` on the given HTTP server. */
  attachWebSocket(http: HttpServer): void {
    // ws reads a whole frame before passing it on: a frame may carry a few packets, never megabytes.
    this.ws = new WebSocketServer({
      noServer: true,
      maxPayload: Math.max(this.settings.maxPacketBytes, 65_536),
    });
    http.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (new URL(req.url ?? "/", "http://x").pathname !== "/mqtt") return socket.destroy();
      if (!this.admit(req.socket.remoteAddress)) return socket.destroy();
      (socket as Socket).setNoDelay(true);
      this.ws?.handleUpgrade(req, socket, head, (ws) => this.serve(createWebSocketStream(ws), req));
    });
  }

  /**
   * Publishes a command (its JSON) at QoS 1; resolves with an error message if aedes refused it.
   * With Redis, it reaches the device on whichever instance holds its connection.
   */
  publishCommand(deviceId: string, payload: string): Promise<string | undefined> {
    return new Promise((resolve) => {
      this.aedes.publish(
        {
          cmd: "publish",
          topic: commandTopic(deviceId),
          payload: Buffer.from(payload),
          qos: 1,
          retain: false,
          dup: false,
        },
        (err) => resolve(err ? String(err) : undefined),
      );
    });
  }

  async stop(): Promise<void> {
    clearInterval(this.forgetTimer);
    for (const client of this.ws?.clients ?? []) client.terminate();
    this.ws?.close();
    // Stop accepting first; the servers' close completes once aedes has ended every connection.
    const closed = [this.tcp, this.tls].map(
      (server) => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())),
    );
    const aedesClosed = new Promise<void>((resolve) => this.aedes.close(() => resolve()));
    const { redis } = this.deps;
    if (redis) {
      // Closing sessions writes to Redis: while it is down that would wait for ever, so the
      // connections are cut instead (the devices reconnect to another instance).
      await Promise.race([aedesClosed, redis.unreachable()]);
      const clients = (this.aedes as unknown as { clients: Record<string, Client> }).clients;
      for (const client of Object.values(clients)) client.conn.destroy();
      await redis.close();
    } else {
      await aedesClosed;
    }
    await Promise.all(closed);
  }

  /**
   * A device's message ends in `authorizePublish` (ingest), and the ACL lets no client subscribe
   * to it: routing it would only look for subscribers that cannot exist and, with Redis, publish
   * every heartbeat to the other instances for nobody.
   * aedes has no hook to stop a publish it authorized, so its emitter lets these topics go.
   */
  private skipRoutingOfDeviceMessages(): void {
    const mq = (this.aedes as unknown as { mq: Emitter }).mq;
    const emit = mq.emit.bind(mq);
    mq.emit = (packet, done) => (isDeviceMessage(packet.topic) ? done?.() : emit(packet, done));
  }

  /** The per-address connection limit; an episode of refusals is logged once. */
  private admit(address: string | undefined): boolean {
    if (!this.connectLimit.enabled) return true;
    const ip = address ?? "unknown";
    const verdict = this.connectLimit.check(ip, monotonicMs());
    if (verdict === "admit") return true;
    this.deps.metrics.messagesRefused.inc({ reason: "connect-rate" });
    if (verdict === "refuse-starts") {
      this.deps.log.warn(
        { ip },
        "too many new MQTT connections from this address: closing them until it slows down",
      );
    }
    return false;
  }

  /** Hands a connection to aedes behind the packet size guard. */
  private serve(transport: Duplex, req?: IncomingMessage): void {
    // A PUBACK, then `received`: with Nagle's algorithm on, the second waits for the device's
    // delayed ACK (about 40 ms on Linux). The resident's beep is worth more than a few packets.
    if (transport instanceof Socket) transport.setNoDelay(true);
    guardPacketSize(transport, this.settings.maxPacketBytes, (bytes) => {
      // aedes keeps its client on the connection it handles; there is none before CONNECT.
      const deviceId = (transport as { client?: Client }).client?.id;
      this.deps.metrics.messagesRefused.inc({ reason: "packet-size" });
      if (deviceId) this.deps.metrics.devicesDisconnected.inc({ reason: "packet-size" });
      this.deps.log.warn(
        { deviceId, bytes, maxBytes: this.settings.maxPacketBytes },
        "MQTT packet over the size limit: connection closed",
      );
    });
    this.aedes.handle(transport, req);
  }

  /** The device's publish rate; a throttling episode is logged once, a flood disconnects. */
  private withinRate(client: Client, topic: string): boolean {
    if (this.settings.publishRate.perSecond <= 0) return true;
    const now = monotonicMs();
    let allowance = this.allowances.get(client);
    if (!allowance) {
      allowance = new PublishAllowance(this.settings.publishRate, now);
      this.allowances.set(client, allowance);
    }
    const verdict = allowance.take(topic.endsWith("/event"), now);
    if (verdict === "accept") return true;
    const { metrics, log } = this.deps;
    metrics.messagesRefused.inc({ reason: "rate" });
    if (verdict === "throttle-starts") {
      log.warn(
        { deviceId: client.id, rate: this.settings.publishRate },
        "device publishing over its rate: throttled",
      );
    } else if (verdict === "flood") {
      this.drop(client, "flood");
    }
    return false;
  }

  private drop(client: Client, reason: string): void {
    // Packets read before the close are still handled; the connection is closed and counted once.
    if (client.conn.destroyed) return;
    this.deps.metrics.devicesDisconnected.inc({ reason });
    this.deps.log.warn({ deviceId: client.id, reason }, "device connection closed by the gateway");
    // Destroying the transport closes the client at once; aedes then runs its usual disconnect.
    client.conn.destroy();
  }

  private async authenticate(client: Client, username: string | undefined, password: Buffer | undefined) {
    if (!username || client.id !== username) {
      throw refusal(IDENTIFIER_REJECTED, "client id must equal the username (the device id)");
    }
    const { registry } = this.deps.store;
    const secret = password?.toString("utf8") ?? "";
    const hash = await registry.getDeviceSecretHash(username);
    const matches = await this.deps.deviceSecrets.verify(secret, hash);
    if (!hash) {
      // A revoked device is told so, and stays refused until its secret is rotated.
      if ((await registry.getDevice(username))?.revokedAt) throw refusal(NOT_AUTHORIZED, "device revoked");
      throw refusal(BAD_USERNAME_OR_PASSWORD, "unknown device");
    }
    if (!matches) throw refusal(BAD_USERNAME_OR_PASSWORD, "wrong secret");
    // Rotated or revoked while the secret was being checked: the disconnect found nobody to close.
    if (!(await this.stillCurrent(username, hash, secret)))
      throw refusal(NOT_AUTHORIZED, "secret rotated or device revoked during authentication");
  }

  /**
   * Whether the hash just verified is still the device's. A keyed hash is verified in the turn its
   * read returned: reading it again would take as long as the first read did, and leave the same
   * window. A scrypt hash from before keyed hashes took time to verify: it is replaced by a keyed
   * one in the same step, only if it is still the one verified.
   */
  private async stillCurrent(deviceId: string, verified: string, secret: string): Promise<boolean> {
    const { store, deviceSecrets, log } = this.deps;
    if (!deviceSecrets.isOutdated(verified)) return true;
    try {
      return await store.registry.replaceDeviceSecret(deviceId, verified, deviceSecrets.hash(secret));
    } catch (err) {
      // The device connects all the same; the next connect tries again.
      log.warn({ deviceId, err: (err as Error).message }, "could not replace the device's scrypt hash");
    }
    return (await store.registry.getDeviceSecretHash(deviceId)) === verified;
  }
}

/** Between instances only: no device may subscribe or publish outside its own topics. */
const DISCONNECT_TOPIC = "$SYS/gateway/disconnect";
interface DisconnectRequest {
  deviceId: string;
  reason: string;
}

/** A refused publish is acknowledged all the same (MQTT 3.1.1), and re-routed to reach nobody. */
function settlePublish(
  client: Client,
  packet: PublishPacket,
  refused: Verdict,
  done: (err: Error | null) => void,
): void {
  if (refused) packet.topic = `${REFUSED_TOPIC}/${client.id}`;
  done(null);
}

/** What aedes calls its emitter (`mqemitter`, or `mqemitter-redis` across instances) with. */
interface Emitter {
  emit(packet: { topic: string }, done?: (err?: Error) => void): void;
}

/** What devices publish, accepted or refused; commands to devices go on `devices/<id>/command`. */
const isDeviceMessage = (topic: string) =>
  topic.startsWith(`${REFUSED_TOPIC}/`) ||
  (topic.startsWith("devices/") && (topic.endsWith("/heartbeat") || topic.endsWith("/event")));

function listenOn(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
}

function boundPort(server: Server | undefined): number {
  const address = server?.address();
  return typeof address === "object" && address ? address.port : 0;
}
