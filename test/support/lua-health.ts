import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { goToolBinary, goToolDir, runTool } from "./go-tool.js";

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
  const stdout = await runTool("lua-health", binary, JSON.stringify(cases));
  return parseResults(stdout, cases.length);
}

/** Path of the built tool; builds it on first use (memoized per process). */
export function luaHealthBinary(): Promise<string> {
  return goToolBinary("lua-health");
}

/** The gopher-lua version the tool is built with, from its go.mod. */
export async function gopherLuaVersion(): Promise<string> {
  const gomod = await readFile(join(goToolDir("lua-health"), "go.mod"), "utf8");
  const m = /github\.com\/yuin\/gopher-lua (v\S+)/.exec(gomod);
  if (!m?.[1]) throw new Error("lua-health: go.mod does not require github.com/yuin/gopher-lua");
  return m[1];
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
