/**
 * The watch protocol's costs, for the closing note of issue 13 (not part of `npm run bench`):
 * frames decoded a second on one core, memory per connected watch, and SOS frame to level-1
 * webhook latency, with the gateway in its own process.
 *
 *   npx tsx test/bench/watch.ts [--watches 2000] [--alarms 30]
 */
import { connect, type Socket } from "node:net";
import { parseArgs } from "node:util";
import { reportFields } from "../../device-sim/watch.ts";
import { encodeFrame, parseContent, WatchFrameDecoder } from "../../gateway/protocols/watch/index.ts";
import { startWebhookServer } from "../support/webhook-server.ts";
import { freePort, rssBytes, sleep, startGatewayProcess } from "./harness.ts";
import { percentile } from "./stats.ts";

const { values } = parseArgs({
  options: { watches: { type: "string", default: "2000" }, alarms: { type: "string", default: "30" } },
});
const WATCHES = Number(values.watches);
const ALARMS = Number(values.alarms);
const home = { lat: 29.65247, lon: 91.13208, accuracy: 10, ts: 0 };
const idOf = (n: number) => String(8_800_000_000 + n);

function decoding() {
  const now = Date.now();
  const contents = [
    "LK,1200,0,80",
    `UD_LTE,${reportFields(now, { fix: home, battery: 80, cells: true })}`,
    `AL,${reportFields(now, { fix: home, battery: 80, status: 1 << 16, cells: true })}`,
  ];
  const frames = Array.from({ length: 30_000 }, (_, i) =>
    encodeFrame({ maker: "3G", deviceId: idOf(i % 1000) }, contents[i % 3] ?? "LK"),
  );
  const stream = Buffer.concat(frames);
  // As TCP delivers them: segments of a typical MSS, frames split across them.
  const segments: Buffer[] = [];
  for (let i = 0; i < stream.length; i += 1460) segments.push(stream.subarray(i, i + 1460));
  let decoded = 0;
  const run = () => {
    const decoder = new WatchFrameDecoder(16_384);
    for (const s of segments)
      for (const f of decoder.push(s).frames) {
        parseContent(f.content);
        decoded++;
      }
  };
  run(); // warm-up
  decoded = 0;
  const started = performance.now();
  for (let i = 0; i < 10; i++) run();
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `decode + parse: ${Math.round(decoded / seconds).toLocaleString("en")} frames/s on one core (LK, UD_LTE with cells and Wi-Fi, AL; ${Math.round(stream.length / frames.length)} bytes on average)`,
  );
}

function openWatch(port: number, id: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const decoder = new WatchFrameDecoder(4096);
    socket.once("error", reject);
    socket.on("data", (chunk: Buffer) => {
      if (decoder.push(chunk).frames.some((f) => f.content.toString() === "LK")) resolve(socket);
    });
    socket.once("connect", () => socket.write(encodeFrame({ maker: "3G", deviceId: id }, "LK,0,0,80")));
  });
}

async function gateway() {
  const hooks = await startWebhookServer();
  const watchPort = await freePort();
  const gw = await startGatewayProcess({ WATCH_PORT: String(watchPort), WATCH_CONNECT_RATE_PER_IP: "0" });
  const pid = gw.process.pid ?? 0;
  const sockets: Socket[] = [];
  try {
    await gw.post("/api/communities", { id: "c", name: "Bench" });
    await gw.post("/api/people", { id: "elder", name: "Elder", role: "resident", communityId: "c" });
    await gw.post("/api/people", {
      id: "son",
      name: "Son",
      role: "family",
      communityId: "c",
      contacts: [{ kind: "webhook", address: hooks.url("/son") }],
    });
    await gw.post("/api/assignments", { residentId: "elder", personId: "son", relation: "family" });
    const total = WATCHES + ALARMS;
    for (let i = 0; i < total; i += 25)
      await Promise.all(
        Array.from({ length: Math.min(25, total - i) }, (_, j) =>
          gw.post("/api/devices", {
            id: idOf(i + j),
            kind: "call-button",
            ownerId: "elder",
            protocol: "watch",
          }),
        ),
      );
    const heapUsed = async () =>
      Number(
        /^nodejs_heap_size_used_bytes (\S+)$/m.exec(await (await fetch(`${gw.base}/metrics`)).text())?.[1],
      );
    await sleep(2000);
    const before = rssBytes(pid);
    const heapBefore = await heapUsed();
    for (let i = 0; i < WATCHES; i += 100)
      sockets.push(
        ...(await Promise.all(
          Array.from({ length: Math.min(100, WATCHES - i) }, (_, j) => openWatch(watchPort, idOf(i + j))),
        )),
      );
    await sleep(3000);
    const after = rssBytes(pid);
    const heapAfter = await heapUsed();
    const perWatch = (bytes: number) => `${(bytes / WATCHES / 1024).toFixed(1)} KiB`;
    console.log(
      `memory: ${WATCHES} watches connected (each answered LK): RSS ${Math.round(before / 1e6)} -> ${Math.round(after / 1e6)} MB (${perWatch(after - before)} per watch), JS heap used ${Math.round(heapBefore / 1e6)} -> ${Math.round(heapAfter / 1e6)} MB (${perWatch(heapAfter - heapBefore)} per watch; no GC forced)`,
    );

    // One SOS per watch (each opens its own alert), a quarter second apart: frame written -> level-1 webhook.
    const latencies: number[] = [];
    for (let a = 0; a < ALARMS; a++) {
      const id = idOf(WATCHES + a);
      const socket = await openWatch(watchPort, id);
      sockets.push(socket);
      const seen = hooks.received.length;
      const sent = performance.now();
      socket.write(
        encodeFrame(
          { maker: "3G", deviceId: id },
          `AL,${reportFields(Date.now(), { fix: home, battery: 80, status: 1 << 16 })}`,
        ),
      );
      for (let i = 0; hooks.received.length === seen && i < 500; i++) await sleep(1);
      const hook = hooks.received[seen];
      if (hook) latencies.push(hook.at - sent);
      await sleep(250);
    }
    latencies.sort((x, y) => x - y);
    console.log(
      `SOS frame -> level-1 webhook: ${latencies.length}/${ALARMS} arrived; median ${percentile(latencies, 50).toFixed(1)} ms, p95 ${percentile(latencies, 95).toFixed(1)} ms, max ${(latencies.at(-1) ?? 0).toFixed(1)} ms (with ${WATCHES} other watches connected)`,
    );
  } finally {
    for (const s of sockets) s.destroy();
    await gw.stop();
    await hooks.close();
  }
}

decoding();
await gateway();
