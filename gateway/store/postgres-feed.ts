import pg from "pg";
import type { Logger } from "pino";
import type { AlertFeed } from "./types.ts";

const CHANNEL = "alert_events";
const RELISTEN_MS = 1000;

/**
 * Wakes every gateway on the database when any of them has committed alert events, through
 * PostgreSQL's LISTEN/NOTIFY. A wake-up carries nothing: each gateway reads the trail after the
 * last key it streamed, so events reach every page in the order of their keys, whoever made them.
 */
export function postgresAlertFeed(url: string, pool: pg.Pool, log: Logger | undefined): AlertFeed {
  return {
    announce: async () => {
      await pool.query("SELECT pg_notify($1, '')", [CHANNEL]);
    },
    listen: async (onWake) => {
      let client: pg.Client | undefined;
      let stopped = false;
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
        next.on("notification", () => onWake());
        client = next;
        try {
          await next.connect();
          await next.query(`LISTEN ${CHANNEL}`);
          // Whatever was committed while nobody listened.
          onWake();
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
