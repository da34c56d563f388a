import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import type { DestinationStream } from "pino";
import { buildGateway, type Gateway, type GatewayDeps } from "../../gateway/app.ts";
import type { Clock } from "../../gateway/clock/index.ts";
import { loadConfig } from "../../gateway/config/index.ts";
import type { DeviceCommand } from "../../gateway/ingest/contract.ts";
import { waitFor } from "./wait.ts";

export const WEBHOOK_SECRET = "test-webhook-secret-0123456789";
export const ADMIN_PASSWORD = "test-admin-password";
/** Tests' webhook receivers listen on this machine, over plain http: the outbound guard must let them. */
export const LOCAL_RECEIVERS = { OUTBOUND_ALLOW: "127.0.0.0/8", OUTBOUND_ALLOW_HTTP: "true" };

/** A signed-in dashboard session: the cookie to send and the CSRF token to echo. */
export interface SessionCreds {
  cookie: string;
  csrf: string;
}

export const tempDataDir = () => mkdtempSync(join(tmpdir(), "gateway-test-"));

/** A real gateway on free ports with its own SQLite file. */
export async function startGateway(
  options: {
    dataDir?: string;
    clock?: Clock;
    env?: Record<string, string>;
    logTo?: DestinationStream;
    /** The disk flush, replaced to make the disk fail (see GatewayDeps). */
    flushToDisk?: GatewayDeps["flushToDisk"];
  } = {},
) {
  const dataDir = options.dataDir ?? tempDataDir();
  const config = loadConfig({
    PORT: "0",
    MQTT_PORT: "0",
    HOST: "127.0.0.1",
    DATA_DIR: dataDir,
    WEBHOOK_SECRET,
    WEBHOOK_RETRY_DELAYS_MS: "1000,4000",
    ADMIN_PASSWORD,
    LOG_LEVEL: process.env.TEST_LOG ?? "silent",
    ...LOCAL_RECEIVERS,
    ...options.env,
  });
  const gateway = await buildGateway(config, {
    clock: options.clock,
    logTo: options.logTo,
    flushToDisk: options.flushToDisk,
  });
  await gateway.start();
  const http = `http://127.0.0.1:${gateway.ports.http}`;
  // Signed in as the first admin, so that `call` works on every route; tests of scope sign in others.
  const admin = await login({ http }, "admin", ADMIN_PASSWORD);
  return Object.assign(gateway, {
    dataDir,
    http,
    session: admin as SessionCreds | undefined,
    cookie: admin.cookie,
  });
}
export type TestGateway = Awaited<ReturnType<typeof startGateway>>;

