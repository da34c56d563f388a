import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedWebhook {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** The body's bytes, for what is not text (an encrypted push). */
  raw: Buffer;
  json: Record<string, unknown>;
  at: number;
}

/**
 * A local HTTP endpoint standing in for an SMS / WeChat bridge or a provider's API. `state.status`
 * and `state.body` set what it answers; `state.hang` makes it take requests and never answer.
 * `load` counts the requests it holds open, now and at most. `json` is the request's body when it
 * is JSON, else empty.
 */
export async function startWebhookServer(options: { status?: number; hang?: boolean; body?: string } = {}) {
  const received: ReceivedWebhook[] = [];
  const state = { status: options.status ?? 200, hang: options.hang ?? false, body: options.body ?? "" };
  const load = { open: 0, maxOpen: 0 };
  const server = createServer((req, res) => {
    load.open++;
    load.maxOpen = Math.max(load.maxOpen, load.open);
    res.on("close", () => load.open--);
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const raw = Buffer.concat(chunks);
      const body = raw.toString("utf8");
      received.push({
        path: req.url ?? "",
        headers: req.headers,
        body,
        raw,
        json: req.headers["content-type"]?.startsWith("application/json") ? JSON.parse(body) : {},
        at: performance.now(),
      });
      if (!state.hang) res.writeHead(state.status).end(state.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    received,
    state,
    load,
    url: (path: string) => `http://127.0.0.1:${port}${path}`,
    /** Drops the requests it holds open, as a crashing bridge would. */
    dropOpen: () => server.closeAllConnections(),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
