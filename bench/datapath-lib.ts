// The datapath half of `make bench`, its pieces: namespaces joined by a veth, the measuring
// tools (sockperf, iperf3) pinned to CPUs, their output parsed, the same deny rules written for
// the eBPF map, iptables and nftables, and the figures as Markdown. Pure functions first
// (bench/datapath-lib.test.ts); the ones that touch the machine below them.
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { inNs, ip, listNetns, sh, spawnInNs } from "../src/box/netns.js";
import {
  type DenyEntry,
  type DenyRule,
  EVERY_PORT,
  egressDenyEntries,
  PROTO_NUMBER,
} from "../src/datapath-driver/maps/egress-deny.js";

// ---- pure ---------------------------------------------------------------------------------------

/** Ports of every bench deny rule: each rule is 5 ports × TCP and UDP, 10 map entries. */
export const DENY_PORTS = [8001, 8002, 8003, 8004, 8005];

/**
 * Pure: `entries / 10` rules, each a /32 in 172.16.0.0/12 with DENY_PORTS and no protocol (so TCP
 * and UDP): the shape the API allows (1,024 rules at most), and 10 entries per rule.
 */
export function benchDenyRules(entries: number): DenyRule[] {
  if (entries % 10 !== 0) throw new Error(`${entries} entries: want a multiple of 10`);
  return Array.from({ length: entries / 10 }, (_, i) => ({
    cidr: `172.16.${((i + 1) >> 8) & 255}.${(i + 1) & 255}/32`,
    ports: DENY_PORTS.map((port) => ({ port })),
  }));
}

export function benchDenyEntries(entries: number): DenyEntry[] {
  const out = egressDenyEntries(benchDenyRules(entries));
  if (out.length !== entries) throw new Error(`${out.length} map entries, wanted ${entries}`);
  return out;
}

const protoName = (e: DenyEntry): "tcp" | "udp" => {
  if (e.protocol === PROTO_NUMBER.TCP) return "tcp";
  if (e.protocol === PROTO_NUMBER.UDP) return "udp";
  throw new Error(`bench entries name TCP or UDP, not protocol ${e.protocol}`);
};

const address = (e: DenyEntry): string => {
  if (e.cidr.family !== 4 || e.cidr.prefixLength !== 32 || e.protocol === EVERY_PORT)
    throw new Error("bench entries are IPv4 /32s with a port");
  return Array.from(e.cidr.address).join(".");
};

/** Pure: the same entries as iptables-restore input: one DROP rule each in OUTPUT. */
export function iptablesRules(entries: readonly DenyEntry[]): string {
  const rules = entries.map(
    (e) =>
      `-A OUTPUT -d ${address(e)}/32 -p ${protoName(e)} -m ${protoName(e)} --dport ${e.port} -j DROP`,
  );
  return ["*filter", ":OUTPUT ACCEPT [0:0]", ...rules, "COMMIT", ""].join("\n");
}

export const NFT_TABLE = "netloom_bench";

/** Pure: the same entries as one nftables set (a hash of address . protocol . port) and one rule. */
export function nftRuleset(entries: readonly DenyEntry[]): string {
  const elements = entries.map((e) => `${address(e)} . ${protoName(e)} . ${e.port}`);
  return [
    `table ip ${NFT_TABLE} {`,
    "  set deny {",
    "    type ipv4_addr . inet_proto . inet_service",
    ...(elements.length ? [`    elements = { ${elements.join(", ")} }`] : []),
    "  }",
    "  chain out {",
    "    type filter hook output priority 0; policy accept;",
    "    ip daddr . meta l4proto . th dport @deny drop",
    "  }",
    "}",
    "",
  ].join("\n");
}

export interface Latency {
  /** Half round trip, as sockperf reports it. */
  avgUs: number;
  p50Us: number;
  p99Us: number;
}

/** Pure: sockperf ping-pong's summary (half round trip, µs). */
export function parseSockperf(text: string): Latency {
  // sockperf colours some lines (ESC[..m), not the ones read here.
  const plain = text;
  const num = (re: RegExp): number => {
    const m = re.exec(plain);
    if (!m) throw new Error(`sockperf output without ${re}: ${plain.slice(-600)}`);
    return Number(m[1]);
  };
  return {
    avgUs: num(/Summary: Latency is ([0-9.]+) usec/),
    p50Us: num(/percentile 50\.000 =\s*([0-9.]+)/),
    p99Us: num(/percentile 99\.000 =\s*([0-9.]+)/),
  };
}

