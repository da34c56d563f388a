import type { Logger } from "pino";
import type { EventBus } from "../../bus/index.ts";
import type { Clock } from "../../clock/index.ts";
import {
  type DeviceChannel,
  type DeviceEvent,
  type Heartbeat,
  type Ingest,
  topicFor,
} from "../../ingest/index.ts";
import type { Metrics } from "../../metrics.ts";
import type { Store } from "../../store/types.ts";
import { type AlarmBitsOverrides, alarmBitsFor, judgeAlarm } from "./alarm.ts";
import type { PositionResolver } from "./geolocation.ts";
import { answerFor, type PositionReport, type WatchMessage } from "./message.ts";

/** A valid GPS fix from a watch that reports no accuracy counts as this good. */
const ASSUMED_GPS_ACCURACY_M = 30;
const EARLIEST_TS = Date.UTC(2020, 0, 1);
const UNKNOWN_CLOCK_OFFSET_MS = 60_000;

/** One watch's connection, as far as its reports need it: what carries over from frame to frame. */
/** What the watch listener and its reports work with. */
export interface WatchDeps {
  store: Store;
  bus: EventBus;
  ingest: Ingest;
  clock: Clock;
  metrics: Metrics;
  log: Logger;
  /** Turns cells and access points into a position; none by default (the position stays unknown). */
  resolver?: PositionResolver | undefined;
}

export interface WatchLink {
  deviceId: string;
  maker: string;
  battery: number | undefined;
  /** The last alarm's content and the time it was given, so a re-send with no usable clock is the same alarm. */
  lastAlarm?: { content: string; ts: number };
}

/**
 * What a watch's messages mean to the gateway: heartbeats and events of the device contract,
 * handed to the same `Ingest` as MQTT publishes (so they walk the same rules, alerts and
 * telemetry), and watch readings for what a heartbeat cannot hold.
 */
export class WatchReports {
  /** Per watch: what its last alarm said, for the alert it opens (an SOS may be "removed"). */
  private readonly lastAlarms = new Map<
    string,
    { ts: number; seq: number; alarms: string[]; frame: string }
  >();
  /** Per watch: its clock minus the gateway's, from its last live timed report. */
  private readonly clockOffsets = new Map<string, number>();

  constructor(
    private readonly deps: WatchDeps,
    private readonly settings: {
      alarmBits: AlarmBitsOverrides;
      /** How far ahead of the gateway's clock a watch's time may be before it is not believed. */
      maxClockSkewMs: number;
    },
  ) {}

  /** Hands one message on; resolves once what must be stored is, with the answer the watch waits for. */
  async handle(link: WatchLink, message: WatchMessage, content: string): Promise<string | undefined> {
    const { store, clock } = this.deps;
    const receivedAt = clock.now();
    const { deviceId } = link;
    if (message.kind === "health") {
      const reading = { deviceId, ts: receivedAt, receivedAt, type: message.type, late: false };
      await store.watchReadings.add({ ...reading, data: message.values });
    } else if (message.kind === "link") {
      link.battery = message.battery ?? link.battery;
      // `LK` carries no time: the watch's time is estimated from its last timed report, so that a
      // link frame never outranks the position the watch timed itself (heartbeats are ordered by
      // device time). Before any report, it is taken as a minute old.
      const ts = receivedAt + (this.clockOffsets.get(deviceId) ?? -UNKNOWN_CLOCK_OFFSET_MS);
      await this.heartbeat(deviceId, { ts, seq: 0, battery: link.battery });
    } else if (message.kind === "position" || message.kind === "alarm") {
      await this.report(link, message, content, receivedAt);
    }
    return answerFor(message.type);
  }

  /** What the watch's status word said about this alarm (`sos`, `removed`, `fall`...), for its alert. */
  alarmContext(deviceId: string, message: DeviceEvent): Record<string, unknown> {
    const last = this.lastAlarms.get(deviceId);
    if (!last || last.ts !== message.ts || last.seq !== message.seq) return {};
    return { watchAlarms: last.alarms, watchFrame: last.frame };
  }

