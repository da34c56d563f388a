import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  call,
  metric,
  registerDevice,
  seedCommunity,
  startGateway,
  type TestGateway,
} from "../support/gateway.ts";

const run = promisify(execFile);

/** The device contract with clients that are not MQTT.js: Debian's mosquitto_pub, mosquitto_sub and mosquitto_rr. */
describe("mosquitto command-line clients", () => {
  let gw: TestGateway;
  let creds: { id: string; secret: string };
  const auth = () => [
    "-h",
    "127.0.0.1",
    "-p",
    String(gw.ports.mqtt),
    "-V",
    "mqttv311",
    "-i",
    creds.id,
    "-u",
    creds.id,
  ];
  const press = (seq: number) => JSON.stringify({ type: "press", ts: Date.now(), seq });

  beforeAll(async () => {
    gw = await startGateway();
    await seedCommunity(gw, () => "http://127.0.0.1:9/unused");
    creds = await registerDevice(gw, "btn-mosquitto");
  });
  afterAll(() => gw.stop());

  it("publishes a press with mosquitto_rr and receives the 'received' command", async () => {
    const { stdout } = await run(
      "mosquitto_rr",
      [
        ...auth(),
        "-P",
        creds.secret,
        "-q",
        "1",
        "-t",
        `devices/${creds.id}/event`,
        "-e",
        `devices/${creds.id}/command`,
        "-m",
        press(1),
        "-W",
        "5",
      ],
      { timeout: 10_000 },
    );
    const command = JSON.parse(stdout);
    expect(command.type).toBe("received");
    const alert = (await call(gw, "GET", `/api/alerts/${command.alertId}`)).body;
    expect(alert).toMatchObject({ deviceId: creds.id, kind: "call", state: "open" });
  });

  it("publishes a heartbeat with mosquitto_pub", async () => {
    const before = await metric(gw, 'gateway_messages_in_total{channel="heartbeat"}');
    await run("mosquitto_pub", [
      ...auth(),
      "-P",
      creds.secret,
      "-q",
      "1",
      "-t",
      `devices/${creds.id}/heartbeat`,
      "-m",
      JSON.stringify({ ts: Date.now(), seq: 2, battery: 87 }),
    ]);
    expect(await metric(gw, 'gateway_messages_in_total{channel="heartbeat"}')).toBe(before + 1);
  });

  it("is refused with a wrong password", async () => {
    const result = await run("mosquitto_pub", [
      ...auth(),
      "-P",
      "wrong",
      "-t",
      `devices/${creds.id}/event`,
      "-m",
      press(3),
    ]).catch((err: { code: number; stderr: string }) => err);
    expect(result).toMatchObject({ code: expect.any(Number) });
    expect((result as { stderr: string }).stderr).toMatch(/bad user name or password/i);
  });

  it("cannot subscribe to another device's commands with mosquitto_sub", async () => {
    const before = await metric(gw, 'gateway_messages_refused_total{reason="subscribe"}');
    const result = await run(
      "mosquitto_sub",
      [...auth(), "-P", creds.secret, "-t", "devices/someone-else/command", "-W", "1"],
      { timeout: 10_000 },
    ).catch((err: { stderr: string }) => err);
    expect((result as { stderr: string }).stderr).toMatch(/denied|refused|failure/i);
    expect(await metric(gw, 'gateway_messages_refused_total{reason="subscribe"}')).toBe(before + 1);
  });
});
