import { randomInt } from "node:crypto";
import { connect } from "node:net";
import { setImmediate as nextTick, setTimeout as sleep } from "node:timers/promises";
import { generate, type IConnectPacket, type Packet, parser } from "mqtt-packet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fuzzSeconds } from "../property/fuzz.ts";
import {
  call,
  connectDevice,
  metric,
  registerDevice,
  seedCommunity,
  startGateway,
  type TestDevice,
  type TestGateway,
} from "../support/gateway.ts";
import { waitFor } from "../support/wait.ts";

/**
 * Raw-socket fuzzing of the embedded broker: valid MQTT packets, then the same cut short,
 * bit-flipped, with lying length fields, out of order, or pure noise, each on a fresh TCP
 * connection, many at once, until the time budget is spent. `FUZZ_SECONDS` and `FUZZ_SEED`
 * make a longer run, or repeat one.
 */
const SECONDS = fuzzSeconds(5);
const SEED = Number(process.env.FUZZ_SEED ?? randomInt(2 ** 31));
if (!Number.isSafeInteger(SEED))
  throw new Error(`FUZZ_SEED must be a whole number, not '${process.env.FUZZ_SEED}'`);
const WORKERS = 16;
/** A connection that has sent everything and hears nothing back for this long is closed by us. */
const IDLE_MS = 60;
/** An answer the contract promises (CONNACK, PUBACK, PINGRESP) that takes longer than this is a hang. */
const HANG_MS = 5000;

const LEGIT = "btn-legit";
/** Registered but never connected: the fuzzer tries its id without its secret. */
const IDLE = "btn-idle";
const fuzzId = (worker: number) => `btn-fuzz-${worker}`;

/** mulberry32: small, seedable, good enough to choose mutations. */
class Rng {
  constructor(private state: number) {}
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = Math.imul(this.state ^ (this.state >>> 15), 1 | this.state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)] as T;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  bytes(n: number): Buffer {
    return Buffer.from(Array.from({ length: n }, () => this.int(0, 255)));
  }
}

interface Identity {
  id: string;
  secret: string;
}

/** What the gateway must answer, when the case is a well-formed exchange. */
interface Promised {
  connack: number;
  pubacks: number[];
  pingresp: boolean;
}

interface FuzzCase {
  kind: string;
  chunks: Buffer[];
  promised?: Promised;
  /** Hang up this many ms after writing, without waiting for answers, as a device on a failing link does. */
  hangUpAfterMs?: number;
}

const tryGenerate = (packet: Packet): Buffer | undefined => {
  try {
    return generate(packet);
  } catch {
    return undefined; // mqtt-packet refuses to write some nonsense (e.g. QoS 1 without an id)
  }
};

/** Devices' packets stay well under the gateway's packet limit (MQTT_MAX_PACKET_BYTES, 4096 by default). */
const POLITE_PAYLOAD_BYTES = 3000;

function payload(rng: Rng, polite = true): Buffer {
  const ts = Date.now() + rng.pick([0, 0, -3600_000, 24 * 3600_000, -Date.now()]);
  const seq = rng.pick([rng.int(0, 1000), -1, 2 ** 53, 1.5]);
  switch (rng.int(0, 8)) {
    case 0:
      return Buffer.from(JSON.stringify({ type: rng.pick(["press", "sos", "fall", "cancel"]), ts, seq }));
    case 1:
      return Buffer.from(JSON.stringify({ ts, seq, battery: rng.int(-10, 120), lat: 29.65, lon: 91.13 }));
    case 2:
      return Buffer.from(JSON.stringify({ type: "press", ts, seq, extra: true }));
    case 3:
      return Buffer.from(JSON.stringify({ type: "accepted", alertId: "forged", message: "from the fuzzer" }));
    case 4:
      return Buffer.from(`{"type":"press","ts":${ts},"seq":NaN}`);
    case 5:
      return Buffer.from("x".repeat(rng.pick(polite ? [1025, POLITE_PAYLOAD_BYTES] : [4096, 70_000])));
    case 6:
      return Buffer.alloc(0);
    default:
      return rng.bytes(rng.int(1, 300));
  }
}

