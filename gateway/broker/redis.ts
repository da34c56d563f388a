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
    // Without a TTL a device away for a month would hear a month of old commands at its return.
    this.persistence = redisPersistence({ conn: db, packetTTL: () => options.queuedTtlSec });
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
    for (const connection of this.connections) connection.disconnect();
  }
}
