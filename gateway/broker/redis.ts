import { randomUUID } from "node:crypto";
import type { EventEmitter } from "node:events";
import { createRequire } from "node:module";
import { Redis } from "ioredis";
import MQEmitterRedis from "mqemitter-redis";
import type { Logger } from "pino";

// aedes-persistence-redis ships no types; aedes takes its persistence untyped too.
const redisPersistence = createRequire(import.meta.url)("aedes-persistence-redis") as (options: {
  conn: Redis;
  packetTTL: () => number;
}) => { destroy(): Promise<void> };

/**
 * What several gateways' brokers share in Redis, the aedes way: the emitter that carries every
 * publish to every instance (`mqemitter-redis`), and the persistence that keeps sessions,
 * subscriptions and the QoS 1 queues of offline devices (`aedes-persistence-redis`). A command
 * published on one instance reaches the device on whichever instance holds its connection, and a
 * device connecting to one instance closes its older connection on another (aedes announces every
 * new client on the shared emitter).
 *
 * While Redis is unreachable its commands wait, rather than fail: aedes treats a failed
 * persistence call as fatal and would never finish that publish. So PUBACKs and commands are late
 * during an outage, not lost; ioredis reconnects by itself and the gateway reports unready
 * meanwhile.
 */
export class BrokerRedis {
  /** Its `state` reports the connections' errors (untyped). */
  readonly mq: MQEmitterRedis.MQEmitterRedis & { state: EventEmitter };
  readonly persistence: ReturnType<typeof redisPersistence>;
  /** Which devices each instance holds a connection to. */
  readonly presence: DevicePresence;
  private readonly connections: Redis[];
  private outage = false;

  /** `queuedTtlSec`: how long a command queued for an offline device is kept, as the outbox keeps it. */
  constructor(url: string, options: { queuedTtlSec: number }, log: Logger) {
    const connect = (name: string) =>
      new Redis(url, {
        connectionName: `gateway-${name}`,
        maxRetriesPerRequest: null,
        enableAutoPipelining: true,
      });
    const [pub, sub, db] = [connect("pub"), connect("sub"), connect("sessions")];
    this.connections = [pub, sub, db];
    // aedes' own emitter matches `#` on the parent level too (MQTT-4.7.1-3); the shared one must as well.
    this.mq = MQEmitterRedis({ pubConn: pub, subConn: sub, matchEmptyLevels: true }) as BrokerRedis["mq"];
    // The emitter quits these two when aedes closes and drops the promise. A gateway stopping
    // while Redis is down has cut them already (see `close`), and that quit's "Connection is
    // closed" would be thrown out of the process.
    for (const connection of [pub, sub]) {
      const quit = connection.quit.bind(connection);
      connection.quit = (() => quit().catch(() => "OK")) as Redis["quit"];
    }
    // Without a TTL a device away for a month would hear a month of old commands at its return.
    this.persistence = redisPersistence({ conn: db, packetTTL: () => options.queuedTtlSec });
    this.presence = new DevicePresence(db);
    // Logged once per outage: ioredis reports every failed reconnect.
    const down = (err: Error) => {
      if (this.outage) return;
      this.outage = true;
      log.error({ err: err.message }, "Redis unreachable: broker traffic between instances waits for it");
    };
    const up = () => {
      if (!this.outage || !this.isUp()) return;
      this.outage = false;
      log.info("Redis reachable again");
    };
    // Without listeners, mqemitter-redis would throw its connection errors out of the process.
    this.mq.state.on("error", down);
    for (const connection of this.connections) {
      connection.on("error", down);
      connection.on("ready", up);
    }
  }

  /** Every connection to Redis is up. */
  isUp(): boolean {
    return this.connections.every((c) => c.status === "ready");
  }

  /** Resolves as soon as a connection to Redis is down (at once if one is). */
  unreachable(): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.isUp()) return;
        for (const connection of this.connections) connection.off("close", check);
        resolve();
      };
      for (const connection of this.connections) connection.on("close", check);
      check();
    });
  }

  /**
   * Ends every connection, also one waiting to reconnect. Called after aedes closed, which quit
   * the emitter's two; the persistence's own `destroy()` would unsubscribe through that closed
   * emitter and wait for nothing.
   */
  async close(): Promise<void> {
    await this.presence.stop();
    for (const connection of this.connections) connection.disconnect();
  }
}

