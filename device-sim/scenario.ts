import { readFileSync } from "node:fs";
import { z } from "zod";

/**
 * A scripted run, for repeatable demos and tests:
 * `{ "steps": [ { "at": 1000, "device": "btn-0001", "event": "press" }, ... ] }`,
 * `at` in milliseconds from the start. Steps may also go offline and come back.
 */
export const scenarioSchema = z.strictObject({
  description: z.string().optional(),
  steps: z.array(
    z.strictObject({
      at: z.number().int().min(0),
      device: z.string().min(1),
      event: z.enum(["press", "cancel", "sos", "fall", "disconnect", "reconnect"]),
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
