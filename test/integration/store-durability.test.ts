import { statSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { openSqliteStore, type SqliteOptions } from "../../gateway/store/sqlite.ts";
import type { TelemetryPoint } from "../../gateway/store/telemetry.ts";
import type { DeviceState, Store } from "../../gateway/store/types.ts";
import { tempDataDir } from "../support/gateway.ts";

/**
 * The write path without a disk flush on the event loop: commits go to the operating system, a
 * write resolves once a flush of the WAL covers it (shared by the writes made meanwhile), and
 * telemetry lives in its own database, written in chunks. Real SQLite files throughout; only the
 * flush itself is replaced where a test needs a disk that is slow or fails.
 */
describe("the store's write path", () => {
  const open: Store[] = [];
  const openStore = (dataDir = tempDataDir(), options: SqliteOptions = {}) => {
    const store = openSqliteStore(dataDir, options);
    open.push(store);
    return store;
  };
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });

  /** A few turns of the event loop (a held flush never settles, so the fake clock's settle would wait forever). */
  const settle = async () => {
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  };
  const entry = (i: number) => ({ at: i, actor: "test", action: "write", target: String(i), detail: null });

  /** A disk whose flushes wait until released, or fail with `code`. */
  const controlledDisk = () => {
    const flushes: { release: () => void; fail: (code: string) => void }[] = [];
    const sync = () =>
      new Promise<void>((resolve, reject) =>
        flushes.push({
          release: resolve,
          fail: (code) => reject(Object.assign(new Error(`flush failed: ${code}`), { code })),
        }),
      );
    return { flushes, sync };
  };

  it("groups concurrent writes into fewer flushes, and every one of them is stored", async () => {
    const store = openStore();
    await Promise.all(Array.from({ length: 200 }, (_, i) => store.audit.record(entry(i))));
    const { flushes, writes } = store.flushCounts();
    expect(writes).toBe(200);
    expect(flushes).toBeGreaterThanOrEqual(1);
    expect(flushes).toBeLessThan(writes);
    expect(await store.audit.list({ action: "write", limit: 1000 })).toHaveLength(200);
  });

  it("resolves a write only once a flush that began after its commit has finished", async () => {
    const disk = controlledDisk();
    const store = openStore(undefined, { sync: disk.sync });
    let first = false;
    let second = false;
    void store.audit.record(entry(1)).then(() => (first = true));
    await settle();
    expect(disk.flushes).toHaveLength(1);
    // Committed while the first flush runs: that flush may not cover it, so it waits for the next.
    void store.audit.record(entry(2)).then(() => (second = true));
    await settle();
    expect([first, second, disk.flushes.length]).toEqual([false, false, 1]);
    disk.flushes[0]?.release();
    await settle();
    expect([first, second, disk.flushes.length]).toEqual([true, false, 2]);
    disk.flushes[1]?.release();
    await settle();
    expect(second).toBe(true);
    // Reads never wait for a flush.
    expect(await store.audit.list({ action: "write", limit: 10 })).toHaveLength(2);
    expect(disk.flushes).toHaveLength(2);
  });

  it("lets the writes one message causes share one flush: one committed at once, the next joining before the flush starts", async () => {
    const disk = controlledDisk();
    const store = openStore(undefined, { sync: disk.sync });
    // Resolves with nothing flushed, and asks for no flush: the caller decides when to wait.
    await store.committed(() => store.audit.record(entry(1)));
    await settle();
    expect(disk.flushes).toHaveLength(0);
    const done: string[] = [];
    void store.durable().then(() => done.push("durable"));
    void store.audit.record(entry(2)).then(() => done.push("second write"));
    await settle();
    expect([done, disk.flushes.length]).toEqual([[], 1]);
    disk.flushes[0]?.release();
    await settle();
    expect([done.sort(), disk.flushes.length]).toEqual([["durable", "second write"], 1]);
    expect(store.flushCounts()).toEqual({ flushes: 1, writes: 2 });
  });

  it("refuses `durable` when its flush fails, and counts that as a failed write", async () => {
    const disk = controlledDisk();
    const failures: string[] = [];
    const store = openStore(undefined, { sync: disk.sync, onStorageFailure: (code) => failures.push(code) });
    await store.committed(() => store.audit.record(entry(1)));
    const durable = store.durable();
    await settle();
    disk.flushes[0]?.fail("EIO");
    await expect(durable).rejects.toMatchObject({ code: "EIO" });
    expect(failures).toEqual(["EIO"]);
  });

  it("refuses a write whose flush failed, is unready until the disk flushes again, and loses nothing", async () => {
    const disk = controlledDisk();
    const failures: string[] = [];
    const store = openStore(undefined, { sync: disk.sync, onStorageFailure: (code) => failures.push(code) });
    const write = store.audit.record(entry(1));
    await settle();
    disk.flushes[0]?.fail("EIO");
    await expect(write).rejects.toMatchObject({ code: "EIO" });
    expect(failures).toEqual(["EIO"]);
    const unready = store.ping();
    await settle();
    disk.flushes[1]?.fail("EIO");
    await expect(unready).rejects.toThrow("flush failed: EIO");
    // The commit itself is in the database: the retry (a device re-sending) finds it.
    expect(await store.audit.list({ action: "write", limit: 10 })).toHaveLength(1);
    const ready = store.ping();
    await settle();
    disk.flushes[2]?.release();
    await ready;
    expect(disk.flushes).toHaveLength(3);
  });

  it("keeps what the heartbeats tell in its own database, moving what an older version kept in gateway.db", async () => {
    const dataDir = tempDataDir();
    // An older gateway.db, with telemetry, spool, device state and zone track rows in it.
    await openStore(dataDir).close();
    const old = new Database(join(dataDir, "gateway.db"));
    old.exec(`
      CREATE TABLE telemetry (device_id TEXT NOT NULL, ts INTEGER NOT NULL, received_at INTEGER NOT NULL,
        battery REAL NOT NULL, lat REAL, lon REAL, accuracy REAL, source TEXT, fix TEXT NOT NULL);
      CREATE TABLE telemetry_spool (id INTEGER PRIMARY KEY AUTOINCREMENT, point TEXT NOT NULL);
      CREATE TABLE device_state (device_id TEXT PRIMARY KEY, state TEXT NOT NULL);
      CREATE TABLE zone_tracks (device_id TEXT NOT NULL, geofence_id TEXT NOT NULL, status TEXT NOT NULL,
        streak INTEGER NOT NULL, last_ts INTEGER NOT NULL, PRIMARY KEY (device_id, geofence_id));
      INSERT INTO telemetry VALUES ('tag-1', 1000, 1000, 80, 29.65, 91.13, 10, 'gps', 'ok');
      INSERT INTO telemetry VALUES ('tag-1', 2000, 2000, 79, NULL, NULL, NULL, NULL, 'no-fix');
      INSERT INTO telemetry_spool (point) VALUES ('{"deviceId":"tag-1","ts":3000}');
      INSERT INTO device_state VALUES ('tag-1', '{"deviceId":"tag-1","lastSeenAt":2000,"battery":79}');
      INSERT INTO zone_tracks VALUES ('tag-1', 'school', 'outside', 3, 2000);
    `);
    old.close();
    const store = openStore(dataDir);
    expect((await store.telemetry.track("tag-1", 0, 5000, 10)).map((p) => p.ts)).toEqual([1000, 2000]);
    expect(await store.spool.count()).toBe(1);
    expect(await store.tracking.loadStates()).toEqual([{ deviceId: "tag-1", lastSeenAt: 2000, battery: 79 }]);
    expect(await store.tracking.loadZoneTracks()).toEqual([
      { deviceId: "tag-1", geofenceId: "school", track: { status: "outside", streak: 3, lastTs: 2000 } },
    ]);
    const tables = (file: string) => {
      const db = new Database(join(dataDir, file), { readonly: true });
      const names = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .pluck()
        .all() as string[];
      db.close();
      return names;
    };
    const moved = ["telemetry", "telemetry_spool", "device_state", "zone_tracks"];
    expect(tables("gateway.db").filter((name) => moved.includes(name))).toEqual([]);
    expect(tables("telemetry.db")).toEqual(expect.arrayContaining(moved));
    // Opened again, nothing is moved twice.
    await store.close();
    const again = openStore(dataDir);
    expect((await again.telemetry.track("tag-1", 0, 5000, 10)).length).toBe(2);
    expect(await again.tracking.loadStates()).toHaveLength(1);
  });

  it("finishes a move cut short after the copy, keeping the rows telemetry.db has since written", async () => {
    const dataDir = tempDataDir();
    const store = openStore(dataDir);
    await store.tracking.save([{ deviceId: "tag-1", lastSeenAt: 9000 } as DeviceState], []);
    await store.close();
    // The copy made, then a crash before the drop: gateway.db still has the older row.
    const old = new Database(join(dataDir, "gateway.db"));
    old.exec(`
      CREATE TABLE device_state (device_id TEXT PRIMARY KEY, state TEXT NOT NULL);
      INSERT INTO device_state VALUES ('tag-1', '{"deviceId":"tag-1","lastSeenAt":2000}');
      INSERT INTO device_state VALUES ('tag-2', '{"deviceId":"tag-2","lastSeenAt":2000}');
    `);
    old.close();
    const again = openStore(dataDir);
    expect(await again.tracking.loadStates()).toEqual([
      { deviceId: "tag-1", lastSeenAt: 9000 },
      { deviceId: "tag-2", lastSeenAt: 2000 },
    ]);
  });

  it("saves a district's device states without a page in gateway.db's log, which every press flushes", async () => {
    const dataDir = tempDataDir();
    const store = openStore(dataDir);
    const log = join(dataDir, "gateway.db-wal");
    const before = statSync(log).size;
    const states = Array.from({ length: 2000 }, (_, i) => ({
      deviceId: `tag-${i}`,
      lastSeenAt: 1000,
      lastTs: 1000,
      battery: 80,
      batteryLow: false,
      online: true,
      position: { lat: 29.65, lon: 91.13, accuracy: 10, source: "gps", ts: 1000 },
    }));
    await store.tracking.save(states, [
      { deviceId: "tag-1", geofenceId: "school", track: { status: "inside", streak: 2, lastTs: 1000 } },
    ]);
    expect(statSync(log).size).toBe(before);
    expect(await store.tracking.loadStates()).toHaveLength(2000);
    expect(await store.tracking.loadZoneTracks()).toHaveLength(1);
  });

  it("writes a large telemetry batch a chunk at a time with the event loop free in between, all or nothing", async () => {
    const store = openStore();
    const point = (i: number): TelemetryPoint => ({
      deviceId: "tag-1",
      ts: i,
      receivedAt: i,
      battery: 80,
      fix: "ok",
    });
    let turns = 0;
    let writing = true;
    const count = () => {
      if (!writing) return;
      turns++;
      setImmediate(count);
    };
    setImmediate(count);
    await store.telemetry.write(Array.from({ length: 5000 }, (_, i) => point(i)));
    writing = false;
    expect(turns).toBeGreaterThanOrEqual(9); // ten chunks of 500, the loop turning between them
    expect(await store.telemetry.track("tag-1", 0, 10_000, 10_000)).toHaveLength(5000);

    // A bad point in the last chunk: none of the batch is kept, so a retry stores it once.
    const bad = [
      ...Array.from({ length: 1200 }, (_, i) => point(10_000 + i)),
      { ...point(11_200), battery: null },
    ];
    await expect(store.telemetry.write(bad as TelemetryPoint[])).rejects.toThrow("NOT NULL");
    expect(await store.telemetry.track("tag-1", 10_000, 20_000, 10_000)).toHaveLength(0);
  });
});
