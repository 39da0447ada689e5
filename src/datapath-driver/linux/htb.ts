import { sh } from "../../util/exec.js";

// HTB shaping through tc(8): where the fq qdisc is missing (so EDT timestamps are ignored), the
// eBPF program sets skb->priority to an HTB class id and HTB enforces the rate.

export const HTB_HANDLE_MAJOR = 1;

/** Pure: a stable class per pod: the low 16 bits of its IPv4 address, unique inside a /16. */
export function classMinorFor(ipv4: string): number {
  const [, , c = "0", d = "0"] = ipv4.split(".");
  const minor = ((Number(c) << 8) | Number(d)) & 0xffff;
  return minor === 0 ? 0xfffe : minor;
}

export function classIdFor(ipv4: string): number {
  return (HTB_HANDLE_MAJOR << 16) | classMinorFor(ipv4);
}

export interface HtbClass {
  minor: number;
  rateBitsPerSecond: number;
  /** Burst and cburst; unset: defaultBurstBytes of the rate. */
  burstBytes?: number;
}

/** tc's own default burst: HTB's default MTU, plus rate/HZ (about a byte: psched's HZ is 1e9). */
export const HTB_MIN_BURST_BYTES = 1600;

/**
 * Pure: the burst (and cburst) of a class that names none: what the rate sends in 1 ms, never
 * below tc's default. tc's ~1600 B (13 µs at 1 Gbit/s) lost the tokens of every longer pause
 * between dequeues: 0.95 of the rate at 1 Gbit/s (docs/benchmarks.md, Rate accuracy).
 */
export function defaultBurstBytes(rateBitsPerSecond: number): number {
  return Math.max(HTB_MIN_BURST_BYTES, Math.ceil(rateBitsPerSecond / 8 / 1000));
}

/** The burst a class is programmed with. */
export function burstBytesOf(c: HtbClass): number {
  return c.burstBytes ?? defaultBurstBytes(c.rateBitsPerSecond);
}

interface TcQdisc {
  kind: string;
  handle: string;
  root?: boolean;
}

const tcJson = <T>(args: string[]): T[] => {
  const out = sh("tc", ["-j", ...args], { allowFail: true }).trim();
  return out ? (JSON.parse(out) as T[]) : [];
};

export function hasHtbRoot(dev: string): boolean {
  return tcJson<TcQdisc>(["qdisc", "show", "dev", dev]).some(
    (q) => q.kind === "htb" && q.root && q.handle === `${HTB_HANDLE_MAJOR}:`,
  );
}

const UNIT: Record<string, number> = { bit: 1, Kbit: 1e3, Mbit: 1e6, Gbit: 1e9, Tbit: 1e12 };

const SIZE: Record<string, number> = { b: 1, Kb: 1024, Mb: 1024 ** 2, Gb: 1024 ** 3 };

export interface HtbClassStats {
  /** As tc prints it: rounded to 3-4 significant digits. */
  rateBitsPerSecond: number;
  /** As tc prints them: converted back from the kernel's time at the rate, then rounded. */
  burstBytes?: number;
  cburstBytes?: number;
  sentBytes: number;
}

/** Pure: a size as tc prints it ("1600b", "64Kb", "1Mb"); undefined when it is none of those. */
function parseTcSize(text: string | undefined): number | undefined {
  const m = /^([0-9.]+)(b|Kb|Mb|Gb)$/.exec(text ?? "");
  return m ? Math.round(Number(m[1]) * (SIZE[m[2]!] ?? 1)) : undefined;
}

/**
 * Pure: parses `tc -s class show` (iproute2 6.1 has no JSON for classes) into HTB classes of
 * handle 1: by minor.
 */
export function parseHtbClasses(text: string): Map<number, HtbClassStats> {
  const out = new Map<number, HtbClassStats>();
  let current: HtbClassStats | undefined;
  for (const line of text.split("\n")) {
    const cls =
      /^class htb ([0-9a-f]+):([0-9a-f]+) .*?\brate ([0-9.]+)(bit|Kbit|Mbit|Gbit|Tbit)\b/.exec(
        line,
      );
    if (cls) {
      current = undefined;
      if (Number.parseInt(cls[1]!, 16) !== HTB_HANDLE_MAJOR) continue;
      const burst = parseTcSize(/ burst (\S+)/.exec(line)?.[1]);
      const cburst = parseTcSize(/ cburst (\S+)/.exec(line)?.[1]);
      current = {
        rateBitsPerSecond: Math.round(Number(cls[3]) * (UNIT[cls[4]!] ?? 1)),
        ...(burst !== undefined ? { burstBytes: burst } : {}),
        ...(cburst !== undefined ? { cburstBytes: cburst } : {}),
        sentBytes: 0,
      };
      out.set(Number.parseInt(cls[2]!, 16), current);
      continue;
    }
    const sent = /^\s*Sent (\d+) bytes/.exec(line);
    if (sent && current) current.sentBytes = Number(sent[1]);
  }
  return out;
}

/** The HTB classes on dev, as tc prints them. */
export function readHtbClassStats(dev: string): Map<number, HtbClassStats> {
  return parseHtbClasses(sh("tc", ["-s", "class", "show", "dev", dev], { allowFail: true }));
}

