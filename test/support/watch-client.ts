import { type AddressInfo, connect, createServer, type Socket } from "node:net";
import { encodeFrame, WatchFrameDecoder } from "../../gateway/protocols/watch/index.ts";
import { waitFor } from "./wait.ts";

export { watchTime } from "../../device-sim/watch.ts";

/** A port free now, for settings where 0 means "off" rather than "any". */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A watch over a raw TCP socket: sends frames as the firmware does, records what the gateway answers. */
export async function connectWatch(port: number, id: string, maker = "3G") {
  const socket: Socket = connect(port, "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  const decoder = new WatchFrameDecoder(65_536);
  const received: string[] = [];
  let closed = false;
  socket.on("data", (chunk: Buffer) => {
    for (const f of decoder.push(chunk).frames) received.push(f.content.toString("utf8"));
  });
  socket.on("close", () => {
    closed = true;
  });
  socket.on("error", () => undefined);
  return {
    socket,
    received,
    get closed() {
      return closed;
    },
    send(content: string) {
      socket.write(encodeFrame({ maker, deviceId: id }, content));
    },
    sendRaw(bytes: Buffer | string) {
      socket.write(bytes);
    },
    /** The first answer or command matching, after `from` answers already seen. */
    waitFor(match: (content: string) => boolean, what: string, from = 0) {
      return waitFor(() => received.slice(from).find(match), 5000, `${what} on watch ${id}`);
    },
    waitClosed: () => waitFor(() => closed, 5000, `watch ${id} disconnected`),
    close() {
      socket.destroy();
    },
  };
}
