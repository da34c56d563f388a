import type { AddressInfo } from "node:net";
import { resolve } from "node:path";
import pino, { type DestinationStream } from "pino";
import { AlertService } from "./alerts/service.ts";
import { openBasemap } from "./api/basemap.ts";
import { buildApi } from "./api/index.ts";
import { Auth } from "./auth/index.ts";
import { Broker } from "./broker/index.ts";
import { BrokerRedis } from "./broker/redis.ts";
import { DeviceSecrets, loadDeviceSecretKey } from "./broker/secrets.ts";
import { EventBus } from "./bus/index.ts";
import { type Clock, systemClock } from "./clock/index.ts";
import type { Config } from "./config/index.ts";
import { Ingest } from "./ingest/index.ts";
import { createMetrics } from "./metrics.ts";
import { channelsFrom, loadVapidKeys } from "./notify/channels/index.ts";
import { type DeviceLink, DeviceOutbox } from "./notify/device-outbox.ts";
import { Notifier } from "./notify/notifier.ts";
import { OutboundGuard } from "./notify/outbound.ts";
import { AlertStream } from "./notify/stream.ts";
import { GeolocationResolver, WatchListener } from "./protocols/watch/index.ts";
import { openStore } from "./store/open.ts";
import { TelemetryWriter } from "./store/telemetry.ts";
import { influxTelemetry } from "./store/telemetry-influx.ts";
import { Tracker } from "./tracking/index.ts";

export interface GatewayDeps {
  clock?: Clock;
  /** Where log lines go (stdout by default); the level is `LOG_LEVEL`. */
  logTo?: DestinationStream;
  /** Flushes the database's log to disk (fdatasync by default); tests make the disk fail with it. */
  flushToDisk?: (fd: number) => Promise<void>;
}

/**
 * Log lines never carry secrets or what identifies a resident: credentials, session cookies,
 * phone numbers, home addresses, contact addresses (webhook URLs may hold tokens).
 */
const logRedaction = [
  "password",
  "*.password",
  "secret",
  "*.secret",
  "token",
  "*.token",
  "phone",
  "*.phone",
  "address",
  "*.address",
  "contacts",
  "*.contacts",
  "req.headers.cookie",
  "req.headers.authorization",
  'req.headers["x-csrf-token"]',
  'res.headers["set-cookie"]',
];

export type Gateway = Awaited<ReturnType<typeof buildGateway>>;

