import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";
import { sh } from "../util/exec.js";

export { sh };

// Thin wrappers over iproute2 and nsenter. `ip netns exec` remounts /sys (bpffs pins vanish),
// so commands run in a namespace through `nsenter --net=/run/netns/NAME`.

export const ip = (args: string[], allowFail = false) => sh("ip", args, { allowFail });

/** Runs a command inside a network namespace (keeps the host's /sys and bpffs). */
export function inNs(ns: string, cmd: string[], allowFail = false): string {
  return sh("nsenter", [`--net=/run/netns/${ns}`, ...cmd], { allowFail });
}

export function spawnInNs(ns: string, cmd: string[], opts: SpawnOptions = {}): ChildProcess {
  return spawn("nsenter", [`--net=/run/netns/${ns}`, ...cmd], opts);
}

export function netnsExists(ns: string): boolean {
  return ip(["netns", "list"], true)
    .split("\n")
    .some((l) => l.split(" ")[0] === ns);
}

export function listNetns(prefix: string): string[] {
  return ip(["netns", "list"], true)
    .split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter((n) => n.startsWith(prefix));
}

export function sysctl(ns: string | undefined, key: string, value: string): void {
  const args = ["sysctl", "-qw", `${key}=${value}`];
  if (ns) inNs(ns, args);
  else sh(args[0]!, args.slice(1));
}

/**
 * TCP connect from a namespace; true when a handshake completed within timeoutSec. Tries up to
 * `attempts` times, so a loaded machine does not turn a slow start into "blocked"; a blocked
 * destination fails every attempt.
 */
export function canConnect(
  ns: string,
  host: string,
  port: number,
  timeoutSec = 2,
  attempts = 3,
): boolean {
  for (let i = 0; i < attempts; i++) {
    const out = inNs(
      ns,
      ["timeout", String(timeoutSec), "bash", "-c", `</dev/tcp/${host}/${port} && echo connected`],
      true,
    );
    if (out.includes("connected")) return true;
  }
  return false;
}

/**
 * From a namespace, sends `text` over TCP to ip:port and returns what comes back within 2 s
 * (an echo server answers with the same text); empty when nothing does.
 */
export function tcpEcho(ns: string, ip: string, port: number, text: string): string {
  return inNs(
    ns,
    [
      "bash",
      "-c",
      `exec 3<>/dev/tcp/${ip}/${port}; echo ${text} >&3; timeout 2 head -c ${text.length} <&3`,
    ],
    true,
  ).trim();
}

/**
 * Captures packets on a host interface while `during` runs, into `file` (pcap), and returns
 * the capture as tcpdump's one-line summaries and as ASCII (headers and payload). Waits for
 * tcpdump's "listening on" before `during` (a loaded machine can take seconds), and captures in
 * --immediate-mode: otherwise packets wait in libpcap's ring and SIGINT ends tcpdump first.
 */
export async function captureWhile(
  iface: string,
  file: string,
  filter: string,
  during: () => Promise<void> | void,
): Promise<{ packets: string[]; ascii: string }> {
  const dump = spawn(
    "tcpdump",
    ["-i", iface, "--immediate-mode", "-U", "-w", file, ...filter.split(" ")],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 10_000);
    dump.stderr?.on("data", (d: Buffer) => {
      if (d.toString().includes("listening on")) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  try {
    await during();
    await new Promise((r) => setTimeout(r, 500));
  } finally {
    const exited = new Promise<void>((resolve) => dump.on("exit", () => resolve()));
    dump.kill("SIGINT");
    await exited;
  }
  const packets = sh("tcpdump", ["-r", file, "-nn", "-q"], { allowFail: true });
  const ascii = sh("tcpdump", ["-r", file, "-nn", "-A"], { allowFail: true });
  return { packets: packets.split("\n").filter(Boolean), ascii };
}
