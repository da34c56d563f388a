import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Alert } from "../../gateway/alerts/model.ts";
import { defaultPolicies } from "../../gateway/alerts/policy.ts";
import { migratePostgres, openPostgresStore, type PostgresStore } from "../../gateway/store/postgres.ts";
import { postgresMigrations } from "../../gateway/store/postgres-migrations.ts";
import { AlertChanged } from "../../gateway/store/types.ts";
import { startPostgres, type TestPostgres } from "../support/postgres.ts";

/** What only PostgreSQL does: several gateways on one database (the shared suite is repository.test.ts). */
let postgres: TestPostgres;
beforeAll(async () => {
  postgres = await startPostgres();
}, 60_000);
afterAll(async () => {
  await postgres?.destroy();
});

const T0 = Date.UTC(2026, 11, 1, 8, 0, 0);
const alert = (id: string, deadlineAt: number | null): Alert => ({
  id,
  kind: "call",
  deviceId: `btn-${id}`,
  subjectId: "resident-1",
  state: "open",
  level: 1,
  presses: 1,
  openedAt: T0,
  acceptedBy: null,
  acceptedAt: null,
  closedBy: null,
  closedAt: null,
  outcome: null,
  deadlineAt,
  policy: defaultPolicies.call,
  repeats: 0,
  reminders: 0,
  notified: [],
  unreached: false,
  exhausted: false,
  lastActivityAt: T0,
});

