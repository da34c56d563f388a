import fastifyHelmet from "@fastify/helmet";
import fastifySwagger from "@fastify/swagger";
import fastifySwaggerUi from "@fastify/swagger-ui";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from "fastify";
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
} from "fastify-type-provider-zod";
import type { Logger } from "pino";
import type { AlertService } from "../alerts/service.ts";
import type { Auth } from "../auth/index.ts";
import type { DeviceSecrets } from "../broker/secrets.ts";
import type { EventBus } from "../bus/index.ts";
import type { Clock } from "../clock/index.ts";
import { Errors, GatewayError } from "../errors.ts";
import type { Metrics } from "../metrics.ts";
import type { OutboundGuard } from "../notify/outbound.ts";
import type { PhraseCatalogue } from "../notify/phrases.ts";
import type { AlertStream } from "../notify/stream.ts";
import { storageFailure } from "../store/sqlite-health.ts";
import type { TelemetryStore } from "../store/telemetry.ts";
import type { ChannelKind, Store } from "../store/types.ts";
import type { Tracker } from "../tracking/index.ts";
import { installAccessControl, SESSION_COOKIE } from "./access.ts";
import { alertRoutes } from "./alerts.ts";
import { type Basemap, basemapRoutes } from "./basemap.ts";
import { dashboardRoutes } from "./dashboard.ts";
import { healthRoutes } from "./health.ts";
import { pushRoutes } from "./push.ts";
import { registryRoutes } from "./registry.ts";
import { reportRoutes } from "./reports.ts";
import { sessionRoutes } from "./session.ts";
import { trackingRoutes } from "./tracking.ts";

export interface ApiDeps {
  store: Store;
  auth: Auth;
  /** Hashes the secrets the API issues to devices. */
  deviceSecrets: DeviceSecrets;
  cookieSecure: "auto" | "true" | "false";
  /** Client address and protocol from X-Forwarded-* (sign-in limits count per client, not per proxy). */
  trustProxy: boolean;
  alerts: AlertService;
  stream: AlertStream;
  metrics: Metrics;
  clock: Clock;
  log: Logger;
  bus: EventBus;
  tracker: Tracker;
  telemetry: TelemetryStore;
  /** What the dashboard needs to know before it draws: map tiles. */
  ui: { tileUrl: string | null; tileAttribution: string; tileMaxZoom: number };
  /** Months in reports are calendar months on this wall clock (an IANA time zone). */
  reportTimeZone: string;
  /** A base map served by the gateway itself, from an MBTiles file. */
  basemap?: Basemap;
  /** Device phrases by language: a person's locale must be one of them. */
  phrases: PhraseCatalogue;
  /** What notification targets may be stored: contacts are checked when written, not only when called. */
  outbound: OutboundGuard;
  /** The channels whose settings are complete: the API says which, never what the settings are. */
  configuredChannels: readonly ChannelKind[];
  /** The VAPID public key browsers subscribe to Web Push with (the private key stays with the push channel). */
  vapidPublicKey: string;
  /** A connection to the device is open, here or (several instances) on another. */
  isConnected: (deviceId: string) => Promise<boolean>;
  /** Ends a device's MQTT connection now (secret rotated, device revoked). */
  disconnectDevice: (deviceId: string, reason: string) => void;
  /** Why the gateway cannot take work now (starting or stopping, Redis unreachable); undefined when ready. */
  unready: () => string | undefined;
  /** Bearer token for /metrics; without one, only requests from this machine may read them. */
  metricsToken: string | undefined;
}

/**
 * The page runs only its own script, talks only to this gateway, and draws tiles only from the
 * configured tile host: a name that smuggled in markup would still find nothing to run.
 */
function contentSecurityPolicy(tileUrl: string | null) {
  // "https://{s}.tile.example.org/{z}/{x}/{y}.png" -> "https://*.tile.example.org"
  const tileHost = tileUrl ? /^https?:\/\/[^/]+/.exec(tileUrl)?.[0].replace("{s}", "*") : undefined;
  return {
    defaultSrc: ["'self'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'"],
    imgSrc: ["'self'", "data:", ...(tileHost ? [tileHost] : [])],
    connectSrc: ["'self'"],
    // The service worker that shows pushes, and the manifest that makes the page an app.
    workerSrc: ["'self'"],
    manifestSrc: ["'self'"],
    fontSrc: ["'self'"],
    objectSrc: ["'none'"],
    baseUri: ["'none'"],
    formAction: ["'self'"],
    frameAncestors: ["'none'"],
    // Off: a gateway served over plain http on a LAN would have its own script "upgraded" to an
    // https that does not exist (behind a TLS proxy, HSTS does the job).
    upgradeInsecureRequests: null,
  };
}

