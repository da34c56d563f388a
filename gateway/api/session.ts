import type { FastifyPluginAsync } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { Errors } from "../errors.ts";
import { accountRoles } from "../store/types.ts";
import { adminOnly, everyone, setSessionCookie, viewerOf } from "./access.ts";
import type { ApiDeps } from "./index.ts";
import * as s from "./schemas.ts";

/** Sign-in and sign-out, one's own password, accounts (admin), and the access audit log (admin). */
export const sessionRoutes: FastifyPluginAsync<ApiDeps> = async (
  fastify,
  { auth, store, bus, cookieSecure },
) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const tags = ["accounts"];

  app.post(
    "/api/session",
    {
      config: { public: true },
      schema: {
        tags,
        description: "Sign in. Sets an httpOnly session cookie; failed attempts are rate limited (429).",
        body: z.object({ username: z.string().max(64), password: z.string().max(200) }),
        response: { 200: s.sessionInfo },
      },
    },
    async (req, reply) => {
      const { token, session, account } = await auth.login(req.body.username, req.body.password, req.ip);
      setSessionCookie(
        req,
        reply,
        token,
        Math.floor((session.expiresAt - session.createdAt) / 1000),
        cookieSecure,
      );
      const person = account.personId ? ((await store.registry.getPerson(account.personId)) ?? null) : null;
      return { account, person, csrfToken: session.csrfToken, expiresAt: session.expiresAt };
    },
  );
  app.get(
    "/api/session",
    { config: { roles: everyone }, schema: { tags, response: { 200: s.sessionInfo } } },
    async (req) => {
      const viewer = viewerOf(req);
      const session = req.session as NonNullable<typeof req.session>;
      return {
        account: viewer.account,
        person: viewer.person,
        csrfToken: session.csrfToken,
        expiresAt: session.expiresAt,
      };
    },
  );
  app.delete("/api/session", { config: { roles: everyone }, schema: { tags } }, async (req, reply) => {
    if (req.session) {
      await auth.logout(req.session);
      bus.emit("access.changed", { sessions: [req.session.idHash] });
    }
    setSessionCookie(req, reply, "", 0, cookieSecure);
    return reply.code(204).send();
  });
  app.put(
    "/api/session/password",
    {
      config: { roles: everyone },
      schema: {
        tags,
        description: "Change one's own password; every session of the account ends, this one too.",
        body: z.object({ current: z.string().max(200), password: s.password }),
      },
    },
    async (req, reply) => {
      const { username } = viewerOf(req).account;
      await auth.checkPassword(username, req.body.current, req.ip);
      await auth.updateAccount(username, { password: req.body.password }, username);
      bus.emit("access.changed", { usernames: [username] });
      return reply.code(204).send();
    },
  );

  const accountParams = z.object({ username: s.username });
  app.get(
    "/api/users",
    { config: { roles: adminOnly }, schema: { tags, response: { 200: z.array(s.account) } } },
    () => store.accounts.list(),
  );
  app.post(
    "/api/users",
    {
      config: { roles: adminOnly },
      schema: {
        tags,
        body: z.object({
          username: s.username,
          password: s.password,
          role: z.enum(accountRoles),
          personId: s.id.nullable().default(null),
        }),
        response: { 201: s.account },
      },
    },
    async (req, reply) => {
      const { password, ...account } = req.body;
      return reply
        .code(201)
        .send(await auth.createAccount(account, password, viewerOf(req).account.username));
    },
  );
  app.patch(
    "/api/users/:username",
    {
      config: { roles: adminOnly },
      schema: {
        tags,
        description: "Change role or person, disable (ends its sessions) or reset the password",
        params: accountParams,
        body: z.object({
          role: z.enum(accountRoles).optional(),
          personId: s.id.nullable().optional(),
          disabled: z.boolean().optional(),
          password: s.password.optional(),
        }),
        response: { 200: s.account },
      },
    },
    async (req) => {
      const updated = await auth.updateAccount(req.params.username, req.body, viewerOf(req).account.username);
      bus.emit("access.changed", { usernames: [req.params.username] });
      return updated;
    },
  );
  app.post(
    "/api/users/:username/unlock",
    {
      config: { roles: adminOnly },
      schema: {
        tags,
        description: "Lift the sign-in blocks that failed passwords put on the account, from every address",
        params: accountParams,
        response: { 200: z.object({ lifted: z.number().int() }) },
      },
    },
    async (req) => {
      if (!(await store.accounts.get(req.params.username)))
        throw Errors.notFound("account", req.params.username);
      return { lifted: await auth.unlock(req.params.username, viewerOf(req).account.username) };
    },
  );
  app.delete(
    "/api/users/:username",
    { config: { roles: adminOnly }, schema: { tags, params: accountParams } },
    async (req, reply) => {
      await auth.removeAccount(req.params.username, viewerOf(req).account.username);
      bus.emit("access.changed", { usernames: [req.params.username] });
      return reply.code(204).send();
    },
  );

  app.get(
    "/api/audit",
    {
      config: { roles: adminOnly },
      schema: {
        tags,
        description: "Who signed in, changed the registry, or read a tag's track; newest first",
        querystring: z.object({
          actor: z.string().max(64).optional(),
          action: z.string().max(64).optional(),
          target: z.string().max(64).optional(),
          from: z.coerce.number().int().min(0).optional().describe("Entries at or after this time (ms)"),
          to: z.coerce.number().int().min(0).optional().describe("Entries before this time (ms)"),
          limit: z.coerce.number().int().min(1).max(1000).default(200),
        }),
        response: { 200: z.array(s.auditEntry) },
      },
    },
    (req) => store.audit.list(req.query),
  );
};