export interface UdpRate {
  /** 64-byte datagrams per second the sender got through its egress path. */
  sentPps: number;
  /** Of those, what the receiving socket took (iperf3's receiver is the slower end here). */
  receivedPps: number;
}

interface IperfUdpEnd {
  end: { sum: { seconds: number; packets: number; lost_packets: number } };
}

/** Pure: iperf3 -u -J's summary as packet rates. */
export function parseIperfUdp(json: string): UdpRate {
  const s = (JSON.parse(json) as IperfUdpEnd).end.sum;
  return {
    sentPps: s.packets / s.seconds,
    receivedPps: (s.packets - s.lost_packets) / s.seconds,
  };
}

interface IperfTcp {
  end: { sum_received: { bits_per_second: number } };
  server_output_json?: {
    intervals: { sum: { start: number; end: number; bytes: number } }[];
  };
}

/** Pure: iperf3 -J's TCP goodput (bits/s at the receiver, whole run). */
export function parseIperfTcp(json: string): number {
  return (JSON.parse(json) as IperfTcp).end.sum_received.bits_per_second;
}

/**
 * Pure: TCP goodput at the receiver (bits/s) over [from, to) seconds of the run, from the
 * server's own intervals (iperf3 -J --get-server-output with the server started with -J).
 */
export function receiverGoodput(json: string, from: number, to: number): number {
  const intervals = (JSON.parse(json) as IperfTcp).server_output_json?.intervals ?? [];
  const inside = intervals.filter((i) => i.sum.start >= from - 0.05 && i.sum.end <= to + 0.05);
  if (inside.length === 0) throw new Error(`no receiver interval inside [${from}, ${to}) s`);
  const bytes = inside.reduce((n, i) => n + i.sum.bytes, 0);
  const seconds = inside.reduce((n, i) => n + (i.sum.end - i.sum.start), 0);
  return (bytes * 8) / seconds;
}

/** Pure: nearest-rank percentile (p in 0..100) of unsorted values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export const mean = (xs: readonly number[]): number =>
  xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN;

/** Pure: Jain's fairness index of the shares (1: all equal; 1/n: one takes everything). */
export function jainIndex(xs: readonly number[]): number {
  const sum = xs.reduce((a, b) => a + b, 0);
  const squares = xs.reduce((a, b) => a + b * b, 0);
  return (sum * sum) / (xs.length * squares);
}

/** Pure: VmRSS and VmHWM (kB) from /proc/PID/status. */
export function parseProcStatus(text: string): { rssKB: number; hwmKB: number } {
  const kb = (name: string): number =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? Number.NaN);
  return { rssKB: kb("VmRSS"), hwmKB: kb("VmHWM") };
}

/** Pure: user + system CPU time (clock ticks) from /proc/PID/stat (the comm may hold spaces). */
export function parseProcStatTicks(text: string): number {
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // After the comm: state is field 3, utime field 14, stime field 15 (1-based, man 5 proc).
  return Number(fields[14 - 3]) + Number(fields[15 - 3]);
}

// ---- number formatting (the report) ------------------------------------------------------------

export const fmt = (n: number, digits = 1): string =>
  Number.isFinite(n) ? n.toFixed(digits) : "n/a";
export const ratio = (n: number, base: number): string =>
  Number.isFinite(n / base) ? (n / base).toFixed(2) : "n/a";
/** "+3.1 %" / "−2.0 %": the change against a baseline. */
export const change = (n: number, base: number): string => {
  const c = (n / base - 1) * 100;
  if (!Number.isFinite(c)) return "n/a";
  return `${c >= 0 ? "+" : "−"}${Math.abs(c).toFixed(1)} %`;
};

// ---- the machine ------------------------------------------------------------------------------

/** The CPUs the measuring processes are pinned to: client on one, server on the other. */
export const CLIENT_CPU = "0";
export const SERVER_CPU = "1";

export const nsPath = (ns: string): string => `/run/netns/${ns}`;

/** The first executable `name` on PATH (not the project's cache: that is what the agent adds). */
export function onPath(name: string, path = process.env.PATH ?? ""): string | undefined {
  for (const dir of path.split(delimiter).filter(Boolean)) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {}
  }
  return undefined;
}

/**
 * Two namespaces joined by a veth, `eth0` on both sides, a /24 between them, lo up; `routeAll`
 * also routes everything else from a to b (so denied destinations reach the filters).
 */
