// The datapath half of `make bench`: figures, each against a baseline measured in the same run,
// on the real kernel. Writes docs/benchmarks.md's datapath section.
//   lookup     egress deny at 0 / 100 / 1,000 / 10,000 entries: the eBPF LPM map against the
//              same rules in iptables and in an nftables set, and 10,000 NetworkPolicy entries
//              for one endpoint; latency, 64-byte UDP packet rate and TCP throughput between two
//              namespaces, client and server pinned to their own CPU, each as a ratio to no
//              filtering measured just before and just after it
//   rate       HTB classes as the LinuxDriver installs them (the program sets skb->priority from
//              pod_class) at 10M, 50M, 200M, 1G, and two capped pods at once
//   wireguard  TCP and latency through the tunnel: the plain underlay, raw wireguard-go between two
//              namespaces, and the tunnel the LinuxDriver sets up (its programs on both devices),
//              each for Debian's and the current wireguard-go; then bench/rotation.ts
//   drift      a real `netloom agent` in a one-node cluster-in-a-box: its footprint (idle, with
//              10,000 deny entries, during drift checks), then 50 out-of-band changes healed
// Env: BENCH_QUICK=1 (short windows, fewer sizes), BENCH_DP_SECTIONS=lookup,rate,wireguard,drift,
// BENCH_DP_WRITE=0|1 (default: write after a full, non-quick run), BENCH_DRIFT_INJECTIONS (50),
// BENCH_BPF_OBJECT (the object the lookup section loads; default dist/bpf/netloom.bpf.o).
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { REPO_ROOT } from "../src/api/fixtures.js";
import type { NodeDatapath } from "../src/api/nodenetworkstate.js";
import { parseDuration } from "../src/api/quantity.js";
import {
  type BoxNode,
  type BoxPod,
  type BoxState,
  boxDown,
  boxKubeConfig,
  boxUp,
  createPodNetwork,
} from "../src/box/box.js";
import { inNs } from "../src/box/netns.js";
import type { ApplyContext } from "../src/datapath-driver/driver.js";
import { BpfDatapath } from "../src/datapath-driver/linux/bpf-datapath.js";
import { BPF_OBJECT } from "../src/datapath-driver/linux/driver.js";
import { classMinorFor, parseHtbClasses } from "../src/datapath-driver/linux/htb.js";
import {
  closeFd,
  ifNameToIndex,
  mapDelete,
  mapLookup,
  objGet,
  withNetns,
} from "../src/datapath-driver/linux/libbpf.js";
import { encodeDenyKey } from "../src/datapath-driver/maps/egress-deny.js";
import {
  ipcacheEntries,
  type PolicyTiers,
  policyMapEntries,
} from "../src/datapath-driver/maps/policy.js";
import {
  runningWireguardGo,
  UserspaceWireguard,
  wireguardGoCacheDir,
  wireguardGoVersion,
} from "../src/datapath-driver/wireguard/backend.js";
import { generateKeyPair } from "../src/datapath-driver/wireguard/keys.js";
import { socketPath } from "../src/datapath-driver/wireguard/uapi.js";
import { kubeRequest } from "../src/kube/raw.js";
import type { PolicyEntry } from "../src/policy/compile.js";
import { isRoot } from "../src/util/process.js";
import { toolsRequirement } from "../src/util/system-tools.js";
import { syncEndpointPolicies } from "../test/support/policy-tiers.js";
import {
  benchDenyEntries,
  benchDenyRules,
  change,
  connectVerdict,
  fmt,
  IPERF_PORT,
  iptablesRules,
  jainIndex,
  type LinkFigures,
  latency,
  leftoverNamespaces,
  mean,
  measureLink,
  NFT_TABLE,
  nftRuleset,
  nsPath,
  onPath,
  parseProcStatTicks,
  parseProcStatus,
  percentile,
  ratio,
  receiverGoodput,
  removeNamespaces,
  SOCKPERF_PORT,
  sh,
  startServer,
  tcpRate,
  udpRate,
  vethPair,
} from "./datapath-lib.js";
import type { FromNode, ToNode } from "./datapath-node.js";
import { formatMarkdown } from "./markdown.js";

const QUICK = !["", "0", "false", undefined].includes(process.env.BENCH_QUICK);
/** Seconds of each latency / packet-rate / throughput measurement. */
const WINDOW_S = QUICK ? 1 : 2;
const SIZES = QUICK ? [100, 10_000] : [100, 1_000, 10_000];
const SECTIONS = new Set(
  (process.env.BENCH_DP_SECTIONS ?? "lookup,rate,wireguard,drift").split(",").map((s) => s.trim()),
);
const INJECTIONS = Number(process.env.BENCH_DRIFT_INJECTIONS ?? (QUICK ? 12 : 50));
const DRIFT_INTERVAL = "2s";
/** Every namespace, pin and WireGuard interface of this bench starts with it; the box with BOX. */
const PREFIX = "nbd";
const BOX_PREFIX = "nbx";
const PIN_ROOT = "/sys/fs/bpf";
const WORKER = join(REPO_ROOT, "dist", "bench", "datapath-node.js");
/** The object the lookup section loads (another build to compare; the driver's own elsewhere). */
const LOOKUP_OBJECT = process.env.BENCH_BPF_OBJECT ?? BPF_OBJECT;

const say = (line: string) => process.stderr.write(`[bench datapath] ${line}\n`);

// ---- prerequisites and cleanup ------------------------------------------------------------------

const TOOLS = [
  "ip",
  "nsenter",
  "tc",
  "taskset",
  "sockperf",
  "iperf3",
  "iptables-restore",
  "nft",
  "bash",
  "timeout",
  "ping",
  "wireguard-go",
];

function unavailable(): string | undefined {
  if (!isRoot()) return "needs root (namespaces, eBPF, qdiscs)";
  if (!existsSync("/sys/kernel/btf/vmlinux")) return "needs kernel BTF";
  if (!existsSync(BPF_OBJECT)) return `needs ${BPF_OBJECT}: make bpf`;
  if (!existsSync(WORKER)) return `needs ${WORKER}: make build`;
  return toolsRequirement(TOOLS);
}

function pinDirs(): string[] {
  return readdirSync(PIN_ROOT)
    .filter((n) => n.startsWith(PREFIX) || n.startsWith(BOX_PREFIX))
    .map((n) => join(PIN_ROOT, n));
}

function wireguardSockets(): string[] {
  const dir = "/var/run/wireguard";
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((n) => n.startsWith(PREFIX) || n.startsWith(BOX_PREFIX))
        .map((n) => join(dir, n))
    : [];
}

/** Whatever a killed run left: namespaces (their processes), pins, WireGuard sockets. */
function removeLeftovers(): void {
  removeNamespaces(leftoverNamespaces(`${PREFIX}-`));
  for (const d of pinDirs()) BpfDatapath.removePins(d);
  for (const s of wireguardSockets()) rmSync(s, { force: true });
}

// Killed (SIGINT, SIGTERM): remove what the run made, as a finished run does. The filters'
// rules live in the bench's namespaces; program statistics are switched off again.
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.once(signal, () => {
    say(`${signal}: removing the namespaces, pins and sockets this run made`);
    try {
      removeLeftovers();
      writeFileSync(STATS_SYSCTL, "0");
    } finally {
      process.exit(130);
    }
  });

/** What this run left behind (empty: nothing); the root namespace's rules are checked too. */
function leftovers(): string[] {
  const out = [
    ...leftoverNamespaces(`${PREFIX}-`).map((n) => `namespace ${n}`),
    ...leftoverNamespaces(`${BOX_PREFIX}-`).map((n) => `namespace ${n}`),
    ...pinDirs().map((d) => `pins ${d}`),
    ...wireguardSockets().map((s) => `socket ${s}`),
  ];
  if (sh("nft", ["list", "ruleset"], { allowFail: true }).includes(NFT_TABLE))
    out.push(`nftables table ${NFT_TABLE} in the root namespace`);
  if (sh("iptables-save", [], { allowFail: true }).includes("172.16.0.1/32"))
    out.push("iptables rules of the bench in the root namespace");
  return out;
}

// ---- a node's LinuxDriver in its namespace (bench/datapath-node.ts) -----------------------------

class NodeWorker {
  private readonly child: ChildProcess;
  private next = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();
  private readonly exited: Promise<void>;

  constructor(
    readonly ns: string,
    pinDir: string,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.child = spawn("nsenter", [`--net=${nsPath(ns)}`, process.execPath, WORKER, pinDir], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      env,
    });
    this.child.on("message", (m: FromNode) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.ok) p?.resolve(m.result);
      else p?.reject(new Error(`${ns}: ${m.error}`));
    });
    this.exited = new Promise((resolve) =>
      this.child.on("exit", (code) => {
        for (const p of this.pending.values())
          p.reject(new Error(`the datapath worker in ${ns} exited (${code})`));
        this.pending.clear();
        resolve();
      }),
    );
  }

  private call(
    msg: ToNode extends infer T ? (T extends unknown ? Omit<T, "id"> : never) : never,
  ): Promise<unknown> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.send({ ...msg, id } as ToNode);
    });
  }

  apply(spec: NodeDatapath, ctx: ApplyContext = {}): Promise<unknown> {
    return this.call({ op: "apply", spec, ctx });
  }

  /** The driver's teardown (programs, HTB, WireGuard, pins), then the worker exits. */
  async close(): Promise<void> {
    if (this.child.exitCode === null && this.child.connected) {
      await this.call({ op: "teardown" }).catch((e: unknown) => say(`teardown: ${String(e)}`));
      this.child.disconnect();
    }
    await this.exited;
  }
}

