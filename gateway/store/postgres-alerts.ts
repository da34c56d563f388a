import { isDeepStrictEqual } from "node:util";
import type pg from "pg";
import type { Alert, AlertEvent, AlertState } from "../alerts/model.ts";
import { alertStates } from "../alerts/model.ts";
import type { DeviceEvent } from "../ingest/contract.ts";
import type { ReportAlert } from "../reports/monthly.ts";
import { changes, isUniqueViolation, json, LOCKS, type Row, row, rows, transaction } from "./postgres-db.ts";
import { toAlert, toAttempt, toEvent } from "./rows.ts";
import {
  AlertChanged,
  type AlertRepository,
  type AttemptRepository,
  type DeadlineClaims,
  type DeviceEventRepository,
  type OrphanClaims,
  type StoredDeviceEvent,
} from "./types.ts";

export type { DeadlineClaims, OrphanClaims };

/** An event's public id is its time in ms times this, plus one per event sharing the millisecond (as in SQLite). */
const STREAM_KEYS_PER_MS = 1024;

const toStored = (r: Row): StoredDeviceEvent => ({
  id: r.id as number,
  deviceId: r.device_id as string,
  message: { type: r.type, ts: r.ts, seq: r.seq } as DeviceEvent,
  receivedAt: r.received_at as number,
});

/** `gatewayId`: this gateway, recorded as the receiver of each event it stores (see OrphanClaims). */
export function postgresDeviceEvents(pool: pg.Pool, gatewayId: string): DeviceEventRepository {
  return {
    // A re-delivery of the same (device, seq, ts) inserts nothing and returns no id.
    record: async (deviceId, m, receivedAt) =>
      (
        await row(
          pool,
          `INSERT INTO device_events (device_id, seq, ts, type, received_at, gateway_id) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT DO NOTHING RETURNING id`,
          [deviceId, m.seq, m.ts, m.type, receivedAt, gatewayId],
        )
      )?.id as number | undefined,
    unhandled: async () =>
      (await rows(pool, "SELECT * FROM device_events WHERE NOT handled ORDER BY id")).map(toStored),
    find: async (deviceId, seq, ts) => {
      const r = await row(pool, "SELECT * FROM device_events WHERE device_id = $1 AND seq = $2 AND ts = $3", [
        deviceId,
        seq,
        ts,
      ]);
      return r && { ...toStored(r), handled: r.handled as boolean };
    },
    markHandled: async (id) => {
      await pool.query("UPDATE device_events SET handled = true WHERE id = $1", [id]);
    },
  };
}

const upsertAlert = `
  INSERT INTO alerts (id, kind, device_id, subject_id, state, level, presses, opened_at, accepted_by, accepted_at,
    closed_by, closed_at, outcome, deadline_at, policy, repeats, reminders, notified, unreached, exhausted,
    last_activity_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
  ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, state = excluded.state, level = excluded.level,
    presses = excluded.presses, accepted_by = excluded.accepted_by, accepted_at = excluded.accepted_at,
    closed_by = excluded.closed_by, closed_at = excluded.closed_at, outcome = excluded.outcome,
    deadline_at = excluded.deadline_at, policy = excluded.policy, repeats = excluded.repeats,
    reminders = excluded.reminders, notified = excluded.notified, unreached = excluded.unreached,
    exhausted = excluded.exhausted, last_activity_at = excluded.last_activity_at,
    claimed_until = CASE WHEN alerts.deadline_at IS DISTINCT FROM excluded.deadline_at THEN NULL
      ELSE alerts.claimed_until END`;

const alertParams = (a: Alert) => [
  a.id,
  a.kind,
  a.deviceId,
  a.subjectId,
  a.state,
  a.level,
  a.presses,
  a.openedAt,
  a.acceptedBy,
  a.acceptedAt,
  a.closedBy,
  a.closedAt,
  a.outcome,
  a.deadlineAt,
  json(a.policy),
  a.repeats,
  a.reminders,
  json(a.notified),
  a.unreached,
  a.exhausted,
  a.lastActivityAt,
];

const closedBefore = "SELECT id FROM alerts WHERE state IN ('resolved','cancelled') AND closed_at < $1";

