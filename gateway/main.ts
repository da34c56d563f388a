import { buildGateway, type Gateway } from "./app.ts";
import { ConfigError, loadConfig } from "./config/index.ts";

/**
 * How long a graceful stop may take before the process exits anyway (code 1). Draining is bounded
 * by the webhook timeout (5 s by default); what is cut short is safe to cut: presses are stored
 * before they are acknowledged, and stored events, deadlines and notifications are picked up again
 * at the next start. Kept below the 10 s that Docker and systemd wait before sending SIGKILL.
 */
export const SHUTDOWN_LIMIT_MS = 8_000;

/** Entry point: the only place that reads the environment, opens ports and handles signals. */
export async function main(env = process.env, prepare?: (gateway: Gateway) => Promise<void>) {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`Configuration is invalid:\n${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  let gateway: Gateway;
  try {
    gateway = await buildGateway(config);
    await prepare?.(gateway);
    await gateway.start();
  } catch (err) {
    // A database that cannot be opened, a device-secret key that is missing, a port in use: say what, no stack.
    console.error(`Cannot start: ${(err as Error).message}`);
    process.exit(1);
  }
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      // A second Ctrl-C: the operator does not want to wait for the drain.
      gateway.log.warn({ signal }, "stopping at once, without finishing the drain");
      process.exit(1);
    }
    stopping = true;
    gateway.log.info({ signal }, "stopping");
    const force = setTimeout(() => {
      gateway.log.error({ limitMs: SHUTDOWN_LIMIT_MS }, "the drain took too long: exiting anyway");
      process.exit(1);
    }, SHUTDOWN_LIMIT_MS);
    force.unref();
    try {
      await gateway.stop();
      process.exit(0);
    } catch (err) {
      gateway.log.error({ err }, "graceful stop failed");
      process.exit(1);
    }
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
  return gateway;
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
