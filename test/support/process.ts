/** The gateway as a real child process (`node --import tsx gateway/main.ts`), to crash and restart it. */
import { type ChildProcess, spawn } from "node:child_process";
import { type AddressInfo, createServer } from "node:net";
import { createInterface } from "node:readline";
import { LOCAL_RECEIVERS } from "./gateway.ts";
import { waitFor } from "./wait.ts";

export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
    server.once("error", reject);
  });

/** One pino line from the child's stdout. */
export type LogLine = { level: number; msg: string } & Record<string, unknown>;

export interface GatewayProcess {
  child: ChildProcess;
  ports: { http: number; mqtt: number };
  mqttUrl: string;
  /** Every JSON log line the process wrote, in order. */
  logs: LogLine[];
  /** Resolves when the process has exited, with its code or the signal that ended it. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends `signal` and waits for the exit. */
  kill(signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts the gateway on `ports` (free ones if not given) with `DATA_DIR=dataDir`, and resolves once
 * it is ready. Restarting with the same ports lets MQTT clients reconnect by themselves, as
 * devices do.
 */
export async function spawnGateway(options: {
  dataDir: string;
  env?: Record<string, string>;
  ports?: { http: number; mqtt: number };
  startTimeoutMs?: number;
}): Promise<GatewayProcess> {
  const ports = options.ports ?? { http: await freePort(), mqtt: await freePort() };
  const child = spawn(process.execPath, ["--import", "tsx", "gateway/main.ts"], {
    env: {
      ...process.env,
      PORT: String(ports.http),
      MQTT_PORT: String(ports.mqtt),
      HOST: "127.0.0.1",
      DATA_DIR: options.dataDir,
      LOG_LEVEL: "info",
      ...LOCAL_RECEIVERS,
      ...options.env,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const logs: LogLine[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
    try {
      logs.push(JSON.parse(line));
    } catch {
      logs.push({ level: 30, msg: line });
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void exited.then((e) => {
    exit = e;
  });
  // Ready once /readyz answers 200: every part started, the broker and the API listening.
  const ready = async () => {
    if (exit) throw new Error(`the gateway exited while starting: ${JSON.stringify(exit)}`);
    const res = await fetch(`http://127.0.0.1:${ports.http}/readyz`).catch(() => undefined);
    return res?.ok === true;
  };
  try {
    await waitFor(ready, options.startTimeoutMs ?? 15_000, "the gateway process to be ready");
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
  return {
    child,
    ports,
    mqttUrl: `mqtt://127.0.0.1:${ports.mqtt}`,
    logs,
    exited,
    kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
