import type { Server as HttpServer, IncomingMessage } from "node:http";
import { createServer, type Server } from "node:net";
import type { Duplex } from "node:stream";
import { Aedes, type AuthenticateError, type Client } from "aedes";
import type { Logger } from "pino";
import { createWebSocketStream, WebSocketServer } from "ws";
import type { EventBus } from "../bus/index.ts";
import { commandTopic, type DeviceCommand, type Ingest } from "../ingest/index.ts";
import type { Metrics } from "../metrics.ts";
import type { Store } from "../store/types.ts";
import { unknownDeviceHash, verifySecret } from "./secrets.ts";

/** Where a refused publish is re-routed: no device may subscribe to it, so it reaches nobody. */
const REFUSED_TOPIC = "$refused";

const BAD_USERNAME_OR_PASSWORD = 4;
const IDENTIFIER_REJECTED = 2;

function refusal(returnCode: number, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

/**
 * The embedded MQTT broker: device authentication against the registry, the topic ACL of the
 * device contract, and command publishing. Listens on TCP and, through `attachWebSocket`, on the
 * HTTP server at `/mqtt`.
 *
 * Refusals: a bad CONNECT gets its CONNACK return code (2 client id is not the username,
 * 4 unknown device or wrong secret). A refused SUBSCRIBE gets return code 0x80 in its SUBACK. A
 * refused PUBLISH (wrong topic, bad payload) is acknowledged as MQTT 3.1.1 requires and dropped,
 * so the device stays connected and does not re-send it forever. All are logged and counted.
 */
export class Broker {
  readonly aedes: Aedes;
  private tcp: Server | undefined;
  private ws: WebSocketServer | undefined;
  private readonly connected = new Map<string, Client>();

  constructor(
    private readonly deps: { store: Store; bus: EventBus; ingest: Ingest; metrics: Metrics; log: Logger },
  ) {
    const { metrics, log } = deps;
    this.aedes = new Aedes({
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
        deps.ingest.receive(client.id, packet.topic, packet.payload as Buffer).then(
          (refused) => {
            if (refused) packet.topic = `${REFUSED_TOPIC}/${client.id}`;
            done(null);
          },
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
    this.aedes.on("clientReady", (client) => {
      this.connected.set(client.id, client);
      metrics.devicesConnected.set(this.connected.size);
      deps.bus.emit("device.connected", { deviceId: client.id });
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
  }

  async start(port: number, host: string): Promise<void> {
    await this.aedes.listen();
    this.tcp = createServer(this.aedes.handle);
    await new Promise<void>((resolve, reject) => {
      this.tcp?.once("error", reject);
      this.tcp?.listen(port, host, () => resolve());
    });
  }

  isConnected(deviceId: string): boolean {
    return this.connected.has(deviceId);
  }

  get port(): number {
    const address = this.tcp?.address();
    return typeof address === "object" && address ? address.port : 0;
  }

  /** Serves MQTT over WebSocket at `/mqtt` on the given HTTP server. */
  attachWebSocket(http: HttpServer): void {
    this.ws = new WebSocketServer({ noServer: true });
    http.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (new URL(req.url ?? "/", "http://x").pathname !== "/mqtt") return socket.destroy();
      this.ws?.handleUpgrade(req, socket, head, (ws) => this.aedes.handle(createWebSocketStream(ws), req));
    });
  }

  /** Publishes a command to a device at QoS 1; resolves to an error message, or undefined. */
  publishCommand(deviceId: string, command: DeviceCommand): Promise<string | undefined> {
    return new Promise((resolve) => {
      this.aedes.publish(
        {
          cmd: "publish",
          topic: commandTopic(deviceId),
          payload: Buffer.from(JSON.stringify(command)),
          qos: 1,
          retain: false,
          dup: false,
        },
        (err) => resolve(err ? String(err) : undefined),
      );
    });
  }

  async stop(): Promise<void> {
    for (const client of this.ws?.clients ?? []) client.terminate();
    this.ws?.close();
    // Stop accepting first; the TCP server's close completes once aedes has ended every connection.
    const tcpClosed = new Promise<void>((resolve) =>
      this.tcp ? this.tcp.close(() => resolve()) : resolve(),
    );
    await new Promise<void>((resolve) => this.aedes.close(() => resolve()));
    await tcpClosed;
  }

  private async authenticate(client: Client, username: string | undefined, password: Buffer | undefined) {
    if (!username || client.id !== username) {
      throw refusal(IDENTIFIER_REJECTED, "client id must equal the username (the device id)");
    }
    const hash = await this.deps.store.registry.getDeviceSecretHash(username);
    const matches = await verifySecret(password?.toString("utf8") ?? "", hash ?? unknownDeviceHash);
    if (!hash) throw refusal(BAD_USERNAME_OR_PASSWORD, "unknown device");
    if (!matches) throw refusal(BAD_USERNAME_OR_PASSWORD, "wrong secret");
  }
}