function topic(rng: Rng, own: string, polite: boolean): string {
  const topics = [
    `devices/${own}/event`,
    `devices/${own}/event`,
    `devices/${own}/heartbeat`,
    `devices/${own}/command`,
    `devices/${LEGIT}/event`,
    `devices/${LEGIT}/command`,
    `devices/${IDLE}/event`,
    `devices/${own}/event/`,
    "$SYS/broker/clients",
    "$refused/btn-legit",
    "devices/ü/event",
    "a/".repeat(rng.int(1, 60)),
  ];
  // Wildcards, empty topics and NUL are protocol errors in a PUBLISH: the connection is closed.
  // So is a topic deeper than the broker's 100 levels.
  const rude = ["devices/+/event", "#", "", `devices/${own}/event\u0000`, "a/".repeat(rng.int(100, 500))];
  return rng.pick(polite ? topics : [...topics, ...rude]);
}

function connectPacket(
  rng: Rng,
  own: Identity,
  polite: boolean,
): { packet: IConnectPacket; connack: number } {
  const keepalive = polite ? rng.pick([0, 60]) : rng.pick([0, 1, 60, 65535]);
  const base = { cmd: "connect" as const, keepalive, clean: rng.chance(0.5), protocolVersion: 4 as const };
  const will = rng.chance(0.2)
    ? {
        will: {
          topic: topic(rng, own.id, true),
          payload: payload(rng),
          qos: rng.pick([0, 1] as const),
          retain: rng.chance(0.5),
        },
      }
    : {};
  const wrong = Buffer.from(
    rng.pick([own.secret.slice(1), "", "password", rng.bytes(16).toString("base64url")]),
  );
  const variants: { packet: IConnectPacket; connack: number }[] = [
    {
      packet: { ...base, ...will, clientId: own.id, username: own.id, password: Buffer.from(own.secret) },
      connack: 0,
    },
    { packet: { ...base, clientId: LEGIT, username: LEGIT, password: wrong }, connack: 4 },
    { packet: { ...base, clientId: IDLE, username: IDLE, password: wrong }, connack: 4 },
    { packet: { ...base, clientId: own.id, username: own.id, password: wrong }, connack: 4 },
    { packet: { ...base, clientId: "btn-nobody", username: "btn-nobody", password: wrong }, connack: 4 },
    // Someone else's id with the fuzzer's own, valid secret.
    { packet: { ...base, clientId: LEGIT, username: own.id, password: Buffer.from(own.secret) }, connack: 2 },
    { packet: { ...base, clientId: own.id }, connack: 2 },
    {
      packet: { ...base, clean: true, clientId: "", username: own.id, password: Buffer.from(own.secret) },
      connack: 2,
    },
    { packet: { ...base, clientId: own.id, protocolVersion: 3, protocolId: "MQIsdp" }, connack: 2 },
  ];
  return rng.chance(0.5) ? (variants[0] as { packet: IConnectPacket; connack: number }) : rng.pick(variants);
}

/** One packet a connected device might send; `polite` ones never justify closing the connection. */
function sessionPacket(rng: Rng, own: Identity, messageId: number, polite: boolean): Packet {
  const polites: (() => Packet)[] = [
    () => ({
      cmd: "publish",
      topic: topic(rng, own.id, true),
      payload: payload(rng),
      qos: 1,
      dup: rng.chance(0.1),
      retain: rng.chance(0.1),
      messageId,
    }),
    () => ({
      cmd: "publish",
      topic: topic(rng, own.id, true),
      payload: payload(rng),
      qos: 0,
      dup: false,
      retain: false,
    }),
    () => ({
      cmd: "subscribe",
      messageId,
      subscriptions: [
        {
          topic: rng.pick([
            `devices/${own.id}/command`,
            `devices/${LEGIT}/command`,
            "#",
            "devices/+/command",
            "$SYS/#",
            "$refused/#",
          ]),
          qos: rng.pick([0, 1, 2] as const),
        },
      ],
    }),
    () => ({
      cmd: "unsubscribe",
      messageId,
      unsubscriptions: [rng.pick([`devices/${own.id}/command`, "#", "nothing"])],
    }),
    () => ({ cmd: "pingreq" }),
  ];
  const rudes: (() => Packet)[] = [
    () => ({
      cmd: "publish",
      topic: topic(rng, own.id, false),
      payload: payload(rng, false),
      qos: rng.pick([0, 1, 2] as const),
      dup: false,
      retain: false,
      messageId,
    }),
    () => ({
      cmd: rng.pick(["puback", "pubrec", "pubrel", "pubcomp"] as const),
      messageId: rng.int(0, 65535),
    }),
    () => ({ cmd: "connect", clientId: own.id, username: own.id, password: Buffer.from(own.secret) }),
    () => ({ cmd: "disconnect" }),
    () => ({ cmd: rng.pick(["pingresp", "unsuback"] as const), messageId }) as Packet,
    () => ({ cmd: "connack", returnCode: 0, sessionPresent: false }),
    () => ({ cmd: "suback", messageId, granted: [0] }),
  ];
  return rng.pick(polite ? polites : [...polites, ...rudes])();
}

