import type { Logger } from "pino";
import type { EventBus, EventMap } from "../bus/index.ts";
import type { Clock, Timer } from "../clock/index.ts";
import type { DeviceEvent } from "../ingest/contract.ts";
import { judgePosition } from "../rules/fix.ts";
import {
  type Fix,
  type Geofence,
  judgeFix,
  newZoneTrack,
  type ZoneRules,
  type ZoneTrack,
} from "../rules/geofence.ts";
import { type BatteryRules, judgeBattery, SilenceWatch } from "../rules/supervision.ts";
import type { TelemetryWriter } from "../store/telemetry.ts";
import type { DeviceKind, DeviceState, Store } from "../store/types.ts";

export interface TrackingOptions {
  heartbeatIntervalMs: Record<DeviceKind, number>;
  /** Heartbeats a device may miss before it is reported offline. */
  offlineAfterMissed: number;
  battery: BatteryRules;
  zones: ZoneRules;
  /** Fixes less accurate than this are stored as rejected and never used. */
  maxFixAccuracyM: number;
  /** A position older than this, when an alarm comes, is reported as stale. */
  stalePositionMs: number;
  flushMs: number;
}

const RECENT_FIXES = 5;

/**
 * What is known of each device now: last heard, battery, last trusted position. Feeds the
 * telemetry store, decides safe-zone exits and returns, notices silent devices and low
 * batteries, and raises or clears those alerts through the bus. State is kept in memory and
 * saved in batches.
 */
export class Tracker {
  private readonly states = new Map<string, DeviceState>();
  private readonly kinds = new Map<string, DeviceKind>();
  private readonly recentFixes = new Map<string, Fix[]>();
  private readonly fencesByDevice = new Map<string, Geofence[]>();
  private readonly zoneTracks = new Map<string, ZoneTrack>();
  private readonly dirtyStates = new Set<string>();
  private readonly dirtyTracks = new Set<string>();
  private readonly watch: SilenceWatch;
  private readonly unsubscribe: (() => void)[] = [];
  private flushTimer: Timer | undefined;
  /** The save under way: the next waits for it, and so does stop(). */
  private saving: Promise<void> = Promise.resolve();

  constructor(
    private readonly deps: {
      store: Store;
      bus: EventBus;
      clock: Clock;
      telemetry: TelemetryWriter;
      log: Logger;
    },
    private readonly options: TrackingOptions,
  ) {
    this.watch = new SilenceWatch(deps.clock, (id) => this.wentSilent(id));
  }

  async start(): Promise<void> {
    const { store, bus, clock } = this.deps;
    for (const d of await store.registry.listDevices()) this.kinds.set(d.id, d.kind);
    for (const s of await store.tracking.loadStates()) this.states.set(s.deviceId, s);
    for (const t of await store.tracking.loadZoneTracks())
      this.zoneTracks.set(`${t.deviceId}|${t.geofenceId}`, t.track);
    await this.reloadGeofences();
    this.watch.start();
    // Every registered device is supervised from now on, silent ones included.
    const now = clock.now();
    for (const [id, kind] of this.kinds) {
      const state = this.states.get(id);
      this.watch.heard(
        id,
        this.allowance(kind),
        state?.online ? Math.max(state.lastSeenAt, now - this.allowance(kind)) : now,
      );
    }
    this.unsubscribe.push(
      bus.on("device.heartbeat", (h) => this.onHeartbeat(h)),
      bus.on("device.event", (e) => this.heard(e.deviceId, e.receivedAt)),
      // An authenticated connection is a sign of life too (call buttons heartbeat only every few minutes).
      bus.on("device.connected", ({ deviceId }) => this.heard(deviceId, clock.now())),
      bus.on("device.registered", ({ deviceId, kind }) => {
        this.kinds.set(deviceId, kind);
        this.watch.heard(deviceId, this.allowance(kind));
      }),
      bus.on("geofences.changed", () => {
        void this.reloadGeofences();
      }),
    );
    const tick = () => {
      void this.flush().catch((err) => this.deps.log.error({ err }, "could not save device state"));
      this.flushTimer = clock.setTimer(tick, this.options.flushMs);
    };
    this.flushTimer = clock.setTimer(tick, this.options.flushMs);
  }

  async stop(): Promise<void> {
    for (const off of this.unsubscribe.splice(0)) off();
    this.watch.stop();
    if (this.flushTimer) this.deps.clock.clearTimer(this.flushTimer);
    await this.flush();
  }

  state(deviceId: string): DeviceState | undefined {
    return this.states.get(deviceId);
  }

