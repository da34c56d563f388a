import { z } from "zod";
import { alertEventTypes, alertKinds, alertStates } from "../alerts/model.ts";
import { escalationPolicySchema } from "../alerts/policy.ts";
import { localeTag } from "../notify/phrases.ts";
import {
  accountRoles,
  attemptStatuses,
  channelKinds,
  contactKinds,
  deviceKinds,
  deviceProtocols,
  relations,
  residentCategories,
  roles,
} from "../store/types.ts";

/** Ids people type and read: letters, digits, dot, dash, underscore. */
export const id = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9._-]+$/, "use letters, digits, '.', '-' or '_'");

export const error = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

export const community = z.object({ id, name: z.string().min(1).max(200) });
export const grid = z.object({ id, communityId: id, name: z.string().min(1).max(200) });

const webhookUrl = z.url({ protocol: /^https?$/, error: "must be an http(s) URL" });
const mobile = z.string().regex(/^\+?\d{5,20}$/, "must be a mobile number: digits, an optional leading +");
/** One way to reach a person; a person's list is tried in order until one takes the message. */
export const contact = z
  .strictObject({
    kind: z.enum(contactKinds).describe("The channel: webhook, wecom, dingtalk, sms or voice"),
    address: z
      .string()
      .describe("webhook: the bridge's URL; any other channel: the mobile number (robots @-mention it)"),
    alertKinds: z
      .array(z.enum(alertKinds))
      .min(1)
      .nullable()
      .default(null)
      .describe("The alert kinds this contact is for; null (the default): every kind"),
    minLevel: z
      .number()
      .int()
      .min(1)
      .max(20)
      .default(1)
      .describe("Paged here from this escalation level on (the catch-all counts as any level)"),
  })
  .superRefine((c, ctx) => {
    const checked = (c.kind === "webhook" ? webhookUrl : mobile).safeParse(c.address);
    if (!checked.success)
      ctx.addIssue({
        code: "custom",
        path: ["address"],
        message: checked.error.issues[0]?.message ?? "invalid",
      });
  });
export const contacts = z.array(contact).max(10);

const personFields = z.object({
  name: z.string().min(1).max(200),
  role: z.enum(roles),
  communityId: id,
  gridId: id.nullable(),
  phone: z.string().max(40).nullable(),
  address: z.string().max(300).nullable(),
  locale: z
    .string()
    .regex(localeTag, "must be a language tag such as zh-CN or en")
    .describe("The language the person reads; a device speaks its resident's (zh-CN by default)"),
  contacts,
  category: z
    .enum(residentCategories)
    .nullable()
    .describe("Residents only: elderly or child (null: not recorded); null for everyone else"),
});
/** An id an administrator may choose; anyone else leaves it out and the gateway makes one. */
export const chosenId = id
  .optional()
  .describe("Chosen by an administrator only; left out, the gateway makes one (such as person-1f2e3d4c5b6a)");
export const personInput = personFields.extend({
  id: chosenId,
  gridId: personFields.shape.gridId.default(null),
  phone: personFields.shape.phone.default(null),
  address: personFields.shape.address.default(null),
  locale: personFields.shape.locale.default("zh-CN"),
  contacts: personFields.shape.contacts.default([]),
  category: personFields.shape.category.default(null),
});
export const person = personFields.extend({ id, category: personFields.shape.category.optional() });
/** Only the fields sent change: no defaults here, or a patch would blank the others. */
export const personPatch = personFields.partial();

const deviceFields = z.object({
  id,
  kind: z.enum(deviceKinds),
  ownerId: id,
  protocol: z
    .enum(deviceProtocols)
    .describe(
      "`mqtt`: device contract v1 with a secret; `watch`: an off-the-shelf 4G watch, by its 10 or 15 digit id",
    ),
});
export const deviceInput = deviceFields
  .extend({ protocol: deviceFields.shape.protocol.default("mqtt") })
  .refine((d) => d.protocol !== "watch" || /^(\d{10}|\d{15})$/.test(d.id), {
    path: ["id"],
    message: "a watch is registered by its id: 10 or 15 digits (as it shows in its frames)",
  });
export const position = z.object({
  lat: z.number(),
  lon: z.number(),
  accuracy: z.number(),
  source: z.string().nullable(),
  ts: z.number(),
});
export const deviceState = z.object({
  lastSeenAt: z.number().describe("Gateway time of the last message"),
  lastTs: z.number().describe("Device time of the newest heartbeat"),
  battery: z.number().nullable(),
  batteryLow: z.boolean(),
  online: z.boolean().describe("false once heartbeats stopped for longer than allowed"),
  position: position.nullable().describe("Last trusted fix"),
});
export const device = deviceFields.extend({
  createdAt: z.number(),
  revokedAt: z.number().nullable().describe("Set while the device may not connect"),
  connected: z.boolean().describe("An MQTT or watch (TCP) connection is open now"),
  state: deviceState.nullable(),
});
export const deviceRegistered = z.object({
  id,
  secret: z
    .string()
    .optional()
    .describe("Shown once; only its hash is stored. None for a watch: its protocol has no password"),
});

