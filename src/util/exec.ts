import { execFileSync } from "node:child_process";

/** Runs a command and returns stdout; throws with the command and its stderr on failure. */
export function sh(
  cmd: string,
  args: string[],
  opts: { allowFail?: boolean; input?: string } = {},
): string {
  try {
    return execFileSync(cmd, args, {
      encoding: "utf8",
      stdio: ["pipe", "pipe", "pipe"],
      ...(opts.input !== undefined ? { input: opts.input } : {}),
    });
  } catch (err) {
    if (opts.allowFail) return "";
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(" ")}: ${e.stderr?.trim() || e.message}`);
  }
}