/** `gatewayId`: this gateway, recorded as the sender of each page it commits (see PageClaims). */
export function postgresAlerts(pool: pg.Pool, gatewayId: string): AlertRepository {
  const lastKey = async (db: pg.Pool | pg.PoolClient) =>
    ((await row(db, "SELECT MAX(stream_key) AS k FROM alert_events"))?.k as number | null) ?? 0;
  return {
    get: async (id) => {
      const r = await row(pool, "SELECT * FROM alerts WHERE id = $1", [id]);
      return r && toAlert(r);
    },
    findActive: async (deviceId, kinds) => {
      const r = await row(
        pool,
        `SELECT * FROM alerts WHERE device_id = $1 AND kind = ANY($2::text[]) AND state IN ('open','accepted')
         ORDER BY opened_at DESC LIMIT 1`,
        [deviceId, kinds],
      );
      return r && toAlert(r);
    },
    list: async ({ states, subjectIds, limit }) =>
      (
        await rows(
          pool,
          `SELECT * FROM alerts WHERE state = ANY($1::text[]) AND ($2::text[] IS NULL OR subject_id = ANY($2::text[]))
           ORDER BY opened_at DESC LIMIT $3`,
          [states ?? [...alertStates], subjectIds ?? null, limit],
        )
      ).map(toAlert),
    forReport: async ({ from, to, subjectIds }) =>
      (
        await rows(
          pool,
          `SELECT a.id, a.kind, a.subject_id, p.name AS subject_name, a.device_id, a.state, a.opened_at, a.closed_at,
             (SELECT MIN(at) FROM alert_events e WHERE e.alert_id = a.id AND (e.type IN ('accepted', 'resolved')
                OR (e.type = 'cancelled' AND e.data->>'reason' = 'false-alarm'))) AS first_answered_at,
             (SELECT e.data->>'reason' FROM alert_events e
                WHERE e.alert_id = a.id AND e.type = 'cancelled' ORDER BY id DESC LIMIT 1) AS close_reason,
             (SELECT MAX((e.data->>'level')::integer) FROM alert_events e
                WHERE e.alert_id = a.id AND e.type = 'notified') AS max_level
           FROM alerts a JOIN people p ON p.id = a.subject_id
           WHERE a.opened_at < $1 AND (a.closed_at IS NULL OR a.closed_at >= $2)
             AND ($3::text[] IS NULL OR a.subject_id = ANY($3::text[]))`,
          [to, from, subjectIds ?? null],
        )
      ).map(
        (r): ReportAlert => ({
          id: r.id as string,
          kind: r.kind as ReportAlert["kind"],
          subjectId: r.subject_id as string,
          subjectName: r.subject_name as string,
          deviceId: r.device_id as string,
          state: r.state as ReportAlert["state"],
          openedAt: r.opened_at as number,
          firstAnsweredAt: (r.first_answered_at as number | null) ?? null,
          closedAt: (r.closed_at as number | null) ?? null,
          closeReason: (r.close_reason as string | null) ?? null,
          maxLevel: (r.max_level as number | null) ?? 0,
        }),
      ),
    /** Retention: closed alerts with their trail and attempts, and handled device events, older than `before`. */
    prune: (before) =>
      transaction(pool, async (tx) => {
        await tx.query(`DELETE FROM notification_attempts WHERE alert_id IN (${closedBefore})`, [before]);
        await tx.query(`DELETE FROM page_senders WHERE alert_id IN (${closedBefore})`, [before]);
        await tx.query(`DELETE FROM alert_events WHERE alert_id IN (${closedBefore})`, [before]);
        await tx.query("DELETE FROM device_events WHERE handled AND received_at < $1", [before]);
        return changes(tx, "DELETE FROM alerts WHERE state IN ('resolved','cancelled') AND closed_at < $1", [
          before,
        ]);
      }),
    countByState: async () => {
      const counts = Object.fromEntries(alertStates.map((s) => [s, 0])) as Record<AlertState, number>;
      for (const r of await rows(pool, "SELECT state, COUNT(*) AS n FROM alerts GROUP BY state"))
        counts[r.state as AlertState] = r.n as number;
      return counts;
    },
    commit: (change) =>
      transaction(pool, async (tx) => {
        // Compare-and-set: the row stays locked from this check to the commit.
        if (change.previous) {
          const stored = await row(tx, "SELECT * FROM alerts WHERE id = $1 FOR UPDATE", [change.alert.id]);
          if (!stored || !isDeepStrictEqual(toAlert(stored), change.previous))
            throw new AlertChanged(change.alert.id);
        }
        await tx.query(upsertAlert, alertParams(change.alert)).catch((err) => {
          // One active alert per device and kind: another gateway opened it first; this decision
          // is taken again and joins that one.
          throw !change.previous && isUniqueViolation(err) ? new AlertChanged(change.alert.id) : err;
        });
        // A press is turned into an alert once: another gateway that got there first (the device
        // re-sent it to that one) wins, and this one decides again on what it stored.
        if (
          change.handledEventId !== undefined &&
          (await changes(tx, "UPDATE device_events SET handled = true WHERE id = $1 AND NOT handled", [
            change.handledEventId,
          ])) === 0
        )
          throw new AlertChanged(change.alert.id);
        if (change.events.length === 0) return [];
        // Stream keys increase in the order events are committed, across every gateway on this
        // database: the commits that add events take them one at a time, under a lock taken last
        // (append_alert_events), so that it is held from this round trip to the commit only.
        const keys = await rows(
          tx,
          `SELECT key FROM append_alert_events($1, $2, $3, $4, $5, $6, $7, $8) WITH ORDINALITY AS t(key, n)
           ORDER BY n`,
          [
            LOCKS.streamKeys,
            STREAM_KEYS_PER_MS,
            change.alert.id,
            gatewayId,
            change.events.map((e) => e.at),
            change.events.map((e) => e.type),
            change.events.map((e) => e.actor),
            change.events.map((e) => json(e.data)),
          ],
        );
        if (keys.length !== change.events.length)
          throw new Error(`append_alert_events stored ${keys.length} of ${change.events.length} events`);
        return change.events.map(
          (e, i): AlertEvent => ({ ...e, id: keys[i]?.key as number, alertId: change.alert.id }),
        );
      }),
    events: async (alertId) =>
      (await rows(pool, "SELECT * FROM alert_events WHERE alert_id = $1 ORDER BY id", [alertId])).map(
        toEvent,
      ),
    eventsAfter: async (id, limit) =>
      (
        await rows(pool, "SELECT * FROM alert_events WHERE stream_key > $1 ORDER BY stream_key LIMIT $2", [
          id,
          limit,
        ])
      ).map(toEvent),
    // The key of "now" (later events exceed it), unless the clock stepped back behind the last event.
    streamPosition: async (now) => Math.max(await lastKey(pool), now * STREAM_KEYS_PER_MS - 1),
    withDeadlines: async () =>
      (await rows(pool, "SELECT * FROM alerts WHERE deadline_at IS NOT NULL ORDER BY deadline_at")).map(
        toAlert,
      ),
    adoptPolicies: (policyOf) =>
      transaction(pool, async (tx) => {
        let changed = 0;
        for (const { kind } of await rows(tx, "SELECT DISTINCT kind FROM alerts WHERE policy IS NULL")) {
          changed += await changes(tx, "UPDATE alerts SET policy = $1 WHERE policy IS NULL AND kind = $2", [
            json(policyOf(kind as Alert["kind"])),
            kind,
          ]);
        }
        return changed;
      }),
  };
}