const INSTANCES = "gateway:instances";
/** An instance that stopped renewing is taken for gone after this long (its set expires too). */
const PRESENCE_TTL_MS = 30_000;
const PRESENCE_RENEW_MS = 10_000;
/** How long one read of the others' devices serves: a device list asks once per device. */
const ELSEWHERE_FRESH_MS = 1000;
/** How long a request waits for Redis to say where devices are before answering without it. */
const ELSEWHERE_WAIT_MS = 200;

/**
 * Which devices each instance holds a connection to, in Redis: one set per instance, written
 * afresh from the connections it holds at every renewal (so that a Redis restarted or flushed is
 * right again within 10 s), so that any instance can say whether a device is connected anywhere.
 * An instance killed counts for nothing once it stopped renewing, and its set expires.
 */
export class DevicePresence {
  private readonly id = randomUUID();
  private readonly key = `gateway:devices:${this.id}`;
  private timer: NodeJS.Timeout | undefined;
  private read: { at: number; devices: Promise<Set<string>> } | undefined;
  private held: () => Iterable<string> = () => [];

  constructor(private readonly redis: Redis) {}

  /** Starts renewing; `held`: the devices connected to this instance now. */
  start(held: () => Iterable<string>): void {
    this.held = held;
    this.timer = setInterval(() => void this.renew(), PRESENCE_RENEW_MS);
    this.timer.unref();
    void this.renew();
  }

  connected(deviceId: string): void {
    // The set expires with this instance, also when it is the set's first device.
    void Promise.all([
      this.redis.sadd(this.key, deviceId),
      this.redis.pexpire(this.key, PRESENCE_TTL_MS),
    ]).catch(() => undefined);
  }

  disconnected(deviceId: string): void {
    void this.redis.srem(this.key, deviceId).catch(() => undefined);
  }

  /**
   * Devices connected to the other living instances; none known while Redis is unreachable or
   * slow to answer (a request waits for Redis to come back: the API must not).
   */
  elsewhere(): Promise<Set<string>> {
    const now = Date.now();
    if (this.read && now - this.read.at < ELSEWHERE_FRESH_MS) return this.read.devices;
    const none = new Set<string>();
    const asked =
      this.redis.status !== "ready"
        ? Promise.resolve(none)
        : this.redis.zrangebyscore(INSTANCES, now, "+inf").then(async (ids) => {
            const others = ids.filter((id) => id !== this.id).map((id) => `gateway:devices:${id}`);
            return new Set(others.length > 0 ? await this.redis.sunion(...others) : []);
          });
    const devices = Promise.race([
      asked.catch(() => none),
      new Promise<Set<string>>((resolve) => setTimeout(() => resolve(none), ELSEWHERE_WAIT_MS).unref()),
    ]);
    this.read = { at: now, devices };
    return devices;
  }

  /** Leaves at once when Redis answers (else this instance's entry expires by itself). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    if (this.redis.status !== "ready") return;
    const leave = Promise.all([this.redis.del(this.key), this.redis.zrem(INSTANCES, this.id)]);
    await Promise.race([leave, new Promise((resolve) => setTimeout(resolve, 1000).unref())]).catch(
      () => undefined,
    );
  }

  private async renew(): Promise<void> {
    const now = Date.now();
    const held = [...this.held()];
    const write = this.redis.multi().del(this.key);
    if (held.length > 0) write.sadd(this.key, ...held).pexpire(this.key, PRESENCE_TTL_MS);
    await Promise.all([
      write.exec(),
      this.redis.zadd(INSTANCES, now + PRESENCE_TTL_MS, this.id),
      this.redis.zremrangebyscore(INSTANCES, "-inf", now - PRESENCE_TTL_MS),
    ]).catch(() => undefined);
  }
}
