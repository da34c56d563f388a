import type { AddressInfo } from "node:net";
import pino, { type Logger } from "pino";
import { AlertService } from "./alerts/service.ts";
import { buildApi } from "./api/index.ts";
import { Broker } from "./broker/index.ts";
import { EventBus } from "./bus/index.ts";
import { type Clock, systemClock } from "./clock/index.ts";
import type { Config } from "./config/index.ts";
import { Ingest } from "./ingest/index.ts";
import { createMetrics } from "./metrics.ts";
import { DeviceCommandNotifier } from "./notify/device-command.ts";
import { AlertStream } from "./notify/stream.ts";
import { WebhookNotifier } from "./notify/webhook.ts";
import { openSqliteStore } from "./store/sqlite.ts";
import { TelemetryWriter } from "./store/telemetry.ts";
import { influxTelemetry } from "./store/telemetry-influx.ts";
import { Tracker } from "./tracking/index.ts";

export interface GatewayDeps {
  clock?: Clock;
  log?: Logger;
}

export type Gateway = Awaited<ReturnType<typeof buildGateway>>;

/** The composition root: wires every part; nothing listens until `start()`. */
export async function buildGateway(config: Config, deps: GatewayDeps = {}) {
  const clock = deps.clock ?? systemClock;
  const log =
    deps.log ??
    pino({
      level: config.LOG_LEVEL,
      redact: { paths: ["password", "secret", "*.secret", "*.password"], censor: "[redacted]" },
    });
  const store = openSqliteStore(config.DATA_DIR);
  const bus = new EventBus(log);
  const metrics = createMetrics(() => store.alerts.countByState());
  const ingest = new Ingest(
    { store, bus, clock, metrics, log },
    { maxPayloadBytes: config.MAX_PAYLOAD_BYTES, maxClockSkewMs: config.MAX_CLOCK_SKEW_MS },
  );
  const broker = new Broker({ store, bus, ingest, metrics, log });
  const influx = config.INFLUX_URL
    ? influxTelemetry({
        url: config.INFLUX_URL,
        database: config.INFLUX_DB,
        token: config.INFLUX_TOKEN,
        username: config.INFLUX_USERNAME,
        password: config.INFLUX_PASSWORD,
        timeoutMs: 10_000,
      })
    : undefined;
  const telemetryStore = influx ?? store.telemetry;
  const telemetry = new TelemetryWriter(
    { store: telemetryStore, spool: store.spool, clock, metrics, log },
    {
      batchSize: config.TELEMETRY_BATCH_SIZE,
      flushMs: config.TELEMETRY_FLUSH_MS,
      maxBuffered: config.TELEMETRY_MAX_BUFFERED,
    },
  );
  const tracker = new Tracker(
    { store, bus, clock, telemetry, log },
    {
      heartbeatIntervalMs: {
        "call-button": config.HEARTBEAT_SEC_CALL_BUTTON * 1000,
        "locator-tag": config.HEARTBEAT_SEC_LOCATOR_TAG * 1000,
      },
      offlineAfterMissed: config.OFFLINE_AFTER_MISSED,
      battery: { lowPercent: config.LOW_BATTERY_PERCENT, recoveredPercent: config.BATTERY_RECOVERED_PERCENT },
      zones: {
        maxAccuracyM: config.GEOFENCE_MAX_ACCURACY_M,
        marginM: config.GEOFENCE_MARGIN_M,
        exitFixes: config.GEOFENCE_EXIT_FIXES,
        returnFixes: config.GEOFENCE_RETURN_FIXES,
      },
      maxFixAccuracyM: config.MAX_FIX_ACCURACY_M,
      stalePositionMs: config.STALE_POSITION_SEC * 1000,
      // Device state is derived from heartbeats (the telemetry keeps each one): saving it every
      // 10 s, not every second, cut the gateway's CPU at 1,000 heartbeating devices by a tenth.
      flushMs: 10_000,
    },
  );
  const alerts = new AlertService({
    store,
    bus,
    clock,
    policies: config.policies,
    log,
    alarmContext: (deviceId, message) => tracker.alarmContext(deviceId, message),
  });
  const stream = new AlertStream({ store, bus, metrics, log });
  const webhooks = new WebhookNotifier(
    { store, bus, clock, metrics, log },
    {
      secret: config.WEBHOOK_SECRET,
      timeoutMs: config.WEBHOOK_TIMEOUT_MS,
      retryDelaysMs: config.WEBHOOK_RETRY_DELAYS_MS,
    },
  );
  const commands = new DeviceCommandNotifier({ store, bus, broker, clock, metrics, log });
  let ready = false;
  let pruneTimer: ReturnType<Clock["setTimer"]> | undefined;
  /** Embedded telemetry is trimmed to its retention period once an hour (InfluxDB keeps its own policy). */
  const pruneTelemetry = () => {
    const removed = store.telemetry.prune(clock.now() - config.TELEMETRY_RETENTION_DAYS * 86_400_000);
    if (removed > 0) log.info({ removed }, "pruned telemetry past its retention");
    pruneTimer = clock.setTimer(pruneTelemetry, 3600_000);
  };
  const api = await buildApi({
    store,
    alerts,
    stream,
    metrics,
    clock,
    log,
    bus,
    tracker,
    telemetry: telemetryStore,
    ui: { tileUrl: config.TILE_URL ?? null, tileAttribution: config.TILE_ATTRIBUTION },
    policies: config.policies,
    isConnected: (id) => broker.isConnected(id),
    isReady: () => ready,
  });

  return {
    store,
    bus,
    api,
    broker,
    metrics,
    log,
    telemetry,
    tracker,
    stream,
    /** Ports actually bound (useful when configured as 0). */
    ports: { http: 0, mqtt: 0 },

    async start() {
      if (influx) {
        // The gateway starts without InfluxDB too: points wait in the buffer until it answers.
        await influx
          .ensureDatabase()
          .catch((err) => log.warn({ err: err.message }, "InfluxDB not reachable yet"));
      }
      await telemetry.start();
      await tracker.start();
      if (!influx) pruneTelemetry();
      stream.start();
      webhooks.start();
      commands.start();
      await alerts.start();
      await broker.start(config.MQTT_PORT, config.HOST);
      await api.listen({ port: config.PORT, host: config.HOST });
      broker.attachWebSocket(api.server);
      this.ports.http = (api.server.address() as AddressInfo).port;
      this.ports.mqtt = broker.port;
      ready = true;
      log.info({ http: this.ports.http, mqtt: this.ports.mqtt }, "gateway started");
    },

    /** Graceful stop: refuse new work, finish what is in flight, close the database last. */
    async stop() {
      ready = false;
      if (pruneTimer) clock.clearTimer(pruneTimer);
      stream.stop();
      await broker.stop();
      await api.close();
      await alerts.stop();
      await webhooks.stop();
      commands.stop();
      await tracker.stop();
      await telemetry.stop();
      await store.close();
      log.info("gateway stopped");
    },
  };
}