export function postgresAttempts(pool: pg.Pool): AttemptRepository {
  return {
    start: async (a) =>
      (
        await row(
          pool,
          `INSERT INTO notification_attempts (alert_id, level, person_id, channel, event, address, attempt, at, status, payload, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $10) RETURNING id`,
          [
            a.alertId,
            a.level,
            a.personId,
            a.channel,
            a.event,
            a.address,
            a.attempt,
            a.at,
            a.payload ?? null,
            a.expiresAt ?? null,
          ],
        )
      )?.id as number,
    finish: async (id, status, detail) => {
      await pool.query("UPDATE notification_attempts SET status = $1, detail = $2 WHERE id = $3", [
        status,
        detail,
        id,
      ]);
    },
    forAlert: async (alertId) =>
      (
        await rows(pool, "SELECT * FROM notification_attempts WHERE alert_id = $1 ORDER BY id", [alertId])
      ).map(toAttempt),
    failing: async (contacts) => {
      const failing = new Set<string>();
      for (const c of contacts) {
        const last = await row(
          pool,
          // "channel <> 'device'" lets PostgreSQL use the partial index notification_attempts_contact.
          `SELECT status FROM notification_attempts WHERE address = $1 AND channel = $2 AND channel <> 'device'
             AND status NOT IN ('pending','expired') ORDER BY id DESC LIMIT 1`,
          [c.address, c.kind],
        );
        if (last?.status === "failed") failing.add(`${c.kind} ${c.address}`);
      }
      return failing;
    },
    pendingCommandAddresses: async () =>
      (
        await rows(
          pool,
          "SELECT DISTINCT address FROM notification_attempts WHERE channel = 'device' AND status = 'pending'",
        )
      ).map((r) => r.address as string),
    // Read first: most devices that connect have nothing waiting, and a read costs no commit.
    pendingCommands: async (address, now) => {
      const pending = await rows(
        pool,
        `SELECT id, payload, expires_at FROM notification_attempts
         WHERE channel = 'device' AND status = 'pending' AND address = $1 ORDER BY id`,
        [address],
      );
      const expired = pending.filter((r) => r.expires_at !== null && (r.expires_at as number) <= now);
      if (expired.length > 0)
        await pool.query(
          "UPDATE notification_attempts SET status = 'expired' WHERE id = ANY($1::bigint[]) AND status = 'pending'",
          [expired.map((r) => r.id)],
        );
      return pending
        .filter((r) => !expired.includes(r))
        .map((r) => ({ id: r.id as number, payload: r.payload as string }));
    },
    commandAcknowledged: (address, payload, at) =>
      changes(
        pool,
        `UPDATE notification_attempts SET status = 'delivered', detail = $1
           WHERE channel = 'device' AND status = 'pending' AND address = $2 AND payload = $3`,
        [`acknowledged at ${new Date(at).toISOString()}`, address, payload],
      ),
  };
}

