import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import type { TestContext } from "node:test";
import { toolsRequirement } from "../../src/util/system-tools.js";

/**
 * Real-kernel and tool-dependent tests skip, with the reason, where this machine cannot run
 * them — except under CI (`CI=true`) or `NETLOOM_REQUIRE_REAL=1`, where a skip would hide a
 * missing install step: there they fail, naming what is missing.
 */
export function requireReal(env: NodeJS.ProcessEnv = process.env): boolean {
  const on = (v: string | undefined) => v !== undefined && v !== "" && v !== "0" && v !== "false";
  return on(env.NETLOOM_REQUIRE_REAL) || on(env.CI);
}

export interface Needs {
  root?: string;
  btf?: boolean;
  files?: { path: string; hint: string }[];
  tools?: string[];
}

/** Why a test needing `needs` cannot run here, or undefined. */
export function unmet(needs: Needs): string | undefined {
  if (needs.root && process.getuid?.() !== 0) return `needs root (${needs.root})`;
  if (needs.btf && !existsSync("/sys/kernel/btf/vmlinux"))
    return "needs kernel BTF at /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF)";
  for (const f of needs.files ?? []) if (!existsSync(f.path)) return `needs ${f.path}: ${f.hint}`;
  return needs.tools ? toolsRequirement(needs.tools) : undefined;
}

const notAllowed = (reason: string) =>
  `${reason} — this run may not skip (CI or NETLOOM_REQUIRE_REAL=1): install what is missing`;

/**
 * The `skip` option of a suite that needs what `reason` says is missing: the reason, or false
 * when nothing is. Where skipping is not allowed it throws instead, so the test file fails at
 * load with the reason as its error.
 */
export function skipWhen(reason: string | undefined): string | false {
  if (reason === undefined) return false;
  if (requireReal()) throw new Error(notAllowed(reason));
  return reason;
}

/** Inside a test: skip with `reason`, or fail where skipping is not allowed. */
export function skipOrFail(t: TestContext, reason: string): void {
  if (requireReal()) assert.fail(notAllowed(reason));
  t.skip(reason);
}
