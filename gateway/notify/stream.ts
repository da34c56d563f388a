import type { ServerResponse } from "node:http";
import type { Logger } from "pino";
import type { Alert, AlertEvent } from "../alerts/model.ts";
import type { AccessChange, EventBus } from "../bus/index.ts";
import type { Clock } from "../clock/index.ts";
import { type Metrics, observePressLatency } from "../metrics.ts";
import type { AlertFeed, Store } from "../store/types.ts";

/** Longest replay a reconnecting page gets; older gaps should reload the alert list instead. */
const MAX_REPLAY = 10_000;
const KEEPALIVE_MS = 15_000;
const KEEPALIVE = Buffer.from(": keepalive\n\n");
/** Events read from the shared trail at once, and how often it is looked at without a wake-up. */
const FOLLOW_BATCH = 1000;
const FOLLOW_LOOK_MS = 2000;

export interface StreamOptions {
  /** Bytes a client may fall behind (unsent, plus live frames held during its replay) before it is dropped. */
  maxBufferedBytes: number;
}

/** Who is reading: which alerts they may see, and until when their session lasts. */
export interface StreamViewer {
  sees(alert: Alert): boolean;
  expiresAt: number;
  /** The person the account acts as: an open page counts as a channel that reaches them. */
  personId: string | null;
  admin: boolean;
  /** Whose session it is, so that a change of access ends only the streams it affects. */
  sessionId: string;
  username: string;
  /** Whether this person is in the reader's scope. */
  seesPerson(personId: string): boolean;
  /** The community a staff reader's scope is drawn from, else null. */
  communityId: string | null;
}

interface StreamClient {
  res: ServerResponse;
  viewer: StreamViewer;
  /** Live frames held back while the client's replay is being read, with their event ids. */
  held: { id: number; chunk: Buffer }[] | null;
  heldBytes: number;
  /** A check of how far behind it is, due once this burst of writes has been handed to the socket. */
  checkDue: boolean;
}

/**
 * The dashboard's live stream (Server-Sent Events). Each message is one audit event with the
 * alert's current state, and its SSE id is the audit event's id, so a page that reconnects with
 * `Last-Event-ID` is sent every event it missed, from the store, before the live ones.
 *
 * Writes never wait: each client has its own socket buffer, and a client that falls more than
 * `maxBufferedBytes` behind (a stalled tab, a dead link) is disconnected instead of holding
 * memory without bound. It loses nothing: it reconnects and resumes from its last event id.
 */
export class AlertStream {
  private readonly clients = new Set<StreamClient>();
  private unsubscribe: (() => void)[] = [];
  private keepalive: NodeJS.Timeout | undefined;
  /** False while stopped: new connections are refused (503) and pages retry from their last id. */
  running = false;

  constructor(
    private readonly deps: { store: Store; bus: EventBus; clock: Clock; metrics: Metrics; log: Logger },
    private readonly options: StreamOptions,
  ) {}

  start(): void {
    this.running = true;
    const { bus, store } = this.deps;
    const offAlerts = store.alertFeed
      ? this.follow(store.alertFeed)
      : bus.on("alert.changed", ({ alert, events, pressReceivedHr }) => {
          this.deliver(alert, events);
          if (events[0]?.type === "opened") observePressLatency(this.deps.metrics, "stream", pressReceivedHr);
        });
    // Who may see what changed (or a session ended): the readers it touches reconnect, losslessly,
    // and are checked and scoped afresh; one signed out, disabled or demoted is refused then.
    const offAccess = this.deps.bus.on("access.changed", (change) => {
      this.end(({ viewer }) => affects(change, viewer));
      // The other gateways' readers too. Lost (the database unreachable), theirs end with their session.
      void store.alertFeed
        ?.announceAccess(change)
        .catch((err) =>
          this.deps.log.warn(
            { err: (err as Error).message },
            "could not tell the other gateways of a change of access",
          ),
        );
    });
    this.unsubscribe = [offAlerts, offAccess];
    this.keepalive = setInterval(() => {
      const now = this.deps.clock.now();
      this.end((c) => c.viewer.expiresAt <= now);
      for (const client of this.clients) {
        client.res.write(KEEPALIVE);
        this.checkSoon(client);
      }
    }, KEEPALIVE_MS);
    this.keepalive.unref();
  }

