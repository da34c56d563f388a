import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
import { z } from "zod";
import { defaultPolicies, type EscalationPolicies, escalationPoliciesSchema } from "../alerts/policy.ts";
import { MQTT_MAX_PACKET } from "../broker/packet-size.ts";
import { parseDeviceSecretKey } from "../broker/secrets.ts";
import { parseAllowEntry } from "../notify/outbound.ts";
import { builtInPhrases, type PhraseCatalogue, phraseCatalogueSchema } from "../notify/phrases.ts";
import { alarmBitsOverrideSchema } from "../protocols/watch/alarm.ts";

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
/** A comma-separated list of network entries, each checked: every bad one is named. */
function allowList(
  s: string,
  ctx: z.RefinementCtx,
  valid: (entry: string) => boolean,
  what: string,
): string[] {
  const entries = s
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);
  for (const e of entries) if (!valid(e)) ctx.addIssue({ code: "custom", message: `'${e}' is not ${what}` });
  return entries;
}
const delayList = (defaults: string) =>
  z
    .string()
    .default(defaults)
    .transform((s, ctx) => {
      const delays = s.split(",").map((x) => Number(x.trim()));
      if (delays.some((d) => !Number.isInteger(d) || d < 0)) {
        ctx.addIssue({ code: "custom", message: "must be comma-separated whole milliseconds" });
      }
      return delays;
    });

/** Settings that are secrets: the only ones SECRETS_FILE may hold. Never logged, never returned by the API. */
export const secretSettings = [
  "WEBHOOK_SECRET",
  "DEVICE_SECRET_KEY",
  "METRICS_TOKEN",
  "ADMIN_PASSWORD",
  "INFLUX_TOKEN",
  "INFLUX_PASSWORD",
  "WECOM_ROBOT_KEY",
  "DINGTALK_ROBOT_TOKEN",
  "DINGTALK_ROBOT_SECRET",
  "ALIYUN_ACCESS_KEY_ID",
  "ALIYUN_ACCESS_KEY_SECRET",
  "VAPID_PRIVATE_KEY",
  "DATABASE_URL",
  "REDIS_URL",
] as const;