/** The HTB classes on dev: minor → rate in bits per second (as tc rounds it). */
export function readHtbClasses(dev: string): Map<number, number> {
  return new Map([...readHtbClassStats(dev)].map(([minor, c]) => [minor, c.rateBitsPerSecond]));
}

/** tc prints rates rounded; two rates this close are the same setting. */
export function sameRate(a: number, b: number): boolean {
  return Math.abs(a - b) <= Math.max(a, b) * 0.005;
}

/**
 * Pure: whether a burst tc printed is `want` at this rate. The kernel keeps the burst as time,
 * tc turns it back into whole microseconds at the rate (up to 1 µs of it lost) and prints it
 * rounded (to 16 B in Kb, to 1 KiB in Mb).
 */
export function sameBurst(have: number, want: number, rateBitsPerSecond: number): boolean {
  return Math.abs(have - want) <= 16 + want / 1000 + rateBitsPerSecond / 8 / 1e6 + 1;
}

/**
 * Pure: the classes to (re)program: missing, or with another rate or burst than wanted (a burst
 * tc does not print in a known unit is not compared).
 */
export function htbClassesToProgram(
  have: ReadonlyMap<number, HtbClassStats>,
  want: readonly HtbClass[],
): HtbClass[] {
  return want.filter((c) => {
    const h = have.get(c.minor);
    if (!h || !sameRate(h.rateBitsPerSecond, c.rateBitsPerSecond)) return true;
    const burst = burstBytesOf(c);
    return [h.burstBytes, h.cburstBytes].some(
      (b) => b !== undefined && !sameBurst(b, burst, c.rateBitsPerSecond),
    );
  });
}

/**
 * Makes dev's HTB classes exactly `classes` (rate and burst). Unclassified traffic takes HTB's
 * direct queue (default 0): pods without a limit are not shaped.
 */
export function syncHtb(dev: string, classes: HtbClass[]): void {
  if (classes.length === 0 && !hasHtbRoot(dev)) return;
  if (!hasHtbRoot(dev)) {
    sh("tc", [
      "qdisc",
      "replace",
      "dev",
      dev,
      "root",
      "handle",
      `${HTB_HANDLE_MAJOR}:`,
      "htb",
      "default",
      "0",
    ]);
  }
  const have = readHtbClassStats(dev);
  for (const c of htbClassesToProgram(have, classes)) {
    const id = `${HTB_HANDLE_MAJOR}:${c.minor.toString(16)}`;
    const burst = `${burstBytesOf(c)}b`;
    sh("tc", [
      "class",
      "replace",
      "dev",
      dev,
      "parent",
      `${HTB_HANDLE_MAJOR}:`,
      "classid",
      id,
      "htb",
      "rate",
      `${c.rateBitsPerSecond}bit`,
      "ceil",
      `${c.rateBitsPerSecond}bit`,
      "burst",
      burst,
      "cburst",
      burst,
    ]);
  }
  const want = new Set(classes.map((c) => c.minor));
  for (const minor of have.keys()) {
    if (!want.has(minor))
      sh(
        "tc",
        ["class", "del", "dev", dev, "classid", `${HTB_HANDLE_MAJOR}:${minor.toString(16)}`],
        { allowFail: true },
      );
  }
}

export function removeHtb(dev: string): void {
  if (hasHtbRoot(dev)) sh("tc", ["qdisc", "del", "dev", dev, "root"], { allowFail: true });
}

/** Whether the kernel has the fq qdisc (EDT needs it), probed on lo and undone at once. */
export function probeFq(): boolean {
  const ok = sh("sh", ["-c", "tc qdisc add dev lo root handle 7ff0: fq 2>/dev/null && echo yes"], {
    allowFail: true,
  }).includes("yes");
  if (ok) sh("tc", ["qdisc", "del", "dev", "lo", "root"], { allowFail: true });
  return ok;
}

/** Whether the kernel has WireGuard (else wireguard-go), probed with a throw-away link. */
export function probeWireguardKernel(): boolean {
  const name = `nlwgprobe${process.pid % 1000}`;
  const ok = sh("sh", ["-c", `ip link add ${name} type wireguard 2>/dev/null && echo yes`], {
    allowFail: true,
  }).includes("yes");
  if (ok) sh("ip", ["link", "del", name], { allowFail: true });
  return ok;
}

/** The device of the default route (where pod traffic leaves the node). */
export function defaultRouteDevice(): string | undefined {
  const out = sh("ip", ["-j", "route", "show", "default"], { allowFail: true }).trim();
  const routes = out ? (JSON.parse(out) as { dev?: string }[]) : [];
  return routes[0]?.dev;
}

export function deviceIPv4(dev: string): string | undefined {
  const out = sh("ip", ["-j", "-4", "addr", "show", "dev", dev], { allowFail: true }).trim();
  const links = out
    ? (JSON.parse(out) as { addr_info?: { local?: string; scope?: string }[] }[])
    : [];
  return links[0]?.addr_info?.find((a) => a.scope === "global")?.local;
}
