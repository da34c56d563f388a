/**
 * How the benchmark shares the machine's cores: the measured broker (the gateway with all its
 * threads, Mosquitto, or aedes) alone on the first CPU this process may use, and everything that
 * loads or probes it (the load workers, this process: prober, stream reader, webhook receiver) on
 * the others. Without `taskset` or a second CPU, the load workers are only niced.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

export interface CoreSharing {
  /** Command prefix for the measured broker's process. */
  broker: string;
  /** Command prefix for a load worker's process. */
  load: string;
  /** The CPU list this process (the prober) is moved to, when pinning. */
  prober?: string;
  /** How the cores were shared, in one paragraph for the console and BENCHMARKS.md. */
  description: string;
}

/** A kernel CPU list ("0-3,6") as CPU numbers. */
export function parseCpuList(list: string): number[] {
  return list
    .trim()
    .split(",")
    .filter(Boolean)
    .flatMap((part) => {
      const [from, to = from] = part.split("-").map(Number);
      return from === undefined || to === undefined
        ? []
        : Array.from({ length: to - from + 1 }, (_, i) => from + i);
    });
}

/** Whether `taskset` is installed and may pin a process to each CPU list here (a container may refuse). */
const canPin = (...lists: string[]) => {
  try {
    for (const list of lists) execFileSync("taskset", ["-c", list, "true"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
};

const NICE = "nice -n 10";

export function planCores(): CoreSharing {
  const allowed = parseCpuList(
    /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? "",
  );
  const [broker, ...rest] = allowed;
  const load = rest.join(",");
  if (broker === undefined || rest.length === 0 || !canPin(String(broker), load)) {
    const why =
      rest.length === 0 ? "this process may use only one CPU" : "`taskset` is missing or may not pin here";
    return {
      broker: "",
      load: NICE,
      description: `Not pinned (${why}): the measured broker, the load workers (at nice 10) and the prober shared the same cores.`,
    };
  }
  return {
    broker: `taskset -c ${broker}`,
    load: `taskset -c ${load} ${NICE}`,
    prober: load,
    description: `The measured broker (the gateway with all its threads, Mosquitto, or aedes alone) was pinned to CPU ${broker}; the load workers (at nice 10) and the prober (presses, the dashboard's stream, the webhook receiver) to CPU ${load}, with \`taskset\`. The machine's other processes were not pinned.`,
  };
}

/** Moves this process, every thread of it, to the prober's CPUs. */
export function pinProber(cores: CoreSharing): void {
  if (cores.prober)
    execFileSync("taskset", ["-a", "-p", "-c", cores.prober, String(process.pid)], { stdio: "ignore" });
}
