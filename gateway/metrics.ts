import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { AlertState } from "./alerts/model.ts";

export type Metrics = ReturnType<typeof createMetrics>;

/** The gateway's Prometheus metrics, in a registry of its own (several gateways can share a process in tests). */
export function createMetrics(
  alertCounts: () => Promise<Record<AlertState, number>>,
  flushCounts: () => { flushes: number; writes: number },
) {
  const registry = new Registry();
  // What every heartbeat changes is kept in plain numbers and handed to prom-client when scraped:
  // its `inc` and `set` hash the labels at every call, a cost paid per message for a figure read
  // every few seconds.
  let heartbeatsAccepted = 0;
  let telemetryPending = () => 0;
  // Process memory, CPU and event-loop lag, for operators and for the benchmarks' memory per device.
  collectDefaultMetrics({ register: registry });
  const metrics = {
    registry,
    devicesConnected: new Gauge({
      name: "gateway_devices_connected",
      help: "Devices with an open MQTT connection",
      registers: [registry],
    }),
    watchesConnected: new Gauge({
      name: "gateway_watches_connected",
      help: "Watches (3G / SeTracker protocol) with an open TCP connection",
      registers: [registry],
    }),
    watchPositionsUnresolved: new Counter({
      name: "gateway_watch_positions_unresolved_total",
      help: "Cell-tower or Wi-Fi positions of watches the geolocation resolver could not turn into a fix",
      registers: [registry],
    }),
    messagesIn: new Counter({
      name: "gateway_messages_in_total",
      help: "Device messages accepted, by channel",
      labelNames: ["channel"] as const,
      registers: [registry],
      collect() {
        if (heartbeatsAccepted === 0) return;
        this.inc({ channel: "heartbeat" }, heartbeatsAccepted);
        heartbeatsAccepted = 0;
      },
    }),
    /** Counts an accepted heartbeat in `messagesIn`. */
    heartbeatAccepted() {
      heartbeatsAccepted++;
    },
    messagesRefused: new Counter({
      name: "gateway_messages_refused_total",
      help: "Device messages, connections and subscriptions refused, by reason",
      labelNames: ["reason"] as const,
      registers: [registry],
    }),
    devicesDisconnected: new Counter({
      name: "gateway_devices_disconnected_total",
      help: "Device connections the gateway closed, by reason (flood, packet-size, or the caller's, e.g. revoked)",
      labelNames: ["reason"] as const,
      registers: [registry],
    }),
    duplicates: new Counter({
      name: "gateway_duplicate_events_total",
      help: "Device events dropped as re-deliveries of a stored (device, seq, ts)",
      registers: [registry],
    }),
    notifications: new Counter({
      name: "gateway_notification_attempts_total",
      help: "Notification attempts, by channel and result",
      labelNames: ["channel", "result"] as const,
      registers: [registry],
    }),
    webhooksWaiting: new Gauge({
      name: "gateway_webhook_deliveries_waiting",
      help: "Notifications (every channel; the name is older than the channels) waiting for a free connection to their endpoint or for their next retry",
      registers: [registry],
    }),
    streamClientsDropped: new Counter({
      name: "gateway_stream_clients_dropped_total",
      help: "Live-stream clients disconnected for falling too far behind (they resume with Last-Event-ID)",
      registers: [registry],
    }),
    storeWriteFailures: new Counter({
      name: "gateway_store_write_failures_total",
      help: "Database operations that failed for want of the storage (locked, full, I/O, read-only), by SQLite code",
      labelNames: ["code"] as const,
      registers: [registry],
    }),
    pressToNotify: new Histogram({
      name: "gateway_press_to_notify_seconds",
      help: "From a press arriving at the broker to its first notification, by channel",
      labelNames: ["channel"] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    telemetryWritten: new Counter({
      name: "gateway_telemetry_points_written_total",
      help: "Telemetry points written to the telemetry store",
      registers: [registry],
    }),
    telemetryWriteFailures: new Counter({
      name: "gateway_telemetry_write_failures_total",
      help: "Failed telemetry batch writes (the points are kept and retried)",
      registers: [registry],
    }),
    telemetryBuffered: new Gauge({
      name: "gateway_telemetry_buffered_points",
      help: "Telemetry points accepted but not yet in the telemetry store (memory and spool)",
      registers: [registry],
      collect() {
        this.set(telemetryPending());
      },
    }),
    /** Where `telemetryBuffered` reads its figure (the telemetry writer). */
    readTelemetryPending(read: () => number) {
      telemetryPending = read;
    },
    telemetryLag: new Gauge({
      name: "gateway_telemetry_lag_seconds",
      help: "Age of the oldest telemetry point in memory not yet written",
      registers: [registry],
    }),
    escalationTroubles: new Counter({
      name: "gateway_escalation_troubles_total",
      help: "Alerts that reached nobody (unreached) or ran out of repeats (exhausted): the catch-all was paged",
      labelNames: ["trouble"] as const,
      registers: [registry],
    }),
    deadlineRetries: new Counter({
      name: "gateway_deadline_retries_total",
      help: "Due deadlines whose handling failed (a locked database, say) and is retried with backoff",
      registers: [registry],
    }),
    alerts: new Gauge({
      name: "gateway_alerts",
      help: "Alerts by state",
      labelNames: ["state"] as const,
      registers: [registry],
      async collect() {
        for (const [state, n] of Object.entries(await alertCounts())) this.set({ state }, n);
      },
    }),
    // Counters read from the store: written as gauges, since prom-client counters only go up by inc().
    storeFlushes: new Gauge({
      name: "gateway_store_flushes_total",
      help: "Flushes of the database's log to disk; with group commit, fewer than the writes they covered",
      registers: [registry],
      collect() {
        this.set(flushCounts().flushes);
      },
    }),
    storeFlushSeconds: new Histogram({
      name: "gateway_store_flush_seconds",
      help: "How long each flush of the database's log to disk (fdatasync) took, until the event loop saw it done; failed ones are not timed. Every press waits for one",
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [registry],
    }),
    storeFlushedWrites: new Gauge({
      name: "gateway_store_flushed_writes_total",
      help: "Writes reported done only once a flush covered them",
      registers: [registry],
      collect() {
        this.set(flushCounts().writes);
      },
    }),
  };
  return metrics;
}

/** Records press-to-notify latency for one channel, when the notification traces back to a press. */
export function observePressLatency(
  metrics: Metrics,
  channel: string,
  pressReceivedHr: number | undefined,
): void {
  if (pressReceivedHr === undefined) return;
  metrics.pressToNotify.observe({ channel }, (performance.now() - pressReceivedHr) / 1000);
}
