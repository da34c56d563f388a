import type { ServerResponse } from "node:http";
import type { Logger } from "pino";
import type { Alert, AlertEvent } from "../alerts/model.ts";
import type { EventBus } from "../bus/index.ts";
import { type Metrics, observePressLatency } from "../metrics.ts";
import type { Store } from "../store/types.ts";

/** Longest replay a reconnecting page gets; older gaps should reload the alert list instead. */
const MAX_REPLAY = 10_000;
const KEEPALIVE_MS = 15_000;

/**
 * The dashboard's live stream (Server-Sent Events). Each message is one audit event with the
 * alert's current state, and its SSE id is the audit event's id, so a page that reconnects with
 * `Last-Event-ID` is sent every event it missed, from the store, before the live ones.
 */
interface StreamClient {
  res: ServerResponse;
  /** Live frames held back while the client's replay is being read, with their event ids. */
  held: { id: number; text: string }[] | null;
}

export class AlertStream {
  private readonly clients = new Set<StreamClient>();
  private unsubscribe: (() => void) | undefined;
  private keepalive: NodeJS.Timeout | undefined;
  /** False while stopped: new connections are refused (503) and pages retry from their last id. */
  running = false;

  constructor(private readonly deps: { store: Store; bus: EventBus; metrics: Metrics; log: Logger }) {}

  start(): void {
    this.running = true;
    this.unsubscribe = this.deps.bus.on("alert.changed", ({ alert, events, pressReceivedHr }) => {
      if (this.clients.size === 0) return;
      const frames = events.map((e) => ({ id: e.id, text: frame(alert, e) }));
      const text = frames.map((f) => f.text).join("");
      for (const client of this.clients) {
        if (client.held) client.held.push(...frames);
        else client.res.write(text);
      }
      if (events[0]?.type === "opened") observePressLatency(this.deps.metrics, "stream", pressReceivedHr);
    });
    this.keepalive = setInterval(() => {
      for (const client of this.clients) client.res.write(": keepalive\n\n");
    }, KEEPALIVE_MS);
    this.keepalive.unref();
  }

  stop(): void {
    this.running = false;
    this.unsubscribe?.();
    clearInterval(this.keepalive);
    // End and drop the connections: a page reconnects on its own, and an idle keep-alive
    // socket would hold the HTTP server's close for seconds.
    for (const client of this.clients) client.res.destroy();
    this.clients.clear();
  }

  get size(): number {
    return this.clients.size;
  }

  /** Takes over `res`: replays what came after `lastEventId`, then streams live events. */
  async attach(res: ServerResponse, lastEventId: number | undefined): Promise<void> {
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    res.write("retry: 2000\n\n");
    // Join the live set first, holding live frames back, so nothing falls between replay and live.
    const client: StreamClient = { res, held: lastEventId === undefined ? null : [] };
    this.clients.add(client);
    res.on("close", () => this.clients.delete(client));
    if (lastEventId === undefined) return;
    const { store } = this.deps;
    let last = lastEventId;
    const alerts = new Map<string, Alert>();
    for (const e of await store.alerts.eventsAfter(lastEventId, MAX_REPLAY)) {
      const alert = alerts.get(e.alertId) ?? (await store.alerts.get(e.alertId));
      if (!alert) continue;
      alerts.set(alert.id, alert);
      res.write(frame(alert, e));
      last = e.id;
    }
    for (const f of client.held ?? []) if (f.id > last) res.write(f.text);
    client.held = null;
  }
}

function frame(alert: Alert, event: AlertEvent): string {
  return `id: ${event.id}\nevent: alert\ndata: ${JSON.stringify({ alert, event })}\n\n`;
}