/** Every setting, its environment variable and its default, in one place. */
export const configSchema = z
  .object({
    PORT: port.default(8080),
    MQTT_PORT: port.default(1883),
    HOST: z.string().default("0.0.0.0"),
    DATA_DIR: z.string().default("./data"),
    LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    /** Signs every webhook; no default, or every deployment would sign with the same public key. */
    WEBHOOK_SECRET: z
      .string({ error: "required: the key that signs webhooks, e.g. `openssl rand -base64 32`" })
      .min(16, "must be at least 16 characters"),
    /**
     * Keys device secrets' hashes, hex or base64; without it, `<DATA_DIR>/device-secret.key`.
     * Gateways sharing one database must share it.
     */
    DEVICE_SECRET_KEY: z
      .string()
      .optional()
      .transform((s, ctx) => {
        if (s === undefined) return undefined;
        try {
          return parseDeviceSecretKey(s);
        } catch (err) {
          ctx.addIssue({ code: "custom", message: (err as Error).message });
          return z.NEVER;
        }
      }),
    /** Bearer token for GET /metrics from other hosts; without it, only this machine may read them. */
    METRICS_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
    WEBHOOK_TIMEOUT_MS: positiveInt.default(5000),
    /** Internal targets notifications may reach anyway: IPs, CIDR ranges or host names, comma-separated. */
    OUTBOUND_ALLOW: z
      .string()
      .default("")
      .transform((s, ctx) =>
        allowList(
          s,
          ctx,
          (e) => parseAllowEntry(e) !== undefined,
          "an IP address, a CIDR range or a host name",
        ),
      ),
    /** Plain-http notification targets (a bridge on this machine); https only by default. */
    OUTBOUND_ALLOW_HTTP: z
      .enum(["true", "false"])
      .default("false")
      .transform((v) => v === "true"),
    WEBHOOK_RETRY_DELAYS_MS: delayList("1000,5000,30000"),
    ESCALATION_POLICY_FILE: z.string().optional(),
    /** JSON file of secret settings by name (see `secretSettings`); the environment overrides it. */
    SECRETS_FILE: z.string().optional(),

    /** Channels beyond the webhook: each is used once its settings are complete (see README, Channels). */
    WECOM_ROBOT_URL: z
      .url({ protocol: /^https?$/ })
      .default("https://qyapi.weixin.qq.com/cgi-bin/webhook/send"),
    WECOM_ROBOT_KEY: z.string().min(1).optional(),
    /** `markdown` shows a link to tap; `text` is plain but @-mentions the person by mobile number. */
    WECOM_MSGTYPE: z.enum(["markdown", "text"]).default("markdown"),
    DINGTALK_ROBOT_URL: z.url({ protocol: /^https?$/ }).default("https://oapi.dingtalk.com/robot/send"),
    DINGTALK_ROBOT_TOKEN: z.string().min(1).optional(),
    /** The robot's signing secret (SEC...), when its security setting is "sign". */
    DINGTALK_ROBOT_SECRET: z.string().min(1).optional(),
    /** Messages a minute one group robot takes (WeCom and DingTalk allow 20). */
    ROBOT_PER_MINUTE: positiveInt.default(20),
    ALIYUN_ACCESS_KEY_ID: z.string().min(1).optional(),
    ALIYUN_ACCESS_KEY_SECRET: z.string().min(1).optional(),
    ALIYUN_REGION: z.string().min(1).default("cn-hangzhou"),
    ALIYUN_SMS_URL: z.url({ protocol: /^https?$/ }).default("https://dysmsapi.aliyuncs.com/"),
    ALIYUN_SMS_SIGN_NAME: z.string().min(1).optional(),
    /** Template for a page: parameters name, kind, address, level, link. */
    ALIYUN_SMS_TEMPLATE_PAGED: z.string().min(1).optional(),
    /** Template for a follow-up: parameters name, kind, status. */
    ALIYUN_SMS_TEMPLATE_FOLLOW_UP: z.string().min(1).optional(),
    ALIYUN_VOICE_URL: z.url({ protocol: /^https?$/ }).default("https://dyvmsapi.aliyuncs.com/"),
    /** Text-to-speech template for a call: parameters name, kind, address. */
    ALIYUN_VOICE_TTS_CODE: z.string().min(1).optional(),
    ALIYUN_VOICE_SHOW_NUMBER: z.string().min(1).optional(),
    /**
     * Web Push's VAPID key pair, base64url as `npx web-push generate-vapid-keys` prints it; both or
     * neither: without them, a pair is made once in `<DATA_DIR>/vapid-keys.json`.
     */
    VAPID_PUBLIC_KEY: z
      .string()
      .regex(/^[\w-]{87}$/, "must be a P-256 public key, base64url (87 characters)")
      .optional(),
    VAPID_PRIVATE_KEY: z
      .string()
      .regex(/^[\w-]{43}$/, "must be a P-256 private key, base64url (43 characters)")
      .optional(),
    /** Whom push services may write to about this gateway's pushes; Apple refuses localhost. */
    VAPID_SUBJECT: z
      .string()
      .regex(/^(mailto:.+@.+|https:\/\/.+)$/, "must be a mailto: address or an https: URL")
      .optional(),
    /** Provider requests: how long each may take, and the delays before retrying the last contact left. */
    CHANNEL_TIMEOUT_MS: positiveInt.default(5000),
    CHANNEL_RETRY_DELAYS_MS: delayList("5000,30000"),
    /** A press this long after an active alert's last activity opens a new alert instead of joining it. */
    ALERT_QUIET_PERIOD_MIN: positiveInt.default(120),
    /** How often deadlines are re-read from the database, and failed ones retried. */
    DEADLINE_SWEEP_SEC: positiveInt.default(5),
    /** With PostgreSQL: how often each gateway claims the deadlines due; a dead gateway's wait at most this. */
    DEADLINE_SWEEP_MS: positiveInt
      .min(100, "must be at least 100: each sweep is a query to PostgreSQL")
      .max(60_000, "must be at most 60000: a dead gateway's deadlines wait this long")
      .default(1000),
    /** A command a device never acknowledges is dropped from its outbox after this long. */
    DEVICE_COMMAND_TTL_HOURS: positiveInt.default(24),
    /** JSON file of device phrases by language, adding to or rewording the built-in zh-CN and en. */
    DEVICE_PHRASES_FILE: z.string().optional(),
    /** Where people reach the dashboard, for links in notifications, e.g. https://safety.example.org */
    PUBLIC_URL: z
      .url({ protocol: /^https?$/, error: "must be an http(s) URL" })
      .transform((u) => u.replace(/\/+$/, ""))
      .optional(),
    MAX_PAYLOAD_BYTES: positiveInt.default(1024),
    MAX_CLOCK_SKEW_MS: positiveInt.default(5 * 60_000),

    /** Device side: MQTT over TLS (both files, PEM, or neither), packet size and rate limits. */
    MQTTS_PORT: port.default(8883),
    MQTT_TLS_CERT: z.string().min(1).optional(),
    MQTT_TLS_KEY: z.string().min(1).optional(),
    MQTT_MAX_PACKET_BYTES: z.coerce
      .number()
      .int()
      .min(256, "must leave room for a CONNECT with credentials")
      .max(MQTT_MAX_PACKET)
      .default(4096),
    /** Publishes a second per connected device, with a burst; 0 turns the limit off. */
    DEVICE_PUBLISH_RATE: z.coerce.number().min(0).default(5),
    DEVICE_PUBLISH_BURST: positiveInt.default(50),
    /** New MQTT connections a second per source address, with a burst; 0 turns the limit off. */
    MQTT_CONNECT_RATE_PER_IP: z.coerce.number().min(0).default(50),
    MQTT_CONNECT_BURST_PER_IP: positiveInt.default(500),

    /**
     * Off-the-shelf 4G watches and SOS pendants (the "watch" / 3G / SeTracker protocol over TCP);
     * 0 keeps the port closed. The protocol has no password: see SECURITY.md.
     */
    WATCH_PORT: port.default(0),
    /** A longer frame (a voice message, a picture) closes the connection. */
    WATCH_MAX_FRAME_BYTES: z.coerce.number().int().min(256).max(1_048_576).default(16_384),
    /** A watch connection silent this long is closed (watches send `LK` every few minutes). */
    WATCH_IDLE_TIMEOUT_SEC: positiveInt.default(900),
    /** New watch connections a second per source address, with a burst; 0 turns the limit off. */
    WATCH_CONNECT_RATE_PER_IP: z.coerce.number().min(0).default(50),
    WATCH_CONNECT_BURST_PER_IP: positiveInt.default(500),
    /** Networks watches may connect from (the operator's APN, a VPN): IPs or CIDR ranges, comma-separated; empty: any. */
    WATCH_ALLOW_FROM: z
      .string()
      .default("")
      .transform((s, ctx) =>
        allowList(
          s,
          ctx,
          (e) => {
            const parsed = parseAllowEntry(e);
            return parsed !== undefined && !("host" in parsed);
          },
          "an IP address or a CIDR range",
        ),
      ),
    /**
     * Where cell towers and Wi-Fi access points seen without a GPS fix are turned into a position
     * (the common geolocation request format); none by default. Reached through the outbound guard.
     */
    WATCH_GEOLOCATION_URL: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional(),
    /** A watch's report (an alarm's answer too) waits this long at most for the resolver. */
    WATCH_GEOLOCATION_TIMEOUT_MS: positiveInt.default(2000),
    /** JSON: per model (maker code or watch id), status bits that differ, e.g. {"SG":{"16":"ignore","22":"sos"}}. */
    WATCH_ALARM_BITS: z
      .string()
      .default("{}")
      .transform((s, ctx) => {
        let json: unknown;
        try {
          json = JSON.parse(s);
        } catch {
          ctx.addIssue({ code: "custom", message: "must be JSON" });
          return z.NEVER;
        }
        const parsed = alarmBitsOverrideSchema.safeParse(json);
        if (!parsed.success) {
          ctx.addIssue({ code: "custom", message: describe(parsed.error.issues) });
          return z.NEVER;
        }
        return parsed.data;
      }),

    /** Outages. A live-stream client this far behind is disconnected; it resumes with Last-Event-ID. */
    STREAM_CLIENT_BUFFER_BYTES: z.coerce
      .number()
      .int()
      .min(65_536, "must hold the largest single event (about 16 KB)")
      .default(1_048_576),
    /** Requests in flight to one webhook endpoint (scheme, host and port); more wait their turn. */
    WEBHOOK_CONCURRENCY: positiveInt.default(8),
    /**
     * PostgreSQL instead of the embedded SQLite file: postgres://user:password@host:port/database.
     * Several gateways may share one database.
     */
    DATABASE_URL: z
      .string()
      .optional()
      .refine((s) => s === undefined || /^postgres(ql)?:\/\/[^/]+\/[^/?#]+/.test(s), {
        message: "must be a PostgreSQL URL: postgres://user:password@host:port/database",
      }),
    /** How long a database write waits for another connection's lock before failing. */
    DB_BUSY_TIMEOUT_MS: z.coerce.number().int().min(0).default(5000),
    /** Caps the database file, so that it fails clearly before it fills the disk; no cap by default. */
    DB_MAX_SIZE_MB: z.coerce.number().positive().optional(),

    /** Several instances: their brokers share sessions, queues and every publish through Redis. */
    REDIS_URL: z
      .url({
        protocol: /^rediss?$/,
        hostname: /./,
        error: "must be a redis:// (or rediss://) URL, e.g. redis://redis:6379",
      })
      .optional(),

    INFLUX_URL: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional(),
    INFLUX_DB: z.string().min(1).default("gateway"),
    INFLUX_TOKEN: z.string().optional(),
    INFLUX_USERNAME: z.string().optional(),
    INFLUX_PASSWORD: z.string().optional(),
    TELEMETRY_RETENTION_DAYS: positiveInt.default(30),
    TELEMETRY_BATCH_SIZE: positiveInt.default(5000),
    TELEMETRY_FLUSH_MS: positiveInt.default(1000),
    TELEMETRY_MAX_BUFFERED: positiveInt.default(100_000),

    HEARTBEAT_SEC_CALL_BUTTON: positiveInt.default(300),
    HEARTBEAT_SEC_LOCATOR_TAG: positiveInt.default(60),
    OFFLINE_AFTER_MISSED: positiveInt.default(3),
    LOW_BATTERY_PERCENT: z.coerce.number().min(0).max(100).default(20),
    BATTERY_RECOVERED_PERCENT: z.coerce.number().min(0).max(100).default(30),
    MAX_FIX_ACCURACY_M: positiveInt.default(500),
    STALE_POSITION_SEC: positiveInt.default(300),
    GEOFENCE_MAX_ACCURACY_M: positiveInt.default(100),
    GEOFENCE_MARGIN_M: z.coerce.number().min(0).default(20),
    GEOFENCE_EXIT_FIXES: positiveInt.default(3),
    GEOFENCE_RETURN_FIXES: positiveInt.default(2),

    /** Dashboard accounts: the first admin is created from these when there is no account yet. */
    ADMIN_USERNAME: z
      .string()
      .regex(/^[\w.@-]{1,64}$/, "letters, digits, . _ @ - only")
      .default("admin"),
    ADMIN_PASSWORD: z.string().min(10, "must be at least 10 characters").optional(),
    SESSION_TTL_HOURS: positiveInt.default(12),
    /** A session not used for this long ends (the page in use keeps it alive). */
    SESSION_IDLE_HOURS: positiveInt.default(12),
    LOGIN_MAX_FAILURES: positiveInt.default(5),
    LOGIN_MAX_FAILURES_PER_ADDRESS: positiveInt.default(20),
    LOGIN_FAILURE_WINDOW_MIN: positiveInt.default(15),
    /** `auto`: Secure cookies when the request came over HTTPS (per X-Forwarded-Proto with TRUST_PROXY). */
    COOKIE_SECURE: z.enum(["auto", "true", "false"]).default("auto"),
    /** Behind a reverse proxy: take the client's address and protocol from X-Forwarded-* headers. */
    TRUST_PROXY: z
      .enum(["true", "false"])
      .default("false")
      .transform((v) => v === "true"),
    /** Closed alerts, their trail, and the access log are deleted after this many days; 0 keeps them. */
    ALERT_RETENTION_DAYS: z.coerce.number().int().min(0).default(0),

    /** Map tiles for the dashboard, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png; none by default. */
    TILE_URL: z
      .string()
      .regex(/^https?:\/\/.*\{z\}.*\{x\}.*\{y\}/, "must be an http(s) URL template with {z}, {x} and {y}")
      .optional(),
    TILE_ATTRIBUTION: z.string().default(""),
    /** Reports count calendar months on this wall clock. */
    REPORT_TIME_ZONE: z
      .string()
      .default("Asia/Shanghai")
      .refine(
        (tz) => {
          try {
            new Intl.DateTimeFormat("en", { timeZone: tz });
            return true;
          } catch {
            return false;
          }
        },
        { message: "must be an IANA time zone, e.g. Asia/Shanghai" },
      ),
    /** A base map with no internet: an MBTiles file of raster tiles (relative to DATA_DIR), served at /tiles. */
    BASEMAP_MBTILES: z.string().min(1).optional(),
  })
  .refine((c) => !(c.TILE_URL && c.BASEMAP_MBTILES), {
    path: ["BASEMAP_MBTILES"],
    message: "set TILE_URL or BASEMAP_MBTILES, not both: the page draws one base map",
  })
  .refine((c) => c.BATTERY_RECOVERED_PERCENT > c.LOW_BATTERY_PERCENT, {
    path: ["BATTERY_RECOVERED_PERCENT"],
    message: "must be above LOW_BATTERY_PERCENT, or low-battery alerts would flap",
  });