/** One care note: free text, blank is none. */
const careNote = z
  .string()
  .trim()
  .max(2000)
  .nullable()
  .default(null)
  .transform((v) => v || null);
export const careNotesInput = z.strictObject({
  conditions: careNote.describe("Conditions a responder must know: dementia, heart failure, epilepsy"),
  medicines: careNote.describe("Medicines taken, and where they are kept"),
  allergies: careNote,
  doorAccess: careNote.describe("How to get in: who holds a key, a door code"),
  language: careNote.describe("The language or dialect to speak to the resident in"),
});
const careNoteOut = z.string().nullable();
export const careNotes = z.object({
  conditions: careNoteOut,
  medicines: careNoteOut,
  allergies: careNoteOut,
  doorAccess: careNoteOut,
  language: careNoteOut,
  updatedAt: z.number().nullable().describe("null: none written yet"),
  updatedBy: z.string().nullable(),
});

/** A device's owner, the person it is about: their responders hear its alerts. */
export const deviceOwner = z.strictObject({ ownerId: id });

export const assignmentInput = z.object({ residentId: id, personId: id, relation: z.enum(relations) });
export const assignment = assignmentInput.extend({ id: z.number().int() });

export const alert = z.object({
  id: z.string(),
  kind: z.enum(alertKinds),
  deviceId: z.string(),
  subjectId: z.string(),
  state: z.enum(alertStates),
  level: z.number().int(),
  presses: z.number().int(),
  openedAt: z.number(),
  acceptedBy: z.string().nullable(),
  acceptedAt: z.number().nullable(),
  closedBy: z.string().nullable(),
  closedAt: z.number().nullable(),
  outcome: z.string().nullable(),
  deadlineAt: z
    .number()
    .nullable()
    .describe(
      "While open: when the next level is paged; while accepted: when the accepter is reminded, then the alert re-opens",
    ),
  policy: escalationPolicySchema.describe(
    "The escalation policy in force when the alert opened or was upgraded",
  ),
  repeats: z.number().int().describe("Times the last level reached was paged again"),
  reminders: z.number().int().describe("Reminders sent to the accepter since accepting"),
  notified: z.array(z.string()).describe("Everyone paged so far; each hears the outcome"),
  unreached: z.boolean().describe("No level could reach anyone: the catch-all was paged"),
  exhausted: z
    .boolean()
    .describe("Repeats ran out with nobody accepting: the catch-all was paged, paging stopped"),
  lastActivityAt: z.number(),
});
export const alertEvent = z.object({
  id: z.number().int(),
  alertId: z.string(),
  at: z.number(),
  type: z.enum(alertEventTypes),
  actor: z.string().nullable(),
  data: z.record(z.string(), z.unknown()),
});
export const attempt = z.object({
  id: z.number().int(),
  alertId: z.string(),
  level: z.number().int(),
  personId: z.string().nullable(),
  channel: z.enum([...channelKinds, "device"]),
  event: z.string().describe("`paged`, a follow-up (`accepted`, `resolved`...), or a device command's type"),
  address: z.string(),
  attempt: z.number().int(),
  at: z.number(),
  status: z
    .enum(attemptStatuses)
    .describe(
      "pending: stored, no answer yet; accepted: the provider took it (SMS, a call placed) without saying whether it arrived; delivered: a robot posted it in its group, a webhook bridge answered 2xx, or a device acknowledged it; failed: see detail; expired: a device command never acknowledged in time",
    ),
  detail: z.string().nullable(),
});
export const alertDetail = alert.extend({ events: z.array(alertEvent), attempts: z.array(attempt) });

export const username = z.string().regex(/^[\w.@-]{1,64}$/, "use 1-64 letters, digits, '.', '_', '@' or '-'");
export const password = z.string().min(10, "use at least 10 characters").max(200);
export const account = z.object({
  username,
  role: z.enum(accountRoles),
  personId: id.nullable(),
  createdAt: z.number(),
  disabledAt: z.number().nullable(),
});
export const sessionInfo = z.object({
  account,
  person: person.nullable().describe("The person the account acts as"),
  csrfToken: z.string().describe("Send as the x-csrf-token header on every POST, PUT, PATCH and DELETE"),
  expiresAt: z.number(),
});
export const auditEntry = z.object({
  id: z.number(),
  at: z.number(),
  actor: z.string(),
  action: z.string(),
  target: z.string().nullable(),
  detail: z.record(z.string(), z.unknown()).nullable(),
});