  /**
   * What is known of the device now. On a store several gateways share, a device talking to
   * another gateway is known here by what that one saved, when it heard the device last.
   */
  async current(deviceId: string): Promise<DeviceState | undefined> {
    const mine = this.states.get(deviceId);
    if (!this.deps.store.alertFeed) return mine;
    const elsewhere = (await this.savedStates().catch(() => undefined))?.get(deviceId);
    return elsewhere && elsewhere.lastSeenAt > (mine?.lastSeenAt ?? 0) ? elsewhere : mine;
  }

  /** What an alarm's alert should record about where the device was. */
  alarmContext(deviceId: string, message: DeviceEvent): Record<string, unknown> {
    const state = this.states.get(deviceId);
    const position = state?.position ?? null;
    const positionStatus = !position
      ? "unknown"
      : Math.abs(message.ts - position.ts) > this.options.stalePositionMs
        ? "stale"
        : "fresh";
    // An alarm buffered on the device and sent after newer heartbeats: still an alarm, flagged.
    const late = state !== undefined && message.ts < state.lastTs;
    // How old the last trusted fix was when the alarm was raised: a responder judges a stale one.
    const positionAgeMs = position ? Math.max(0, message.ts - position.ts) : null;
    return {
      position,
      positionStatus,
      positionAgeMs,
      late,
      recentFixes: [...(this.recentFixes.get(deviceId) ?? [])],
    };
  }

  async reloadGeofences(): Promise<void> {
    const fences = await this.deps.store.geofences.list();
    this.fencesByDevice.clear();
    for (const fence of fences) {
      for (const id of fence.deviceIds)
        this.fencesByDevice.set(id, [...(this.fencesByDevice.get(id) ?? []), fence]);
    }
    // A removed geofence's tracks go with it: a new one of the same id starts afresh.
    const ids = new Set(fences.map((f) => f.id));
    for (const key of this.zoneTracks.keys()) {
      if (ids.has(key.slice(key.indexOf("|") + 1))) continue;
      this.zoneTracks.delete(key);
      this.dirtyTracks.delete(key);
    }
  }

  private allowance(kind: DeviceKind | undefined): number {
    return (
      (this.options.heartbeatIntervalMs[kind ?? "locator-tag"] ?? 60_000) * this.options.offlineAfterMissed
    );
  }

  private stateOf(deviceId: string): DeviceState {
    let state = this.states.get(deviceId);
    if (!state) {
      state = {
        deviceId,
        lastSeenAt: 0,
        lastTs: 0,
        battery: null,
        batteryLow: false,
        online: true,
        position: null,
      };
      this.states.set(deviceId, state);
    }
    return state;
  }

  private heard(deviceId: string, at: number): DeviceState {
    const state = this.stateOf(deviceId);
    state.lastSeenAt = at;
    this.dirtyStates.add(deviceId);
    if (this.watch.heard(deviceId, this.allowance(this.kinds.get(deviceId)), at) || !state.online) {
      state.online = true;
      this.deps.bus.emit("alert.clear", { kind: "device-offline", deviceId, note: "heartbeats resumed" });
    }
    return state;
  }

  private onHeartbeat({ deviceId, message: h, receivedAt }: EventMap["device.heartbeat"]): void {
    const { bus, telemetry } = this.deps;
    const state = this.heard(deviceId, receivedAt);
    const fix = judgePosition(h, this.options.maxFixAccuracyM);
    telemetry.add({
      deviceId,
      ts: h.ts,
      receivedAt,
      battery: h.battery,
      // What no store can hold (Infinity) is dropped; the verdict says the fix was out of range.
      lat: finite(h.lat),
      lon: finite(h.lon),
      accuracy: finite(h.accuracy),
      source: h.source,
      fix,
    });
    // A buffered, older heartbeat is stored but never overwrites what is newer.
    if (h.ts <= state.lastTs) return;
    state.lastTs = h.ts;
    state.battery = h.battery;
    const battery = judgeBattery(state.batteryLow, h.battery, this.options.battery);
    state.batteryLow = battery.low;
    if (battery.change === "low") {
      bus.emit("alert.raise", { kind: "low-battery", deviceId, data: { battery: h.battery } });
    } else if (battery.change === "recovered") {
      bus.emit("alert.clear", { kind: "low-battery", deviceId, note: `battery back at ${h.battery}%` });
    }
    if (fix !== "ok" || h.lat === undefined || h.lon === undefined || h.accuracy === undefined) return;
    state.position = { lat: h.lat, lon: h.lon, accuracy: h.accuracy, source: h.source ?? null, ts: h.ts };
    const point: Fix = { ts: h.ts, lat: h.lat, lon: h.lon, accuracy: h.accuracy };
    let recent = this.recentFixes.get(deviceId);
    if (!recent) {
      recent = [];
      this.recentFixes.set(deviceId, recent);
    }
    recent.push(point);
    if (recent.length > RECENT_FIXES) recent.shift();
    for (const fence of this.fencesByDevice.get(deviceId) ?? [])
      this.judgeZone(deviceId, fence, point, recent);
  }