/** Builds the HTTP API (not listening). Every error leaves as `{ error: { code, message } }`. */
export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.log.child({ module: "api" }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    // Live-stream sockets never go idle; without this, close() would wait on them.
    forceCloseConnections: true,
    trustProxy: deps.trustProxy,
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler((err, req, reply) => {
    if (err instanceof GatewayError) {
      if (err.retryAfterSec) reply.header("retry-after", String(err.retryAfterSec));
      return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
    }
    if (hasZodFastifySchemaValidationErrors(err)) {
      const message = err.validation
        .map((v) => `${err.validationContext}${v.instancePath.replaceAll("/", ".")}: ${v.message}`)
        .join("; ");
      return reply.code(400).send({ error: { code: "invalid_request", message } });
    }
    if (storageFailure(err)) {
      req.log.error({ err }, "request failed: the database cannot serve");
      return reply
        .code(503)
        .header("retry-after", "5")
        .send({
          error: { code: "not_ready", message: `the database cannot serve now: ${(err as Error).message}` },
        });
    }
    const status = (err as { statusCode?: number }).statusCode ?? 500;
    if (status < 500) {
      return reply.code(status).send({ error: { code: "invalid_request", message: (err as Error).message } });
    }
    req.log.error({ err }, "request failed");
    return reply
      .code(500)
      .send({ error: { code: "internal", message: "internal error; see the gateway log" } });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: { code: "not_found", message: `no route ${req.method} ${req.url}` } }),
  );

  await app.register(fastifyHelmet, {
    contentSecurityPolicy: { directives: contentSecurityPolicy(deps.ui.tileUrl) },
  });
  // What the API answers is about people: never kept by a browser or a proxy.
  app.addHook("onSend", async (req, reply, payload) => {
    if (req.url.startsWith("/api/")) reply.header("cache-control", "no-store");
    return payload;
  });
  // PostgreSQL stores no NUL character in text: refused here for every engine, so that a request
  // means the same wherever it is stored.
  app.addHook("preValidation", async (req) => {
    for (const [part, value] of [
      ["body", req.body],
      ["querystring", req.query],
      ["params", req.params],
    ] as const) {
      const at = nulAt(value, part);
      if (at) throw Errors.invalid(`${at}: text may not contain the NUL character (U+0000)`);
    }
  });
  installAccessControl(app, deps);
  await app.register(fastifySwagger, {
    openapi: {
      info: {
        title: "Community safety gateway",
        description: "Call buttons and locator tags: registry, alerts, escalation, live stream",
        version: "1",
      },
      components: { securitySchemes: { session: { type: "apiKey", in: "cookie", name: SESSION_COOKIE } } },
      security: [{ session: [] }],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(fastifySwaggerUi, { routePrefix: "/docs" });
  await app.register(healthRoutes, deps);
  await app.register(sessionRoutes, deps);
  await app.register(registryRoutes, deps);
  await app.register(alertRoutes, deps);
  await app.register(trackingRoutes, deps);
  await app.register(reportRoutes, deps);
  await app.register(pushRoutes, deps);
  await app.register(dashboardRoutes, deps);
  if (deps.basemap) await app.register(basemapRoutes, { basemap: deps.basemap });
  return app;
}

/**
 * Where in a parsed request (`a.b.0`) a string or a key holds U+0000, if anywhere. Walked with a
 * list, not by recursion: a body nested a hundred thousand deep is an answer, not a stack overflow.
 */
function nulAt(value: unknown, path: string): string | undefined {
  const pending: [unknown, string][] = [[value, path]];
  for (let next = pending.pop(); next; next = pending.pop()) {
    const [v, at] = next;
    if (typeof v === "string") {
      if (v.includes("\0")) return at;
    } else if (typeof v === "object" && v !== null) {
      for (const [key, inner] of Object.entries(v)) {
        if (key.includes("\0")) return at;
        pending.push([inner, `${at}.${key}`]);
      }
    }
  }
  return undefined;
}
