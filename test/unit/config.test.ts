import { statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { defaultPolicies } from "../../gateway/alerts/policy.ts";
import { ConfigError, loadConfig } from "../../gateway/config/index.ts";
import { loadVapidKeys, VAPID_KEYS_FILE } from "../../gateway/notify/channels/push.ts";
import { tempDataDir } from "../support/gateway.ts";

/** The one setting without a default. */
const base = { WEBHOOK_SECRET: "test-webhook-secret-0123456789" };

describe("configuration", () => {
  it("refuses to start without WEBHOOK_SECRET, saying how to make one", () => {
    expect(() => loadConfig({})).toThrow(/^WEBHOOK_SECRET: required: the key that signs webhooks/);
  });

  it("has defaults for everything", () => {
    const config = loadConfig(base);
    expect(config).toMatchObject({
      PORT: 8080,
      MQTT_PORT: 1883,
      DATA_DIR: "./data",
      MAX_PAYLOAD_BYTES: 1024,
    });
    expect(config.WEBHOOK_RETRY_DELAYS_MS).toEqual([1000, 5000, 30000]);
    expect(config.policies).toEqual(defaultPolicies);
  });

  it("lists every problem as 'path: what is wrong'", () => {
    expect(() => loadConfig({ PORT: "eighty", MQTT_PORT: "70000", WEBHOOK_SECRET: "short" })).toThrow(
      ConfigError,
    );
    try {
      loadConfig({ PORT: "eighty", MQTT_PORT: "70000", WEBHOOK_SECRET: "short" });
    } catch (err) {
      const lines = (err as Error).message.split("\n");
      expect(lines).toHaveLength(3);
      expect(lines[0]).toMatch(/^PORT: /);
      expect(lines[1]).toMatch(/^MQTT_PORT: /);
      expect(lines[2]).toBe("WEBHOOK_SECRET: must be at least 16 characters");
    }
  });

  it("reads an escalation policy file, overriding the defaults kind by kind", () => {
    const file = join(tempDataDir(), "policies.json");
    writeFileSync(
      file,
      JSON.stringify({ call: { levels: [{ notify: ["staff"], acceptWithinSec: 30 }], repeatLast: false } }),
    );
    const { policies } = loadConfig({ ...base, ESCALATION_POLICY_FILE: file });
    // What the file leaves out takes the defaults: 6 repeats, 30 minutes to resolve after accepting.
    expect(policies.call).toEqual({
      levels: [{ notify: ["staff"], acceptWithinSec: 30 }],
      repeatLast: false,
      maxRepeats: 6,
      resolveWithinSec: 1800,
    });
    expect(policies.sos).toEqual(defaultPolicies.sos);
  });

  it("adds device phrases from a file, and refuses a file that would not work, saying where", () => {
    const file = join(tempDataDir(), "phrases.json");
    const bo = { received: "ཐོབ།", accepted: "{name} ཡོང་གི་ཡོད།", resolved: "ཚར།", cancelled: "མེད་པ།" };
    writeFileSync(file, JSON.stringify({ bo }));
    const { phrases } = loadConfig({ ...base, DEVICE_PHRASES_FILE: file });
    expect(Object.keys(phrases).sort()).toEqual(["bo", "en", "zh-CN"]);
    expect(phrases.bo).toEqual(bo);
    writeFileSync(file, JSON.stringify({ "not a tag": bo, fr: { ...bo, accepted: "en route" } }));
    expect(() => loadConfig({ ...base, DEVICE_PHRASES_FILE: file })).toThrow(
      /not a tag: must be a language tag/,
    );
    expect(() => loadConfig({ ...base, DEVICE_PHRASES_FILE: file })).toThrow(
      /fr\.accepted: must name the accepter as \{name\}/,
    );
  });

  it("reads OUTBOUND_ALLOW as addresses, ranges and host names, and refuses anything else", () => {
    expect(
      loadConfig({ ...base, OUTBOUND_ALLOW: "10.0.0.0/8, 127.0.0.1,bridge.lan,fd00::/8" }).OUTBOUND_ALLOW,
    ).toEqual(["10.0.0.0/8", "127.0.0.1", "bridge.lan", "fd00::/8"]);
    expect(() => loadConfig({ ...base, OUTBOUND_ALLOW: "10.0.0.0/33" })).toThrow(
      "OUTBOUND_ALLOW: '10.0.0.0/33' is not an IP address, a CIDR range or a host name",
    );
    expect(() => loadConfig({ ...base, OUTBOUND_ALLOW: "bridge.lan/8" })).toThrow(/'bridge\.lan\/8' is not/);
  });

  it("reads DEVICE_SECRET_KEY as hex or base64 of 32 bytes or more, and refuses anything else, saying how to make one", () => {
    const bytes = Buffer.alloc(32, 7);
    for (const written of [bytes.toString("hex"), bytes.toString("base64"), bytes.toString("base64url")]) {
      expect(loadConfig({ ...base, DEVICE_SECRET_KEY: written }).DEVICE_SECRET_KEY).toEqual(bytes);
    }
    expect(loadConfig(base).DEVICE_SECRET_KEY).toBeUndefined();
    expect(() => loadConfig({ ...base, DEVICE_SECRET_KEY: Buffer.alloc(16).toString("base64") })).toThrow(
      /^DEVICE_SECRET_KEY: must be at least 32 bytes, not 16, e\.g\. `openssl rand -base64 32`$/,
    );
    for (const malformed of ["correct horse battery staple, twice over", "é".repeat(44), "", "abc=def"]) {
      expect(() => loadConfig({ ...base, DEVICE_SECRET_KEY: malformed })).toThrow(
        /^DEVICE_SECRET_KEY: must be hex or base64, e\.g\. `openssl rand -base64 32`$/,
      );
    }
  });

  it("checks the escalation settings", () => {
    expect(() => loadConfig({ ...base, PUBLIC_URL: "safety.example.org" })).toThrow(
      /^PUBLIC_URL: must be an http\(s\) URL$/,
    );
    expect(() => loadConfig({ ...base, ALERT_QUIET_PERIOD_MIN: "0" })).toThrow(/^ALERT_QUIET_PERIOD_MIN: /);
    expect(loadConfig({ ...base, PUBLIC_URL: "https://safety.example.org/" }).PUBLIC_URL).toBe(
      "https://safety.example.org",
    );
  });

  it("refuses a policy file that would not work, saying where", () => {
    const file = join(tempDataDir(), "policies.json");
    writeFileSync(
      file,
      JSON.stringify({ call: { levels: [{ notify: ["mayor"], acceptWithinSec: 0 }], repeatLast: true } }),
    );
    expect(() => loadConfig({ ...base, ESCALATION_POLICY_FILE: file })).toThrow(
      /call\.levels\.0\.notify\.0: .*\n.*call\.levels\.0\.acceptWithinSec/,
    );
    expect(() => loadConfig({ ...base, ESCALATION_POLICY_FILE: "/nonexistent.json" })).toThrow(/cannot read/);
  });

  it("reads secrets from SECRETS_FILE, the environment winning, and refuses anything else in it", () => {
    const file = join(tempDataDir(), "secrets.json");
    writeFileSync(file, JSON.stringify({ ...base, WECOM_ROBOT_KEY: "from-file" }));
    const config = loadConfig({ SECRETS_FILE: file, WECOM_ROBOT_KEY: "from-env" });
    expect(config.WEBHOOK_SECRET).toBe(base.WEBHOOK_SECRET);
    expect(config.channels.wecom?.key).toBe("from-env");
    expect(config.channels).not.toHaveProperty("sms");
    writeFileSync(file, JSON.stringify({ ...base, PORT: "80" }));
    expect(() => loadConfig({ SECRETS_FILE: file })).toThrow(/secrets\.json: .*PORT/);
  });

  it("refuses a channel begun but not finished, naming what is missing", () => {
    expect(() => loadConfig({ ...base, ALIYUN_SMS_SIGN_NAME: "社区平安" })).toThrow(
      /^ALIYUN_ACCESS_KEY_ID: required for Aliyun SMS and voice calls\nALIYUN_ACCESS_KEY_SECRET: .*\nALIYUN_SMS_TEMPLATE_PAGED: required for SMS\nALIYUN_SMS_TEMPLATE_FOLLOW_UP: required for SMS$/,
    );
    expect(() => loadConfig({ ...base, DINGTALK_ROBOT_SECRET: "SEC1" })).toThrow(
      /^DINGTALK_ROBOT_TOKEN: required/,
    );
    const voice = loadConfig({
      ...base,
      ALIYUN_ACCESS_KEY_ID: "id",
      ALIYUN_ACCESS_KEY_SECRET: "secret",
      ALIYUN_VOICE_TTS_CODE: "TTS_1",
    }).channels;
    expect(Object.keys(voice)).toEqual(["push", "voice"]);
  });

  it("takes a VAPID key pair whole, the private key from SECRETS_FILE too; without one, makes one once in DATA_DIR for the gateway alone", () => {
    const pair = { VAPID_PUBLIC_KEY: `B${"x".repeat(86)}`, VAPID_PRIVATE_KEY: "y".repeat(43) };
    expect(() => loadConfig({ ...base, VAPID_PUBLIC_KEY: pair.VAPID_PUBLIC_KEY })).toThrow(
      /^VAPID_PRIVATE_KEY: required with VAPID_PUBLIC_KEY/,
    );
    expect(() => loadConfig({ ...base, ...pair, VAPID_PRIVATE_KEY: "short" })).toThrow(
      /^VAPID_PRIVATE_KEY: /,
    );
    expect(() => loadConfig({ ...base, VAPID_SUBJECT: "ops@example.org" })).toThrow(/^VAPID_SUBJECT: /);
    const file = join(tempDataDir(), "secrets.json");
    writeFileSync(file, JSON.stringify({ ...base, VAPID_PRIVATE_KEY: pair.VAPID_PRIVATE_KEY }));
    const push = loadConfig({ SECRETS_FILE: file, VAPID_PUBLIC_KEY: pair.VAPID_PUBLIC_KEY }).channels.push;
    expect(push.keys).toEqual({ publicKey: pair.VAPID_PUBLIC_KEY, privateKey: pair.VAPID_PRIVATE_KEY });
    expect(push.subject).toBe("mailto:operator@localhost");

    const dataDir = tempDataDir();
    const log = pino({ level: "silent" });
    const made = loadVapidKeys({ configured: undefined, dataDir, log });
    expect(Buffer.from(made.publicKey, "base64url")).toHaveLength(65);
    expect(statSync(join(dataDir, VAPID_KEYS_FILE)).mode & 0o777).toBe(0o600);
    expect(loadVapidKeys({ configured: undefined, dataDir, log })).toEqual(made);
    const other = loadVapidKeys({ configured: undefined, dataDir: tempDataDir(), log });
    expect(() =>
      loadVapidKeys({ configured: { ...made, privateKey: other.privateKey }, dataDir, log }),
    ).toThrow(/^VAPID_PUBLIC_KEY, VAPID_PRIVATE_KEY: the public key is not the private key's$/);
  });

  it("takes a redis:// REDIS_URL for several instances, and refuses anything else", () => {
    expect(loadConfig(base).REDIS_URL).toBeUndefined();
    expect(loadConfig({ ...base, REDIS_URL: "redis://:pw@redis:6379/2" }).REDIS_URL).toBe(
      "redis://:pw@redis:6379/2",
    );
    for (const url of ["http://redis:6379", "redis:6379", "localhost"]) {
      expect(() => loadConfig({ ...base, REDIS_URL: url })).toThrow(
        /^REDIS_URL: must be a redis:\/\/ \(or rediss:\/\/\) URL, e\.g\. redis:\/\/redis:6379$/,
      );
    }
  });
});
