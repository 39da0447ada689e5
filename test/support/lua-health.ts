import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { access, constants, mkdir, readFile, rename, rm } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** One Argo CD health check to run: the Lua script and the object it sees as `obj`. */
export interface LuaHealthCase {
  script: string;
  object: object;
}

/**
 * What Argo CD would show: status and message, or the script's error (Argo CD reports a
 * failing health script as an error on the resource).
 */
export type LuaHealthResult =
  | { ok: true; status: string; message: string }
  | { ok: false; error: string };

/**
 * Runs Argo CD Lua health scripts in gopher-lua (github.com/yuin/gopher-lua, the Lua 5.1 VM
 * Argo CD embeds), set up as Argo CD sets it up (see test/tools/lua-health/main.go).
 * The Go tool is built once per content hash into the user cache directory.
 */
export async function luaHealth(cases: LuaHealthCase[]): Promise<LuaHealthResult[]> {
  const binary = await luaHealthBinary();
  const stdout = await run(binary, JSON.stringify(cases));
  return parseResults(stdout, cases.length);
}

let binaryPromise: Promise<string> | undefined;

/** Path of the built lua-health tool; builds it on first use (memoized per process). */
export function luaHealthBinary(): Promise<string> {
  binaryPromise ??= buildBinary().catch((err: unknown) => {
    binaryPromise = undefined;
    throw err;
  });
  return binaryPromise;
}

/** The gopher-lua version the tool is built with, from its go.mod. */
export async function gopherLuaVersion(): Promise<string> {
  const gomod = await readFile(join(repoRoot(), "test", "tools", "lua-health", "go.mod"), "utf8");
  const m = /github\.com\/yuin\/gopher-lua (v\S+)/.exec(gomod);
  if (!m?.[1]) throw new Error("lua-health: go.mod does not require github.com/yuin/gopher-lua");
  return m[1];
}

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "package.json"))) return dir;
    const parent = dirname(dir);
    if (parent === dir)
      throw new Error(`lua-health: no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

async function buildBinary(): Promise<string> {
  const srcDir = join(repoRoot(), "test", "tools", "lua-health");
  const hash = createHash("sha256");
  for (const file of ["main.go", "go.mod", "go.sum"]) {
    hash.update(await readFile(join(srcDir, file)));
  }
  const cacheHome = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  const toolsDir = join(cacheHome, "netloom", "tools");
  const binary = join(toolsDir, `lua-health-${hash.digest("hex").slice(0, 12)}`);
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
  process.stderr.write(`lua-health: building test/tools/lua-health -> ${binary}\n`);
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
    child.on("error", (err) =>
      reject(new Error(`lua-health: cannot run ${command}: ${err.message}`)),
    );
    child.on("close", (code, signal) => {
      if (code === 0) {
        resolve(Buffer.concat(out).toString("utf8"));
        return;
      }
      const stderr = Buffer.concat(errOut).toString("utf8").trim();
      const how = signal ? `signal ${signal}` : `exit code ${code}`;
      reject(new Error(`lua-health: ${command} ${args.join(" ")} failed (${how}): ${stderr}`));
    });
    // The tool may exit early on bad input; its stderr explains, so ignore EPIPE here.
    child.stdin.on("error", () => {});
    child.stdin.end(stdin ?? "");
  });
}

function parseResults(stdout: string, expected: number): LuaHealthResult[] {
  const parsed: unknown = JSON.parse(stdout);
  if (!Array.isArray(parsed) || parsed.length !== expected) {
    throw new Error(`lua-health: expected a JSON array of ${expected} results, got: ${stdout}`);
  }
  return parsed.map((item: unknown): LuaHealthResult => {
    if (typeof item !== "object" || item === null) {
      throw new Error(`lua-health: malformed result: ${JSON.stringify(item)}`);
    }
    const r = item as Record<string, unknown>;
    if (typeof r.error === "string") return { ok: false, error: r.error };
    const status = r.status ?? "";
    const message = r.message ?? "";
    if (typeof status !== "string" || typeof message !== "string") {
      throw new Error(`lua-health: malformed result: ${JSON.stringify(item)}`);
    }
    return { ok: true, status, message };
  });
}