type Settings = z.infer<typeof configSchema>;
export type Config = Omit<Settings, "ESCALATION_POLICY_FILE" | "DEVICE_PHRASES_FILE" | "SECRETS_FILE"> & {
  policies: EscalationPolicies;
  phrases: PhraseCatalogue;
  mqttTls: MqttTls | undefined;
  channels: ChannelSettings;
};

/** The channels whose settings are complete; a channel left out is not used. */
export interface ChannelSettings {
  wecom?: { url: string; key: string; msgtype: "markdown" | "text" };
  dingtalk?: { url: string; token: string; secret: string | undefined };
  sms?: AliyunAccount & { url: string; signName: string; templatePaged: string; templateFollowUp: string };
  voice?: AliyunAccount & { url: string; ttsCode: string; showNumber?: string };
  /** Always on (a key pair is made when none is set); it sends only to those who turned it on. */
  push: { subject: string; keys: { publicKey: string; privateKey: string } | undefined };
}
export interface AliyunAccount {
  accessKeyId: string;
  accessKeySecret: string;
  region: string;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

const describe = (issues: z.core.$ZodIssue[], prefix = "") =>
  issues.map((i) => `${prefix}${i.path.join(".") || "(root)"}: ${i.message}`).join("\n");

/** Reads and checks configuration; throws a ConfigError listing every `path: problem`. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const secrets = env.SECRETS_FILE ? loadSecrets(env.SECRETS_FILE) : {};
  const parsed = configSchema.safeParse({ ...secrets, ...env });
  if (!parsed.success) throw new ConfigError(describe(parsed.error.issues));
  const { ESCALATION_POLICY_FILE, DEVICE_PHRASES_FILE, SECRETS_FILE: _, ...rest } = parsed.data;
  return {
    ...rest,
    channels: channelSettings(rest),
    policies: ESCALATION_POLICY_FILE ? loadPolicies(ESCALATION_POLICY_FILE) : defaultPolicies,
    phrases: DEVICE_PHRASES_FILE ? loadPhrases(DEVICE_PHRASES_FILE) : builtInPhrases,
    mqttTls: loadMqttTls(rest.MQTT_TLS_CERT, rest.MQTT_TLS_KEY),
  };
}

export interface MqttTls {
  cert: Buffer;
  key: Buffer;
}

/** Reads the broker's certificate and key at start-up, so a wrong path or pair stops it with a clear message. */
function loadMqttTls(certFile: string | undefined, keyFile: string | undefined): MqttTls | undefined {
  if (!certFile && !keyFile) return undefined;
  if (!certFile) throw new ConfigError("MQTT_TLS_CERT: required with MQTT_TLS_KEY (TLS needs both)");
  if (!keyFile) throw new ConfigError("MQTT_TLS_KEY: required with MQTT_TLS_CERT (TLS needs both)");
  const read = (name: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ConfigError(`${name}: cannot read ${file}: ${(err as Error).message}`);
    }
  };
  const tls = { cert: read("MQTT_TLS_CERT", certFile), key: read("MQTT_TLS_KEY", keyFile) };
  try {
    createSecureContext(tls);
  } catch (err) {
    throw new ConfigError(
      `MQTT_TLS_CERT: not a PEM certificate matching MQTT_TLS_KEY: ${(err as Error).message}`,
    );
  }
  return tls;
}

