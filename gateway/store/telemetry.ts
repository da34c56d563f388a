import type { Logger } from "pino";
import type { Clock, Timer } from "../clock/index.ts";
import type { Metrics } from "../metrics.ts";
import type { FixVerdict } from "../rules/fix.ts";

/** One heartbeat as kept in the telemetry store. */
export interface TelemetryPoint {
  deviceId: string;
  /** Device time (ms). */
  ts: number;
  /** Gateway time (ms). */
  receivedAt: number;
  battery: number;
  lat?: number;
  lon?: number;
  accuracy?: number;
  source?: string;
  /** `ok` fixes are used; others are kept for the record only. */
  fix: FixVerdict;
}

/** Where telemetry lives: InfluxDB when configured, the embedded SQLite store otherwise. */
export interface TelemetryStore {
  readonly name: string;
  /** Writes one batch; throws when the store is unreachable (the writer keeps the points). */
  write(points: TelemetryPoint[]): Promise<void>;
  /** A device's points between two device times, oldest first. */
  track(deviceId: string, from: number, to: number, limit: number): Promise<TelemetryPoint[]>;
}

/** Durable overflow for points the telemetry store could not take yet (embedded SQLite). */
export interface TelemetrySpool {
  push(points: TelemetryPoint[]): Promise<void>;
  /** The oldest points, with the id to remove them by once written. */
  peek(limit: number): Promise<{ upTo: number; points: TelemetryPoint[] }>;
  remove(upTo: number): Promise<void>;
  count(): Promise<number>;
}

export interface TelemetryWriterOptions {
  batchSize: number;
  flushMs: number;
  /** Points held in memory while the store is down; beyond this they go to the spool. */
  maxBuffered: number;
}

/**
 * Batches points (by size and by time) and never drops one: while the store fails, points stay
 * in memory up to `maxBuffered`, then spill to the spool, and are written, spool first, once the
 * store answers again. Exposes its buffer size (read when scraped) and lag as metrics.
 */
export class TelemetryWriter {
  private buffer: TelemetryPoint[] = [];
  private timer: Timer | undefined;
  private flushing: Promise<void> | undefined;
  private failures = 0;
  private retryAt = 0;
  private spooled = 0;

  constructor(
    private readonly deps: {
      store: TelemetryStore;
      spool: TelemetrySpool;
      clock: Clock;
      metrics: Metrics;
      log: Logger;
    },
    private readonly options: TelemetryWriterOptions,
  ) {}

  async start(): Promise<void> {
    this.spooled = await this.deps.spool.count();
    this.deps.metrics.readTelemetryPending(() => this.pending);
    const tick = () => {
      void this.flush();
      this.timer = this.deps.clock.setTimer(tick, this.options.flushMs);
    };
    this.timer = this.deps.clock.setTimer(tick, this.options.flushMs);
  }

  /** Writes what is buffered (to the store, or to the spool if it is down). */
  async stop(): Promise<void> {
    if (this.timer) this.deps.clock.clearTimer(this.timer);
    this.timer = undefined;
    await this.flush();
    if (this.buffer.length > 0) await this.spill(this.buffer.splice(0));
  }

  add(point: TelemetryPoint): void {
    this.buffer.push(point);
    if (this.buffer.length >= this.options.batchSize && !this.flushing) void this.flush();
  }

  /** Points accepted but not yet in the telemetry store. */
  get pending(): number {
    return this.buffer.length + this.spooled;
  }

  flush(): Promise<void> {
    this.flushing ??= this.drain().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async drain(): Promise<void> {
    const { store, spool, clock, metrics, log } = this.deps;
    const oldest = this.buffer[0]?.receivedAt;
    metrics.telemetryLag.set(oldest === undefined ? 0 : (clock.now() - oldest) / 1000);
    if (clock.now() < this.retryAt) {
      if (this.buffer.length > this.options.maxBuffered)
        await this.spill(this.buffer.splice(0, this.buffer.length - this.options.maxBuffered));
      return;
    }
    try {
      // The spool holds the oldest points: write it first, so order is kept as far as possible.
      while (this.spooled > 0) {
        const { upTo, points } = await spool.peek(this.options.batchSize);
        if (points.length === 0) break;
        await store.write(points);
        await spool.remove(upTo);
        this.spooled = await spool.count();
        metrics.telemetryWritten.inc(points.length);
      }
      while (this.buffer.length > 0) {
        const batch = this.buffer.slice(0, this.options.batchSize);
        await store.write(batch);
        this.buffer.splice(0, batch.length);
        metrics.telemetryWritten.inc(batch.length);
      }
      if (this.failures > 0)
        log.info({ store: store.name, failures: this.failures }, "telemetry store is back");
      this.failures = 0;
    } catch (err) {
      this.failures++;
      // Back off up to 30 s between tries while the store is down.
      this.retryAt = clock.now() + Math.min(30_000, 500 * 2 ** Math.min(this.failures, 6));
      metrics.telemetryWriteFailures.inc();
      if (this.failures === 1 || this.failures % 20 === 0) {
        log.warn(
          { store: store.name, err: (err as Error).message, pending: this.pending },
          "telemetry write failed; buffering",
        );
      }
      if (this.buffer.length > this.options.maxBuffered)
        await this.spill(this.buffer.splice(0, this.buffer.length - this.options.maxBuffered));
    }
  }

  private async spill(points: TelemetryPoint[]): Promise<void> {
    await this.deps.spool.push(points);
    this.spooled += points.length;
  }
}
