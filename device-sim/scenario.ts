import { readFileSync } from "node:fs";
import { z } from "zod";

/**
 * A scripted run, for repeatable demos and tests:
 * `{ "steps": [ { "at": 1000, "device": "btn-0001", "event": "press" }, ... ] }`,
 * `at` in milliseconds from the start. Steps may also go offline and come back, or report a fix
 * (`{"event": "fix", "lat", "lon", "accuracy"}`) to walk a tag exactly where a test needs it.
 */
export const scenarioSchema = z.strictObject({
  description: z.string().optional(),
  steps: z.array(
    z
      .strictObject({
        at: z.number().int().min(0),
        device: z.string().min(1),
        event: z.enum(["press", "cancel", "sos", "fall", "disconnect", "reconnect", "fix"]),
        /** For `fix`: a heartbeat from exactly here. */
        lat: z.number().min(-90).max(90).optional(),
        lon: z.number().min(-180).max(180).optional(),
        accuracy: z.number().min(0).optional(),
      })
      .refine((s) => s.event !== "fix" || (s.lat !== undefined && s.lon !== undefined), {
        message: "a 'fix' step needs lat and lon",
      }),
  ),
});
export type Scenario = z.infer<typeof scenarioSchema>;

export function loadScenario(file: string): Scenario {
  const parsed = scenarioSchema.safeParse(JSON.parse(readFileSync(file, "utf8")));
  if (!parsed.success) {
    throw new Error(
      parsed.error.issues.map((i) => `${file}: ${i.path.join(".") || "(root)"}: ${i.message}`).join("\n"),
    );
  }
  return parsed.data;
}
