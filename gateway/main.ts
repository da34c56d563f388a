import { buildGateway, type Gateway } from "./app.ts";
import { ConfigError, loadConfig } from "./config/index.ts";

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
  const gateway = await buildGateway(config);
  if (!env.WEBHOOK_SECRET)
    gateway.log.warn("WEBHOOK_SECRET is not set: webhooks are signed with a development secret");
  await prepare?.(gateway);
  await gateway.start();
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    gateway.log.info({ signal }, "stopping");
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    await gateway.stop();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
  return gateway;
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
