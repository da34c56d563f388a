import type { Logger } from "pino";
import type { Clock, Timer } from "../clock/index.ts";
import type { OrphanClaims, StoredDeviceEvent } from "../store/types.ts";

export interface TakenPage {
  alertId: string;
  eventId: number;
}

export interface TakeoverDeps {
  clock: Clock;
  log: Logger;
  claims: OrphanClaims;
  /** Sends again what did not go out of these pages; resolves with the pages done (the others are tried again). */
  resumePages(pages: TakenPage[]): Promise<Set<number>>;
  /** Decides a device event, unless it is decided already; throws if it could not. */
  decide(event: StoredDeviceEvent): Promise<void>;
}

/**
 * What a restart does on one gateway's own, for gateways sharing a database: each renews its life
 * every `renewMs` (on its own timer, so that a long sweep does not make it look dead), and the
 * living take over what a gateway that stopped renewing left, each item once: the pages it was
 * sending, the device events it stored, acknowledged and never decided. Taking up an event the
 * other is in fact still deciding opens no second alert: the alert's commit marks it handled once.
 *
 * A gateway takes nothing until it has renewed without a gap for a whole life: after a database
 * outage, every gateway first renews, so none takes over the living. What it took and could not
 * finish (the database failing again) it keeps and tries again at the next sweep.
 */
export class Takeover {
  /** Renewing without a gap since then (wall clock); undefined while renewals fail. */
  private aliveSince: number | undefined;
  private timer: Timer | undefined;
  private stopped = true;
  private readonly pages = new Map<number, TakenPage>();
  private readonly events = new Map<number, StoredDeviceEvent>();

  constructor(
    private readonly deps: TakeoverDeps,
    private readonly lifeMs: number,
    private readonly renewMs: number,
  ) {}

  async start(): Promise<void> {
    this.stopped = false;
    await this.renew();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) this.deps.clock.clearTimer(this.timer);
    this.timer = undefined;
  }

  /** Takes what the dead left, and finishes what was taken before. */
  async sweep(): Promise<void> {
    const { clock, claims, log, resumePages, decide } = this.deps;
    const now = clock.now();
    if (this.aliveSince !== undefined && now - this.aliveSince >= this.lifeMs) {
      const taken = await claims.takeOrphans(now);
      if (taken.pages.length + taken.events.length > 0)
        log.warn(
          { pages: taken.pages.length, events: taken.events.length },
          "took over what a gateway that stopped left",
        );
      for (const p of taken.pages) this.pages.set(p.eventId, p);
      for (const e of taken.events) this.events.set(e.id, e);
    }
    if (this.pages.size > 0)
      for (const id of await resumePages([...this.pages.values()])) this.pages.delete(id);
    for (const [id, e] of this.events) {
      if (this.stopped) return;
      try {
        await decide(e);
        this.events.delete(id);
      } catch (err) {
        log.error({ err, deviceId: e.deviceId }, "could not decide a device event taken over; trying again");
      }
    }
  }

  private async renew(): Promise<void> {
    const { clock, claims, log } = this.deps;
    const now = clock.now();
    try {
      await claims.renew(now, now + this.lifeMs);
      this.aliveSince ??= now;
    } catch (err) {
      if (this.aliveSince !== undefined)
        log.warn({ err: (err as Error).message }, "could not renew this gateway's life: taking nothing over");
      this.aliveSince = undefined;
    }
    if (this.stopped) return;
    this.timer = clock.setTimer(() => void this.renew(), this.renewMs);
  }
}