describe("PostgreSQL with several gateways", () => {
  const stores: PostgresStore[] = [];
  const open = async (url: string, n: number) => {
    const opened = await Promise.all(Array.from({ length: n }, () => openPostgresStore(url)));
    stores.push(...opened);
    return opened;
  };
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
  });
  const query = async (url: string, sql: string) => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      return (await client.query(sql)).rows;
    } finally {
      await client.end();
    }
  };

  it("migrates once when several gateways start together, and not again at the next start", async () => {
    const url = await postgres.createDatabase();
    await open(url, 4);
    const applied = await query(url, "SELECT version, applied_at FROM schema_migrations ORDER BY version");
    expect(applied.map((r) => r.version)).toEqual(postgresMigrations.map((m) => m.version));
    await open(url, 1);
    expect(await query(url, "SELECT version, applied_at FROM schema_migrations ORDER BY version")).toEqual(
      applied,
    );
  });

  it("rolls back a migration that fails, records nothing of it, and names it", async () => {
    const url = await postgres.createDatabase();
    const pool = new pg.Pool({ connectionString: url });
    try {
      const broken = {
        version: 99,
        name: "a broken one",
        sql: "CREATE TABLE half_done (x INTEGER); SELECT nope;",
      };
      await expect(migratePostgres(pool, [...postgresMigrations, broken])).rejects.toThrow(
        "PostgreSQL migration 99 (a broken one) failed",
      );
      expect(await query(url, "SELECT to_regclass('half_done') AS t")).toEqual([{ t: null }]);
      expect((await query(url, "SELECT MAX(version) AS v FROM schema_migrations"))[0].v).toBe(
        postgresMigrations.at(-1)?.version,
      );
    } finally {
      await pool.end();
    }
  });

  it("keeps one of the active twins a race left behind (migration 11), closes the others in the trail, then refuses new twins", async () => {
    const url = await postgres.createDatabase();
    const pool = new pg.Pool({ connectionString: url });
    try {
      await migratePostgres(
        pool,
        postgresMigrations.filter((m) => m.version < 11),
      );
      const insert = (id: string, kind: string, deviceId: string, openedAt: number, state = "open") =>
        pool.query(
          `INSERT INTO alerts (id, kind, device_id, subject_id, state, level, presses, opened_at, deadline_at)
           VALUES ($1, $2, $3, 'resident-1', $5, 1, 1, $4, $4)`,
          [id, kind, deviceId, openedAt, state],
        );
      // Three twins: the one accepted is kept, though the others are newer or more severe.
      await insert("accepted", "call", "btn-1", T0, "accepted");
      await insert("newer", "call", "btn-1", T0 + 5);
      await insert("severe", "sos", "btn-1", T0 + 3);
      await insert("offline", "device-offline", "btn-1", T0);
      // Two open twins elsewhere: the more severe is kept, though older.
      await insert("fall", "fall", "btn-2", T0);
      await insert("call", "call", "btn-2", T0 + 5);
    } finally {
      await pool.end();
    }
    const [store] = (await open(url, 1)) as [PostgresStore];
    for (const [id, kept, closedAt] of [
      ["newer", "accepted", T0 + 5],
      ["severe", "accepted", T0 + 5],
      ["call", "fall", T0 + 5],
    ] as const) {
      expect(await store.alerts.get(id)).toMatchObject({ state: "cancelled", closedAt, deadlineAt: null });
      expect((await store.alerts.events(id)).map((e) => [e.type, e.data])).toEqual([
        ["cancelled", { reason: "superseded", by: kept }],
      ]);
    }
    // The presses of the twins count in the one kept.
    expect(await store.alerts.get("accepted")).toMatchObject({ state: "accepted", presses: 3 });
    expect(await store.alerts.get("fall")).toMatchObject({ state: "open", presses: 2 });
    expect((await store.alerts.get("offline"))?.state).toBe("open");
    await expect(
      store.alerts.commit({ alert: { ...alert("again", T0), deviceId: "btn-1" }, events: [] }),
    ).rejects.toBeInstanceOf(AlertChanged);
  });

  it("gives events committed by different gateways at the same millisecond distinct, increasing stream keys", async () => {
    const url = await postgres.createDatabase();
    const [a, b] = await open(url, 2);
    const commits = (store: PostgresStore, prefix: string) =>
      Array.from({ length: 20 }, (_, i) =>
        store.alerts.commit({
          alert: alert(`${prefix}${i}`, T0 + 60_000),
          events: [{ at: T0, type: "opened", actor: null, data: {} }],
        }),
      );
    const stored = (
      await Promise.all([...commits(a as PostgresStore, "a"), ...commits(b as PostgresStore, "b")])
    ).flat();
    const keys = stored.map((e) => e.id);
    expect(new Set(keys).size).toBe(40);
    // Read back in commit order (the trail's own id), the keys increase.
    const trail = await query(url, "SELECT stream_key FROM alert_events ORDER BY id");
    const inCommitOrder = trail.map((r) => Number(r.stream_key));
    expect(inCommitOrder).toEqual([...inCommitOrder].sort((x, y) => x - y));
    expect(Math.min(...keys)).toBe(T0 * 1024);
  });

  it("hands each due deadline to one gateway at a time, claiming concurrently", async () => {
    const url = await postgres.createDatabase();
    const [a, b] = (await open(url, 2)) as [PostgresStore, PostgresStore];
    for (let i = 0; i < 60; i++) await a.alerts.commit({ alert: alert(`due-${i}`, T0 + i), events: [] });
    await a.alerts.commit({ alert: alert("later", T0 + 3_600_000), events: [] });
    await a.alerts.commit({ alert: alert("none", null), events: [] });

    const now = T0 + 1000;
    const claims = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).deadlineClaims.claimDue(now, 30_000, 8)),
    );
    const claimed = claims.flat().map((x) => x.id);
    expect(new Set(claimed).size).toBe(claimed.length);
    expect(claimed.sort()).toEqual(Array.from({ length: 60 }, (_, i) => `due-${i}`).sort());
    for (const batch of claims) {
      const due = batch.map((x) => x.deadlineAt as number);
      expect(due).toEqual([...due].sort((x, y) => x - y));
    }
    // All held: nothing to claim until a lease runs out.
    expect(await b.deadlineClaims.claimDue(now + 29_999, 30_000, 100)).toEqual([]);

    // A deadline that fired (its alert committed with the next one) is free to be claimed when due again.
    const fired = alert("due-0", now + 500);
    await a.alerts.commit({ alert: fired, events: [] });
    expect((await b.deadlineClaims.claimDue(now + 500, 30_000, 100)).map((x) => x.id)).toEqual(["due-0"]);
    // The gateway holding the others died: once their lease runs out, another takes them.
    const retaken = await b.deadlineClaims.claimDue(now + 30_000, 30_000, 100);
    expect(retaken.map((x) => x.id).sort()).toEqual(
      Array.from({ length: 59 }, (_, i) => `due-${i + 1}`).sort(),
    );
  });

  it("lets a slow gateway whose claim ran out fire nothing: the commit of a fired step is a compare-and-set", async () => {
    const url = await postgres.createDatabase();
    const [a, b] = (await open(url, 2)) as [PostgresStore, PostgresStore];
    await a.alerts.commit({ alert: alert("a1", T0), events: [] });
    const [seenByA] = await a.deadlineClaims.claimDue(T0, 5_000, 10);
    expect(seenByA?.id).toBe("a1");
    // A stalls past its lease; B claims the deadline and fires it.
    expect(await b.deadlineClaims.claimDue(T0 + 4_999, 5_000, 10)).toEqual([]);
    const [seenByB] = await b.deadlineClaims.claimDue(T0 + 5_000, 5_000, 10);
    expect(seenByB).toEqual(seenByA);
    const level2 = { ...alert("a1", T0 + 125_000), level: 2 };
    const paged = { at: T0 + 5_000, type: "notified" as const, actor: null, data: { level: 2 } };
    await b.alerts.commit({ alert: level2, events: [paged], previous: seenByB });
    // A wakes up and commits the same step: refused, nothing stored twice.
    await expect(
      a.alerts.commit({ alert: level2, events: [paged], previous: seenByA }),
    ).rejects.toBeInstanceOf(AlertChanged);
    expect(await query(url, "SELECT type FROM alert_events WHERE alert_id = 'a1'")).toEqual([
      { type: "notified" },
    ]);
    expect(await a.alerts.get("a1")).toEqual(level2);
    // The fired step released the claim: its next deadline goes to whoever sweeps when it is due.
    expect((await a.deadlineClaims.claimDue(T0 + 125_000, 5_000, 10)).map((x) => x.id)).toEqual(["a1"]);
  });
});