export function vethPair(
  a: { ns: string; ip: string },
  b: { ns: string; ip: string },
  prefix = 24,
): void {
  for (const side of [a, b]) {
    ip(["netns", "add", side.ns]);
    inNs(side.ns, ["ip", "link", "set", "lo", "up"]);
  }
  ip(["-n", a.ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b.ns]);
  for (const side of [a, b]) {
    inNs(side.ns, ["ip", "addr", "add", `${side.ip}/${prefix}`, "dev", "eth0"]);
    inNs(side.ns, ["ip", "link", "set", "eth0", "up"]);
  }
}

/** Kills whatever runs in the namespaces, then deletes them (safe to call twice). */
export function removeNamespaces(names: readonly string[]): void {
  for (const ns of names) {
    for (const pid of ip(["netns", "pids", ns], true).split("\n").filter(Boolean)) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {}
    }
    ip(["netns", "del", ns], true);
  }
}

/** Every namespace of the bench's prefix (a run killed half-way leaves them). */
export function leftoverNamespaces(prefix: string): string[] {
  return listNetns(prefix);
}

/** A long-running server pinned to SERVER_CPU; resolves once it had a moment to bind. */
export async function startServer(ns: string, cmd: string[]): Promise<ChildProcess> {
  const child = spawnInNs(ns, ["taskset", "-c", SERVER_CPU, ...cmd], {
    stdio: ["ignore", "ignore", "ignore"],
  });
  await sleep(300);
  if (child.exitCode !== null) throw new Error(`${cmd.join(" ")} in ${ns} exited at once`);
  return child;
}

/** Runs a client pinned to CLIENT_CPU to its end; its stdout. */
export function runClient(ns: string, cmd: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("nsenter", [`--net=${nsPath(ns)}`, "taskset", "-c", CLIENT_CPU, ...cmd], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    // "close", not "exit": the output may still be in the pipe when the process has exited.
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out + err);
      else
        reject(new Error(`${cmd.join(" ")} in ${ns} exited ${code}: ${(err || out).slice(-500)}`));
    });
  });
}

export const SOCKPERF_PORT = 11111;
export const IPERF_PORT = 5201;

/** Half round trip of 64-byte UDP messages, sockperf ping-pong for `seconds`. */
export async function latency(ns: string, to: string, seconds: number): Promise<Latency> {
  const out = await runClient(
    ns,
    [
      "sockperf",
      "ping-pong",
      "-i",
      to,
      "-p",
      String(SOCKPERF_PORT),
      "-m",
      "64",
      "-t",
      String(seconds),
    ],
    (seconds + 15) * 1000,
  );
  return parseSockperf(out);
}

/** 64-byte UDP datagrams as fast as one sender goes (iperf3 -u -b 0). */
export async function udpRate(ns: string, to: string, seconds: number): Promise<UdpRate> {
  const out = await runClient(
    ns,
    [
      "iperf3",
      "-c",
      to,
      "-p",
      String(IPERF_PORT),
      "-u",
      "-l",
      "64",
      "-b",
      "0",
      "-t",
      String(seconds),
      "-J",
    ],
    (seconds + 15) * 1000,
  );
  return parseIperfUdp(out);
}

/** TCP goodput (bits/s) of one stream. */
export async function tcpRate(ns: string, to: string, seconds: number): Promise<number> {
  const out = await runClient(
    ns,
    ["iperf3", "-c", to, "-p", String(IPERF_PORT), "-t", String(seconds), "-J"],
    (seconds + 15) * 1000,
  );
  return parseIperfTcp(out);
}

export interface LinkFigures {
  latency: Latency;
  udp: UdpRate;
  tcpBps: number;
}

/** Latency, packet rate and TCP throughput from ns to `to`, one after the other. */
export async function measureLink(ns: string, to: string, seconds: number): Promise<LinkFigures> {
  return {
    latency: await latency(ns, to, seconds),
    udp: await udpRate(ns, to, seconds),
    tcpBps: await tcpRate(ns, to, seconds),
  };
}

/**
 * A TCP connect from ns to ip:port with no listener there: "refused" (the SYN got through and a
 * reset came back) or "dropped" (nothing within the timeout: a filter dropped it).
 */
export function connectVerdict(ns: string, to: string, port: number): "refused" | "dropped" {
  const out = inNs(
    ns,
    ["timeout", "1", "bash", "-c", `</dev/tcp/${to}/${port} 2>/dev/null; echo "exit $?"`],
    true,
  );
  return out.includes("exit 1") ? "refused" : "dropped";
}

export { sh };