function readJson(setting: string, file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new ConfigError(`${setting}: cannot read ${file}: ${(err as Error).message}`);
  }
}

/** A policy file overrides the defaults kind by kind. */
export function loadPolicies(file: string): EscalationPolicies {
  const parsed = escalationPoliciesSchema.safeParse(readJson("ESCALATION_POLICY_FILE", file));
  if (!parsed.success) throw new ConfigError(describe(parsed.error.issues, `${file}: `));
  return { ...defaultPolicies, ...parsed.data };
}

/** A phrase file adds languages, or rewords the built-in ones, language by language. */
export function loadPhrases(file: string): PhraseCatalogue {
  const parsed = phraseCatalogueSchema.safeParse(readJson("DEVICE_PHRASES_FILE", file));
  if (!parsed.success) throw new ConfigError(describe(parsed.error.issues, `${file}: `));
  return { ...builtInPhrases, ...parsed.data };
}

/** A secrets file holds secret settings only, as strings: a typo there must not pass unnoticed. */
function loadSecrets(file: string): Record<string, string> {
  const schema = z.strictObject(
    Object.fromEntries(secretSettings.map((name) => [name, z.string().optional()])),
  );
  const parsed = schema.safeParse(readJson("SECRETS_FILE", file));
  if (!parsed.success) throw new ConfigError(describe(parsed.error.issues, `${file}: `));
  return parsed.data as Record<string, string>;
}

