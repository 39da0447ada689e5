import { type ChildProcess, spawn } from "node:child_process";
import { openSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A detached process with stdout and stderr appended to logPath: it outlives the command that
 * started it (`cluster up`, `demo up`); whoever stops it uses terminate with its pid.
 */
export function spawnDaemon(
  bin: string,
  args: string[],
  logPath: string,
  env: NodeJS.ProcessEnv = process.env,
): ChildProcess {
  const out = openSync(logPath, "a");
  const child = spawn(bin, args, { detached: true, stdio: ["ignore", out, out], env });
  child.unref();
  return child;
}

/** Sends `signal`, waits up to graceMs for the exit, then SIGKILLs and waits for that. */
export async function terminate(
  pid: number | undefined,
  signal: NodeJS.Signals = "SIGTERM",
  graceMs = 10_000,
): Promise<void> {
  if (!pid || !isAlive(pid)) return;
  try {
    process.kill(pid, signal);
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(50);
  if (!isAlive(pid)) return;
  try {
    process.kill(pid, "SIGKILL");
  } catch {}
  while (isAlive(pid)) await sleep(20);
}