// ---- 1. lookup cost ---------------------------------------------------------------------------

interface LookupRow {
  entries: number;
  filter: "none" | "eBPF (LPM map)" | "iptables" | "nftables (set)" | "NetworkPolicy (eBPF)";
  figures: LinkFigures;
  /** The mean of the no-filter runs just before and just after this group. */
  base: LinkFigures;
  /** How far those two baselines were apart (p50 latency), the noise floor of the ratios. */
  baseSpread: number;
  loadMs?: number;
  /** The eBPF program's own run time per packet (kernel.bpf_stats_enabled, a 1 s flood). */
  nsPerPacket?: number;
  /** A denied destination's SYN: dropped under every filter, refused (passed) without. */
  denied: "dropped" | "refused" | "n/a";
}

interface LookupFigures {
  rows: LookupRow[];
  baselines: LinkFigures[];
  iptablesVersion: string;
}

const LA = { ns: `${PREFIX}-la`, ip: "10.91.0.1" };
const LB = { ns: `${PREFIX}-lb`, ip: "10.91.0.2" };
/** The first bench rule's address (172.16.0.1/32, ports 8001-8005): LB answers on it. */
const DENIED_IP = "172.16.0.1";
const POD_IDENTITY = 1000;
const PEER_IDENTITY = 2000;

function meanFigures(xs: readonly LinkFigures[]): LinkFigures {
  return {
    latency: {
      avgUs: mean(xs.map((x) => x.latency.avgUs)),
      p50Us: mean(xs.map((x) => x.latency.p50Us)),
      p99Us: mean(xs.map((x) => x.latency.p99Us)),
    },
    udp: {
      sentPps: mean(xs.map((x) => x.udp.sentPps)),
      receivedPps: mean(xs.map((x) => x.udp.receivedPps)),
    },
    tcpBps: mean(xs.map((x) => x.tcpBps)),
  };
}

/**
 * `total` policy entries for one endpoint: pod LB behind LA's eth0 (its "host veth"), isolated
 * both ways. Ingress: LA (identity 2000) may reach the measuring ports, other identities one TCP
 * port each; egress: LA on every protocol, other identities one TCP port each; half and half.
 */
function benchPolicy(ifindex: number, total: number): PolicyTiers {
  if (total === 0) {
    // "No policy": the programs attached, no policy selecting the pod.
    const open = { isolated: false, entries: [] };
    const none = { ingress: open, egress: open };
    return { full: none, enforced: none };
  }
  const filler = (n: number, from: number): PolicyEntry[] =>
    Array.from({ length: n }, (_, i) => ({
      peer: from + i,
      protocol: "TCP" as const,
      ports: [1000 + (i % 60000), 1000 + (i % 60000)] as [number, number],
    }));
  const ingress: PolicyEntry[] = [
    { peer: PEER_IDENTITY, protocol: "TCP", ports: [IPERF_PORT, IPERF_PORT] },
    { peer: PEER_IDENTITY, protocol: "UDP", ports: [IPERF_PORT, IPERF_PORT] },
    { peer: PEER_IDENTITY, protocol: "UDP", ports: [SOCKPERF_PORT, SOCKPERF_PORT] },
    ...filler(total / 2 - 3, 10_000),
  ];
  const egress: PolicyEntry[] = [
    { peer: PEER_IDENTITY, protocol: "any", ports: [0, 65535] },
    ...filler(total / 2 - 1, 100_000),
  ];
  const policy = {
    ingress: { isolated: true, entries: ingress },
    egress: { isolated: true, entries: egress },
  };
  const tiers = { full: policy, enforced: policy };
  const entries = policyMapEntries(ifindex, tiers).length;
  if (entries !== total) throw new Error(`${entries} policy entries, wanted ${total}`);
  return tiers;
}

/**
 * NetworkPolicy sizes: none (the pod programs with no policy selecting the pod: the target's
 * "no policy"), a handful, then the target's 10,000.
 */
const POLICY_SIZES = QUICK ? [0, 10_000] : [0, 10, 10_000];

/** run_time_ns and run_cnt of a program (bpftool; zero while stats are off). */
function programStats(id: number): { ns: number; runs: number } {
  // One program: bpftool prints an object (a list for `prog show` without an id).
  const p = JSON.parse(sh("bpftool", ["prog", "show", "id", String(id), "-j"])) as {
    run_time_ns?: number;
    run_cnt?: number;
  };
  return { ns: p.run_time_ns ?? 0, runs: p.run_cnt ?? 0 };
}

const STATS_SYSCTL = "/proc/sys/kernel/bpf_stats_enabled";

/**
 * The program's run time per packet under a 1 s flood of 64-byte UDP from LA, with the
 * kernel's BPF run-time statistics on for that second only (they cost two clock reads a run:
 * the throughput figures are taken without them).
 */
async function programCost(id: number): Promise<number> {
  const before = readFileSync(STATS_SYSCTL, "utf8").trim();
  writeFileSync(STATS_SYSCTL, "1");
  try {
    const a = programStats(id);
    await udpRate(LA.ns, LB.ip, 1);
    const b = programStats(id);
    return (b.ns - a.ns) / (b.runs - a.runs);
  } finally {
    writeFileSync(STATS_SYSCTL, before);
  }
}