/** Which channels are complete; one begun but not finished stops the gateway, naming what is missing. */
function channelSettings(
  s: Omit<Settings, "ESCALATION_POLICY_FILE" | "DEVICE_PHRASES_FILE">,
): ChannelSettings {
  const missing: string[] = [];
  const need = (names: Record<string, string | undefined>, why: string) => {
    for (const [name, value] of Object.entries(names))
      if (value === undefined) missing.push(`${name}: required ${why}`);
  };
  if (Boolean(s.VAPID_PUBLIC_KEY) !== Boolean(s.VAPID_PRIVATE_KEY))
    missing.push(
      s.VAPID_PUBLIC_KEY
        ? "VAPID_PRIVATE_KEY: required with VAPID_PUBLIC_KEY (a key pair)"
        : "VAPID_PUBLIC_KEY: required with VAPID_PRIVATE_KEY (a key pair)",
    );
  const channels: ChannelSettings = {
    push: {
      subject:
        s.VAPID_SUBJECT ?? (s.PUBLIC_URL?.startsWith("https:") ? s.PUBLIC_URL : "mailto:operator@localhost"),
      keys:
        s.VAPID_PUBLIC_KEY && s.VAPID_PRIVATE_KEY
          ? { publicKey: s.VAPID_PUBLIC_KEY, privateKey: s.VAPID_PRIVATE_KEY }
          : undefined,
    },
  };
  if (s.WECOM_ROBOT_KEY)
    channels.wecom = { url: s.WECOM_ROBOT_URL, key: s.WECOM_ROBOT_KEY, msgtype: s.WECOM_MSGTYPE };
  if (s.DINGTALK_ROBOT_TOKEN)
    channels.dingtalk = {
      url: s.DINGTALK_ROBOT_URL,
      token: s.DINGTALK_ROBOT_TOKEN,
      secret: s.DINGTALK_ROBOT_SECRET,
    };
  else if (s.DINGTALK_ROBOT_SECRET) missing.push("DINGTALK_ROBOT_TOKEN: required with DINGTALK_ROBOT_SECRET");
  const wantsSms = Boolean(s.ALIYUN_SMS_SIGN_NAME || s.ALIYUN_SMS_TEMPLATE_PAGED);
  const wantsVoice = Boolean(s.ALIYUN_VOICE_TTS_CODE);
  if (wantsSms || wantsVoice)
    need(
      { ALIYUN_ACCESS_KEY_ID: s.ALIYUN_ACCESS_KEY_ID, ALIYUN_ACCESS_KEY_SECRET: s.ALIYUN_ACCESS_KEY_SECRET },
      "for Aliyun SMS and voice calls",
    );
  if (wantsSms)
    need(
      {
        ALIYUN_SMS_SIGN_NAME: s.ALIYUN_SMS_SIGN_NAME,
        ALIYUN_SMS_TEMPLATE_PAGED: s.ALIYUN_SMS_TEMPLATE_PAGED,
        // Without it a follow-up ("accepted by Dr Tsering") would go out in the paging template
        // and read as a new emergency.
        ALIYUN_SMS_TEMPLATE_FOLLOW_UP: s.ALIYUN_SMS_TEMPLATE_FOLLOW_UP,
      },
      "for SMS",
    );
  if (missing.length > 0) throw new ConfigError(missing.join("\n"));
  const aliyun = {
    accessKeyId: s.ALIYUN_ACCESS_KEY_ID ?? "",
    accessKeySecret: s.ALIYUN_ACCESS_KEY_SECRET ?? "",
    region: s.ALIYUN_REGION,
  };
  if (wantsSms)
    channels.sms = {
      ...aliyun,
      url: s.ALIYUN_SMS_URL,
      signName: s.ALIYUN_SMS_SIGN_NAME ?? "",
      templatePaged: s.ALIYUN_SMS_TEMPLATE_PAGED ?? "",
      templateFollowUp: s.ALIYUN_SMS_TEMPLATE_FOLLOW_UP ?? "",
    };
  if (s.ALIYUN_VOICE_TTS_CODE)
    channels.voice = {
      ...aliyun,
      url: s.ALIYUN_VOICE_URL,
      ttsCode: s.ALIYUN_VOICE_TTS_CODE,
      showNumber: s.ALIYUN_VOICE_SHOW_NUMBER,
    };
  return channels;
}
