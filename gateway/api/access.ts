import { timingSafeEqual } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { type Auth, resolveViewer, type Viewer } from "../auth/index.ts";
import { Errors } from "../errors.ts";
import type { AccountRole, Session, Store } from "../store/types.ts";

declare module "fastify" {
  interface FastifyContextConfig {
    /** Account roles allowed on the route; every /api route names them, or is marked public. */
    roles?: readonly AccountRole[];
    public?: boolean;
  }
  interface FastifyRequest {
    viewer: Viewer | null;
    session: Session | null;
  }
}

export const SESSION_COOKIE = "gw_session";
export const everyone = ["admin", "staff", "doctor", "family"] as const;
export const managers = ["admin", "staff"] as const;
export const adminOnly = ["admin"] as const;

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Every /api request: the session cookie names a live session, the account's role is one the
 * route allows, and a state-changing request carries the session's CSRF token. Scope (which
 * people, alerts and devices) is checked by each route against `req.viewer`.
 */
export function installAccessControl(app: FastifyInstance, deps: { auth: Auth; store: Store }): void {
  app.decorateRequest("viewer", null);
  app.decorateRequest("session", null);
  app.addHook("onRoute", (route) => {
    if (!route.url.startsWith("/api/") || route.config?.public || route.config?.roles) return;
    throw new Error(
      `${route.method} ${route.url} must declare the roles allowed (config.roles) or be public`,
    );
  });
  app.addHook("onRequest", async (req) => {
    const config = req.routeOptions.config;
    // By the matched route, not the raw URL, so no spelling of a path slips past.
    if (config.public || !req.routeOptions.url?.startsWith("/api/")) return;
    const token = readCookie(req.headers.cookie, SESSION_COOKIE);
    const found = token ? await deps.auth.session(token) : undefined;
    if (!found) throw Errors.unauthenticated();
    const { account, session } = found;
    if (config.roles && !config.roles.includes(account.role))
      throw Errors.forbidden(`a ${account.role} account may not ${req.method} ${req.routeOptions.url}`);
    if (!SAFE_METHODS.has(req.method) && !sameToken(req.headers["x-csrf-token"], session.csrfToken))
      throw Errors.csrf();
    req.session = session;
    req.viewer = await resolveViewer(deps.store, account);
  });
}

export function viewerOf(req: FastifyRequest): Viewer {
  if (!req.viewer) throw Errors.unauthenticated();
  return req.viewer;
}

export function setSessionCookie(
  req: FastifyRequest,
  reply: FastifyReply,
  value: string,
  maxAgeSec: number,
  secure: "auto" | "true" | "false",
) {
  const https = secure === "true" || (secure === "auto" && req.protocol === "https");
  reply.header(
    "set-cookie",
    `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSec}${https ? "; Secure" : ""}`,
  );
}

function readCookie(header: string | undefined, name: string): string | undefined {
  for (const part of header?.split(";") ?? []) {
    const [key, ...value] = part.trim().split("=");
    if (key === name) return value.join("=");
  }
  return undefined;
}

function sameToken(given: string | string[] | undefined, expected: string): boolean {
  if (typeof given !== "string") return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
