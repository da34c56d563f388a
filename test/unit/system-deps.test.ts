import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

/**
 * A fresh machine has only Node.js: every other program the tests or the benchmark start must be
 * installed by test/setup/system-deps.sh, or CI passes only where someone installed it by hand.
 */
const script = "test/setup/system-deps.sh";

/** The script's table: program (or file) -> Debian package. */
function installTable(): Map<string, string> {
  const text = readFileSync(script, "utf8");
  const body = /<<'TABLE'\n([\s\S]*?)\nTABLE/.exec(text)?.[1] ?? "";
  return new Map(
    body
      .split("\n")
      .map((line) => line.trim().split(/\s+/))
      .filter((row): row is [string, string] => row.length === 2),
  );
}

/** Programs a source file starts: by spawn/execFile, a shell's `exec`/`command -v`, or a browser's executablePath. */
function programsStarted(source: string): Set<string> {
  const patterns = [
    /(?<![.\w])(?:spawn|spawnSync|execFile|execFileSync|run)\(\s*["']([^"'$]+)["']/g,
    /\bexecutablePath:\s*["']([^"']+)["']/g,
    /\b(?:exec|command -v)\s+([A-Za-z][\w.+-]*)/g,
  ];
  const found = new Set<string>();
  for (const pattern of patterns) for (const m of source.matchAll(pattern)) if (m[1]) found.add(m[1]);
  return found;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => join(e.parentPath, e.name));
}

const sh = (cmd: string, ...args: string[]) =>
  execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
const resolve = (program: string) =>
  program.startsWith("/") ? program : sh("bash", "-c", 'command -v "$1"', "_", program);

/** The Debian package that owns a file; with merged /usr, dpkg may know it as /bin/x rather than /usr/bin/x. */
function packageOf(path: string): string {
  for (const candidate of new Set([path, realpathSync(path), path.replace(/^\/usr\//, "/")])) {
    try {
      return sh("dpkg", "-S", candidate).split(":")[0] ?? "";
    } catch {}
  }
  return "";
}

/** Programs of Debian's essential or required base, on every Debian machine; nothing to install. */
function fromBaseSystem(path: string): boolean {
  const owner = packageOf(path);
  if (!owner) return false;
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format, not a template
  const [essential, priority] = sh("dpkg-query", "-W", "-f=${Essential} ${Priority}", owner).split(" ");
  return essential === "yes" || priority === "required";
}

describe("system packages the tests need", () => {
  it("finds programs however a test starts them", () => {
    const found = programsStarted(
      [
        'spawn("memcached", ["--port", "0"]);',
        "await run(\n  'psql', [...args]);",
        'chromium.launch({ executablePath: "/usr/bin/chromium" });',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a test file's text, with its template
        'spawn("bash", ["-c", `ulimit -n 4096 && exec nginx -c ${cfg}`]);',
        'execFileSync("bash", ["-c", "command -v pg_isready"]);',
        'spawn(process.execPath, ["--import", "tsx"]); /^id: (\\d+)$/m.exec(f); db.exec("BEGIN");',
        'db.prepare("INSERT INTO people VALUES (?)").run("doctor");',
      ].join("\n"),
    );
    expect([...found].sort()).toEqual([
      "/usr/bin/chromium",
      "bash",
      "memcached",
      "nginx",
      "pg_isready",
      "psql",
    ]);
  });

  it("installs every program the tests and the benchmark start", () => {
    const table = installTable();
    const missing: string[] = [];
    const scanned = [...sources("test"), ...sources("device-sim")].filter(
      (f) => !f.endsWith("system-deps.test.ts"),
    );
    for (const file of scanned) {
      for (const program of programsStarted(readFileSync(file, "utf8"))) {
        if (table.has(program)) continue;
        let path: string;
        try {
          path = resolve(program);
        } catch {
          missing.push(`${file}: starts ${program}, which is not installed and not in ${script}`);
          continue;
        }
        if (!fromBaseSystem(path)) missing.push(`${file}: starts ${program} (${path}), not in ${script}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it("names, for each program, the package that really provides it", () => {
    const table = installTable();
    expect(table.get("/usr/bin/chromium")).toBe("chromium");
    expect([...table.values()].some((p) => p.startsWith("fonts-wqy") || p.startsWith("fonts-noto-cjk"))).toBe(
      true,
    );
    for (const [program, pkg] of table) {
      const path = resolve(program);
      expect(existsSync(path), program).toBe(true);
      expect(packageOf(path), program).toBe(pkg);
    }
  });
});