/** The remaining-length field of the packet at the start of `buf`: where it ends. */
function lengthFieldEnd(buf: Buffer): number {
  let i = 1;
  while (i < buf.length && i < 5 && ((buf[i] as number) & 0x80) !== 0) i++;
  return i + 1;
}

function mutate(rng: Rng, packets: Buffer[]): { kind: string; bytes: Buffer } {
  const whole = Buffer.concat(packets);
  switch (rng.int(0, 5)) {
    case 0:
      return { kind: "truncated", bytes: whole.subarray(0, rng.int(0, whole.length - 1)) };
    case 1: {
      const flipped = Buffer.from(whole);
      for (let n = rng.int(1, 8); n > 0; n--) {
        const at = rng.int(0, flipped.length - 1);
        flipped[at] = (flipped[at] as number) ^ (1 << rng.int(0, 7));
      }
      return { kind: "bit-flipped", bytes: flipped };
    }
    case 2: {
      // One packet's remaining length rewritten: too long, too short, 5 bytes, the maximum, or not minimal.
      const k = rng.int(0, packets.length - 1);
      const packet = packets[k] as Buffer;
      const end = lengthFieldEnd(packet);
      const body = packet.subarray(end);
      const encode = (n: number) => {
        const out: number[] = [];
        do {
          let byte = n % 128;
          n = Math.floor(n / 128);
          if (n > 0) byte |= 0x80;
          out.push(byte);
        } while (n > 0);
        return Buffer.from(out);
      };
      const field = rng.pick([
        () => encode(body.length + rng.int(1, 50)),
        () => encode(Math.max(0, body.length - rng.int(1, 10))),
        () => Buffer.from([0x80, 0x80, 0x80, 0x80, 0x01]),
        () => Buffer.from([0xff, 0xff, 0xff, 0x7f]),
        () => Buffer.concat([encode(body.length).map((b) => b | 0x80), Buffer.from([0x00])]),
      ])();
      const rewritten = Buffer.concat([packet.subarray(0, 1), field, body]);
      return {
        kind: "bad-length",
        bytes: Buffer.concat([...packets.slice(0, k), rewritten, ...packets.slice(k + 1)]),
      };
    }
    case 3: {
      const at = rng.int(0, whole.length);
      return {
        kind: "spliced",
        bytes: Buffer.concat([whole.subarray(0, at), rng.bytes(rng.int(1, 40)), whole.subarray(at)]),
      };
    }
    case 4:
      return {
        kind: "first-byte",
        bytes: Buffer.concat([Buffer.from([rng.int(0, 255)]), whole.subarray(1)]),
      };
    default:
      return { kind: "duplicated", bytes: Buffer.concat([whole, whole]) };
  }
}