async function lookupSection(): Promise<LookupFigures> {
  const pinDir = join(PIN_ROOT, `${PREFIX}-lookup`);
  removeNamespaces([LA.ns, LB.ns]);
  vethPair(LA, LB);
  // Everything else routes to LB too, so a denied destination reaches the filters, and LB
  // answers on the first denied address (a reset: refused when nothing drops it).
  inNs(LA.ns, ["ip", "route", "add", "default", "via", LB.ip]);
  inNs(LB.ns, ["ip", "addr", "add", `${DENIED_IP}/32`, "dev", "eth0"]);
  await startServer(LB.ns, ["sockperf", "server", "-i", "0.0.0.0", "-p", String(SOCKPERF_PORT)]);
  await startServer(LB.ns, ["iperf3", "-s", "-p", String(IPERF_PORT)]);
  const bpf = BpfDatapath.open({ objectPath: LOOKUP_OBJECT, pinDir });
  const inLa = <T>(fn: () => T): T => withNetns(nsPath(LA.ns), fn);
  const rows: LookupRow[] = [];
  const baselines: LinkFigures[] = [];
  const iptablesVersion = sh("iptables", ["-V"]).trim();
  try {
    const measure = async (what: string): Promise<LinkFigures> => {
      const f = await measureLink(LA.ns, LB.ip, WINDOW_S);
      say(
        `  ${what}: latency p50 ${fmt(f.latency.p50Us)} µs, ${fmt(f.udp.sentPps / 1000, 0)} kpps, TCP ${fmt(f.tcpBps / 1e9, 2)} Gbit/s`,
      );
      return f;
    };
    const baseline = async (): Promise<LinkFigures> => {
      const rules = inNs(LA.ns, ["nft", "list", "ruleset"]).trim();
      if (rules)
        throw new Error(`rules left in ${LA.ns} before a baseline: ${rules.slice(0, 200)}`);
      const progs = inLa(() =>
        (["ingress", "egress"] as const).flatMap((h) => BpfDatapath.attachedOn("eth0", "tcx", h)),
      );
      if (progs.length) throw new Error(`programs left on ${LA.ns}'s eth0 before a baseline`);
      const f = await measure("no filtering");
      baselines.push(f);
      return f;
    };
    const timed = (fn: () => void): number => {
      const t0 = performance.now();
      fn();
      return performance.now() - t0;
    };
    type Filter = {
      name: LookupRow["filter"];
      load: () => void;
      unload: () => void;
      /** The program whose run time per packet is read (eBPF filters). */
      program?: number;
      /** A destination the filter must drop (default: the first deny entry's). */
      probe?: [string, number];
    };
    const filters = (n: number): Filter[] => {
      const entries = benchDenyEntries(n);
      return [
        {
          name: "eBPF (LPM map)",
          program: bpf.programId("netloom_egress"),
          load: () => {
            bpf.syncEgressDeny(entries);
            inLa(() => bpf.attach("eth0", "netloom_egress", "tcx"));
          },
          unload: () => {
            inLa(() => bpf.detach("eth0"));
            bpf.syncEgressDeny([]);
          },
        },
        {
          name: "iptables",
          load: () =>
            void sh("nsenter", [`--net=${nsPath(LA.ns)}`, "iptables-restore"], {
              input: iptablesRules(entries),
            }),
          unload: () => {
            sh("nsenter", [`--net=${nsPath(LA.ns)}`, "iptables-restore"], {
              input: iptablesRules([]),
            });
            // iptables-nft keeps its (now empty) base chains, each still a hook on the path.
            inNs(LA.ns, ["nft", "flush", "ruleset"]);
          },
        },
        {
          name: "nftables (set)",
          load: () =>
            void sh("nsenter", [`--net=${nsPath(LA.ns)}`, "nft", "-f", "-"], {
              input: nftRuleset(entries),
            }),
          unload: () => void inNs(LA.ns, ["nft", "delete", "table", "ip", NFT_TABLE]),
        },
      ];
    };
    const group = async (
      n: number,
      list: Filter[],
    ): Promise<Omit<LookupRow, "base" | "baseSpread">[]> => {
      const out: Omit<LookupRow, "base" | "baseSpread">[] = [];
      for (const f of list) {
        const loadMs = timed(f.load);
        try {
          const [probeIp, probePort] = f.probe ?? [DENIED_IP, 8001];
          const denied = n > 0 ? connectVerdict(LA.ns, probeIp, probePort) : "n/a";
          if (n > 0 && denied !== "dropped")
            throw new Error(`${f.name} with ${n} entries does not drop ${probeIp}:${probePort}`);
          const figures = await measure(`${f.name}, ${n} entries`);
          const nsPerPacket = f.program ? await programCost(f.program) : undefined;
          if (nsPerPacket !== undefined)
            say(`    the program: ${fmt(nsPerPacket, 0)} ns per packet`);
          out.push({
            entries: n,
            filter: f.name,
            figures,
            loadMs,
            denied,
            ...(nsPerPacket !== undefined ? { nsPerPacket } : {}),
          });
        } finally {
          f.unload();
        }
      }
      return out;
    };
    const withBase = (
      part: Omit<LookupRow, "base" | "baseSpread">[],
      before: LinkFigures,
      after: LinkFigures,
    ): LookupRow[] =>
      part.map((r) => ({
        ...r,
        base: meanFigures([before, after]),
        baseSpread:
          Math.abs(before.latency.p50Us - after.latency.p50Us) /
          mean([before.latency.p50Us, after.latency.p50Us]),
      }));

    say("lookup cost: egress deny in the eBPF map, iptables, nftables; then NetworkPolicy");
    if (connectVerdict(LA.ns, DENIED_IP, 8001) !== "refused")
      throw new Error(`${DENIED_IP}:8001 is not reachable without filtering: the setup is wrong`);
    let before = await baseline();
    const empty: Filter = {
      name: "eBPF (LPM map)",
      program: bpf.programId("netloom_egress"),
      load: () => inLa(() => bpf.attach("eth0", "netloom_egress", "tcx")),
      unload: () => inLa(() => bpf.detach("eth0")),
    };
    let part = await group(0, [empty]);
    for (const n of SIZES) {
      part.push(...(await group(n, filters(n))));
      const after = await baseline();
      rows.push(...withBase(part, before, after));
      before = after;
      part = [];
    }

    // NetworkPolicy: the pod programs on LB's host side (LA's eth0); LA may not reach LB's
    // port 8001 (no entry allows it).
    const ifindex = inLa(() => ifNameToIndex("eth0"));
    const policy = (total: number): Filter => {
      const tiers = benchPolicy(ifindex, total);
      return {
        name: "NetworkPolicy (eBPF)",
        program: bpf.programId("netloom_pod_ingress"),
        probe: [LB.ip, 8001],
        load: () => {
          bpf.syncIpcache(ipcacheEntries({ [LA.ip]: PEER_IDENTITY, [LB.ip]: POD_IDENTITY }));
          syncEndpointPolicies(bpf, [{ ifindex, identity: POD_IDENTITY, tiers }]);
          inLa(() => {
            bpf.attach("eth0", "netloom_pod_egress", "tcx");
            bpf.attach("eth0", "netloom_pod_ingress", "tcx");
          });
        },
        unload: () => {
          inLa(() => bpf.detach("eth0"));
          bpf.syncEndpoints(new Map());
          bpf.syncPolicy([]);
          bpf.syncIpcache(new Map());
        },
      };
    };
    for (const n of POLICY_SIZES) part.push(...(await group(n, [policy(n)])));
    rows.push(...withBase(part, before, await baseline()));
  } finally {
    bpf.close();
    BpfDatapath.removePins(pinDir);
    removeNamespaces([LA.ns, LB.ns]);
  }
  return { rows, baselines, iptablesVersion };
}

// ---- 2. rate accuracy -------------------------------------------------------------------------

interface RateRow {
  configured: number;
  /** HTB's burst when set (bytes); the driver's default (tc's) otherwise. */
  burstBytes?: number;
  goodput: number;
  wire: number;
}

interface RateFigures {
  rows: RateRow[];
  /** Two pods capped at once, each at `configured`. */
  fair: RateRow[];
  jain: number;
  uncapped: number;
  windowS: [number, number];
}

/** The last one again with a burst of 1 ms at that rate: the default's cost at high rates. */
const RATES: { rate: number; burstBytes?: number }[] = [
  { rate: 10e6 },
  { rate: 50e6 },
  { rate: 200e6 },
  { rate: 1e9 },
  { rate: 1e9, burstBytes: 125_000 },
];
const FAIR_RATE = 100e6;

async function rateSection(): Promise<RateFigures> {
  const node: BoxNode = {
    name: `${PREFIX}-rn`,
    netns: `${PREFIX}-rn`,
    ip: "192.168.92.1",
    ip6: "fd00:92::1",
    podCIDR: "10.93.0.0/24",
    podCIDR6: "fd00:93::/64",
    pods: [],
  };
  const cloud = { ns: `${PREFIX}-rc`, ip: "192.168.92.254" };
  const pods: BoxPod[] = [1, 2].map((j) => ({
    name: `p${j}`,
    namespace: "bench",
    netns: `${PREFIX}-rp${j}`,
    ip: `10.93.0.${10 + j}`,
    ip6: `fd00:93::${10 + j}`,
    labels: {},
  }));
  const all = [node.netns, cloud.ns, ...pods.map((p) => p.netns)];
  const pinDir = join(PIN_ROOT, `${PREFIX}-rate`);
  removeNamespaces(all);
  vethPair({ ns: node.netns, ip: node.ip }, cloud);
  for (const key of ["net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0"])
    inNs(node.netns, ["sysctl", "-qw", key]);
  inNs(node.netns, ["ip", "route", "add", "default", "via", cloud.ip]);
  inNs(cloud.ns, ["ip", "route", "add", node.podCIDR, "via", node.ip]);
  for (const [j, pod] of pods.entries()) createPodNetwork(node, pod, `vp${j + 1}`, { quick: true });
  const ports = [IPERF_PORT, IPERF_PORT + 1];
  for (const port of ports) await startServer(cloud.ns, ["iperf3", "-s", "-p", String(port), "-J"]);
  const worker = new NodeWorker(node.netns, pinDir);
  const runSeconds = QUICK ? 5 : 7;
  const windowS: [number, number] = [2, runSeconds - 1];
  const classBytes = (minor: number): number =>
    parseHtbClasses(inNs(node.netns, ["tc", "-s", "class", "show", "dev", "eth0"])).get(minor)
      ?.sentBytes ?? 0;
  /** iperf3 from each pod at once; wire rate from its HTB class, goodput from the receiver. */
  const run = async (
    flows: { pod: BoxPod; port: number; configured: number }[],
  ): Promise<RateRow[]> => {
    const clients = flows.map((f) => {
      const child = spawn(
        "nsenter",
        [
          `--net=${nsPath(f.pod.netns)}`,
          "iperf3",
          "-c",
          cloud.ip,
          "-p",
          String(f.port),
          "-t",
          String(runSeconds),
          "-J",
          "--get-server-output",
        ],
        // -J puts errors into the JSON on stdout too.
        { stdio: ["ignore", "pipe", "ignore"] },
      );
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      const done = new Promise<string>((resolve, reject) =>
        child.on("close", (code) =>
          code === 0
            ? resolve(out)
            : reject(new Error(`iperf3 from ${f.pod.netns}: ${code} ${out.slice(-300)}`)),
        ),
      );
      return { ...f, done, minor: classMinorFor(f.pod.ip) };
    });
    // The test starts ~0.1 s after the process: sample from then on.
    const t0 = performance.now() + 150;
    const until = (s: number) => sleep(Math.max(0, t0 + s * 1000 - performance.now()));
    await until(windowS[0]);
    const b1 = clients.map((c) => classBytes(c.minor));
    const t1 = performance.now();
    await until(windowS[1]);
    const b2 = clients.map((c) => classBytes(c.minor));
    const t2 = performance.now();
    const outs = await Promise.all(clients.map((c) => c.done));
    return clients.map((c, i) => ({
      configured: c.configured,
      goodput: receiverGoodput(outs[i]!, windowS[0], windowS[1]),
      wire: ((b2[i]! - b1[i]!) * 8) / ((t2 - t1) / 1000),
    }));
  };
  const limit = (caps: { pod: BoxPod; rate: number; burstBytes?: number }[]) =>
    worker.apply({
      nodeName: node.name,
      bandwidth: caps.map((c) => ({
        pod: `bench/${c.pod.name}`,
        ip: c.pod.ip,
        egressBitsPerSecond: c.rate,
        ...(c.burstBytes ? { burstBytes: c.burstBytes } : {}),
        source: "bench",
      })),
    });
  try {
    say("rate accuracy: HTB classes by the LinuxDriver, one iperf3 stream per capped pod");
    await limit([]);
    const uncappedOut = await new Promise<string>((resolve, reject) => {
      const c = spawn(
        "nsenter",
        [
          `--net=${nsPath(pods[1]!.netns)}`,
          "iperf3",
          "-c",
          cloud.ip,
          "-p",
          String(ports[1]),
          "-t",
          "2",
          "-J",
        ],
        { stdio: ["ignore", "pipe", "ignore"] },
      );
      let out = "";
      c.stdout.on("data", (d: Buffer) => (out += d.toString()));
      c.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`iperf3: ${code}`))));
    });
    const uncapped = (
      JSON.parse(uncappedOut) as { end: { sum_received: { bits_per_second: number } } }
    ).end.sum_received.bits_per_second;
    say(`  uncapped pod: ${fmt(uncapped / 1e9, 2)} Gbit/s`);
    const rows: RateRow[] = [];
    for (const { rate, burstBytes } of RATES) {
      // A class changed in place keeps its counters: start each rate from a fresh one.
      await limit([]);
      await limit([{ pod: pods[0]!, rate, ...(burstBytes ? { burstBytes } : {}) }]);
      const [row] = await run([{ pod: pods[0]!, port: ports[0]!, configured: rate }]);
      rows.push({ ...row!, ...(burstBytes ? { burstBytes } : {}) });
      say(
        `  ${fmt(rate / 1e6, 0)} Mbit/s${burstBytes ? `, burst ${burstBytes} B` : ""}: goodput ${fmt(row!.goodput / 1e6)}, wire ${fmt(row!.wire / 1e6)} Mbit/s`,
      );
    }
    await limit(pods.map((pod) => ({ pod, rate: FAIR_RATE })));
    const fair = await run(pods.map((pod, i) => ({ pod, port: ports[i]!, configured: FAIR_RATE })));
    const jain = jainIndex(fair.map((r) => r.wire / r.configured));
    say(
      `  two pods at ${fmt(FAIR_RATE / 1e6, 0)} Mbit/s at once: wire ${fair.map((r) => fmt(r.wire / 1e6)).join(" / ")} Mbit/s, Jain ${jain.toFixed(4)}`,
    );
    return { rows, fair, jain, uncapped, windowS };
  } finally {
    await worker.close();
    removeNamespaces(all);
    BpfDatapath.removePins(pinDir);
  }
}

