import { type Alert, type AlertEvent, api } from "./api.ts";

export type StreamStatus = "connecting" | "live" | "down";

/**
 * The live alert stream. Remembers the last event id and, whenever the connection drops (a
 * network error, or the server answering with an error, after which a browser's EventSource
 * gives up for good), opens a new one from there: nothing raised meanwhile is missed.
 */
export class AlertFeed {
  private source: EventSource | undefined;
  private retryMs = 1000;
  private timer: number | undefined;

  constructor(
    private lastEventId: number,
    private readonly onEvent: (alert: Alert, event: AlertEvent) => void,
    private readonly onStatus: (status: StreamStatus) => void,
  ) {}

  start(): void {
    this.onStatus("connecting");
    const source = new EventSource(`/api/stream?lastEventId=${this.lastEventId}`);
    this.source = source;
    source.onopen = () => {
      this.retryMs = 1000;
      this.onStatus("live");
    };
    source.addEventListener("alert", (e) => {
      const id = Number((e as MessageEvent).lastEventId);
      if (id <= this.lastEventId) return; // already seen
      this.lastEventId = id;
      const { alert, event } = JSON.parse((e as MessageEvent).data) as { alert: Alert; event: AlertEvent };
      this.onEvent(alert, event);
    });
    source.onerror = () => {
      this.onStatus("down");
      // A stream refused because the session ended looks like any error here; asking tells.
      void api.session().catch(() => undefined);
      // Reconnect ourselves, from the last id seen, with backoff: covers the cases EventSource does not.
      source.close();
      window.clearTimeout(this.timer);
      this.timer = window.setTimeout(() => this.start(), this.retryMs);
      this.retryMs = Math.min(15_000, this.retryMs * 2);
    };
  }

  stop(): void {
    window.clearTimeout(this.timer);
    this.source?.close();
  }
}