  /** Writes an alert's new events to every reader who may see it. */
  private deliver(alert: Alert, events: AlertEvent[]): void {
    if (this.clients.size === 0) return;
    // Encoded once, written to every client.
    const frames = events.map((e) => ({ id: e.id, chunk: Buffer.from(frame(alert, e)) }));
    const chunk = Buffer.concat(frames.map((f) => f.chunk));
    for (const client of this.clients) {
      if (!client.viewer.sees(alert)) continue;
      if (client.held) {
        client.held.push(...frames);
        client.heldBytes += chunk.length;
      } else client.res.write(chunk);
      this.checkSoon(client);
    }
  }

  /**
   * Several gateways on one store: streams the trail as it grows, in the order of its keys,
   * whichever gateway wrote it. Each commit here wakes every gateway's reader (this one's too);
   * a look every few seconds makes up for a wake-up lost with a connection.
   */
  private follow(feed: AlertFeed): () => void {
    const { bus, store, metrics, log } = this.deps;
    // When a press that opened an alert here was received, by the event that opened it.
    const pressTimes = new Map<number, number>();
    // The trail's last key now: what came before is for a page's replay, not the live stream.
    let last: number | undefined;
    const position = store.alerts.streamPosition(0).then(
      (key) => {
        last ??= key;
      },
      () => undefined,
    );
    const read = async () => {
      await position;
      last ??= await store.alerts.streamPosition(0);
      for (;;) {
        const after: number = last;
        const events = await store.alerts.eventsAfter(after, FOLLOW_BATCH);
        if (events.length === 0) return;
        for (let i = 0, j = 0; i < events.length; i = j) {
          const alertId = events[i]?.alertId;
          while (j < events.length && events[j]?.alertId === alertId) j++;
          const alert = alertId === undefined ? undefined : await store.alerts.get(alertId);
          if (alert) this.deliver(alert, events.slice(i, j));
        }
        last = events.at(-1)?.id ?? after;
        for (const e of events) {
          const pressed = pressTimes.get(e.id);
          if (pressed === undefined) continue;
          pressTimes.delete(e.id);
          observePressLatency(metrics, "stream", pressed);
        }
      }
    };
    let reading: Promise<void> | undefined;
    let again = false;
    const wake = () => {
      if (reading) {
        again = true;
        return;
      }
      reading = read()
        .catch((err) =>
          log.warn({ err: (err as Error).message }, "could not read the alert trail for the stream"),
        )
        .finally(() => {
          reading = undefined;
          if (again) {
            again = false;
            wake();
          }
        });
    };
    const offChanged = bus.on("alert.changed", ({ events, pressReceivedHr }) => {
      const opened = events[0];
      if (opened?.type === "opened" && pressReceivedHr !== undefined) {
        // Bounded: an entry whose event is never read back (a failed read) must not stay forever.
        if (pressTimes.size > 10_000) pressTimes.clear();
        pressTimes.set(opened.id, pressReceivedHr);
      }
      void feed.announce().catch(() => wake());
    });
    const touched = (change: AccessChange | null) =>
      this.end(({ viewer }) => change === null || affects(change, viewer));
    const listening = feed.listen(wake, touched).catch((err) => {
      log.warn(
        { err: (err as Error).message },
        "could not listen for other gateways' alerts; looking every few seconds",
      );
      return async () => undefined;
    });
    const look = setInterval(wake, FOLLOW_LOOK_MS);
    look.unref();
    return () => {
      offChanged();
      clearInterval(look);
      void listening.then((stop) => stop());
    };
  }

  /** Ends the matching connections; a page reconnects from its last event id, or signs in again. */
  private end(which: (c: StreamClient) => boolean): void {
    for (const client of this.clients) {
      if (!which(client)) continue;
      this.clients.delete(client);
      client.res.end();
    }
  }

