import type { Logger } from "pino";
import type { EventBus } from "../bus/index.ts";
import type { Clock } from "../clock/index.ts";
import { commandTopic, type DeviceCommand } from "../ingest/contract.ts";
import { type Metrics, observePressLatency } from "../metrics.ts";
import type { Store } from "../store/types.ts";

/** How a command reaches a device: the MQTT broker, or a watch's TCP connection. */
export interface DeviceLink {
  /** Connected and able to take a command now. */
  isListening(deviceId: string): boolean;
  /** Resolves with an error message when the command could not be sent. */
  publishCommand(deviceId: string, payload: string): Promise<string | undefined>;
  /**
   * Several instances: hands a command for a device not listening here to the instance holding
   * its connection, if any. The outbox keeps it until the device acknowledges it, wherever.
   */
  relay?(deviceId: string, payload: string): Promise<string | undefined>;
}

/**
 * Closes the loop to the resident through a durable outbox. Each command (`received`,
 * `accepted`, `resolved`) is stored as a pending notification attempt before it is sent; it goes
 * out at once if the device is listening, else when it next subscribes, and again on every new
 * connection until the device acknowledges it (PUBACK). Only then is it recorded delivered. It
 * survives a restart, keeps its order, and expires after `ttlMs`.
 */
export class DeviceOutbox {
  private unsubscribe: (() => void)[] = [];
  /** Per device, on its current connection: the rows sent, and those not acknowledged yet, in order. */
  private readonly connections = new Map<
    string,
    { sent: Set<number>; unacknowledged: { id: number | undefined; payload: string }[] }
  >();

  constructor(
    private readonly deps: {
      store: Store;
      bus: EventBus;
      link: DeviceLink;
      clock: Clock;
      metrics: Metrics;
      log: Logger;
    },
    private readonly options: { ttlMs: number },
  ) {}

  /**
   * Devices with commands waiting, each with a count of commands queued for it: a connect storm
   * looks up only these devices, and one is forgotten only if nothing was queued during its lookup.
   */
  private readonly waiting = new Map<string, number>();

  async start(): Promise<void> {
    const { bus, log, store } = this.deps;
    for (const address of await store.attempts.pendingCommandAddresses())
      this.waiting.set(address.split("/")[1] ?? "", 0);
    const failed = (deviceId: string) => (err: unknown) =>
      log.error({ err, deviceId }, "device outbox failed");
    this.unsubscribe = [
      bus.on(
        "device.command",
        (c) => void this.enqueue(c.deviceId, c.command, c.pressReceivedHr).catch(failed(c.deviceId)),
      ),
      bus.on("device.listening", ({ deviceId }) => void this.flush(deviceId).catch(failed(deviceId))),
      bus.on("device.disconnected", ({ deviceId }) => this.connections.delete(deviceId)),
      bus.on("device.connected", ({ deviceId }) => this.connections.delete(deviceId)),
      bus.on(
        "device.acknowledged",
        ({ deviceId, payload }) => void this.acknowledged(deviceId, payload).catch(failed(deviceId)),
      ),
    ];
  }

  stop(): void {
    for (const off of this.unsubscribe.splice(0)) off();
    this.connections.clear();
    this.waiting.clear();
  }

  private async enqueue(deviceId: string, command: DeviceCommand, pressReceivedHr?: number): Promise<void> {
    const { store, link, clock, log } = this.deps;
    const payload = JSON.stringify(command);
    const now = clock.now();
    this.waiting.set(deviceId, (this.waiting.get(deviceId) ?? 0) + 1);
    // Sent once committed, its flush asked for but not waited for: what caused it (an alert's
    // change) is on disk already. The resident hears back even when the command cannot be stored
    // (database locked or full); it is then sent once, not kept for a reconnect.
    const stored = store.committed(() =>
      store.attempts.start({
        alertId: command.alertId,
        level: 0,
        personId: null,
        channel: "device",
        event: command.type,
        address: commandTopic(deviceId),
        attempt: 1,
        at: now,
        payload,
        expiresAt: now + this.options.ttlMs,
      }),
    );
    void store.durable().catch(() => undefined);
    const id = await stored.catch((err) => {
      log.error({ err, deviceId }, "could not store the device command; sending it anyway");
      return undefined;
    });
    if (link.isListening(deviceId)) await this.send(deviceId, id, payload, command.type, pressReceivedHr);
    else await link.relay?.(deviceId, payload);
  }

  /** Sends, in order, what waits for the device and was not sent on this connection yet. */
  private async flush(deviceId: string): Promise<void> {
    const { store, clock } = this.deps;
    const queued = this.waiting.get(deviceId);
    if (queued === undefined) return;
    const rows = await store.attempts.pendingCommands(commandTopic(deviceId), clock.now());
    if (rows.length === 0 && this.waiting.get(deviceId) === queued) this.waiting.delete(deviceId);
    for (const row of rows) {
      const command = JSON.parse(row.payload) as DeviceCommand;
      await this.send(deviceId, row.id, row.payload, command.type);
    }
  }

  private async send(
    deviceId: string,
    id: number | undefined,
    payload: string,
    type: DeviceCommand["type"],
    pressReceivedHr?: number,
  ): Promise<void> {
    const { link, metrics, log } = this.deps;
    let connection = this.connections.get(deviceId);
    if (!connection) {
      connection = { sent: new Set(), unacknowledged: [] };
      this.connections.set(deviceId, connection);
    }
    if (id !== undefined) {
      if (connection.sent.has(id)) return;
      connection.sent.add(id);
    }
    connection.unacknowledged.push({ id, payload });
    const error = await link.publishCommand(deviceId, payload);
    metrics.notifications.inc({ channel: "device", result: error ? "failed" : "sent" });
    if (error) log.warn({ deviceId, error }, "device command not sent; it waits for the next connection");
    else if (type === "received") observePressLatency(metrics, "device", pressReceivedHr);
  }

  /** A PUBACK: for the command whose payload the broker still had, else for the oldest one sent. */
  private async acknowledged(deviceId: string, payload: string | null): Promise<void> {
    const { store, clock, metrics } = this.deps;
    const waiting = this.connections.get(deviceId)?.unacknowledged ?? [];
    const i = payload === null ? 0 : waiting.findIndex((c) => c.payload === payload);
    const [acked] = i < 0 ? [] : waiting.splice(i, 1);
    const what = payload ?? acked?.payload;
    if (what === undefined) return;
    const n = await store.attempts.commandAcknowledged(commandTopic(deviceId), what, clock.now());
    if (n > 0) metrics.notifications.inc({ channel: "device", result: "delivered" });
  }
}