// ---- 3. WireGuard -----------------------------------------------------------------------------

interface TunnelRun {
  path: "underlay" | "raw wireguard-go" | "Netloom's tunnel";
  binary?: "Debian" | "current";
  tcpBps: number;
  p50Us: number;
  p99Us: number;
}

interface WireguardFigures {
  runs: TunnelRun[];
  versions: { debian?: string; current?: string };
  rotation: string[];
  rotationSeconds: number;
}

const W1 = { ns: `${PREFIX}-w1`, ip: "192.168.93.1", tun: "10.94.0.1", wg: `${PREFIX}wg1` };
const W2 = { ns: `${PREFIX}-w2`, ip: "192.168.93.2", tun: "10.94.0.2", wg: `${PREFIX}wg2` };
const WG_PORT = 51893;
const TUNNEL_TCP_S = QUICK ? 2 : 3;
/** Rounds of every tunnel measurement; the report takes the median of each. */
const WG_ROUNDS = Number(process.env.BENCH_WG_ROUNDS ?? (QUICK ? 1 : 3));

/** Debian's wireguard-go (the one on PATH) and the project's current build (built if missing). */
function wireguardBinaries(): { debian?: string; current?: string } {
  // The one on PATH is Debian's (hack/system-tools.tsv installs the package).
  const debian = onPath("wireguard-go");
  say(`  on PATH: ${sh("wireguard-go", ["--version"], { allowFail: true }).split("\n")[0]}`);
  const current = join(wireguardGoCacheDir(), "wireguard-go");
  if (!existsSync(current))
    sh("bash", [join(REPO_ROOT, "hack", "build-wireguard-go.sh")], { allowFail: true });
  return { ...(debian ? { debian } : {}), ...(existsSync(current) ? { current } : {}) };
}

async function wireguardSection(): Promise<WireguardFigures> {
  removeNamespaces([W1.ns, W2.ns]);
  for (const s of [W1, W2]) rmSync(socketPath(s.wg), { force: true });
  vethPair(W1, W2);
  await startServer(W2.ns, ["sockperf", "server", "-i", "0.0.0.0", "-p", String(SOCKPERF_PORT)]);
  await startServer(W2.ns, ["iperf3", "-s", "-p", String(IPERF_PORT)]);
  const bins = wireguardBinaries();
  const versions = {
    ...(bins.debian ? { debian: wireguardGoVersion(bins.debian) } : {}),
    ...(bins.current ? { current: wireguardGoVersion(bins.current) } : {}),
  };
  const keys = { w1: generateKeyPair(), w2: generateKeyPair() };
  const sides = [
    { ...W1, key: keys.w1, other: W2, otherKey: keys.w2 },
    { ...W2, key: keys.w2, other: W1, otherKey: keys.w1 },
  ];
  const peers = (s: (typeof sides)[number]) => [
    {
      publicKey: s.otherKey.publicKey,
      endpoint: `${s.other.ip}:${WG_PORT}`,
      allowedIPs: [`${s.other.tun}/32`],
    },
  ];
  const warm = () =>
    inNs(W1.ns, ["ping", "-c", "3", "-i", "0.2", "-W", "2", W2.tun], true).includes(
      " 0% packet loss",
    );
  const measure = async (
    path: TunnelRun["path"],
    to: string,
    binary?: TunnelRun["binary"],
  ): Promise<TunnelRun> => {
    const l = await latency(W1.ns, to, 1);
    const tcp = await tcpRate(W1.ns, to, TUNNEL_TCP_S);
    const run = {
      path,
      ...(binary ? { binary } : {}),
      tcpBps: tcp,
      p50Us: l.p50Us,
      p99Us: l.p99Us,
    };
    say(
      `  ${path}${binary ? ` (${binary})` : ""}: TCP ${fmt(tcp / 1e6, 0)} Mbit/s, latency p50 ${fmt(l.p50Us)} µs`,
    );
    return run;
  };
  const raw = async (bin: string, binary: TunnelRun["binary"]): Promise<TunnelRun> => {
    try {
      for (const s of sides) {
        inNs(s.ns, [bin, s.wg]);
        for (let i = 0; i < 50 && !existsSync(socketPath(s.wg)); i++) await sleep(50);
        await new UserspaceWireguard(undefined, undefined, bin).updatePeers({
          ifname: s.wg,
          privateKey: s.key.privateKey,
          listenPort: WG_PORT,
          peers: peers(s),
        });
        inNs(s.ns, ["ip", "addr", "add", `${s.tun}/32`, "dev", s.wg]);
        inNs(s.ns, ["ip", "link", "set", s.wg, "mtu", "1420", "up"]);
        inNs(s.ns, ["ip", "route", "add", `${s.other.tun}/32`, "dev", s.wg]);
      }
      if (!warm()) throw new Error(`raw ${bin}: no ping through the tunnel`);
      return await measure("raw wireguard-go", W2.tun, binary);
    } finally {
      for (const s of sides) {
        inNs(s.ns, ["ip", "link", "del", s.wg], true);
        rmSync(socketPath(s.wg), { force: true });
      }
    }
  };
  const netloom = async (bin: string, binary: TunnelRun["binary"]): Promise<TunnelRun> => {
    const workers = sides.map(
      (s) =>
        new NodeWorker(s.ns, join(PIN_ROOT, `${PREFIX}-${s.wg}`), {
          ...process.env,
          NETLOOM_WIREGUARD_GO: bin,
        }),
    );
    try {
      for (const [i, s] of sides.entries()) {
        await workers[i]!.apply(
          {
            nodeName: s.ns,
            devices: ["eth0"],
            mtu: 1420,
            wireguard: { profile: "bench", interfaceName: s.wg, listenPort: WG_PORT },
          },
          { wireguard: { ifname: s.wg, privateKey: s.key.privateKey, peers: peers(s) } },
        );
        inNs(s.ns, ["ip", "addr", "add", `${s.tun}/32`, "dev", s.wg]);
        const running = runningWireguardGo(s.wg);
        if (running !== bin) throw new Error(`the driver started ${running}, not ${bin}`);
      }
      if (!warm()) throw new Error(`Netloom's tunnel with ${bin}: no ping through it`);
      return await measure("Netloom's tunnel", W2.tun, binary);
    } finally {
      for (const w of workers) await w.close();
    }
  };
  const runs: TunnelRun[] = [];
  let rotation: string[] = [];
  let rotationSeconds = 0;
  try {
    say("WireGuard: underlay, raw wireguard-go, Netloom's tunnel (LinuxDriver), both builds");
    for (let round = 0; round < WG_ROUNDS; round++) {
      runs.push(await measure("underlay", W2.ip));
      for (const [binary, bin] of [
        ["Debian", bins.debian],
        ["current", bins.current],
      ] as const) {
        if (!bin) continue;
        // Raw first in even rounds, Netloom first in odd ones: a drift of the machine cancels.
        if (round % 2 === 0) runs.push(await raw(bin, binary), await netloom(bin, binary));
        else runs.push(await netloom(bin, binary), await raw(bin, binary));
      }
    }
  } finally {
    removeNamespaces([W1.ns, W2.ns]);
    for (const s of [W1, W2]) rmSync(socketPath(s.wg), { force: true });
  }
  // Rotation loss as bench/rotation.ts measures it, with the wireguard-go the agent now runs.
  const bin = bins.current ?? bins.debian;
  if (bin) {
    say(`rotation loss (bench/rotation.ts) with ${bin}`);
    const t0 = performance.now();
    const out = execFileSync(process.execPath, [join(REPO_ROOT, "dist", "bench", "rotation.js")], {
      encoding: "utf8",
      env: {
        ...process.env,
        PATH: `${dirname(bin)}:${process.env.PATH ?? ""}`,
        ...(QUICK ? { BENCH_ROTATIONS: "10" } : {}),
      },
    });
    rotationSeconds = (performance.now() - t0) / 1000;
    rotation = out.trim().split("\n");
    for (const l of rotation) say(`  ${l}`);
  }
  return { runs, versions, rotation, rotationSeconds };
}