export function postgresDeadlineClaims(pool: pg.Pool): DeadlineClaims {
  return {
    // SKIP LOCKED: a row another claim is taking is left to it, not waited for; one it has just
    // taken no longer matches (PostgreSQL re-checks the condition on the row it locks).
    claimDue: async (now, leaseMs, limit) =>
      (
        await rows(
          pool,
          `UPDATE alerts SET claimed_until = $1::bigint + $2::bigint WHERE id IN (
             SELECT id FROM alerts WHERE deadline_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1)
             ORDER BY deadline_at LIMIT $3 FOR UPDATE SKIP LOCKED)
           RETURNING *`,
          [now, leaseMs, limit],
        )
      )
        .map(toAlert)
        .sort((a, b) => (a.deadlineAt as number) - (b.deadlineAt as number)),
  };
}

/** How long a gateway that stopped renewing is remembered, for the logs of whoever took its pages. */
const FORGET_GATEWAYS_MS = 24 * 3_600_000;

export function postgresOrphanClaims(pool: pg.Pool, gatewayId: string): OrphanClaims {
  const notAlive = (column: string) =>
    `NOT EXISTS (SELECT 1 FROM gateways g WHERE g.id = ${column} AND g.alive_until >= $2)`;
  return {
    renew: async (now, until) => {
      await pool.query(
        `WITH forgotten AS (DELETE FROM gateways WHERE alive_until < $3 AND id <> $1)
         INSERT INTO gateways (id, alive_until) VALUES ($1, $2)
           ON CONFLICT (id) DO UPDATE SET alive_until = excluded.alive_until`,
        [gatewayId, until, now - FORGET_GATEWAYS_MS],
      );
    },
    // Two gateways taking at once: the second waits for the first's rows and, re-checking them,
    // finds them owned by a gateway alive (the first renewed before taking), so leaves them. Only
    // a gateway whose very first renewal committed after the second's query began looks dead to
    // it: that race sends a page twice (or decides an event twice, which the alert's commit
    // refuses), never none.
    takeOrphans: async (now) => {
      const pages = await rows(
        pool,
        `UPDATE page_senders s SET gateway_id = $1 FROM alerts a
           WHERE a.id = s.alert_id AND a.state = 'open' AND s.gateway_id <> $1 AND ${notAlive("s.gateway_id")}
         RETURNING s.alert_id, s.event_id`,
        [gatewayId, now],
      );
      const events = await rows(
        pool,
        `UPDATE device_events e SET gateway_id = $1
           WHERE NOT handled AND e.gateway_id IS DISTINCT FROM $1 AND ${notAlive("e.gateway_id")}
         RETURNING *`,
        [gatewayId, now],
      );
      return {
        pages: pages.map((r) => ({ alertId: r.alert_id as string, eventId: Number(r.event_id) })),
        events: events.map(toStored).sort((a, b) => a.id - b.id),
      };
    },
  };
}
