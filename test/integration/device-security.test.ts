import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { request } from "node:http";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import mqtt from "mqtt";
import mqttPacket from "mqtt-packet";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FLOOD_REFUSALS } from "../../gateway/broker/limits.ts";
import { loadConfig } from "../../gateway/config/index.ts";
import {
  call,
  connectDevice,
  metric,
  registerDevice,
  seedCommunity,
  startGateway,
  type TestDevice,
  type TestGateway,
  WEBHOOK_SECRET,
} from "../support/gateway.ts";
import { waitFor } from "../support/wait.ts";

const unusedWebhook = (path: string) => `http://127.0.0.1:9${path}`;
const refused = (gw: TestGateway, reason: string) =>
  metric(gw, `gateway_messages_refused_total{reason="${reason}"}`);
const disconnected = (gw: TestGateway, reason: string) =>
  metric(gw, `gateway_devices_disconnected_total{reason="${reason}"}`);
const heartbeat = (seq: number) => JSON.stringify({ ts: Date.now(), seq, battery: 80 });
const closed = (device: TestDevice) => new Promise<void>((resolve) => device.client.once("close", resolve));

/** The gateway's warnings, parsed, to check that a flood is logged once and not per message. */
function captureWarnings() {
  const entries: Record<string, unknown>[] = [];
  const logTo = new Writable({
    write(chunk, _encoding, done) {
      entries.push(JSON.parse(String(chunk)));
      done();
    },
  });
  const count = (msg: string, fields: Record<string, unknown>) =>
    entries.filter((e) => e.msg === msg && Object.entries(fields).every(([k, v]) => e[k] === v)).length;
  return { logTo, env: { LOG_LEVEL: "warn" }, count };
}

/** A raw TCP connection, optionally from another loopback address; records what it receives. */
async function rawSocket(port: number, localAddress = "127.0.0.1") {
  const socket = connect({ host: "127.0.0.1", port, localAddress });
  const received: Buffer[] = [];
  socket.on("data", (chunk) => received.push(chunk));
  socket.on("error", () => {});
  const closedAt = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return { socket, received, closed: closedAt };
}

/** Sends an MQTT CONNECT with the device's credentials and waits for its CONNACK. */
async function rawDevice(port: number, creds: { id: string; secret: string }) {
  const raw = await rawSocket(port);
  raw.socket.write(
    mqttPacket.generate({
      cmd: "connect",
      protocolId: "MQTT",
      protocolVersion: 4,
      clean: true,
      keepalive: 60,
      clientId: creds.id,
      username: creds.id,
      password: Buffer.from(creds.secret),
    }),
  );
  await waitFor(() => Buffer.concat(raw.received).equals(Buffer.from([0x20, 2, 0, 0])), 5000, "CONNACK");
  return raw;
}

/** A heartbeat payload that makes its QoS 1 PUBLISH exactly `bytes` long on the wire. */
function payloadForPacketOf(bytes: number, topic: string): string {
  const packetOf = (payload: string) =>
    mqttPacket.generate({ cmd: "publish", topic, payload, qos: 1, messageId: 1, retain: false, dup: false })
      .length;
  let payload = "";
  // The remaining length's own size grows with the payload: two rounds settle it.
  for (let round = 0; round < 2; round++) payload = "x".repeat(payload.length + bytes - packetOf(payload));
  expect(packetOf(payload)).toBe(bytes);
  return payload;
}

