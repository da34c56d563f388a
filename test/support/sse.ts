export interface SseMessage {
  id?: string;
  event?: string;
  data: string;
}

/** Reads a Server-Sent Events stream with fetch, as the dashboard's EventSource would. */
export function openSse(url: string, headers: Record<string, string> = {}) {
  const messages: SseMessage[] = [];
  const controller = new AbortController();
  let opened = false;
  const done = (async () => {
    const res = await fetch(url, {
      headers: { accept: "text/event-stream", ...headers },
      signal: controller.signal,
    });
    if (!res.ok || !res.body) throw new Error(`stream answered ${res.status}`);
    opened = true;
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const chunk of res.body) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true });
      let end = buffer.indexOf("\n\n");
      while (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const message: SseMessage = { data: "" };
        for (const line of block.split("\n")) {
          const [field, ...rest] = line.split(":");
          const value = rest.join(":").replace(/^ /, "");
          if (field === "id") message.id = value;
          else if (field === "event") message.event = value;
          else if (field === "data") message.data += value;
        }
        if (message.event) messages.push(message);
        end = buffer.indexOf("\n\n");
      }
    }
  })().catch((err: Error) => {
    if (err.name !== "AbortError") throw err;
  });
  let ended = false;
  void done.then(() => {
    ended = true;
  });
  return {
    messages,
    /** The gateway answered: the stream is open (it may have ended since). */
    opened: () => opened,
    /** The gateway ended the stream (or it was closed here). */
    ended: () => ended,
    alertEvents: () => messages.map((m) => ({ id: Number(m.id), ...JSON.parse(m.data) })),
    close: () => {
      controller.abort();
      return done;
    },
  };
}