/** The composition root: wires every part; nothing listens until `start()`. */
export async function buildGateway(config: Config, deps: GatewayDeps = {}) {
  const clock = deps.clock ?? systemClock;
  const log = pino(
    { level: config.LOG_LEVEL, redact: { paths: logRedaction, censor: "[redacted]" } },
    deps.logTo ?? pino.destination(1),
  );
  // A base map that cannot be read stops the start, before anything else is opened.
  const basemap = config.BASEMAP_MBTILES
    ? openBasemap(resolve(config.DATA_DIR, config.BASEMAP_MBTILES))
    : undefined;
  // Before the store, which reports its flushes and failures to it from its first write.
  const metrics = createMetrics(
    () => store.alerts.countByState(),
    () => store.flushCounts(),
  );
  const store = await openStore({
    databaseUrl: config.DATABASE_URL,
    dataDir: config.DATA_DIR,
    log,
    sqlite: {
      busyTimeoutMs: config.DB_BUSY_TIMEOUT_MS,
      maxSizeMb: config.DB_MAX_SIZE_MB,
      onStorageFailure: (code) => metrics.storeWriteFailures.inc({ code }),
      onFlush: (seconds) => metrics.storeFlushSeconds.observe(seconds),
      sync: deps.flushToDisk,
    },
  });
  const deviceSecrets = new DeviceSecrets(
    await loadDeviceSecretKey({
      configured: config.DEVICE_SECRET_KEY,
      dataDir: config.DATA_DIR,
      registry: store.registry,
      log,
    }),
  );
  const vapidKeys = loadVapidKeys({ configured: config.channels.push.keys, dataDir: config.DATA_DIR, log });
  const bus = new EventBus(log);
  const outbound = new OutboundGuard({ allow: config.OUTBOUND_ALLOW, allowHttp: config.OUTBOUND_ALLOW_HTTP });
  const ingest = new Ingest(
    { store, bus, clock, metrics, log },
    { maxPayloadBytes: config.MAX_PAYLOAD_BYTES, maxClockSkewMs: config.MAX_CLOCK_SKEW_MS },
  );
  const redis = config.REDIS_URL
    ? new BrokerRedis(config.REDIS_URL, { queuedTtlSec: config.DEVICE_COMMAND_TTL_HOURS * 3600 }, log)
    : undefined;
  const broker = new Broker(
    { store, deviceSecrets, bus, ingest, metrics, log, redis },
    {
      maxPacketBytes: config.MQTT_MAX_PACKET_BYTES,
      publishRate: { perSecond: config.DEVICE_PUBLISH_RATE, burst: config.DEVICE_PUBLISH_BURST },
      connectRatePerIp: {
        perSecond: config.MQTT_CONNECT_RATE_PER_IP,
        burst: config.MQTT_CONNECT_BURST_PER_IP,
      },
      tls: config.mqttTls,
    },
  );
  const influx = config.INFLUX_URL
    ? influxTelemetry({
        url: config.INFLUX_URL,
        database: config.INFLUX_DB,
        token: config.INFLUX_TOKEN,
        username: config.INFLUX_USERNAME,
        password: config.INFLUX_PASSWORD,
        timeoutMs: 10_000,
        retentionDays: config.TELEMETRY_RETENTION_DAYS,
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
  const channels = channelsFrom(config, {
    outbound,
    clock,
    log,
    subscriptions: store.pushSubscriptions,
    vapidKeys,
  });
  const alerts = new AlertService(
    {
      store,
      bus,
      clock,
      policies: config.policies,
      phrases: config.phrases,
      metrics,
      log,
      isWatching: (personId) => stream.isWatching(personId),
      canSendOn: (kind) => channels.some((c) => c.kind === kind),
      alarmContext: (deviceId, message) => ({
        ...tracker.alarmContext(deviceId, message),
        ...watches.reports.alarmContext(deviceId, message),
      }),
    },
    {
      quietPeriodMs: config.ALERT_QUIET_PERIOD_MIN * 60_000,
      // PostgreSQL: deadlines are claimed by whichever gateway sweeps first (see ClaimedDeadlines).
      sweepMs: config.DATABASE_URL ? config.DEADLINE_SWEEP_MS : config.DEADLINE_SWEEP_SEC * 1000,
    },
  );
  const auth = new Auth(
    { store, clock, log },
    {
      sessionTtlMs: config.SESSION_TTL_HOURS * 3600_000,
      sessionIdleMs: config.SESSION_IDLE_HOURS * 3600_000,
      maxFailuresPerUser: config.LOGIN_MAX_FAILURES,
      maxFailuresPerAddress: config.LOGIN_MAX_FAILURES_PER_ADDRESS,
      failureWindowMs: config.LOGIN_FAILURE_WINDOW_MIN * 60_000,
    },
  );
  const stream = new AlertStream(
    { store, bus, clock, metrics, log },
    { maxBufferedBytes: config.STREAM_CLIENT_BUFFER_BYTES },
  );
  const notifier = new Notifier(
    { store, bus, clock, metrics, log, deviceState: (id) => tracker.state(id) },
    channels,
    { publicUrl: config.PUBLIC_URL ?? null },
  );
  const watches = new WatchListener(
    {
      store,
      bus,
      ingest,
      clock,
      metrics,
      log,
      resolver: config.WATCH_GEOLOCATION_URL
        ? new GeolocationResolver(outbound, {
            url: config.WATCH_GEOLOCATION_URL,
            timeoutMs: config.WATCH_GEOLOCATION_TIMEOUT_MS,
          })
        : undefined,
    },
    {
      maxFrameBytes: config.WATCH_MAX_FRAME_BYTES,
      idleTimeoutMs: config.WATCH_IDLE_TIMEOUT_SEC * 1000,
      connectRatePerIp: {
        perSecond: config.WATCH_CONNECT_RATE_PER_IP,
        burst: config.WATCH_CONNECT_BURST_PER_IP,
      },
      publishRate: { perSecond: config.DEVICE_PUBLISH_RATE, burst: config.DEVICE_PUBLISH_BURST },
      allowFrom: config.WATCH_ALLOW_FROM,
      alarmBits: config.WATCH_ALARM_BITS,
      maxClockSkewMs: config.MAX_CLOCK_SKEW_MS,
    },
  );
  const isHere = (id: string) => broker.isConnected(id) || watches.isConnected(id);
  // With several instances, a device connected to another counts too.
  const isConnected = async (id: string) =>
    isHere(id) || ((await redis?.presence.elsewhere())?.has(id) ?? false);
  if (redis) {
    bus.on("device.connected", ({ deviceId }) => redis.presence.connected(deviceId));
    bus.on("device.disconnected", ({ deviceId }) => {
      if (!isHere(deviceId)) redis.presence.disconnected(deviceId);
    });
  }
  const link: DeviceLink = {
    isListening: (id) => broker.isListening(id) || watches.isConnected(id),
    publishCommand: (id, payload) =>
      watches.isConnected(id) ? watches.publishCommand(id, payload) : broker.publishCommand(id, payload),
    // Another instance may hold the device's connection: MQTT, or a watch (see below).
    ...(redis && { relay: (id: string, payload: string) => broker.publishCommand(id, payload) }),
  };
  // A command relayed from another instance for a watch connected here.
  if (redis)
    broker.onCommand((id, payload) => {
      if (watches.isConnected(id)) void watches.publishCommand(id, payload);
    });
  // A device revoked or given a new secret on any instance is cut off wherever it is connected:
  // here at once (Redis may be down), and by every instance when the request reaches it.
  const disconnectHere = (id: string, reason: string) =>
    broker.disconnect(id, reason) || watches.disconnect(id, reason);
  broker.onDisconnectRequest(disconnectHere);
  const commands = new DeviceOutbox(
    { store, bus, link, clock, metrics, log },
    { ttlMs: config.DEVICE_COMMAND_TTL_HOURS * 3600_000 },
  );
  let ready = false;
  let pruneTimer: ReturnType<Clock["setTimer"]> | undefined;
  let stopped = false;
  /**
   * Once an hour: positions past their retention (embedded telemetry; InfluxDB keeps its own
   * policy), closed alerts and the access log past theirs, and expired sessions.
   */
  const prune = async () => {
    const now = clock.now();
    const removed = {
      telemetry: influx ? 0 : await store.telemetry.prune(now - config.TELEMETRY_RETENTION_DAYS * 86_400_000),
      watchReadings: await store.watchReadings.prune(now - config.TELEMETRY_RETENTION_DAYS * 86_400_000),
      alerts: 0,
      audit: 0,
      sessions: await store.sessions.prune(now),
      signInThrottles: await store.throttles.prune(now - config.LOGIN_FAILURE_WINDOW_MIN * 60_000),
    };
    if (config.ALERT_RETENTION_DAYS > 0) {
      const before = now - config.ALERT_RETENTION_DAYS * 86_400_000;
      removed.alerts = await store.alerts.prune(before);
      removed.audit = await store.audit.prune(before);
    }
    if (Object.values(removed).some((n) => n > 0)) log.info(removed, "pruned data past its retention");
  };
  const schedulePrune = () => {
    if (stopped) return; // stopped while a prune was running
    pruneTimer = clock.setTimer(() => {
      prune()
        .catch((err) => log.error({ err }, "pruning failed"))
        .finally(schedulePrune);
    }, 3600_000);
  };
  const api = await buildApi({
    store,
    auth,
    deviceSecrets,
    cookieSecure: config.COOKIE_SECURE,
    trustProxy: config.TRUST_PROXY,
    disconnectDevice: (deviceId, reason) => {
      disconnectHere(deviceId, reason);
      broker.disconnectEverywhere(deviceId, reason);
    },
    alerts,
    stream,
    metrics,
    clock,
    log,
    bus,
    tracker,
    telemetry: telemetryStore,
    ui: basemap?.ui ?? {
      tileUrl: config.TILE_URL ?? null,
      tileAttribution: config.TILE_ATTRIBUTION,
      tileMaxZoom: 19,
    },
    basemap,
    reportTimeZone: config.REPORT_TIME_ZONE,
    phrases: config.phrases,
    outbound,
    configuredChannels: channels.map((c) => c.kind),
    vapidPublicKey: vapidKeys.publicKey,
    isConnected,
    unready: () => {
      if (!ready) return "starting or stopping";
      if (redis && !redis.isUp()) return "Redis unreachable";
      return undefined;
    },
    metricsToken: config.METRICS_TOKEN,
  });

  return {
    store,
    deviceSecrets,
    bus,
    api,
    broker,
    watches,
    metrics,
    log,
    telemetry,
    tracker,
    stream,
    auth,
    /** Ports actually bound (useful when configured as 0). */
    ports: { http: 0, mqtt: 0, mqtts: 0, watch: 0 },

    async start() {
      if (influx) {
        // The gateway starts without InfluxDB too: points wait in the buffer until it answers.
        await influx
          .ensureDatabase()
          .catch((err) => log.warn({ err: err.message }, "InfluxDB not reachable yet"));
      }
      await telemetry.start();
      await tracker.start();
      await auth.createFirstAdmin(config.ADMIN_USERNAME, config.ADMIN_PASSWORD);
      await prune();
      schedulePrune();
      stream.start();
      notifier.start();
      // Before anything sends a device a command: the commands of the last run's leftovers are queued.
      await broker.prepare();
      await commands.start();
      await alerts.start();
      await broker.start({ host: config.HOST, port: config.MQTT_PORT, tlsPort: config.MQTTS_PORT });
      if (config.WATCH_PORT > 0) await watches.start({ host: config.HOST, port: config.WATCH_PORT });
      redis?.presence.start(() => [...broker.connectedDevices(), ...watches.connectedDevices()]);
      await api.listen({ port: config.PORT, host: config.HOST });
      broker.attachWebSocket(api.server);
      this.ports.http = (api.server.address() as AddressInfo).port;
      this.ports.mqtt = broker.port;
      this.ports.mqtts = broker.tlsPort;
      this.ports.watch = watches.port;
      ready = true;
      log.info(this.ports, "gateway started");
    },

    /**
     * Graceful stop: take no new work, finish what is in flight, close the database last. Nothing
     * acknowledged is left unhandled; what is cut short (deadlines not yet due, webhooks still
     * waiting) is durable and taken up again at the next start.
     */
    async stop() {
      ready = false;
      stopped = true;
      if (pruneTimer) clock.clearTimer(pruneTimer);
      // Device messages from now on go unanswered (devices send them again to the next run);
      // those being stored finish and get their PUBACK.
      await ingest.stop();
      // Alert transitions already queued finish while devices are still connected for their commands.
      await alerts.stop();
      stream.stop();
      // Closing the broker first also ends its WebSocket connections, which would hold the HTTP server open.
      await broker.stop();
      await watches.stop();
      // HTTP requests under way finish (an accept still goes through the alert queue).
      await api.close();
      // Notifications under way finish, each within its channel's timeout.
      await notifier.stop();
      commands.stop();
      await tracker.stop();
      await telemetry.stop();
      await store.close();
      log.info("gateway stopped");
    },
  };
}