describe("MQTT over TLS", () => {
  const dir = mkdtempSync(join(tmpdir(), "gateway-tls-"));
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  let gw: TestGateway;
  let creds: { id: string; secret: string };

  beforeAll(async () => {
    execFileSync(
      "openssl",
      [
        ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"],
        ...["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        ...["-keyout", keyFile, "-out", certFile],
      ],
      { stdio: "ignore" },
    );
    gw = await startGateway({ env: { MQTT_TLS_CERT: certFile, MQTT_TLS_KEY: keyFile, MQTTS_PORT: "0" } });
    await seedCommunity(gw, unusedWebhook);
    creds = await registerDevice(gw, "btn-tls");
  }, 30_000);
  afterAll(() => gw?.stop());

  const overTls = (password: string, allowRetries = true) =>
    mqtt.connectAsync(
      `mqtts://127.0.0.1:${gw.ports.mqtts}`,
      {
        clientId: creds.id,
        username: creds.id,
        password,
        protocolVersion: 4,
        reconnectPeriod: 0,
        ca: readFileSync(certFile),
      },
      allowRetries,
    );

  it("serves a device over mqtts: its press opens an alert and it gets the received command", async () => {
    expect(gw.ports.mqtts).toBeGreaterThan(0);
    expect(gw.ports.mqtts).not.toBe(gw.ports.mqtt);
    const client = await overTls(creds.secret);
    const commands: { type: string; alertId: string }[] = [];
    client.on("message", (_topic, payload) => commands.push(JSON.parse(payload.toString())));
    await client.subscribeAsync(`devices/${creds.id}/command`, { qos: 1 });
    await client.publishAsync(
      `devices/${creds.id}/event`,
      JSON.stringify({ type: "press", ts: Date.now(), seq: 1 }),
      { qos: 1 },
    );
    const received = await waitFor(() => commands.find((c) => c.type === "received"), 5000, "received");
    const [alert] = (await call(gw, "GET", "/api/alerts")).body;
    expect(alert).toMatchObject({ id: received.alertId, deviceId: creds.id });
    await client.endAsync();
  });

  it("applies the same authentication and ACL as plain TCP", async () => {
    await expect(overTls("not-the-secret")).rejects.toMatchObject({ code: 4 });
    const client = await overTls(creds.secret);
    const before = await refused(gw, "acl");
    await client.publishAsync("devices/someone-else/event", "{}", { qos: 1 });
    expect(await refused(gw, "acl")).toBe(before + 1);
    await client.endAsync();
  });

  it("gives a plain MQTT client on the TLS port no connection", async () => {
    await expect(
      mqtt.connectAsync(
        `mqtt://127.0.0.1:${gw.ports.mqtts}`,
        { clientId: creds.id, username: creds.id, password: creds.secret, reconnectPeriod: 0 },
        false,
      ),
    ).rejects.toThrow();
  });

  it("refuses a certificate without its key, and a key that is not one", () => {
    const env = { MQTT_TLS_CERT: certFile, WEBHOOK_SECRET };
    expect(() => loadConfig(env)).toThrow("MQTT_TLS_KEY: required with MQTT_TLS_CERT");
    expect(() => loadConfig({ MQTT_TLS_KEY: keyFile, WEBHOOK_SECRET })).toThrow(
      "MQTT_TLS_CERT: required with MQTT_TLS_KEY",
    );
    expect(() => loadConfig({ ...env, MQTT_TLS_KEY: join(dir, "missing.pem") })).toThrow(
      /MQTT_TLS_KEY: cannot read .*missing\.pem/,
    );
    expect(() => loadConfig({ ...env, MQTT_TLS_KEY: certFile })).toThrow(
      "MQTT_TLS_CERT: not a PEM certificate",
    );
  });
});

describe("publish rate per device", () => {
  let gw: TestGateway;
  const log = captureWarnings();
  const devices: TestDevice[] = [];
  const device = async (id: string) => {
    const d = await connectDevice(gw, await registerDevice(gw, id));
    devices.push(d);
    return d;
  };

  beforeAll(async () => {
    gw = await startGateway({ env: log.env, logTo: log.logTo });
    await seedCommunity(gw, unusedWebhook);
  });
  afterAll(async () => {
    // Forced: a client the gateway closed with a QoS 1 publish in flight never finishes a clean end.
    for (const d of devices) d.client.end(true);
    await gw.stop();
  });

  it("throttles heartbeats over the burst, but never at the cost of the device's press", async () => {
    const tag = await device("btn-chatty");
    // 70 heartbeats at once: 50 fit the default burst, the rest (bar a token or two refilled) are refused.
    for (let seq = 1; seq <= 70; seq++) tag.client.publish(`devices/btn-chatty/heartbeat`, heartbeat(seq));
    await tag.event("press");
    await tag.waitForCommand("received");
    expect(await refused(gw, "rate")).toBeGreaterThanOrEqual(15);
    expect(await refused(gw, "rate")).toBeLessThanOrEqual(20);
    expect(tag.client.connected).toBe(true);
    expect(log.count("device publishing over its rate: throttled", { deviceId: "btn-chatty" })).toBe(1);
  });

  it("disconnects a flooding device while another device's press still gets through", async () => {
    const flooder = await device("btn-flood");
    const calm = await device("btn-calm");
    const rateBefore = await refused(gw, "rate");
    const heartbeatsBefore = await metric(gw, 'gateway_messages_in_total{channel="heartbeat"}');
    const flooderClosed = closed(flooder);
    const flood = 3 * FLOOD_REFUSALS;
    for (let seq = 1; seq <= flood; seq++)
      flooder.client.publish(`devices/btn-flood/heartbeat`, heartbeat(seq));
    await calm.event("press");

    const received = await calm.waitForCommand("received");
    const alerts = (await call(gw, "GET", "/api/alerts")).body as { id: string; deviceId: string }[];
    expect(alerts.find((a) => a.deviceId === "btn-calm")?.id).toBe(received.alertId);
    await flooderClosed;
    await waitFor(() => !gw.broker.isConnected("btn-flood"), 5000, "btn-flood gone");
    expect(await disconnected(gw, "flood")).toBe(1);
    const throttled = (await refused(gw, "rate")) - rateBefore;
    expect(throttled).toBeGreaterThan(FLOOD_REFUSALS);
    expect(throttled).toBeLessThan(flood);
    // The limit held: one burst of heartbeats (and what refilled meanwhile) got in, not the flood.
    const accepted = (await metric(gw, 'gateway_messages_in_total{channel="heartbeat"}')) - heartbeatsBefore;
    expect(accepted).toBeGreaterThanOrEqual(50);
    expect(accepted).toBeLessThan(100);
    expect(calm.client.connected).toBe(true);
    expect(gw.broker.isConnected("btn-calm")).toBe(true);
    expect(log.count("device publishing over its rate: throttled", { deviceId: "btn-flood" })).toBe(1);
    const closedByGateway = "device connection closed by the gateway";
    expect(log.count(closedByGateway, { deviceId: "btn-flood", reason: "flood" })).toBe(1);
  });
});

describe("maximum packet size", () => {
  let gw: TestGateway;
  const devices: TestDevice[] = [];
  const device = async (id: string) => {
    const d = await connectDevice(gw, await registerDevice(gw, id));
    devices.push(d);
    return d;
  };

  beforeAll(async () => {
    gw = await startGateway();
    await seedCommunity(gw, unusedWebhook);
  });
  afterAll(async () => {
    // Forced: a client the gateway closed with a QoS 1 publish in flight never finishes a clean end.
    for (const d of devices) d.client.end(true);
    await gw.stop();
  });

  it("closes a connection as soon as a header announces a packet over the limit, before its body", async () => {
    const bystander = await device("btn-bystander");
    const raw = await rawDevice(gw.ports.mqtt, await registerDevice(gw, "btn-huge"));
    await waitFor(() => gw.broker.isConnected("btn-huge"), 5000, "btn-huge connected");
    // A PUBLISH announcing 1 MB, its length split over two reads; none of its body is ever sent.
    raw.socket.write(Buffer.from([0x30, 0xc0, 0x84]));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(raw.socket.destroyed).toBe(false);
    raw.socket.write(Buffer.from([0x3d, 0x00, 0x05]));
    await raw.closed;
    expect(await refused(gw, "packet-size")).toBe(1);
    expect(await disconnected(gw, "packet-size")).toBe(1);
    await waitFor(() => !gw.broker.isConnected("btn-huge"), 5000, "btn-huge gone");

    await bystander.event("press");
    await bystander.waitForCommand("received");
  });

  it("takes a packet of exactly MQTT_MAX_PACKET_BYTES and closes the connection at one byte more", async () => {
    const topic = "devices/btn-edge/heartbeat";
    const edge = await device("btn-edge");
    const edgeClosed = closed(edge);
    // 4096 bytes is within the packet limit; its payload is over MAX_PAYLOAD_BYTES, an ordinary refusal.
    const oversizedBefore = await refused(gw, "oversized");
    await edge.publish(topic, payloadForPacketOf(4096, topic));
    expect(await refused(gw, "oversized")).toBe(oversizedBefore + 1);
    expect(edge.client.connected).toBe(true);

    const before = await refused(gw, "packet-size");
    edge.client.publish(topic, payloadForPacketOf(4097, topic), { qos: 1 });
    await edgeClosed;
    expect(await refused(gw, "packet-size")).toBe(before + 1);
  });

  it("applies the same limit over WebSocket", async () => {
    const creds = await registerDevice(gw, "btn-ws");
    const client = await mqtt.connectAsync(`ws://127.0.0.1:${gw.ports.http}/mqtt`, {
      clientId: creds.id,
      username: creds.id,
      password: creds.secret,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    const wsClosed = new Promise<void>((resolve) => client.once("close", resolve));
    const before = await refused(gw, "packet-size");
    const topic = "devices/btn-ws/heartbeat";
    client.publish(topic, payloadForPacketOf(8192, topic), { qos: 1 });
    await wsClosed;
    expect(await refused(gw, "packet-size")).toBe(before + 1);
    client.end(true);
  });

  it("reads packet headers split across many reads", async () => {
    const creds = await registerDevice(gw, "btn-trickle");
    const raw = await rawSocket(gw.ports.mqtt);
    const connectPacket = mqttPacket.generate({
      cmd: "connect",
      protocolId: "MQTT",
      protocolVersion: 4,
      clean: true,
      keepalive: 60,
      clientId: creds.id,
      username: creds.id,
      password: Buffer.from(creds.secret),
    });
    for (const byte of connectPacket) {
      raw.socket.write(Buffer.from([byte]));
      await new Promise((resolve) => setImmediate(resolve));
    }
    await waitFor(() => Buffer.concat(raw.received).equals(Buffer.from([0x20, 2, 0, 0])), 5000, "CONNACK");
    raw.socket.destroy();
  });
});

describe("connection rate per source address", () => {
  let gw: TestGateway;
  const log = captureWarnings();
  const sockets: Socket[] = [];

  beforeAll(async () => {
    // One new connection every 10 s after a burst of 5: nothing refills while the test runs.
    gw = await startGateway({
      env: { ...log.env, MQTT_CONNECT_RATE_PER_IP: "0.1", MQTT_CONNECT_BURST_PER_IP: "5" },
      logTo: log.logTo,
    });
    await seedCommunity(gw, unusedWebhook);
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await gw.stop();
  });

  it("closes connections from one address beyond its burst at once; other addresses still connect", async () => {
    const admitted = [];
    for (let i = 0; i < 5; i++) admitted.push(await rawSocket(gw.ports.mqtt, "127.0.0.2"));
    const refusedSockets = await Promise.all(
      Array.from({ length: 5 }, () => rawSocket(gw.ports.mqtt, "127.0.0.2")),
    );
    sockets.push(...[...admitted, ...refusedSockets].map((r) => r.socket));
    // Closed without a byte sent either way; the broker would wait 30 s for a CONNECT before closing.
    await Promise.all(refusedSockets.map((r) => r.closed));
    expect(await refused(gw, "connect-rate")).toBe(5);
    expect(admitted.every((r) => !r.socket.destroyed)).toBe(true);

    // The WebSocket endpoint counts against the same address.
    const upgrade = request({
      host: "127.0.0.1",
      port: gw.ports.http,
      path: "/mqtt",
      localAddress: "127.0.0.2",
      headers: {
        connection: "Upgrade",
        upgrade: "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-protocol": "mqtt",
      },
    });
    const outcome = new Promise<string>((resolve) => {
      upgrade.on("upgrade", () => resolve("upgraded"));
      upgrade.on("error", () => resolve("closed"));
    });
    upgrade.end();
    expect(await outcome).toBe("closed");
    expect(await refused(gw, "connect-rate")).toBe(6);
    const tooMany = "too many new MQTT connections from this address: closing them until it slows down";
    expect(log.count(tooMany, { ip: "127.0.0.2" })).toBe(1);

    // Devices elsewhere (here 127.0.0.1) are not affected.
    const device = await connectDevice(gw, await registerDevice(gw, "btn-elsewhere"));
    await device.event("press");
    await device.waitForCommand("received");
    await device.close();
  });
});

describe("secret rotation and revocation", () => {
  let gw: TestGateway;
  let other: TestDevice | undefined;

  beforeAll(async () => {
    gw = await startGateway();
    await seedCommunity(gw, unusedWebhook);
  });
  afterEach(() => other?.close());
  afterAll(() => gw.stop());

  it("closes a device's connection at once and leaves the others connected", async () => {
    const revoked = await connectDevice(gw, await registerDevice(gw, "btn-revoked"));
    other = await connectDevice(gw, await registerDevice(gw, "btn-kept"));
    const revokedClosed = closed(revoked);

    expect(gw.broker.disconnect("btn-revoked", "revoked")).toBe(true);
    await revokedClosed;
    await waitFor(() => !gw.broker.isConnected("btn-revoked"), 5000, "btn-revoked gone");
    expect(await disconnected(gw, "revoked")).toBe(1);
    expect(await metric(gw, "gateway_devices_connected")).toBe(1);
    expect(gw.broker.disconnect("btn-revoked", "revoked")).toBe(false);
    expect(gw.broker.disconnect("btn-nobody", "revoked")).toBe(false);

    expect(other.client.connected).toBe(true);
    await other.event("press");
    await other.waitForCommand("received");
  });

  const connectWith = (id: string, secret: string) =>
    mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, {
      clientId: id,
      username: id,
      password: secret,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });

  it("revoking a device closes its connection at once and refuses it until its secret is rotated", async () => {
    const creds = await registerDevice(gw, "tag-lost");
    const device = await connectDevice(gw, creds);
    const gone = closed(device);
    const revoked = await call(gw, "POST", "/api/devices/tag-lost/revoke");
    expect(revoked.body).toMatchObject({ id: "tag-lost", revokedAt: expect.any(Number) });
    await gone;
    await waitFor(async () => (await call(gw, "GET", "/api/devices/tag-lost")).body.connected === false);
    await expect(connectWith("tag-lost", creds.secret)).rejects.toMatchObject({ code: 5 });

    const rotated = (await call(gw, "POST", "/api/devices/tag-lost/secret")).body.secret as string;
    expect(rotated).not.toBe(creds.secret);
    await expect(connectWith("tag-lost", creds.secret)).rejects.toMatchObject({ code: 4 });
    const back = await connectDevice(gw, { id: "tag-lost", secret: rotated });
    expect((await call(gw, "GET", "/api/devices/tag-lost")).body).toMatchObject({
      revokedAt: null,
      connected: true,
    });

    // Rotating again, as after a leaked secret, drops the live connection too.
    const dropped = closed(back);
    const again = (await call(gw, "POST", "/api/devices/tag-lost/secret")).body.secret as string;
    await dropped;
    await expect(connectWith("tag-lost", rotated)).rejects.toMatchObject({ code: 4 });
    await (await connectWith("tag-lost", again)).endAsync();
  });
});