// ---- 4. drift and 5. footprint: a real agent in a cluster-in-a-box --------------------------------

interface Sample {
  rssKB: number;
  hwmKB: number;
  ticks: number;
  at: number;
}

interface FootprintRow {
  state: string;
  rssMB: number;
  cpuPercent: number;
  note: string;
}

interface DriftFigures {
  footprint: FootprintRow[];
  applyTenThousandS: number;
  checkCpuMs: number;
  heals: { kind: string; ms: number[]; failed: number }[];
  timeline: { ms: number; sinceMs: number }[];
  intervalMs: number;
}

const CLK_TCK = 100; // USER_HZ on Linux/x86 and arm64

function sample(pid: number): Sample {
  return {
    ...parseProcStatus(readFileSync(`/proc/${pid}/status`, "utf8")),
    ticks: parseProcStatTicks(readFileSync(`/proc/${pid}/stat`, "utf8")),
    at: performance.now(),
  };
}

const cpuPercent = (a: Sample, b: Sample): number =>
  ((b.ticks - a.ticks) / CLK_TCK / ((b.at - a.at) / 1000)) * 100;

async function poll<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  ms = 90_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

async function driftSection(): Promise<DriftFigures> {
  const dir = mkdtempSync(join(tmpdir(), `netloom-bench-${BOX_PREFIX}-`));
  await boxDown(dir, BOX_PREFIX);
  say("drift and footprint: a real netloom agent in a one-node cluster-in-a-box");
  const box: BoxState = await boxUp({
    dir,
    prefix: BOX_PREFIX,
    underlayOctet: 91,
    nodes: 1,
    pods: [{ app: "bench" }],
    progress: (l) => say(`  [box] ${l}`),
  });
  try {
    return await driftIn(box);
  } finally {
    await boxDown(box.dir, box.prefix);
  }
}

async function driftIn(box: BoxState): Promise<DriftFigures> {
  const kc = boxKubeConfig(box);
  const node = box.nodes[0]!;
  const pod = node.pods[0]!;
  const pid = box.pids.agents[node.name]!;
  const ncPath = "/apis/netloom.io/v1alpha1/networkconfigs/bench";
  const apply = async (path: string, body: unknown): Promise<number> => {
    const r = await kubeRequest(kc, "PATCH", `${path}?fieldManager=netloom-bench&force=true`, {
      body,
      contentType: "application/apply-patch+yaml",
    });
    if (r.status >= 300) throw new Error(`apply ${path}: ${r.status} ${r.body.slice(0, 300)}`);
    return r.json<{ metadata: { generation: number } }>().metadata.generation;
  };
  const networkConfig = (entries: number, checkInterval: string) =>
    apply(ncPath, {
      apiVersion: "netloom.io/v1alpha1",
      kind: "NetworkConfig",
      metadata: { name: "bench" },
      spec: {
        egressDeny: entries ? benchDenyRules(entries) : [{ cidr: "169.254.169.254/32" }],
        drift: { checkInterval, mode: "Heal" },
      },
    });
  /** Until the agent reports Ready for this NetworkConfig generation (and `extra`). */
  const applied = (generation: number, extra: (s: NodeStatus) => boolean = () => true) =>
    poll(`the agent to apply NetworkConfig generation ${generation}`, async () => {
      const r = await kubeRequest(
        kc,
        "GET",
        `/apis/netloom.io/v1alpha1/nodenetworkstates/${node.name}`,
      );
      if (r.status !== 200) return undefined;
      const s = r.json<{ status?: NodeStatus }>().status;
      const ready = s?.conditions?.find((c) => c.type === "Ready")?.status === "True";
      return s && ready && s.sources?.networkConfig?.generation === generation && extra(s)
        ? s
        : undefined;
    });
  const window = async (seconds: number, during?: () => Promise<void>) => {
    const a = sample(pid);
    await Promise.all([sleep(seconds * 1000), during?.()]);
    return { a, b: sample(pid) };
  };
  const footprint: FootprintRow[] = [];
  const W = QUICK ? 5 : 10;

  // Idle: one deny rule and one capped pod, drift checked every 30 s (the default).
  await apply("/apis/netloom.io/v1alpha1/namespaces/default/bandwidthpolicies/bench", {
    apiVersion: "netloom.io/v1alpha1",
    kind: "BandwidthPolicy",
    metadata: { name: "bench", namespace: "default" },
    spec: { podSelector: { matchLabels: { app: "bench" } }, egress: { rate: "50M" } },
  });
  await applied(await networkConfig(0, "30s"));
  // The operator's status writes after a change reach the agent's watches for a few seconds.
  await sleep(5000);
  const idle = await window(W);
  footprint.push({
    state: "idle (1 deny rule, 1 capped pod)",
    rssMB: idle.b.rssKB / 1024,
    cpuPercent: cpuPercent(idle.a, idle.b),
    note: `${W} s; the box runs agents with a 5 s heartbeat (15 s by default), Lease renewed every 10 s, drift checked every 30 s`,
  });
  say(`  idle: RSS ${fmt(idle.b.rssKB / 1024)} MB, CPU ${fmt(cpuPercent(idle.a, idle.b), 2)} %`);

  // 10,000 deny entries (1,000 rules × 5 ports × TCP/UDP).
  const t0 = performance.now();
  await applied(await networkConfig(10_000, "30s"), (s) => s.mapEntries?.egress_deny === 10_000);
  const applyTenThousandS = (performance.now() - t0) / 1000;
  say(`  10,000 deny entries applied ${fmt(applyTenThousandS)} s after the write`);
  await sleep(5000);
  const full = await window(W);
  footprint.push({
    state: "10,000 deny entries",
    rssMB: full.b.rssKB / 1024,
    cpuPercent: cpuPercent(full.a, full.b),
    note: `${W} s at rest; applied ${fmt(applyTenThousandS)} s after the NetworkConfig write`,
  });
  say(
    `  10,000 entries: RSS ${fmt(full.b.rssKB / 1024)} MB, CPU ${fmt(cpuPercent(full.a, full.b), 2)} %`,
  );

  // Drift checks on demand (SIGHUP), one a second, each reading 10,000 entries back.
  const checks = QUICK ? 3 : 5;
  const rest = cpuPercent(full.a, full.b);
  const hup = await window(checks, async () => {
    for (let i = 0; i < checks; i++) {
      process.kill(pid, "SIGHUP");
      await sleep(1000);
    }
  });
  const hupCpu = cpuPercent(hup.a, hup.b);
  const checkCpuMs = (((hupCpu - rest) / 100) * ((hup.b.at - hup.a.at) / 1000) * 1000) / checks;
  footprint.push({
    state: "drift checks (10,000 entries)",
    rssMB: hup.b.rssKB / 1024,
    cpuPercent: hupCpu,
    note: `one check a second (SIGHUP) for ${checks} s: ${fmt(checkCpuMs, 0)} ms of CPU per check; peak RSS since the start ${fmt(hup.b.hwmKB / 1024, 0)} MB`,
  });
  say(
    `  drift checks: CPU ${fmt(hupCpu, 1)} %, ${fmt(checkCpuMs, 0)} ms CPU per check, peak RSS ${fmt(hup.b.hwmKB / 1024)} MB`,
  );

  // Drift: out-of-band changes, healed by the checks every DRIFT_INTERVAL.
  await applied(await networkConfig(10_000, DRIFT_INTERVAL));
  const intervalMs = parseDuration(DRIFT_INTERVAL);
  const minor = classMinorFor(pod.ip);
  const classId = `1:${minor.toString(16)}`;
  const pins = join(box.bpfPinRoot, node.name, "netloom");
  const link = join(pins, "links", "eth0-egress");
  const mapFd = objGet(join(pins, "maps", "egress_deny"));
  const entries = benchDenyEntries(10_000);
  const hasClass = () =>
    inNs(node.netns, ["tc", "class", "show", "dev", "eth0"]).includes(`class htb ${classId} `);
  const attached = () =>
    existsSync(link) &&
    withNetns(nsPath(node.netns), () => BpfDatapath.attachedOn("eth0", "tcx", "egress").length > 0);
  const kinds: {
    kind: string;
    inject: () => Buffer | undefined;
    healed: (key?: Buffer) => boolean;
    pollMs: number;
  }[] = [
    {
      kind: "HTB class deleted (tc class del)",
      inject: () => {
        inNs(node.netns, ["tc", "class", "del", "dev", "eth0", "classid", classId]);
        return undefined;
      },
      healed: hasClass,
      pollMs: 20,
    },
    {
      kind: "egress_deny entry deleted (bpf_map_delete_elem)",
      inject: () => {
        const key = encodeDenyKey(entries[Math.floor(Math.random() * entries.length)]!);
        if (!mapDelete(mapFd, key)) throw new Error("the entry to delete was not there");
        return key;
      },
      healed: (key?: Buffer) => key !== undefined && mapLookup(mapFd, key, 1) !== undefined,
      pollMs: 5,
    },
    {
      kind: "program detached (tcx link unpinned)",
      inject: () => {
        rmSync(link);
        return undefined;
      },
      healed: attached,
      pollMs: 5,
    },
  ];
  const heals = kinds.map((k) => ({ kind: k.kind, ms: [] as number[], failed: 0 }));
  /** Every heal with the time from the previous heal seen to this change. */
  const timeline: { ms: number; sinceMs: number }[] = [];
  let lastHealed = performance.now();
  try {
    if (!hasClass() || !attached()) throw new Error("the agent's datapath is not in place");
    say(`  drift: ${INJECTIONS} injections, checkInterval ${DRIFT_INTERVAL}`);
    for (let i = 0; i < INJECTIONS; i++) {
      const k = kinds[i % kinds.length]!;
      // A random phase against the agent's timer.
      await sleep(Math.random() * intervalMs);
      const key = k.inject();
      const t = performance.now();
      let healedMs: number | undefined;
      while (performance.now() - t < intervalMs + 10_000) {
        if (k.healed(key)) {
          healedMs = performance.now() - t;
          break;
        }
        await sleep(k.pollMs);
      }
      const h = heals[i % kinds.length]!;
      if (healedMs === undefined) h.failed++;
      else {
        h.ms.push(healedMs);
        timeline.push({ ms: healedMs, sinceMs: t - lastHealed });
      }
      // Every other change healed too before the next one (a heal is a full apply).
      await poll(
        "the datapath to be whole again",
        () => (hasClass() && attached() ? true : undefined),
        15_000,
      );
      lastHealed = performance.now();
    }
  } finally {
    closeFd(mapFd);
  }
  for (const h of heals)
    say(
      `  ${h.kind}: p50 ${fmt(percentile(h.ms, 50), 0)} ms, p99 ${fmt(percentile(h.ms, 99), 0)} ms, not healed ${h.failed}`,
    );
  return { footprint, applyTenThousandS, checkCpuMs, heals, timeline, intervalMs };
}

