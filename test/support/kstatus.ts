import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { access, constants, mkdir, readFile, rename, rm } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** One object's kstatus verdict, as printed by test/tools/kstatus. */
export interface KstatusResult {
  kind: string;
  name: string;
  namespace?: string;
  /** InProgress | Failed | Current | Terminating | NotFound | Unknown */
  status: string;
  message: string;
}

/**
 * Runs the real kstatus library (sigs.k8s.io/cli-utils/pkg/kstatus/status, what Flux and kpt
 * use) on the given Kubernetes objects and returns one result per object, in order.
 * The Go tool is built once per content hash into the user cache directory.
 */
export async function kstatus(objects: object[]): Promise<KstatusResult[]> {
  const binary = await kstatusBinary();
  const stdout = await run(binary, JSON.stringify(objects));
  return parseResults(stdout, objects.length);
}

let binaryPromise: Promise<string> | undefined;

/** Path of the built kstatus tool; builds it on first use (memoized per process). */
export function kstatusBinary(): Promise<string> {
  binaryPromise ??= buildBinary().catch((err: unknown) => {
    binaryPromise = undefined;
    throw err;
  });
  return binaryPromise;
}

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "package.json"))) return dir;
    const parent = dirname(dir);
    if (parent === dir)
      throw new Error(`kstatus: no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

async function buildBinary(): Promise<string> {
  const srcDir = join(repoRoot(), "test", "tools", "kstatus");
  const hash = createHash("sha256");
  for (const file of ["main.go", "go.mod", "go.sum"]) {
    hash.update(await readFile(join(srcDir, file)));
  }
  const cacheHome = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  const toolsDir = join(cacheHome, "netloom", "tools");
  const binary = join(toolsDir, `kstatus-${hash.digest("hex").slice(0, 12)}`);
  try {
    await access(binary, constants.X_OK);
    return binary;
  } catch {
    // not built yet
  }
  await mkdir(toolsDir, { recursive: true });
  // Unique temp name in the same directory, so the rename is atomic and concurrent
  // test processes each build their own file; the last rename wins with identical content.
  const tmp = `${binary}.tmp-${process.pid}-${Date.now()}`;
  process.stderr.write(`kstatus: building test/tools/kstatus -> ${binary}\n`);
  try {
    await run("go", ["build", "-o", tmp, "."], { cwd: srcDir, env: { GOWORK: "off" } });
    await rename(tmp, binary);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return binary;
}

function run(
  command: string,
  argsOrStdin: string[] | string,
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Promise<string> {
  const args = Array.isArray(argsOrStdin) ? argsOrStdin : [];
  const stdin = Array.isArray(argsOrStdin) ? undefined : argsOrStdin;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const errOut: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => errOut.push(chunk));
    child.on("error", (err) => reject(new Error(`kstatus: cannot run ${command}: ${err.message}`)));
    child.on("close", (code, signal) => {
      if (code === 0) {
        resolve(Buffer.concat(out).toString("utf8"));
        return;
      }
      const stderr = Buffer.concat(errOut).toString("utf8").trim();
      const how = signal ? `signal ${signal}` : `exit code ${code}`;
      reject(new Error(`kstatus: ${command} ${args.join(" ")} failed (${how}): ${stderr}`));
    });
    // The tool may exit early on bad input; its stderr explains, so ignore EPIPE here.
    child.stdin.on("error", () => {});
    child.stdin.end(stdin ?? "");
  });
}

function parseResults(stdout: string, expected: number): KstatusResult[] {
  const parsed: unknown = JSON.parse(stdout);
  if (!Array.isArray(parsed) || parsed.length !== expected) {
    throw new Error(`kstatus: expected a JSON array of ${expected} results, got: ${stdout}`);
  }
  return parsed.map((item: unknown): KstatusResult => {
    if (typeof item !== "object" || item === null) {
      throw new Error(`kstatus: malformed result: ${JSON.stringify(item)}`);
    }
    const r = item as Record<string, unknown>;
    const str = (key: string): string => {
      const v = r[key];
      if (typeof v !== "string") {
        throw new Error(`kstatus: result field ${key} is not a string: ${JSON.stringify(item)}`);
      }
      return v;
    };
    const result: KstatusResult = {
      kind: str("kind"),
      name: str("name"),
      status: str("status"),
      message: str("message"),
    };
    if (r.namespace !== undefined) result.namespace = str("namespace");
    return result;
  });
}