  /** A position or alarm: a heartbeat (liveness, battery, a fix if trusted), then the alarm's event. */
  private async report(
    link: WatchLink,
    message: Extract<WatchMessage, { kind: "position" | "alarm" }>,
    content: string,
    receivedAt: number,
  ): Promise<void> {
    const { store, bus, log } = this.deps;
    const { deviceId } = link;
    const { type, report } = message;
    const isAlarm = message.kind === "alarm";
    const late = message.kind === "position" && message.late;
    link.battery = report.battery ?? link.battery;
    let ts = this.believable(report.ts, receivedAt) ? (report.ts as number) : receivedAt;
    if (!late && ts !== receivedAt) this.clockOffsets.set(deviceId, ts - receivedAt);
    if (isAlarm) {
      // A re-send of an alarm with no usable clock keeps the time given to the first, so it stays one alarm.
      if (ts === receivedAt && link.lastAlarm?.content === content) ts = link.lastAlarm.ts;
      link.lastAlarm = { content, ts };
    }
    const fix = report.fixValid && !(report.lat === 0 && report.lon === 0);
    const seen = report.cells.length > 0 || report.accessPoints.length > 0;
    // An alarm never waits for a lookup of its cells: it is stored first, the position follows.
    const lookUpAfter = isAlarm && !fix && seen;
    const position = fix
      ? {
          lat: report.lat,
          lon: report.lon,
          accuracy: report.accuracy ?? ASSUMED_GPS_ACCURACY_M,
          source: "gps" as const,
        }
      : seen && !lookUpAfter
        ? await this.locate(deviceId, report)
        : undefined;
    if (!lookUpAfter) await this.heartbeat(deviceId, { ts, seq: 0, battery: link.battery, ...position });
    const alarm = isAlarm
      ? judgeAlarm(report.status, alarmBitsFor(this.settings.alarmBits, link.maker, deviceId))
      : undefined;
    if (alarm) {
      log.info({ deviceId, alarms: alarm.alarms, status: report.status }, "watch alarm");
      if (alarm.lowBattery)
        bus.emit("alert.raise", {
          kind: "low-battery",
          deviceId,
          data: { battery: link.battery ?? null, source: "watch alarm" },
        });
    }
    if (alarm?.event) {
      // De-duplicated as MQTT events are, by (device, seq, ts): the same alarm bits at the same time.
      const event: DeviceEvent = { type: alarm.event, ts, seq: report.status >>> 16 };
      this.lastAlarms.set(deviceId, { ts, seq: event.seq, alarms: alarm.alarms, frame: type });
      await this.submit(deviceId, "event", event);
    }
    if (lookUpAfter) {
      // Not awaited: the watch hears its answer now, and the position arrives as the lookup does.
      const battery = link.battery;
      void this.locate(deviceId, report)
        .then((found) => this.heartbeat(deviceId, { ts, seq: 0, battery, ...found }))
        .catch((err) => log.warn({ err, deviceId }, "could not store a watch alarm's looked-up position"));
    }
    // After the event: the record of what the watch saw must not delay the alert.
    if (late || alarm || (!fix && seen)) {
      await store.watchReadings.add({
        deviceId,
        ts,
        receivedAt,
        type,
        late,
        data: {
          fix: fix ? { lat: report.lat, lon: report.lon, accuracy: report.accuracy ?? null } : null,
          ...(position && !fix ? { resolved: position } : {}),
          status: report.status.toString(16).padStart(8, "0"),
          ...(alarm ? { alarms: alarm.alarms } : {}),
          cells: report.cells,
          accessPoints: report.accessPoints,
        },
      });
    }
  }

  /** Cells and access points into a position, when a resolver is configured; never fails the report. */
  private async locate(deviceId: string, report: PositionReport) {
    const { resolver, metrics, log } = this.deps;
    if (!resolver) return undefined;
    try {
      return await resolver.resolve(report.cells, report.accessPoints);
    } catch (err) {
      metrics.watchPositionsUnresolved.inc();
      // The URL may carry an API key: never logged.
      log.warn(
        { deviceId, err: (err as Error).message },
        "could not resolve a watch's cells and access points",
      );
      return undefined;
    }
  }

  /** A heartbeat needs a battery level: a watch that never gave one is heard only through its connection. */
  private async heartbeat(deviceId: string, h: Omit<Heartbeat, "battery"> & { battery: number | undefined }) {
    if (h.battery === undefined) return;
    await this.submit(deviceId, "heartbeat", h as Heartbeat);
  }

  /** Into the device contract's one path: validated, stored (events), then on the bus. */
  private async submit(deviceId: string, channel: DeviceChannel, message: Heartbeat | DeviceEvent) {
    const payload = Buffer.from(JSON.stringify(message));
    const refused = await this.deps.ingest.receive(deviceId, topicFor(deviceId, channel), payload);
    if (refused)
      this.deps.log.warn({ deviceId, channel, refused }, "watch report refused by the device contract");
  }

  private believable(ts: number | undefined, now: number): boolean {
    return ts !== undefined && ts >= EARLIEST_TS && ts <= now + this.settings.maxClockSkewMs;
  }
}