interface NodeStatus {
  conditions?: { type: string; status: string }[];
  sources?: { networkConfig?: { generation: number } };
  mapEntries?: Record<string, number>;
}

// ---- report ------------------------------------------------------------------------------------

interface Results {
  lookup?: LookupFigures;
  rate?: RateFigures;
  wireguard?: WireguardFigures;
  drift?: DriftFigures;
  failed: string[];
  leftovers: string[];
  seconds: number;
  load: [number[], number[]];
}

const mbit = (bps: number) => fmt(bps / 1e6, 1);
const within = (r: number, lo: number, hi: number) => r >= lo && r <= hi;

function lookupReport(f: LookupFigures, short: string[]): string[] {
  const rows = f.rows.map((r) => {
    const b = r.base;
    return `| ${r.entries.toLocaleString("en")} | ${r.filter} | ${fmt(r.figures.latency.p50Us)} / ${fmt(r.figures.latency.p99Us)} | ${ratio(r.figures.latency.p50Us, b.latency.p50Us)} | ${fmt(r.figures.udp.sentPps / 1000, 0)} | ${ratio(r.figures.udp.sentPps, b.udp.sentPps)} | ${fmt(r.figures.tcpBps / 1e9, 2)} | ${ratio(r.figures.tcpBps, b.tcpBps)} | ${r.nsPerPacket === undefined ? "—" : fmt(r.nsPerPacket, 0)} | ${r.loadMs === undefined ? "" : fmt(r.loadMs, 0)} | ${r.denied} |`;
  });
  const base = f.baselines;
  const spread = (g: (x: LinkFigures) => number) => {
    const xs = base.map(g);
    return `${fmt(Math.min(...xs), 1)}–${fmt(Math.max(...xs), 1)}`;
  };
  /** Half the range of the baselines, against their mean: the run's noise in that figure. */
  const noise = (g: (x: LinkFigures) => number) => {
    const xs = base.map(g);
    return `${fmt(((Math.max(...xs) - Math.min(...xs)) / 2 / mean(xs)) * 100, 0)} %`;
  };
  const ebpf10k = f.rows.find((r) => r.filter === "eBPF (LPM map)" && r.entries === 10_000);
  const pol = f.rows.find((r) => r.filter === "NetworkPolicy (eBPF)" && r.entries === 10_000);
  const polSmall = f.rows.find(
    (r) => r.filter === "NetworkPolicy (eBPF)" && r.entries > 0 && r.entries < 10_000,
  );
  const polNone = f.rows.find((r) => r.filter === "NetworkPolicy (eBPF)" && r.entries === 0);
  const verdict = (r: LookupRow | undefined, what: string, withTcp: boolean) => {
    if (!r) return `${what}: not measured`;
    const lat = r.figures.latency.p50Us / r.base.latency.p50Us;
    const pps = r.figures.udp.sentPps / r.base.udp.sentPps;
    const tcp = r.figures.tcpBps / r.base.tcpBps;
    const ok = lat <= 1.05 && pps >= 0.95 && (!withTcp || tcp >= 0.95);
    // Noise-free: the program's run time as a share of a packet's time at the baseline rate.
    const share =
      r.nsPerPacket === undefined
        ? ""
        : `; the program itself runs ${fmt(r.nsPerPacket, 0)} ns a packet, ${fmt((r.nsPerPacket * r.base.udp.sentPps) / 1e7, 1)} % of a packet's time at the baseline's ${fmt(r.base.udp.sentPps / 1000, 0)} kpps`;
    const text = `${what}: latency ${change(r.figures.latency.p50Us, r.base.latency.p50Us)}, packet rate ${change(r.figures.udp.sentPps, r.base.udp.sentPps)}${withTcp ? `, TCP ${change(r.figures.tcpBps, r.base.tcpBps)}` : ""} against no filtering (target within 5 %; this run's baselines spread ±${noise((x) => x.latency.p50Us)}, ±${noise((x) => x.udp.sentPps)}${withTcp ? `, ±${noise((x) => x.tcpBps)}` : ""}): ${ok ? "met" : "missed"}${share}`;
    if (!ok) short.push(text);
    return text;
  };
  /** The issue's own comparison: 10,000 entries against no policy (the same programs, no entries). */
  const policyVerdict = (): string => {
    const what = `NetworkPolicy, 10,000 policy entries for one endpoint against no policy (the same pod programs on its host veth, no policy selecting the pod), measured between the same baselines`;
    if (!pol || !polNone) return `${what}: not measured`;
    const lat = pol.figures.latency.p50Us / polNone.figures.latency.p50Us;
    const pps = pol.figures.udp.sentPps / polNone.figures.udp.sentPps;
    const ok = lat <= 1.05 && pps >= 0.95;
    const program =
      pol.nsPerPacket !== undefined && polNone.nsPerPacket !== undefined
        ? `; the program runs ${fmt(pol.nsPerPacket, 0)} against ${fmt(polNone.nsPerPacket, 0)} ns a packet`
        : "";
    const text = `${what}: latency ${change(pol.figures.latency.p50Us, polNone.figures.latency.p50Us)}, packet rate ${change(pol.figures.udp.sentPps, polNone.figures.udp.sentPps)} (target within 5 %): ${ok ? "met" : "missed"}${program}`;
    if (!ok) short.push(text);
    return text;
  };
  const ipt = f.rows.find((r) => r.filter === "iptables" && r.entries === 10_000);
  const nft = f.rows.find((r) => r.filter === "nftables (set)" && r.entries === 10_000);
  return [
    "### Lookup cost: egress deny and NetworkPolicy",
    "",
    `Between two namespaces over a veth, the filter on the sender's egress; sockperf ping-pong (64-byte UDP, half round trip) and iperf3 (64-byte UDP as fast as one sender goes; one TCP stream), ${WINDOW_S} s each, client pinned to CPU 0 and server to CPU 1 (taskset). Each ratio is against the mean of the no-filter runs just before and just after its group; those baselines ranged over latency p50 ${spread((x) => x.latency.p50Us)} µs, ${spread((x) => x.udp.sentPps / 1000)} kpps, TCP ${spread((x) => x.tcpBps / 1e9)} Gbit/s in this run. The entries are 1,000 rules × 5 ports × TCP/UDP at 10,000 (a /32 each, in 172.16.0.0/12; no measured packet matches one); iptables: one \`-d … -p … --dport … -j DROP\` rule per entry in OUTPUT (${f.iptablesVersion}); nftables: one rule looking up a set of address . protocol . port. _denied_: a TCP SYN to a denied destination (or, for NetworkPolicy, a port the policy does not allow) went unanswered under the filter and was refused without it. _program_: the eBPF program's own run time per packet (kernel.bpf_stats_enabled, on for a separate 1 s flood only), the part of the cost that does not depend on the machine's noise; _load_: writing the entries (map updates, iptables-restore, nft -f).`,
    "",
    "| entries | filter | latency p50 / p99 (µs) | ÷ none | 64-byte UDP (kpps sent) | ÷ none | TCP (Gbit/s) | ÷ none | program (ns/packet) | load (ms) | denied |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ...rows,
    "",
    "Against the targets:",
    "",
    `- ${verdict(ebpf10k, "eBPF LPM map, 10,000 entries", true)}`,
    `- ${policyVerdict()}`,
    `- ${verdict(pol, `NetworkPolicy, ${pol?.entries.toLocaleString("en") ?? "10,000"} policy entries for one endpoint (pod programs on its host veth, both hooks)`, false)} (TCP ${pol ? change(pol.figures.tcpBps, pol.base.tcpBps) : "n/a"}, not a target)${polSmall?.nsPerPacket !== undefined && pol?.nsPerPacket !== undefined ? `; with ${polSmall.entries} entries the program runs ${fmt(polSmall.nsPerPacket, 0)} ns a packet (a packet of an established connection costs one conntrack lookup whatever the policy's size; the policy's LPM lookups run for a connection's first packet, and again after a policy or identity change)` : ""}`,
    `- for comparison at 10,000: iptables latency ×${ipt ? ratio(ipt.figures.latency.p50Us, ipt.base.latency.p50Us) : "n/a"}, packet rate ×${ipt ? ratio(ipt.figures.udp.sentPps, ipt.base.udp.sentPps) : "n/a"}; the nftables set ×${nft ? ratio(nft.figures.latency.p50Us, nft.base.latency.p50Us) : "n/a"}, ×${nft ? ratio(nft.figures.udp.sentPps, nft.base.udp.sentPps) : "n/a"}`,
  ];
}

function rateReport(f: RateFigures, short: string[]): string[] {
  const line = (r: RateRow, what: string) =>
    `| ${what}${r.burstBytes ? `, burst ${(r.burstBytes / 1000).toFixed(0)} kB (1 ms)` : ""} | ${mbit(r.configured)} | ${mbit(r.goodput)} | ${ratio(r.goodput, r.configured)} | ${mbit(r.wire)} | ${ratio(r.wire, r.configured)} | ${within(r.wire / r.configured, 0.95, 1.05) ? "met" : "missed"} |`;
  for (const r of [...f.rows, ...f.fair])
    if (!within(r.wire / r.configured, 0.95, 1.05))
      short.push(
        `rate accuracy at ${mbit(r.configured)} Mbit/s${r.burstBytes ? ` (burst ${r.burstBytes} B)` : " (the driver's default burst)"}: wire rate ×${ratio(r.wire, r.configured)} of the configured rate (target ±5 %)`,
      );
  return [
    "### Rate accuracy (HTB)",
    "",
    `A node namespace with two pods behind veths (the box's pod wiring) and an uplink to a peer namespace; the LinuxDriver applies the limits (its program sets skb->priority from pod_class, HTB classes on the uplink). One iperf3 TCP stream per pod, ${f.windowS[1] + 1} s; the steady part (${f.windowS[0]} s to ${f.windowS[1]} s) counts: _wire_ is the HTB class's byte counter (Ethernet frames, what HTB meters), _goodput_ the receiver's TCP payload in the same seconds (at most ≈ 0.96 of the wire: 1,448 payload bytes per 1,514-byte frame). An uncapped pod moved ${fmt(f.uncapped / 1e9, 2)} Gbit/s through the same path. Every row but the last single-pod one leaves the burst to the driver's default (tc's, from the rate); the last sets 1 ms at the rate, as a BandwidthPolicy's \`burst\` can.`,
    "",
    "| pods | configured (Mbit/s) | goodput (Mbit/s) | ÷ configured | wire (Mbit/s) | ÷ configured | ±5 % (wire) |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    ...f.rows.map((r) => line(r, "one")),
    ...f.fair.map((r, i) => line(r, `two at once: pod ${i + 1}`)),
    "",
    `Two capped pods at once share fairly: Jain's index of their wire rates (each over its cap) ${f.jain.toFixed(4)} (1 is perfectly even).`,
  ];
}

function wireguardReport(f: WireguardFigures, short: string[]): string[] {
  const avg = (path: TunnelRun["path"], binary?: TunnelRun["binary"]) => {
    const xs = f.runs.filter((r) => r.path === path && r.binary === binary);
    return xs.length
      ? {
          tcp: percentile(
            xs.map((x) => x.tcpBps),
            50,
          ),
          p50: percentile(
            xs.map((x) => x.p50Us),
            50,
          ),
          p99: percentile(
            xs.map((x) => x.p99Us),
            50,
          ),
          /** How far the rounds were apart (TCP): this run's noise for this path. */
          spread:
            (Math.max(...xs.map((x) => x.tcpBps)) - Math.min(...xs.map((x) => x.tcpBps))) /
            mean(xs.map((x) => x.tcpBps)),
          n: xs.length,
        }
      : undefined;
  };
  const under = avg("underlay");
  const rows: string[] = [];
  if (under)
    rows.push(
      `| underlay (veth) | — | ${fmt(under.tcp / 1e6, 0)} | ±${fmt(under.spread * 50, 0)} % | 1.00 | | ${fmt(under.p50)} / ${fmt(under.p99)} | |`,
    );
  for (const binary of ["Debian", "current"] as const) {
    const version = binary === "Debian" ? f.versions.debian : f.versions.current;
    const raw = avg("raw wireguard-go", binary);
    const nl = avg("Netloom's tunnel", binary);
    if (!raw || !nl || !under) continue;
    rows.push(
      `| raw wireguard-go | ${binary} (v${version ?? "?"}) | ${fmt(raw.tcp / 1e6, 0)} | ±${fmt(raw.spread * 50, 0)} % | ${ratio(raw.tcp, under.tcp)} | 1.00 | ${fmt(raw.p50)} / ${fmt(raw.p99)} | 1.00 |`,
      `| Netloom's tunnel | ${binary} (v${version ?? "?"}) | ${fmt(nl.tcp / 1e6, 0)} | ±${fmt(nl.spread * 50, 0)} % | ${ratio(nl.tcp, under.tcp)} | ${ratio(nl.tcp, raw.tcp)} | ${fmt(nl.p50)} / ${fmt(nl.p99)} | ${ratio(nl.p50, raw.p50)} |`,
    );
    if (nl.tcp / raw.tcp < 0.9)
      short.push(
        `WireGuard with ${binary === "Debian" ? "Debian's" : "the current"} wireguard-go: Netloom's tunnel moves ×${ratio(nl.tcp, raw.tcp)} of raw wireguard-go's TCP (target ≥ 0.90; the rounds spread ±${fmt(Math.max(raw.spread, nl.spread) * 50, 0)} %)`,
      );
  }
  const deb = avg("Netloom's tunnel", "Debian");
  const cur = avg("Netloom's tunnel", "current");
  return [
    "### WireGuard",
    "",
    `Two node namespaces on a veth. _Raw_: wireguard-go started by hand and configured over its UAPI socket, a /32 route: no Netloom programs. _Netloom's tunnel_: the LinuxDriver (as the agent runs it, in each node's namespace) brings the tunnel up with the chosen wireguard-go, with netloom_egress on the underlay device and netloom_tunnel_egress on the tunnel. TCP: one iperf3 stream, ${TUNNEL_TCP_S} s; latency: sockperf ping-pong, 1 s; client on CPU 0, server on CPU 1 (wireguard-go unpinned). ${under?.n ?? 0} round${under?.n === 1 ? "" : "s"}, raw and Netloom's tunnel in alternating order; each figure is the median of the rounds, _rounds' spread_ half the range of their TCP figures.`,
    "",
    "| path | wireguard-go | TCP (Mbit/s) | rounds' spread | ÷ underlay | ÷ raw | latency p50 / p99 (µs) | p50 ÷ raw |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ...rows,
    "",
    deb && cur
      ? `The current wireguard-go through Netloom's tunnel: ×${ratio(cur.tcp, deb.tcp)} the TCP throughput of Debian's, latency p50 ×${ratio(cur.p50, deb.p50)}. The agent now starts the current build (src/datapath-driver/wireguard/backend.ts: NETLOOM_WIREGUARD_GO, else the project's build in ~/.cache/netloom/wireguard-go, else the one on PATH).`
      : "Only one wireguard-go build was measured.",
    "",
    `Key rotation (bench/rotation.ts, with the current wireguard-go, ${fmt(f.rotationSeconds, 0)} s):`,
    "",
    ...f.rotation.map((l) => `    ${l}`),
  ];
}

function driftReport(f: DriftFigures, short: string[]): string[] {
  const target = f.intervalMs + 1000;
  const all = f.heals.flatMap((h) => h.ms);
  const failed = f.heals.reduce((n, h) => n + h.failed, 0);
  const row = (kind: string, ms: number[], notHealed: number) =>
    `| ${kind} | ${ms.length + notHealed} | ${fmt(percentile(ms, 50) / 1000, 2)} | ${fmt(percentile(ms, 99) / 1000, 2)} | ${fmt(Math.max(...ms) / 1000, 2)} | ${notHealed} | ${percentile(ms, 99) < target && notHealed === 0 ? "met" : "missed"} |`;
  if (!(percentile(all, 99) < target) || failed > 0)
    short.push(
      `drift healing: p99 ${fmt(percentile(all, 99) / 1000, 2)} s over ${all.length + failed} injections (${failed} not healed) against checkInterval + 1 s = ${fmt(target / 1000, 1)} s`,
    );
  return [
    "### Drift healing",
    "",
    `A real \`netloom agent\` (its own process, in the node namespace of a one-node cluster-in-a-box, with the operator and a kube-apiserver) holding 10,000 deny entries and a capped pod, NetworkConfig drift.checkInterval ${f.intervalMs / 1000} s, mode Heal. ${all.length + failed} out-of-band changes, one kind after the other, each after a random pause of up to checkInterval once the previous one was seen healed (so it lands anywhere in the agent's cycle); _healed_ is from the change to the moment the kernel holds the object again (polled every 5 ms, the HTB class every 20 ms). Target: below checkInterval + 1 s.`,
    "",
    "| change | injections | p50 (s) | p99 (s) | max (s) | not healed | < checkInterval + 1 s |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    ...f.heals.map((h) => row(h.kind, h.ms, h.failed)),
    row("all", all, failed),
    "",
    timelineNote(f),
  ];
}

/**
 * The heal time against how soon the change followed the previous heal: the agent re-arms its
 * check timer after a check ends (heal and status write included), so a change made while it
 * finishes one waits a full interval from then.
 */
function timelineNote(f: DriftFigures): string {
  const soon = f.timeline.filter((t) => t.sinceMs < 1000).map((t) => t.ms);
  const late = f.timeline.filter((t) => t.sinceMs >= 1000).map((t) => t.ms);
  const s = (xs: number[]) =>
    `${xs.length} changes, p50 ${fmt(percentile(xs, 50) / 1000, 2)} s, p99 ${fmt(percentile(xs, 99) / 1000, 2)} s, max ${fmt(Math.max(...xs) / 1000, 2)} s`;
  return `By how soon a change followed the previous heal seen: within 1 s (the agent may still be finishing that heal, its status write included, before it re-arms the check timer for a full interval): ${s(soon)}; 1 s or later: ${s(late)}. The check itself, with 10,000 entries, takes ${fmt(f.checkCpuMs, 0)} ms of CPU (see the footprint below).`;
}

function footprintReport(f: DriftFigures): string[] {
  return [
    "### Agent footprint",
    "",
    "The same agent process (`/proc/PID/status` VmRSS, CPU from `/proc/PID/stat` over the window); the operator, API server and etcd are not counted.",
    "",
    "| state | RSS (MB) | CPU (% of one core) | how |",
    "| --- | --- | --- | --- |",
    ...f.footprint.map(
      (r) => `| ${r.state} | ${fmt(r.rssMB, 0)} | ${fmt(r.cpuPercent, 2)} | ${r.note} |`,
    ),
  ];
}

function report(r: Results, commit: string): string {
  const short: string[] = [];
  const model = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "";
  const sections: string[][] = [];
  if (r.lookup) sections.push(lookupReport(r.lookup, short));
  if (r.rate) sections.push(rateReport(r.rate, short));
  if (r.wireguard) sections.push(wireguardReport(r.wireguard, short));
  if (r.drift) sections.push(driftReport(r.drift, short), footprintReport(r.drift));
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(" ");
  return [
    `Measured ${new Date().toISOString().slice(0, 10)} on commit ${commit}, ${cpus().length} CPUs (${model.trim()}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, kernel ${release()}; load average ${load(r.load[0])} at the start, ${load(r.load[1])} at the end. ${fmt(r.seconds / 60, 1)} minutes; reproduce with \`node dist/bench/datapath.js\` (part of \`make bench\`; \`BENCH_QUICK=1\` for a short run).${QUICK ? " **Short run (BENCH_QUICK=1): 1 s windows, fewer sizes and injections.**" : ""}`,
    "",
    ...sections.flatMap((s) => [...s, ""]),
    "### What falls short of its target",
    "",
    ...(short.length || r.failed.length
      ? [...short, ...r.failed.map((f) => `section failed: ${f}`)].map((s) => `- ${s}`)
      : ["- nothing in this run"]),
    "",
    `Left behind after the run (namespaces, pins, WireGuard sockets, nftables/iptables rules in the root namespace): ${r.leftovers.length ? r.leftovers.join(", ") : "nothing"}.`,
  ].join("\n");
}

function writeBenchmarksSection(text: string): void {
  const path = join(REPO_ROOT, "docs", "benchmarks.md");
  const begin = "<!-- datapath:begin (written by bench/datapath.ts";
  const end = "<!-- datapath:end -->";
  const doc = readFileSync(path, "utf8");
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  if (i < 0 || j < i) throw new Error(`${path} has no ${begin} … ${end} block`);
  const open = doc.indexOf("-->", i) + 3;
  writeFileSync(path, `${doc.slice(0, open)}\n${formatMarkdown(text)}\n${doc.slice(j)}`);
}

async function main(): Promise<number> {
  const why = unavailable();
  if (why) {
    say(`skipped: ${why}`);
    return process.env.CI ? 1 : 0;
  }
  const busy = sh("pgrep", ["-f", "node --test"], { allowFail: true }).trim();
  if (busy)
    say(
      `note: other tests are running (pids ${busy.split("\n").join(" ")}): figures share 2 CPUs with them`,
    );
  const started = performance.now();
  const results: Results = { failed: [], leftovers: [], seconds: 0, load: [loadavg(), []] };
  removeLeftovers();
  const sections: [string, () => Promise<void>][] = [
    [
      "lookup",
      async () => {
        results.lookup = await lookupSection();
      },
    ],
    [
      "rate",
      async () => {
        results.rate = await rateSection();
      },
    ],
    [
      "wireguard",
      async () => {
        results.wireguard = await wireguardSection();
      },
    ],
    [
      "drift",
      async () => {
        results.drift = await driftSection();
      },
    ],
  ];
  for (const [name, run] of sections) {
    if (!SECTIONS.has(name)) continue;
    const t0 = performance.now();
    try {
      await run();
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      say(`${name} failed: ${msg}`);
      results.failed.push(`${name}: ${msg.split("\n")[0]}`);
    }
    say(`${name}: ${fmt((performance.now() - t0) / 1000, 0)} s`);
  }
  results.leftovers = leftovers();
  results.seconds = (performance.now() - started) / 1000;
  results.load[1] = loadavg();
  const git = (args: string[]) => sh("git", ["-C", REPO_ROOT, ...args], { allowFail: true }).trim();
  // The programs and the driver measured are the tree's: say when it differs from the commit.
  const dirty = git(["status", "--porcelain", "--", "bpf", "src", "bench"]) !== "";
  const commit = `${git(["rev-parse", "--short", "HEAD"]) || "(no git)"}${dirty ? " with uncommitted changes to bpf/, src/ or bench/ in the tree" : ""}`;
  const text = report(results, commit);
  process.stdout.write(`${text}\n`);
  const full = ["lookup", "rate", "wireguard", "drift"].every((s) => SECTIONS.has(s));
  const write = process.env.BENCH_DP_WRITE ?? (full && !QUICK ? "1" : "0");
  if (write === "1") {
    writeBenchmarksSection(text);
    say("wrote the datapath section of docs/benchmarks.md");
  } else say("docs/benchmarks.md left alone (BENCH_DP_WRITE=1 writes it)");
  return results.failed.length || results.leftovers.length ? 1 : 0;
}

process.exit(await main());