  stop(): void {
    this.running = false;
    for (const off of this.unsubscribe.splice(0)) off();
    clearInterval(this.keepalive);
    // End and drop the connections: a page reconnects on its own, and an idle keep-alive
    // socket would hold the HTTP server's close for seconds.
    for (const client of this.clients) client.res.destroy();
    this.clients.clear();
  }

  get size(): number {
    return this.clients.size;
  }

  /** Whether someone has the board open now: the person `personId`, or (null) any admin. */
  isWatching(personId: string | null): boolean {
    for (const { viewer } of this.clients)
      if (personId === null ? viewer.admin : viewer.personId === personId) return true;
    return false;
  }

  /** Takes over `res`: replays what came after `lastEventId`, then streams live events, as `viewer` may see them. */
  async attach(res: ServerResponse, lastEventId: number | undefined, viewer: StreamViewer): Promise<void> {
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    res.write("retry: 2000\n\n");
    // Join the live set first, holding live frames back, so nothing falls between replay and live.
    const client: StreamClient = {
      res,
      viewer,
      held: lastEventId === undefined ? null : [],
      heldBytes: 0,
      checkDue: false,
    };
    this.clients.add(client);
    res.on("close", () => this.clients.delete(client));
    if (lastEventId === undefined) return;
    const { store } = this.deps;
    let last = lastEventId;
    const alerts = new Map<string, Alert>();
    for (const e of await store.alerts.eventsAfter(lastEventId, MAX_REPLAY)) {
      const alert = alerts.get(e.alertId) ?? (await store.alerts.get(e.alertId));
      last = e.id;
      if (!alert) continue;
      alerts.set(alert.id, alert);
      if (!viewer.sees(alert)) continue;
      // The replay goes at the client's pace; live frames wait in `held`, which counts toward its bound.
      if (!res.write(frame(alert, e))) await drained(res);
      if (res.destroyed) return;
    }
    for (const f of client.held ?? []) if (f.id > last) res.write(f.chunk);
    client.held = null;
    client.heldBytes = 0;
    this.dropIfBehind(client);
  }

  /**
   * Several alerts changing at once are written in one turn of the event loop, while Node holds
   * the socket corked: right after the writes even a reader that keeps up has them all buffered.
   * How far behind it is is judged on the next turn, once the socket has taken what it can.
   */
  private checkSoon(client: StreamClient): void {
    if (client.checkDue) return;
    client.checkDue = true;
    setImmediate(() => {
      client.checkDue = false;
      this.dropIfBehind(client);
    });
  }

  private dropIfBehind(client: StreamClient): void {
    const behind = client.res.writableLength + client.heldBytes;
    if (behind <= this.options.maxBufferedBytes || !this.clients.has(client)) return;
    this.clients.delete(client);
    this.deps.metrics.streamClientsDropped.inc();
    this.deps.log.warn(
      {
        behindBytes: behind,
        maxBytes: this.options.maxBufferedBytes,
        remote: client.res.socket?.remoteAddress,
      },
      "live-stream client too far behind: disconnected (it resumes from its last event id)",
    );
    // Not end(): a client that does not read would keep the unsent bytes, and the socket, forever.
    client.res.destroy();
  }
}

/** Whether a change of access touches what this reader may see. */
function affects(change: AccessChange, viewer: StreamViewer): boolean {
  return (
    (change.sessions?.includes(viewer.sessionId) ?? false) ||
    (change.usernames?.includes(viewer.username) ?? false) ||
    (change.people?.some((id) => id === viewer.personId || viewer.seesPerson(id)) ?? false) ||
    (viewer.communityId !== null && (change.communities?.includes(viewer.communityId) ?? false))
  );
}

/** Resolves when `res` can take more, or has closed. */
function drained(res: ServerResponse): Promise<void> {
  if (res.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

function frame(alert: Alert, event: AlertEvent): string {
  return `id: ${event.id}\nevent: alert\ndata: ${JSON.stringify({ alert, event })}\n\n`;
}