/** Signs in; throws unless the gateway accepts the password. */
export async function login(gw: { http: string }, username: string, password: string): Promise<SessionCreds> {
  const res = await fetch(`${gw.http}/api/session`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  if (res.status !== 200) throw new Error(`sign-in as ${username}: ${res.status} ${await res.text()}`);
  const cookie = (res.headers.get("set-cookie") ?? "").split(";")[0] as string;
  return { cookie, csrf: ((await res.json()) as { csrfToken: string }).csrfToken };
}

/**
 * Calls the HTTP API as `as` (by default the gateway's admin session; `null` for no session);
 * returns status and parsed body.
 */
export async function call(
  gw: { http: string; session?: SessionCreds },
  method: string,
  path: string,
  body?: unknown,
  as: SessionCreds | null | undefined = gw.session,
) {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (as) Object.assign(headers, { cookie: as.cookie, "x-csrf-token": as.csrf });
  const res = await fetch(gw.http + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  // biome-ignore lint/suspicious/noExplicitAny: test helper returns whatever the API sent (JSON parsed, CSV as text)
  const json: any = !text
    ? undefined
    : res.headers.get("content-type")?.includes("json")
      ? JSON.parse(text)
      : text;
  return { status: res.status, body: json };
}

/** One community with a resident, their doctor and family, a grid worker and staff, each with a webhook. */
export async function seedCommunity(
  gw: { http: string; session?: SessionCreds },
  webhookUrl: (path: string) => string,
) {
  const ok = async (method: string, path: string, body: unknown) => {
    const res = await call(gw, method, path, body);
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  await ok("POST", "/api/communities", { id: "chongsaikang", name: "冲赛康社区 Chongsaikang" });
  await ok("POST", "/api/grids", { id: "grid-1", communityId: "chongsaikang", name: "第一网格 Grid 1" });
  const person = (id: string, name: string, role: string) =>
    ok("POST", "/api/people", {
      id,
      name,
      role,
      communityId: "chongsaikang",
      gridId: "grid-1",
      contacts: role === "resident" ? [] : [{ kind: "webhook", address: webhookUrl(`/${id}`) }],
    });
  await person("dondrub", "顿珠 Dondrub", "resident");
  await person("dr-tsering", "次仁医生 Dr Tsering", "doctor");
  await person("pema", "白玛 Pema", "family");
  await person("lhakpa", "拉巴 Lhakpa", "grid-worker");
  await person("staff-yang", "杨 Yang", "staff");
  await ok("POST", "/api/assignments", { residentId: "dondrub", personId: "dr-tsering", relation: "doctor" });
  await ok("POST", "/api/assignments", { residentId: "dondrub", personId: "pema", relation: "family" });
  // Each responder signs in with their person id as username (see `signIn`).
  for (const [username, role] of [
    ["dr-tsering", "doctor"],
    ["pema", "family"],
    ["lhakpa", "staff"],
    ["staff-yang", "staff"],
  ]) {
    await ok("POST", "/api/users", { username, role, personId: username, password: PEOPLE_PASSWORD });
  }
}

export const PEOPLE_PASSWORD = "test-people-password";

/** A second community, Lugu, with one resident, Norbu, and nobody else: no doctor, family or staff. */
export async function seedLoneResident(gw: { http: string; session?: SessionCreds }) {
  await call(gw, "POST", "/api/communities", { id: "lugu", name: "鲁固 Lugu" });
  await call(gw, "POST", "/api/people", {
    id: "norbu",
    name: "Norbu",
    role: "resident",
    communityId: "lugu",
  });
}

/** Signs in as one of the accounts `seedCommunity` (or a test) created with PEOPLE_PASSWORD. */
export const signIn = (gw: { http: string }, username: string) => login(gw, username, PEOPLE_PASSWORD);

export async function registerDevice(
  gw: { http: string; session?: SessionCreds },
  id: string,
  ownerId = "dondrub",
  kind = "call-button",
) {
  const res = await call(gw, "POST", "/api/devices", { id, kind, ownerId });
  if (res.status !== 201) throw new Error(`register ${id}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as { id: string; secret: string };
}

export interface TestDevice {
  client: MqttClient;
  commands: DeviceCommand[];
  seq: number;
  event(type: "press" | "cancel" | "sos" | "fall", seq?: number, ts?: number): Promise<void>;
  publish(topic: string, payload: string | Buffer, qos?: 0 | 1): Promise<void>;
  waitForCommand(type: DeviceCommand["type"]): Promise<DeviceCommand>;
  close(): Promise<void>;
}

/** A device with its real credentials, subscribed to its command topic. */
export async function connectDevice(gw: { ports: { mqtt: number } }, creds: { id: string; secret: string }) {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, {
    clientId: creds.id,
    username: creds.id,
    password: creds.secret,
    protocolVersion: 4,
    reconnectPeriod: 0,
  });
  const commands: DeviceCommand[] = [];
  client.on("message", (_topic, payload) => commands.push(JSON.parse(payload.toString())));
  await client.subscribeAsync(`devices/${creds.id}/command`, { qos: 1 });
  const device: TestDevice = {
    client,
    commands,
    seq: 0,
    async event(type, seq, ts) {
      const payload = { type, ts: ts ?? Date.now(), seq: seq ?? ++device.seq };
      await client.publishAsync(`devices/${creds.id}/event`, JSON.stringify(payload), { qos: 1 });
    },
    async publish(topic, payload, qos = 1) {
      await client.publishAsync(topic, payload, { qos });
    },
    waitForCommand: (type) =>
      waitFor(() => commands.find((c) => c.type === type), 5000, `command '${type}' on ${creds.id}`),
    close: () => client.endAsync(),
  };
  return device;
}

/**
 * A device with a persistent session (clean: false), as the contract asks, and the commands it
 * hears; it does not subscribe. Given one MQTT port it does not reconnect by itself; given several,
 * it connects to the first and, when its connection dies, to the next (MQTT.js takes them in turn),
 * replaying every QoS 1 publish not yet acknowledged.
 */
export async function connectPersistent(mqttPorts: number | number[], creds: { id: string; secret: string }) {
  const ports = [mqttPorts].flat();
  const client = mqtt.connect({
    servers: ports.map((port) => ({ host: "127.0.0.1", port })),
    protocol: "mqtt",
    clientId: creds.id,
    username: creds.id,
    password: creds.secret,
    protocolVersion: 4,
    clean: false,
    reconnectPeriod: ports.length > 1 ? 100 : 0,
  });
  const commands: DeviceCommand[] = [];
  client.on("message", (_topic, payload) => commands.push(JSON.parse(payload.toString())));
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
  });
  return { client, commands };
}

/** Reads one sample from the Prometheus text, e.g. `gateway_messages_refused_total{reason="acl"}`. */
export async function metric(gw: { http: string }, sample: string): Promise<number> {
  const text = await (await fetch(`${gw.http}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${sample} `));
  return line ? Number(line.slice(sample.length + 1)) : 0;
}

export type { Gateway };
