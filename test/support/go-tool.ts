import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { access, constants, mkdir, readFile, rename, rm } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "../../src/api/fixtures.js";

const built = new Map<string, Promise<string>>();

/**
 * The binary of the Go tool in test/tools/<name>, built from the Go module proxy on first use
 * into ~/.cache/netloom/tools/<name>-<content hash> (memoized per process; CI reuses the cache).
 */
export function goToolBinary(name: string): Promise<string> {
  let p = built.get(name);
  if (!p) {
    p = buildGoTool(name).catch((err: unknown) => {
      built.delete(name);
      throw err;
    });
    built.set(name, p);
  }
  return p;
}

export function goToolDir(name: string): string {
  return join(REPO_ROOT, "test", "tools", name);
}

async function buildGoTool(name: string): Promise<string> {
  const srcDir = goToolDir(name);
  const hash = createHash("sha256");
  for (const file of ["main.go", "go.mod", "go.sum"])
    hash.update(await readFile(join(srcDir, file)));
  const cacheHome = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  const toolsDir = join(cacheHome, "netloom", "tools");
  const binary = join(toolsDir, `${name}-${hash.digest("hex").slice(0, 12)}`);
  try {
    await access(binary, constants.X_OK);
    return binary;
  } catch {
    // not built yet
  }
  await mkdir(toolsDir, { recursive: true });
  // A unique temp name in the same directory: the rename is atomic, and concurrent test
  // processes each build their own file; the last rename wins with identical content.
  const tmp = `${binary}.tmp-${process.pid}-${Date.now()}`;
  process.stderr.write(`${name}: building test/tools/${name} -> ${binary}\n`);
  try {
    await runTool(name, "go", ["build", "-o", tmp, "."], { cwd: srcDir, env: { GOWORK: "off" } });
    await rename(tmp, binary);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return binary;
}

/** Runs command with args (or with text on stdin); resolves with stdout, rejects with stderr. */
export function runTool(
  tool: string,
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
    child.on("error", (err) => reject(new Error(`${tool}: cannot run ${command}: ${err.message}`)));
    child.on("close", (code, signal) => {
      if (code === 0) {
        resolve(Buffer.concat(out).toString("utf8"));
        return;
      }
      const stderr = Buffer.concat(errOut).toString("utf8").trim();
      const how = signal ? `signal ${signal}` : `exit code ${code}`;
      reject(new Error(`${tool}: ${command} ${args.join(" ")} failed (${how}): ${stderr}`));
    });
    // The tool may exit early on bad input; its stderr explains, so ignore EPIPE here.
    child.stdin.on("error", () => {});
    child.stdin.end(stdin ?? "");
  });
}
