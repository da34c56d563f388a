import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  call,
  connectDevice,
  registerDevice,
  seedCommunity,
  signIn,
  startGateway,
  type TestGateway,
} from "../support/gateway.ts";
import { startPostgres, type TestPostgres } from "../support/postgres.ts";
import { openSse } from "../support/sse.ts";
import { waitFor } from "../support/wait.ts";
import { startWebhookServer } from "../support/webhook-server.ts";

/** Two gateways on one PostgreSQL database: every dashboard follows the one trail, whichever gateway wrote it. */
let postgres: TestPostgres;
let a: TestGateway;
let b: TestGateway;
const cleanup: (() => Promise<unknown>)[] = [];
beforeAll(async () => {
  postgres = await startPostgres();
  cleanup.push(() => postgres.destroy());
  const hooks = await startWebhookServer();
  cleanup.push(hooks.close);
  const env = {
    DATABASE_URL: await postgres.createDatabase(),
    DEVICE_SECRET_KEY: randomBytes(32).toString("hex"),
  };
  a = await startGateway({ env });
  cleanup.push(() => a.stop());
  b = await startGateway({ env });
  cleanup.push(() => b.stop());
  await seedCommunity(a, hooks.url);
}, 60_000);
afterAll(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

type Streamed = { id: number; alert: { id: string; state: string }; event: { type: string } };
const typesOf = (events: Streamed[], alertId: string) =>
  events.filter((e) => e.alert.id === alertId).map((e) => e.event.type);

it("shows a press on A on a page reading B, and an accept on B on a page reading A, in the order of their ids", async () => {
  const onA = openSse(`${a.http}/api/stream`, { cookie: a.cookie });
  const onB = openSse(`${b.http}/api/stream`, { cookie: b.cookie });
  const creds = await registerDevice(a, "btn-across");
  const device = await connectDevice(a, creds);
  await device.event("press", 1, Date.now());
  const { alertId } = await device.waitForCommand("received");

  const opened = await waitFor(
    () => (onB.alertEvents() as Streamed[]).find((e) => e.alert.id === alertId && e.event.type === "opened"),
    10_000,
    "the alert opened on A, on B's stream",
  );
  const doctor = await signIn(b, "dr-tsering");
  const accepted = await call(b, "POST", `/api/alerts/${alertId}/accept`, {}, doctor);
  expect(accepted.status).toBe(200);
  await waitFor(
    () => typesOf(onA.alertEvents() as Streamed[], alertId as string).includes("accepted"),
    10_000,
    "the accept given on B, on A's stream",
  );
  // (The device on A hears it only through a shared broker: REDIS_URL, test/integration/cluster-postgres.test.ts.)

  // Each page saw the alert's whole trail once, in the order of its ids.
  const trail = (await call(a, "GET", `/api/alerts/${alertId}`)).body.events as {
    id: number;
    type: string;
  }[];
  for (const stream of [onA, onB]) {
    await waitFor(
      () => typesOf(stream.alertEvents() as Streamed[], alertId as string).length >= trail.length,
      10_000,
      "the whole trail on the stream",
    );
    const seen = (stream.alertEvents() as Streamed[]).filter((e) => e.alert.id === alertId).map((e) => e.id);
    expect(seen).toEqual(trail.map((e) => e.id));
  }
  expect(opened.id).toBe(trail[0]?.id);
  await Promise.all([onA.close(), onB.close(), device.close()]);

  // A page that reconnects to the other gateway resumes after the last id it saw, nothing twice.
  const resumed = openSse(`${b.http}/api/stream`, { cookie: b.cookie, "last-event-id": String(opened.id) });
  await waitFor(
    () => typesOf(resumed.alertEvents() as Streamed[], alertId as string).includes("accepted"),
    10_000,
    "the replay on B",
  );
  expect(
    (resumed.alertEvents() as Streamed[]).filter((e) => e.alert.id === alertId).map((e) => e.id),
  ).toEqual(trail.slice(1).map((e) => e.id));
  await resumed.close();
});

it("ends a page's stream on B when the reader's account is disabled on A, and lets it in no more", async () => {
  const doctor = await signIn(b, "dr-tsering");
  const stream = openSse(`${b.http}/api/stream`, { cookie: doctor.cookie });
  const bystander = openSse(`${b.http}/api/stream`, { cookie: b.cookie });
  cleanup.push(() => bystander.close());
  await waitFor(() => stream.opened() && bystander.opened(), 5000, "both streams open on B");
  expect((await call(a, "PATCH", "/api/users/dr-tsering", { disabled: true })).status).toBe(200);
  await waitFor(() => stream.ended(), 10_000, "the disabled doctor's stream on B ended");
  expect(bystander.ended()).toBe(false);
  const again = await fetch(`${b.http}/api/stream`, { headers: { cookie: doctor.cookie } });
  expect(again.status).toBe(401);
});
