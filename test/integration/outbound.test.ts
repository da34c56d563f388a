import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { OutboundGuard } from "../../gateway/notify/outbound.ts";
import {
  call,
  connectDevice,
  registerDevice,
  seedCommunity,
  signIn,
  startGateway,
  type TestGateway,
} from "../support/gateway.ts";
import { waitFor } from "../support/wait.ts";
import { startWebhookServer } from "../support/webhook-server.ts";

describe("the outbound-request guard", () => {
  const strict = new OutboundGuard({ allow: [], allowHttp: false });

  it("refuses internal targets and plain http unless allowed, judging IPv4 written as IPv6 as what it is", () => {
    for (const url of [
      "https://127.0.0.1/hook",
      "https://10.1.2.3/",
      "https://172.20.0.1/",
      "https://192.168.1.1/",
      "https://169.254.169.254/latest/meta-data",
      "https://100.64.0.1/",
      "https://0.0.0.0/",
      "https://224.0.0.1/",
      "https://[::1]/",
      "https://[fe80::1]/",
      "https://[fd00::1]/",
      "https://[::ffff:127.0.0.1]/",
    ])
      expect(strict.refusal(url), url).toMatch(/an address on this machine or its private networks/);
    expect(strict.refusal("http://bridge.example.org/")).toBe("must be an https URL");
    expect(strict.refusal("https://user:pw@bridge.example.org/")).toMatch(/user name or password/);
    expect(strict.refusal("https://bridge.example.org/hook?key=1")).toBeUndefined();
    expect(strict.refusal("https://8.8.8.8/")).toBeUndefined();
    const lan = new OutboundGuard({ allow: ["10.0.0.0/8", "bridge.lan"], allowHttp: true });
    expect(lan.refusal("http://10.1.2.3/")).toBeUndefined();
    expect(lan.refusal("http://127.0.0.1/")).toMatch(/OUTBOUND_ALLOW/);
  });
});

describe("webhook contacts cannot reach inside (SSRF)", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  async function gateway(env: Record<string, string>) {
    const gw = await startGateway({ env });
    cleanups.push(() => gw.stop());
    return gw;
  }
  const press = async (gw: TestGateway, id: string, owner = "dondrub") => {
    const device = await connectDevice(gw, await registerDevice(gw, id, owner));
    cleanups.push(() => device.close());
    await device.event("press");
    return (await device.waitForCommand("received")).alertId;
  };

  it("refuses an internal address when a contact is written, and a name resolving inside when it is called", async () => {
    const receiver = await startWebhookServer();
    cleanups.push(() => receiver.close());
    const port = new URL(receiver.url("/")).port;
    // No allow-list: what a deployment runs with.
    const gw = await gateway({ OUTBOUND_ALLOW: "", OUTBOUND_ALLOW_HTTP: "true" });
    await seedCommunity(gw, (p) => `https://bridge.example.invalid${p}`);
    for (const address of [
      `http://127.0.0.1:${port}/x`,
      `http://[::1]:${port}/x`,
      "http://169.254.169.254/latest/meta-data",
      `http://[::ffff:7f00:1]:${port}/x`,
    ]) {
      const res = await call(gw, "PATCH", "/api/people/dr-tsering", {
        contacts: [{ kind: "webhook", address }],
      });
      expect(res.status, address).toBe(400);
      expect(res.body.error.message).toMatch(
        /^contacts\.0\.address: reaches .* \(allow it with OUTBOUND_ALLOW\)$/,
      );
    }
    // A host name passes the check on writing; it is refused once it resolves to this machine.
    const sneaky = `http://localhost:${port}/doctor`;
    expect(
      (
        await call(gw, "PATCH", "/api/people/dr-tsering", {
          contacts: [{ kind: "webhook", address: sneaky }],
        })
      ).status,
    ).toBe(200);
    const alertId = await press(gw, "btn-dondrub");
    const attempt = await waitFor(async () => {
      const a = (await call(gw, "GET", `/api/alerts/${alertId}`)).body.attempts.find(
        (x: { channel: string; status: string }) => x.channel === "webhook" && x.status !== "pending",
      );
      return a;
    });
    expect(attempt).toMatchObject({ status: "failed", attempt: 1 });
    expect(attempt.detail).toMatch(/^refused: localhost reaches 127\.0\.0\.1/);
    expect(receiver.received).toEqual([]);
  });

  it("follows no redirect, and shows addresses and errors to managers only", async () => {
    const target = await startWebhookServer();
    cleanups.push(() => target.close());
    const redirector = createServer((_req, res) =>
      res.writeHead(302, { location: target.url("/stolen") }).end(),
    );
    await new Promise<void>((resolve) => redirector.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => new Promise((resolve) => redirector.close(resolve)));
    const url = (p: string) =>
      `http://127.0.0.1:${(redirector.address() as AddressInfo).port}${p}?token=secret`;
    const gw = await gateway({});
    await seedCommunity(gw, url);
    const alertId = await press(gw, "btn-dondrub");
    const byStaff = await waitFor(async () => {
      const a = (await call(gw, "GET", `/api/alerts/${alertId}`)).body.attempts.find(
        (x: { channel: string; status: string }) => x.channel === "webhook" && x.status !== "pending",
      );
      return a;
    });
    expect(byStaff).toMatchObject({ status: "failed", detail: "HTTP 302 (redirects are not followed)" });
    expect(byStaff.address).toContain("token=secret");
    expect(target.received).toEqual([]);
    const family = await call(gw, "GET", `/api/alerts/${alertId}`, undefined, await signIn(gw, "pema"));
    const seen = family.body.attempts.filter((a: { channel: string }) => a.channel === "webhook");
    expect(seen.length).toBeGreaterThan(0);
    expect(JSON.stringify(seen)).not.toContain("token=secret");
    expect(seen.every((a: { detail: string | null }) => a.detail === null)).toBe(true);
  });
});
