/** The one catalogue of errors the gateway reports: a stable code, a message, an HTTP status. */
export class GatewayError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    /** For 429 and 503: when the client may try again (the Retry-After header). */
    readonly retryAfterSec?: number,
  ) {
    super(message);
    this.name = "GatewayError";
  }
}

/** Ways a drawn safe zone can be wrong, each its own error code (`error.<code>` on the page). */
export const zoneRefusals = [
  "zone_too_few_corners",
  "zone_self_intersecting",
  "zone_hole_outside",
  "zone_no_area",
  "zone_too_many_positions",
  "zone_schedule_empty",
  "zone_window_backwards",
  "zone_no_tags",
] as const;
export type ZoneRefusal = (typeof zoneRefusals)[number];

export const Errors = {
  notFound: (what: string, id: string) =>
    new GatewayError("not_found", 404, `${what} '${id}' does not exist`),
  alreadyExists: (what: string, id: string) =>
    new GatewayError("already_exists", 409, `${what} '${id}' already exists`),
  inUse: (what: string, id: string, by: string) =>
    new GatewayError("in_use", 409, `${what} '${id}' is still referenced by ${by}`),
  invalid: (message: string) => new GatewayError("invalid_request", 400, message),
  /** A safe zone drawn wrong in a way a person can fix: the code says which, for the page to say so. */
  badZone: (reason: ZoneRefusal, message: string) =>
    new GatewayError(zoneRefusals.includes(reason) ? reason : "invalid_request", 400, message),
  alertClosed: (id: string, state: string) =>
    new GatewayError("alert_closed", 409, `alert '${id}' is already ${state}`),
  alreadyAccepted: (id: string, by: string) =>
    new GatewayError("alert_already_accepted", 409, `alert '${id}' was already accepted by '${by}'`),
  wrongRole: (personId: string, expected: string) =>
    new GatewayError("wrong_role", 400, `person '${personId}' is not a ${expected}`),
  notReady: (why: string) => new GatewayError("not_ready", 503, why),
  unauthenticated: () => new GatewayError("unauthenticated", 401, "sign in first (POST /api/session)"),
  badCredentials: () => new GatewayError("bad_credentials", 401, "wrong username or password"),
  tooManyAttempts: (retryAfterSec: number) =>
    new GatewayError(
      "too_many_attempts",
      429,
      `too many failed sign-ins; try again in ${retryAfterSec} s`,
      retryAfterSec,
    ),
  forbidden: (why: string) => new GatewayError("forbidden", 403, why),
  csrf: () =>
    new GatewayError("csrf", 403, "missing or wrong x-csrf-token header (GET /api/session gives the token)"),
} as const;
