import { fileURLToPath } from "node:url";
import { build } from "vite";

/** vitest global setup: the browser tests drive the dashboard as built, like the gateway serves it. */
export default async function setup(): Promise<void> {
  await build({
    configFile: fileURLToPath(new URL("../../dashboard/vite.config.ts", import.meta.url)),
    logLevel: "warn",
  });
}
