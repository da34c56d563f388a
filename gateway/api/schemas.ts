import { z } from "zod";
import { alertEventTypes, alertKinds, alertStates } from "../alerts/model.ts";
import { deviceKinds, relations, roles } from "../store/types.ts";

/** Ids people type and read: letters, digits, dot, dash, underscore. */
export const id = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9._-]+$/, "use letters, digits, '.', '-' or '_'");

export const error = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

export const community = z.object({ id, name: z.string().min(1).max(200) });
export const grid = z.object({ id, communityId: id, name: z.string().min(1).max(200) });

export const contact = z.object({
  kind: z.literal("webhook"),
  address: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }),
});

export const personInput = z.object({
  id,
  name: z.string().min(1).max(200),
  role: z.enum(roles),
  communityId: id,
  gridId: id.nullable().default(null),
  phone: z.string().max(40).nullable().default(null),
  address: z.string().max(300).nullable().default(null),
  contacts: z.array(contact).max(10).default([]),
});
export const person = personInput.required();
export const personPatch = personInput.omit({ id: true }).partial();

export const deviceInput = z.object({ id, kind: z.enum(deviceKinds), ownerId: id });
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
export const device = deviceInput.extend({
  createdAt: z.number(),
  connected: z.boolean().describe("An MQTT connection is open now"),
  state: deviceState.nullable(),
});
export const deviceRegistered = z.object({
  id,
  secret: z.string().describe("Shown once; only its hash is stored"),
});

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
  deadlineAt: z.number().nullable(),
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
  channel: z.enum(["webhook", "device"]),
  address: z.string(),
  attempt: z.number().int(),
  at: z.number(),
  status: z.enum(["pending", "delivered", "failed"]),
  detail: z.string().nullable(),
});
export const alertDetail = alert.extend({ events: z.array(alertEvent), attempts: z.array(attempt) });
