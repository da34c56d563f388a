import { ECDH } from "node:crypto";
import type { FastifyPluginAsync } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { Errors } from "../errors.ts";
import { everyone, viewerOf } from "./access.ts";
import type { ApiDeps } from "./index.ts";

/** Browsers (phones) an account may have alerts pushed to. */
const MAX_PER_ACCOUNT = 10;

const base64url = (bytes: number, what: string) =>
  z
    .string()
    .regex(/^[\w-]+={0,2}$/, `must be base64url (${what})`)
    .refine((s) => Buffer.from(s, "base64url").length === bytes, `must be ${bytes} bytes (${what})`);

/** What `PushSubscription.toJSON()` gives in the browser. */
const subscription = z.object({
  endpoint: z.url({ protocol: /^https?$/, error: "must be the push service's URL" }).max(2048),
  expirationTime: z.number().nullable().optional(),
  keys: z.object({
    p256dh: base64url(65, "the browser's P-256 public key").refine((s) => {
      try {
        // Throws unless it is a point on the curve: encrypting to it would fail at every alert.
        ECDH.convertKey(Buffer.from(s, "base64url"), "prime256v1");
        return true;
      } catch {
        return false;
      }
    }, "must be a point on P-256"),
    auth: base64url(16, "the auth secret"),
  }),
});

/**
 * Web Push opt-in: the page subscribes this browser with the gateway's VAPID public key and posts
 * the subscription here; alerts for the account's person are then pushed to it too (Notifier).
 */
export const pushRoutes: FastifyPluginAsync<ApiDeps> = async (
  fastify,
  { store, auth, clock, outbound, vapidPublicKey },
) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const { pushSubscriptions } = store;

  app.get(
    "/api/push/key",
    {
      config: { roles: everyone },
      schema: { tags: ["push"], response: { 200: z.object({ publicKey: z.string() }) } },
    },
    async () => ({ publicKey: vapidPublicKey }),
  );

  app.post(
    "/api/push/subscriptions",
    { config: { roles: everyone }, schema: { tags: ["push"], body: subscription } },
    async (req, reply) => {
      const { account, person } = viewerOf(req);
      if (!person) throw Errors.forbidden("push: this account acts as nobody, so no alert is sent to it");
      const { endpoint, keys } = req.body;
      const refused = outbound.refusal(endpoint);
      if (refused) throw Errors.invalid(`endpoint: ${refused}`);
      const mine = (await pushSubscriptions.get(endpoint))?.username === account.username;
      if (!mine && (await pushSubscriptions.countForAccount(account.username)) >= MAX_PER_ACCOUNT)
        throw Errors.invalid(`push: at most ${MAX_PER_ACCOUNT} browsers per account; turn one off first`);
      await pushSubscriptions.save({
        endpoint,
        personId: person.id,
        username: account.username,
        p256dh: keys.p256dh,
        auth: keys.auth,
        createdAt: clock.now(),
      });
      await auth.audit(account.username, "push.subscribe", person.id, { service: new URL(endpoint).origin });
      return reply.code(204).send();
    },
  );

  app.delete(
    "/api/push/subscriptions",
    {
      config: { roles: everyone },
      schema: { tags: ["push"], body: z.object({ endpoint: z.string().max(2048) }) },
    },
    async (req, reply) => {
      const { account, person } = viewerOf(req);
      // Only the account's own: an endpoint is not proof of anything else.
      if (!(await pushSubscriptions.remove(req.body.endpoint, account.username)))
        throw Errors.notFound("push subscription", "of this account");
      await auth.audit(account.username, "push.unsubscribe", person?.id ?? null);
      return reply.code(204).send();
    },
  );
};
