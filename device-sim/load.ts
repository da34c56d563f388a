/**
 * device-sim's load mode: many devices from one process, light enough for tens of thousands of
 * connections. A raw MQTT 3.1.1 client (CONNECT, then QoS 0 PUBLISH; nothing else is needed to
 * heartbeat), bound to a loopback source address so that several workers together pass the
 * ephemeral-port limit of one address. Runs as a child process driven over IPC:
 *
 *   parent -> { cmd: "connect" }                      connect every device, report the time taken
 *   parent -> { cmd: "heartbeat", everyMs }           each device heartbeats every `everyMs`
 *   parent -> { cmd: "quiet" }                        stop the periodic heartbeats
 *   parent -> { cmd: "burst", rate, seconds }         heartbeats at `rate`/s in total, round robin
 *   parent -> { cmd: "stop" }
 */
import { connect, type Socket } from "node:net";
import mqttPacket from "mqtt-packet";

interface LoadOptions {
  host: string;
  port: number;
  sourceAddress: string;
  ids: string[];
  secret: string;
  concurrency: number;
}

const options = JSON.parse(process.argv[2] ?? "{}") as LoadOptions;
const sockets: Socket[] = [];
const seqs: number[] = [];
let timers: NodeJS.Timeout[] = [];
let sent = 0;

function connectOne(id: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: options.host, port: options.port, localAddress: options.sourceAddress });
    socket.setNoDelay(true);
    socket.once("error", reject);
    // A broker that refuses (a connection rate limit) may close without a CONNACK.
    socket.once("close", () => reject(new Error(`${id}: closed before CONNACK`)));
    socket.once("connect", () => {
      socket.write(
        mqttPacket.generate({
          cmd: "connect",
          protocolId: "MQTT",
          protocolVersion: 4,
          clean: true,
          clientId: id,
          keepalive: 0,
          username: id,
          password: Buffer.from(options.secret),
        }),
      );
    });
    // CONNACK is 4 bytes: 0x20 0x02 flags returnCode; TCP may deliver them in pieces.
    let received = Buffer.alloc(0);
    const onData = (data: Buffer) => {
      received = Buffer.concat([received, data]);
      if (received.length < 4) return;
      socket.off("data", onData);
      if (received[0] === 0x20 && received[3] === 0) resolve(socket);
      else reject(new Error(`${id}: CONNACK ${received[3]}`));
    };
    socket.on("data", onData);
  });
}

/** Sends device `i`'s next heartbeat; false when it is not connected. */
function heartbeat(i: number): boolean {
  const socket = sockets[i];
  if (!socket || socket.destroyed) return false;
  seqs[i] = (seqs[i] ?? 0) + 1;
  const payload = `{"ts":${Date.now()},"seq":${seqs[i]},"battery":80,"lat":29.6525,"lon":91.1321,"accuracy":8,"source":"gps"}`;
  socket.write(
    mqttPacket.generate({
      cmd: "publish",
      topic: `devices/${options.ids[i]}/heartbeat`,
      payload,
      qos: 0,
      retain: false,
      dup: false,
    }),
  );
  sent++;
  return true;
}

async function connectAll(): Promise<void> {
  const started = performance.now();
  const cpu = process.cpuUsage();
  let next = 0;
  let failed = 0;
  const lane = async () => {
    while (next < options.ids.length) {
      const i = next++;
      try {
        sockets[i] = await connectOne(options.ids[i] ?? "");
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, lane));
  process.send?.({
    event: "connected",
    count: sockets.filter(Boolean).length,
    failed,
    ms: performance.now() - started,
    // The generator's own CPU time: near the wall time, the load, not the broker, set the pace.
    cpuMs: (({ user, system }) => (user + system) / 1000)(process.cpuUsage(cpu)),
  });
}

function stopHeartbeats(): void {
  // Both kinds: the slot's first timeout and the interval it starts.
  for (const t of timers) clearTimeout(t);
  timers = [];
}

process.on("message", async (m: { cmd: string; everyMs?: number; rate?: number; seconds?: number }) => {
  if (m.cmd === "connect") await connectAll();
  if (m.cmd === "heartbeat") {
    const everyMs = m.everyMs ?? 5000;
    // Spread the devices evenly over the interval: one timer per 10 ms slot, not one per device.
    const slots = Math.max(1, Math.floor(everyMs / 10));
    for (let s = 0; s < slots; s++) {
      timers.push(
        setTimeout(() => {
          timers.push(
            setInterval(() => {
              for (let i = s; i < sockets.length; i += slots) heartbeat(i);
            }, everyMs),
          );
        }, s * 10),
      );
    }
    process.send?.({ event: "heartbeating" });
  }
  if (m.cmd === "quiet") {
    stopHeartbeats();
    process.send?.({ event: "quiet" });
  }
  if (m.cmd === "burst") {
    const started = performance.now();
    const total = (m.rate ?? 0) * (m.seconds ?? 0);
    // Counted apart from `sent`: periodic heartbeats, if any, are not part of the burst.
    let burstSent = 0;
    let i = 0;
    // Bounded in time too, should devices be disconnected.
    while (burstSent < total && performance.now() - started < (m.seconds ?? 0) * 2000) {
      const due =
        Math.min(total, Math.floor(((performance.now() - started) / 1000) * (m.rate ?? 0))) - burstSent;
      for (let k = 0; k < due; k++) if (heartbeat(i++ % sockets.length)) burstSent++;
      await new Promise((r) => setTimeout(r, 5));
    }
    process.send?.({ event: "burst", sent: burstSent, ms: performance.now() - started });
  }
  if (m.cmd === "stop") {
    stopHeartbeats();
    for (const s of sockets) s?.destroy();
    process.send?.({ event: "stopped", sent });
    process.exit(0);
  }
});
process.send?.({ event: "ready" });