/** Cuts bytes into pieces, as a slow link would deliver them. */
function chunked(rng: Rng, bytes: Buffer): Buffer[] {
  if (rng.chance(0.7) || bytes.length === 0) return [bytes];
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const size = rng.pick([1, 2, rng.int(1, 64)]);
    chunks.push(bytes.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

function fuzzCase(rng: Rng, own: Identity): FuzzCase {
  const roll = rng.next();
  if (roll < 0.1) {
    // Noise; half of it starting like a CONNECT, to get past the first byte.
    const noise = rng.bytes(rng.int(1, 2048));
    if (rng.chance(0.5)) noise[0] = 0x10;
    return { kind: "noise", chunks: chunked(rng, noise) };
  }
  let messageId = rng.int(1, 60_000);
  if (roll < 0.2) {
    // A good CONNECT, maybe a packet or two, and the link drops before the CONNACK can arrive.
    const session: Packet[] = [connectPacket(rng, own, true).packet];
    for (let n = rng.int(0, 2); n > 0; n--) session.push(sessionPacket(rng, own, messageId++, true));
    const packets = session.map(tryGenerate).filter((p): p is Buffer => p !== undefined);
    return { kind: "hang-up", chunks: [Buffer.concat(packets)], hangUpAfterMs: rng.int(0, 4) };
  }
  if (roll < 0.3) {
    // Packets from a connection that never said CONNECT.
    const packets = Array.from({ length: rng.int(1, 4) }, () =>
      tryGenerate(sessionPacket(rng, own, messageId++, false)),
    );
    return {
      kind: "before-connect",
      chunks: chunked(rng, Buffer.concat(packets.filter((p) => p !== undefined))),
    };
  }
  const polite = rng.chance(0.5);
  const { packet: connectPkt, connack } = connectPacket(rng, own, polite);
  const session: Packet[] = [connectPkt];
  for (let n = rng.int(0, 8); n > 0; n--) session.push(sessionPacket(rng, own, messageId++, polite));
  if (polite) session.push({ cmd: "pingreq" });
  const packets = session.map(tryGenerate).filter((p): p is Buffer => p !== undefined);
  if (packets.length === 0) return { kind: "noise", chunks: [rng.bytes(rng.int(1, 64))] };
  if (polite && packets.length === session.length && rng.chance(0.6)) {
    const pubacks =
      connack === 0
        ? session.flatMap((p) => (p.cmd === "publish" && p.qos === 1 ? [p.messageId as number] : []))
        : [];
    return {
      kind: connack === 0 ? "well-formed" : "refused-connect",
      chunks: chunked(rng, Buffer.concat(packets)),
      promised: { connack, pubacks, pingresp: connack === 0 },
    };
  }
  const { kind, bytes } = mutate(rng, packets);
  return { kind, chunks: chunked(rng, bytes) };
}

interface Outcome {
  packets: Packet[];
  closedByGateway: boolean;
  hung?: string;
  refusedToConnect?: string;
}

/** Sends one case on a fresh connection and collects what comes back. */
async function exchange(port: number, c: FuzzCase): Promise<Outcome> {
  const socket = connect(port, "127.0.0.1");
  const packets: Packet[] = [];
  const answers = parser();
  answers.on("packet", (p: Packet) => packets.push(p));
  answers.on("error", () => {});
  let closed = false;
  let lastHeard = Date.now();
  socket.on("data", (data) => {
    lastHeard = Date.now();
    answers.parse(data);
  });
  socket.on("error", () => {}); // resets are expected: the gateway hangs up on nonsense
  socket.on("close", () => {
    closed = true;
  });
  const opened = await new Promise<string | undefined>((resolve) => {
    socket.once("connect", () => resolve(undefined));
    socket.once("error", (err) => resolve(err.message));
  });
  if (opened) return { packets, closedByGateway: true, refusedToConnect: opened };
  for (const chunk of c.chunks) {
    if (closed) break;
    socket.write(chunk);
    if (c.chunks.length > 1) await nextTick();
  }
  if (c.hangUpAfterMs !== undefined) {
    if (c.hangUpAfterMs > 0) await sleep(c.hangUpAfterMs);
    socket.destroy();
    return { packets, closedByGateway: false };
  }
  lastHeard = Date.now();
  const started = Date.now();
  const answered = (p: Promised) =>
    packets.some((x) => x.cmd === "connack") &&
    p.pubacks.every((id) => packets.some((x) => x.cmd === "puback" && x.messageId === id)) &&
    (!p.pingresp || packets.some((x) => x.cmd === "pingresp"));
  let hung: string | undefined;
  while (!closed) {
    if (c.promised ? answered(c.promised) : Date.now() - lastHeard > IDLE_MS) break;
    if (Date.now() - started > HANG_MS) {
      hung = `no answer in ${HANG_MS} ms; got ${packets.map((p) => p.cmd).join(",") || "nothing"}`;
      break;
    }
    await sleep(5);
  }
  const closedByGateway = closed;
  socket.destroy();
  return { packets, closedByGateway, hung };
}

/** What a case's answers say about the gateway, when they break a promise of the contract. */
function brokenPromise(c: FuzzCase, o: Outcome): string | undefined {
  if (o.refusedToConnect) return `TCP connection refused: ${o.refusedToConnect}`;
  if (o.hung) return o.hung;
  const p = c.promised;
  if (!p) return undefined;
  const connack = o.packets.find((x) => x.cmd === "connack");
  if (connack?.cmd !== "connack") return "closed without a CONNACK";
  if (connack.returnCode !== p.connack) return `CONNACK ${connack.returnCode}, expected ${p.connack}`;
  if (p.connack === 0 && o.closedByGateway && !(p.pingresp && o.packets.some((x) => x.cmd === "pingresp"))) {
    return "closed a well-formed session (refused publishes and subscriptions must keep the device connected)";
  }
  return undefined;
}

/** Tallies what the gateway did with the cases, and keeps the first few broken promises with how to repeat them. */
class FuzzReport {
  cases = 0;
  closedByGateway = 0;
  readonly connacks = new Map<number, number>();
  readonly broken: string[] = [];

  record(worker: number, n: number, c: FuzzCase, o: Outcome, promises = true): void {
    this.cases++;
    if (o.closedByGateway) this.closedByGateway++;
    for (const p of o.packets) {
      if (p.cmd === "connack")
        this.connacks.set(p.returnCode ?? -1, (this.connacks.get(p.returnCode ?? -1) ?? 0) + 1);
    }
    const broken = promises ? brokenPromise(c, o) : o.hung;
    if (broken && this.broken.length < 20) {
      const sent = Buffer.concat(c.chunks).subarray(0, 160).toString("hex");
      this.broken.push(`${c.kind} (FUZZ_SEED=${SEED}, worker ${worker}, case ${n}): ${broken}; sent ${sent}`);
    }
  }

  summary(name: string, crashes: number): string {
    const connacks = [...this.connacks].map(([code, count]) => `${code}×${count}`).join(" ");
    const hangs = this.broken.filter((b) => b.includes("no answer")).length;
    return (
      `fuzz ${name}: ${this.cases} cases, ${crashes} crashes, ${hangs} hangs (seed ${SEED}; ` +
      `${this.closedByGateway} closed by the gateway; CONNACK codes ${connacks || "none"})`
    );
  }
}

/** One worker per identity, each on fresh connections one after another, until the time is up. */
async function fuzzFor(
  seconds: number,
  port: number,
  identities: Identity[],
  report: FuzzReport,
  promises = true,
) {
  const deadline = Date.now() + seconds * 1000;
  await Promise.all(
    identities.map(async (identity, worker) => {
      const rng = new Rng(SEED + 1 + worker);
      for (let n = 0; Date.now() < deadline; n++) {
        const c = fuzzCase(rng, identity);
        report.record(worker, n, c, await exchange(port, c), promises);
      }
    }),
  );
}

/** Uncaught exceptions and unhandled rejections while the gateway runs in this process. */
function watchProcessErrors() {
  const errors: string[] = [];
  const onError = (err: unknown) => errors.push(String((err as Error)?.stack ?? err));
  process.on("uncaughtException", onError);
  process.on("unhandledRejection", onError);
  return {
    errors,
    stop: () => {
      process.off("uncaughtException", onError);
      process.off("unhandledRejection", onError);
    },
  };
}

const connectAs = (clientId: string, username: string, password: string, clean = true): Buffer =>
  generate({
    cmd: "connect",
    clientId,
    username,
    password: Buffer.from(password),
    keepalive: 0,
    clean,
    protocolVersion: 4,
  });

describe("MQTT broker under fuzzed raw traffic", () => {
  let gw: TestGateway;
  let legit: TestDevice;
  let legitDisconnects = 0;
  const own: Identity[] = [];
  const watch = watchProcessErrors();
  const report = new FuzzReport();
  const refusedBefore: Record<string, number> = {};
  const reasons = ["connect", "acl", "subscribe", "bad-json", "schema"];
  const refused = (reason: string) => metric(gw, `gateway_messages_refused_total{reason="${reason}"}`);
  const connectedDevices = async () =>
    ((await call(gw, "GET", "/api/devices")).body as { id: string; connected: boolean }[])
      .filter((d) => d.connected)
      .map((d) => d.id);

  beforeAll(async () => {
    // The per-address connection limit would refuse the fuzzer at the door; it has a test of its own below.
    gw = await startGateway({ env: { MQTT_CONNECT_RATE_PER_IP: "0" } });
    await seedCommunity(gw, (p) => `http://127.0.0.1:9${p}`);
    const legitCreds = await registerDevice(gw, LEGIT);
    await registerDevice(gw, IDLE);
    for (let w = 0; w < WORKERS; w++) own.push(await registerDevice(gw, fuzzId(w)));
    legit = await connectDevice(gw, legitCreds);
    legit.client.on("close", () => legitDisconnects++);
    for (const reason of reasons) refusedBefore[reason] = await refused(reason);
  });

  afterAll(async () => {
    await legit?.close();
    await gw?.stop();
    watch.stop();
  });

  it(
    "answers every well-formed exchange as the contract says, and never crashes or hangs",
    async () => {
      const port = gw.ports.mqtt;
      // First a fixed round that touches every refusal, so the counters checked below are sure to move.
      const me = own[0] as Identity;
      const publish = (t: string, body: string, messageId: number): Buffer =>
        generate({
          cmd: "publish",
          topic: t,
          payload: Buffer.from(body),
          qos: 1,
          dup: false,
          retain: false,
          messageId,
        });
      const press = JSON.stringify({ type: "press", ts: Date.now(), seq: 1 });
      const fixed: FuzzCase[] = [
        {
          kind: "wrong-secret",
          chunks: [connectAs(LEGIT, LEGIT, "guess")],
          promised: { connack: 4, pubacks: [], pingresp: false },
        },
        {
          kind: "not-my-id",
          chunks: [connectAs(LEGIT, me.id, me.secret)],
          promised: { connack: 2, pubacks: [], pingresp: false },
        },
        {
          kind: "refusals",
          chunks: [
            connectAs(me.id, me.id, me.secret),
            publish(`devices/${LEGIT}/event`, press, 1),
            publish(`devices/${LEGIT}/command`, JSON.stringify({ type: "accepted", alertId: "forged" }), 2),
            publish(`devices/${me.id}/event`, "{not json", 3),
            publish(`devices/${me.id}/event`, JSON.stringify({ type: "press", ts: Date.now(), seq: -1 }), 4),
            generate({ cmd: "subscribe", messageId: 5, subscriptions: [{ topic: "#", qos: 1 }] }),
            generate({ cmd: "pingreq" }),
          ],
          promised: { connack: 0, pubacks: [1, 2, 3, 4], pingresp: true },
        },
      ];
      for (const [n, c] of fixed.entries()) report.record(0, n, c, await exchange(port, c));

      await fuzzFor(SECONDS, port, own, report);

      // Last, every fuzz device drops its link in the middle of connecting a few times, and then is
      // gone for good (its battery died): nothing may keep it looking connected.
      await Promise.all(
        own.map(async (identity, worker) => {
          const rng = new Rng(SEED - 1 - worker);
          for (let n = 0; n < 20; n++) {
            const hello = connectAs(identity.id, identity.id, identity.secret, rng.chance(0.5));
            const c: FuzzCase = { kind: "hang-up", chunks: [hello], hangUpAfterMs: rng.int(0, 4) };
            report.record(worker, -1 - n, c, await exchange(port, c));
          }
        }),
      );

      console.log(report.summary("mqtt", watch.errors.length));
      expect(watch.errors).toEqual([]);
      expect(report.broken).toEqual([]);
    },
    SECONDS * 1000 + 60_000,
  );

  it("is alive and ready", async () => {
    expect((await call(gw, "GET", "/healthz")).status).toBe(200);
    expect((await call(gw, "GET", "/readyz")).body).toEqual({ status: "ready" });
  });

  it("kept the real device connected and delivered it nothing forged", () => {
    expect(legitDisconnects).toBe(0);
    expect(legit.client.connected).toBe(true);
    expect(legit.commands).toEqual([]);
  });

  it("opened no alert for a device whose secret the fuzzer does not have", async () => {
    const alerts: { deviceId: string }[] = (await call(gw, "GET", "/api/alerts")).body;
    const fuzzers = own.map((o) => o.id);
    expect(alerts.filter((a) => !fuzzers.includes(a.deviceId))).toEqual([]);
  });

  it("still serves a press of the real device", async () => {
    await legit.event("press");
    const received = await legit.waitForCommand("received");
    const alerts: { id: string; deviceId: string }[] = (await call(gw, "GET", "/api/alerts")).body;
    expect(alerts.filter((a) => a.deviceId === LEGIT)).toEqual([
      expect.objectContaining({ id: received.alertId, deviceId: LEGIT }),
    ]);
  });

  it("shows none of the fuzzer's devices as connected once their connections are gone", async () => {
    // Dropped connections take a moment to be noticed; the assertion after says what is left if they never are.
    await waitFor(async () => (await connectedDevices()).length === 1, 5000).catch(() => undefined);
    expect(await connectedDevices()).toEqual([LEGIT]);
    expect(await metric(gw, "gateway_devices_connected")).toBe(1);
  });

  it("still lets a fuzzer's device connect, and shows it connected until it leaves", async () => {
    const again = await connectDevice(gw, own[1] as Identity);
    expect(await connectedDevices()).toContain(fuzzId(1));
    await again.close();
    await waitFor(
      async () => !(await connectedDevices()).includes(fuzzId(1)),
      5000,
      "a clean disconnect to show",
    );
  });

  it("counted each kind of refusal, and every CONNACK refusal it sent", async () => {
    const refusedConnacks = (report.connacks.get(2) ?? 0) + (report.connacks.get(4) ?? 0);
    expect((await refused("connect")) - (refusedBefore.connect ?? 0)).toBeGreaterThanOrEqual(refusedConnacks);
    for (const reason of reasons)
      expect(await refused(reason), reason).toBeGreaterThan(refusedBefore[reason] ?? 0);
  });
});

describe("MQTT broker under fuzzed raw traffic, with the per-address connection limit on", () => {
  let gw: TestGateway;
  let legit: TestDevice;
  let fuzzer: Identity;
  const watch = watchProcessErrors();
  const report = new FuzzReport();
  // A low limit, so that a short run is sure to reach it.
  const RATE = 5;
  const BURST = 20;

  beforeAll(async () => {
    gw = await startGateway({
      env: { MQTT_CONNECT_RATE_PER_IP: String(RATE), MQTT_CONNECT_BURST_PER_IP: String(BURST) },
    });
    await seedCommunity(gw, (p) => `http://127.0.0.1:9${p}`);
    const legitCreds = await registerDevice(gw, LEGIT);
    fuzzer = await registerDevice(gw, fuzzId(0));
    legit = await connectDevice(gw, legitCreds);
  });

  afterAll(async () => {
    await legit?.close();
    await gw?.stop();
    watch.stop();
  });

  it(
    "closes the connections over the limit, and still never crashes or hangs",
    async () => {
      // Connections over the limit are closed before any answer: only hangs count as broken here.
      await fuzzFor(Math.min(SECONDS, 2), gw.ports.mqtt, Array(4).fill(fuzzer), report, false);
      console.log(report.summary("mqtt-limited", watch.errors.length));
      expect(watch.errors).toEqual([]);
      expect(report.broken).toEqual([]);
      expect(report.cases).toBeGreaterThan(BURST);
      expect(await metric(gw, `gateway_messages_refused_total{reason="connect-rate"}`)).toBeGreaterThan(0);
    },
    SECONDS * 1000 + 60_000,
  );

  it("kept the real device connected and serving", async () => {
    expect(legit.client.connected).toBe(true);
    await legit.event("press");
    await legit.waitForCommand("received");
  });

  it("lets the fuzzer's device back in once it slows down", async () => {
    const hello: FuzzCase = {
      kind: "after-the-flood",
      chunks: [connectAs(fuzzer.id, fuzzer.id, fuzzer.secret), generate({ cmd: "pingreq" })],
      promised: { connack: 0, pubacks: [], pingresp: true },
    };
    // Closed at the door while the address is over its limit; admitted within a second after.
    const admitted = async () => brokenPromise(hello, await exchange(gw.ports.mqtt, hello)) === undefined;
    await waitFor(admitted, 5000, "a connection to be admitted again");
  });
});
