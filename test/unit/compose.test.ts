import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

/** Debian's docker-compose validates and resolves docker-compose.yml without a Docker engine. */
const compose = (args: string[], env: Record<string, string> = { WEBHOOK_SECRET: "x" }) =>
  execFileSync("docker-compose", args, {
    encoding: "utf8",
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });

/** The resolved file's services, each as its block of text, from `docker-compose config`. */
function services(resolved: string): Map<string, string> {
  const blocks = new Map<string, string>();
  const body = resolved.split(/^services:\n/m)[1]?.split(/^\S/m)[0] ?? "";
  for (const block of body.split(/^(?= {2}\S)/m)) {
    const name = /^ {2}([\w-]+):/.exec(block)?.[1];
    if (name) blocks.set(name, block);
  }
  return blocks;
}

describe("docker-compose.yml", () => {
  // Resolved once: docker-compose (Python) takes about two seconds a run here.
  let resolved: Map<string, string> | undefined;
  const clusterServices = () => {
    resolved ??= services(compose(["--profile", "cluster", "config"]));
    return resolved;
  };

  it("is valid as it is and with the cluster profile", () => {
    expect(compose(["config", "-q"])).toBe("");
    expect(compose(["--profile", "cluster", "config", "-q"])).toBe("");
    expect(compose(["config", "--profiles"]).trim()).toBe("cluster");
  });

  it("refuses to resolve without WEBHOOK_SECRET, saying how to make one", () => {
    expect(() => compose(["config", "-q"], {})).toThrow(/set WEBHOOK_SECRET to a long random secret/);
  });

  it("starts the single gateway by default, and two gateways over PostgreSQL and Redis behind HAProxy in the cluster profile", {
    timeout: 15_000,
  }, () => {
    const all = clusterServices();
    const byDefault = [...all].filter(([, block]) => !block.includes("profiles:")).map(([name]) => name);
    expect(byDefault.sort()).toEqual(["gateway", "influxdb", "simulator"]);
    const cluster = [...all]
      .filter(([, block]) => /profiles:\n\s+- cluster\n/.test(block))
      .map(([name]) => name);
    expect(cluster.sort()).toEqual([
      "gateway-a",
      "gateway-b",
      "haproxy",
      "postgres",
      "redis",
      "simulator-cluster",
    ]);
    for (const name of ["gateway-a", "gateway-b"]) {
      const block = all.get(name) ?? "";
      expect(block).toMatch(/DATABASE_URL: postgres:\/\/gateway:\S+@postgres:5432\/gateway\n/);
      expect(block).toContain("REDIS_URL: redis://redis:6379\n");
    }
    expect(all.get("haproxy")).toMatch(/deploy\/haproxy\.cfg:\/usr\/local\/etc\/haproxy\/haproxy\.cfg:ro/);
  });

  it("names in deploy/haproxy.cfg only gateways the cluster profile runs", () => {
    const all = clusterServices();
    const servers = [...readFileSync("deploy/haproxy.cfg", "utf8").matchAll(/^\s+server (\S+) (\S+):\d+/gm)];
    expect(servers.length).toBeGreaterThan(0);
    for (const [, name, host] of servers) {
      expect(host).toBe(name);
      expect(all.get(host as string)).toMatch(/profiles:\n\s+- cluster\n/);
    }
  });
});