  private judgeZone(deviceId: string, fence: Geofence, fix: Fix, recent: Fix[]): void {
    const key = `${deviceId}|${fence.id}`;
    const judged = judgeFix(this.zoneTracks.get(key) ?? newZoneTrack(), fence, fix, this.options.zones);
    this.zoneTracks.set(key, judged.next);
    this.dirtyTracks.add(key);
    if (judged.change === "exit") {
      this.deps.bus.emit("alert.raise", {
        kind: "geofence-exit",
        deviceId,
        data: {
          geofenceId: fence.id,
          geofence: fence.name,
          // Metres beyond the zone's edge, and the fix that said so: a responder judges an old one.
          distanceM: Math.round(judged.distanceM ?? 0),
          fixAt: fix.ts,
          accuracyM: fix.accuracy,
          recentFixes: [...recent], // a copy: the list moves on with the next fix
        },
      });
    } else if (judged.change === "return") {
      this.deps.bus.emit("alert.clear", {
        kind: "geofence-exit",
        deviceId,
        note: `returned inside ${fence.name}`,
      });
    }
  }

  private wentSilent(deviceId: string): void {
    const state = this.states.get(deviceId);
    // Registered and never heard from: waiting for its first connection, not offline.
    if (!state?.lastSeenAt) return;
    // Gateways sharing a store hear each its own devices: one silent here may be talking to another.
    if (this.deps.store.alertFeed) void this.unlessHeardElsewhere(deviceId, state);
    else this.offline(deviceId, state);
  }

  /** What every gateway saved about the devices, read at most once a second however often asked. */
  private sharedStates: { at: number; states: Promise<Map<string, DeviceState>> } | undefined;

  private savedStates(): Promise<Map<string, DeviceState>> {
    const now = this.deps.clock.now();
    if (!this.sharedStates || now - this.sharedStates.at > 1000) {
      const states = this.deps.store.tracking
        .loadStates()
        .then((all) => new Map(all.map((s) => [s.deviceId, s])));
      this.sharedStates = { at: now, states };
    }
    return this.sharedStates.states;
  }

  private async unlessHeardElsewhere(deviceId: string, state: DeviceState): Promise<void> {
    const shared = await this.savedStates().catch(() => undefined);
    const elsewhere = shared?.get(deviceId);
    if (elsewhere && elsewhere.lastSeenAt > state.lastSeenAt) {
      // Alive on another gateway: take what it knows, and watch from when it last heard the device.
      this.states.set(deviceId, { ...elsewhere });
      this.watch.heard(deviceId, this.allowance(this.kinds.get(deviceId)), elsewhere.lastSeenAt);
      return;
    }
    this.offline(deviceId, state);
  }

  private offline(deviceId: string, state: DeviceState): void {
    state.online = false;
    this.dirtyStates.add(deviceId);
    this.deps.bus.emit("alert.raise", {
      kind: "device-offline",
      deviceId,
      data: { lastSeenAt: state.lastSeenAt || null, position: state.position },
    });
  }

  /** Saves what changed since the last save, once the save under way is done. */
  private flush(): Promise<void> {
    this.saving = this.saving.catch(() => undefined).then(() => this.save());
    return this.saving;
  }

  private async save(): Promise<void> {
    if (this.dirtyStates.size === 0 && this.dirtyTracks.size === 0) return;
    const stateIds = [...this.dirtyStates];
    const trackKeys = [...this.dirtyTracks];
    const states = stateIds.flatMap((id) => this.states.get(id) ?? []);
    const tracks = trackKeys.flatMap((key) => {
      const track = this.zoneTracks.get(key);
      const [deviceId = "", geofenceId = ""] = key.split("|");
      return track ? [{ deviceId, geofenceId, track }] : [];
    });
    this.dirtyStates.clear();
    this.dirtyTracks.clear();
    try {
      await this.deps.store.tracking.save(states, tracks);
    } catch (err) {
      // Saved at the next flush, as they are by then.
      for (const id of stateIds) this.dirtyStates.add(id);
      for (const key of trackKeys) this.dirtyTracks.add(key);
      throw err;
    }
  }
}

const finite = (n: number | undefined) => (n !== undefined && Number.isFinite(n) ? n : undefined);
