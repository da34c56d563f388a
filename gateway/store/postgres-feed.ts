import { randomUUID } from "node:crypto";
import pg from "pg";
import type { Logger } from "pino";
import type { AccessChange } from "../bus/index.ts";
import type { AlertFeed } from "./types.ts";

const CHANNEL = "alert_events";
const ACCESS_CHANNEL = "access_changes";
/** NOTIFY's payload is under 8,000 bytes; a larger change is announced as "everything". */
const MAX_PAYLOAD = 7000;
const RELISTEN_MS = 1000;

/**
 * Wakes every gateway on the database when any of them has committed alert events, through
 * PostgreSQL's LISTEN/NOTIFY. A wake-up carries nothing: each gateway reads the trail after the
 * last key it streamed, so events reach every page in the order of their keys, whoever made them.
 * Changes of access travel the same way, on their own channel, with who was touched.
 */
export function postgresAlertFeed(url: string, pool: pg.Pool, log: Logger | undefined): AlertFeed {
  // Changes of access come back to the gateway that announced them: it knows them already.
  const self = randomUUID();
  return {
    announce: async () => {
      await pool.query("SELECT pg_notify($1, '')", [CHANNEL]);
    },
    announceAccess: async (change) => {
      const told = JSON.stringify({ from: self, change });
      const payload =
        Buffer.byteLength(told) <= MAX_PAYLOAD ? told : JSON.stringify({ from: self, change: null });
      await pool.query("SELECT pg_notify($1, $2)", [ACCESS_CHANNEL, payload]);
    },
    listen: async (onWake, onAccess) => {
      let client: pg.Client | undefined;
      let stopped = false;
      let listened = false;
      let retry: NodeJS.Timeout | undefined;
      const connect = async () => {
        const next = new pg.Client({ connectionString: url });
        // A lost connection (a restart, a failover) listens again; wake-ups missed meanwhile are
        // made up for by the reader's own periodic look at the trail.
        const again = () => {
          if (stopped || client !== next) return;
          client = undefined;
          retry = setTimeout(() => void connect(), RELISTEN_MS);
        };
        next.on("error", (err) => {
          log?.warn({ err: err.message }, "the alert feed lost its PostgreSQL connection; listening again");
          again();
        });
        next.on("end", again);
        next.on("notification", (n) => {
          if (n.channel !== ACCESS_CHANNEL) return onWake();
          const told = readAccessChange(n.payload);
          if (told.from !== self) onAccess(told.change);
        });
        client = next;
        try {
          await next.connect();
          await next.query(`LISTEN ${CHANNEL}`);
          await next.query(`LISTEN ${ACCESS_CHANNEL}`);
          // Whatever was committed while nobody listened; and changes of access announced then,
          // unknown: every stream is touched (it resumes losslessly), except at the first listen.
          onWake();
          if (listened) onAccess(null);
          listened = true;
        } catch {
          void next.end().catch(() => undefined);
          again();
        }
      };
      await connect();
      return async () => {
        stopped = true;
        clearTimeout(retry);
        await client?.end().catch(() => undefined);
      };
    },
  };
}

/** A change of access as announced; anything unreadable (another tool's NOTIFY) touches every stream. */
function readAccessChange(payload: string | undefined): { from?: string; change: AccessChange | null } {
  try {
    const told = JSON.parse(payload ?? "") as { from?: unknown; change?: unknown };
    const change = typeof told.change === "object" ? (told.change as AccessChange | null) : null;
    return { from: typeof told.from === "string" ? told.from : undefined, change };
  } catch {
    return { change: null };
  }
}
