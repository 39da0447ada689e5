import { isIP, isIPv4 } from "node:net";
import { cidrContains, formatCidr, parseCidr } from "../api/cidr.js";
import type { NodeDatapath, PodBandwidth } from "../api/nodenetworkstate.js";
import type { NodePolicy } from "../policy/node.js";
import {
  type DenyEntry,
  describeDenyEntries,
  describeEgressSkip,
  egressDenyEntries,
  egressSkipBits,
} from "./maps/egress-deny.js";
import {
  describeEndpoint,
  describeIpcacheEntry,
  describePolicyEntries,
  type EndpointValue,
  endpointMaps,
  type Ipcache,
  type IpcacheEntries,
  ipcacheChanges,
  type PolicyMapEntry,
} from "./maps/policy.js";
import type { PeerConfig, PeerState } from "./wireguard/uapi.js";

/** What the node's kernel can do, detected once at start and reported in status. */
export interface Capabilities {
  tcx: boolean;
  fq: boolean;
  wireguardKernel: boolean;
}

/** What the agent knows besides the spec: the node's WireGuard key and its peers. */
export interface ApplyContext {
  wireguard?: {
    ifname: string;
    /** Stays on the node: handed to the driver, never written anywhere but the 0600 key file. */
    privateKey: string;
    peers: PeerConfig[];
  };
  /** NetworkPolicy for this node's pods (rendered by the agent from its watches). */
  policy?: NodePolicy;
}

/**
 * The datapath state that can drift, in the kernel objects' own vocabulary: what a driver reads
 * back from the node, and what expectedState() says it must read back.
 */
export interface DatapathState {
  /** Devices with the Netloom programs attached. */
  attachedDevices: string[];
  /** egress_deny and egress_deny6 entries (describeDenyEntries: "cidr" or "cidr TCP/22"). */
  egressDeny: string[];
  /** strict_cidrs entries. */
  strictCidrs: string[];
  /** egress_skip: the lookups the programs leave out as empty (EGRESS_SKIP bits). */
  egressSkip: number;
  /** Pod IP → enforced egress bits/s. */
  bandwidth: Record<string, number>;
  /** The WireGuard interface (absent: none wanted / none found) and its peers' public keys. */
  wireguard?: { ifname: string; peerKeys: string[] };
  /**
   * NetworkPolicy: pod interfaces with both programs, and the maps (describe* forms; the
   * ipcache, every pod of the cluster, as its table: prefix → identity).
   */
  policy?: {
    devices: string[];
    endpoints: string[];
    entries: string[];
    ipcache: IpcacheEntries;
  };
}

/** A local pod's host-side interface, as the driver found it (by the route to its address). */
export interface EndpointDevice {
  ifname: string;
  ifindex: number;
}

/** The NetworkPolicy part of a plan, in the maps' own vocabulary. */
export interface PolicyPlan {
  /** Interfaces that get the pod programs (ingress and egress). */
  devices: string[];
  endpoints: Map<number, EndpointValue>;
  entries: PolicyMapEntry[];
  ipcache: Ipcache;
  /** pod (namespace/name) → its interface's ifindex (audit counts are per interface). */
  podOf: Map<number, string>;
}

/**
 * Pure: everything a spec asks of the kernel, translated once. Both drivers apply exactly this
 * and the drift check compares the node against expectedState() of it, so the two cannot
 * disagree about what "applied" means.
 */
export interface DatapathPlan {
  devices: string[];
  egressDeny: DenyEntry[];
  /** IPv4 networks, host bits cleared (the strict_cidrs map is IPv4). */
  strictCidrs: string[];
  /** IPv4 pods with an egress limit (pod_class is keyed by IPv4 source). */
  bandwidth: PodBandwidth[];
  wireguard?: { ifname: string; peerKeys: string[] };
  policy?: PolicyPlan;
  /** What this datapath cannot enforce, each naming the object: reported, never silently dropped. */
  notEnforced: string[];
}

/** Pure: the node addresses of the WireGuard peers (their nodeIP, else their endpoint's host). */
export function peerNodeIPs(ctx: ApplyContext): string[] {
  return (ctx.wireguard?.peers ?? []).flatMap((p) => {
    const host = p.nodeIP ?? p.endpoint?.replace(/:\d+$/, "").replace(/^\[(.*)\]$/, "$1");
    return host && isIP(host) ? [host] : [];
  });
}

/**
 * Pure: the NetworkPolicy maps for this node's pods. A pod whose interface the driver did not
 * find is named in notEnforced (its traffic passes unchecked until it is found).
 */
export function planPolicy(
  ctx: ApplyContext,
  endpointDevices: ReadonlyMap<string, EndpointDevice>,
  notEnforced: string[],
): PolicyPlan | undefined {
  const policy = ctx.policy;
  if (!policy) return undefined;
  const plan: PolicyPlan = {
    devices: [],
    endpoints: new Map(),
    entries: [],
    ipcache: policy.ipcache,
    podOf: new Map(),
  };
  for (const e of policy.endpoints) {
    const dev = endpointDevices.get(e.pod);
    if (!dev) {
      notEnforced.push(`NetworkPolicy for pod ${e.pod}: no interface routes its address yet`);
      continue;
    }
    plan.devices.push(dev.ifname);
    plan.podOf.set(dev.ifindex, e.pod);
    // The node reaches its own pods whatever the policy (kubelet probes), as Cilium allows.
    const { value, entries } = endpointMaps(dev.ifindex, e.identity, e.tiers, { allowHost: true });
    plan.endpoints.set(dev.ifindex, value);
    plan.entries.push(...entries);
  }
  plan.devices.sort();
  return plan;
}

export function planDatapath(
  spec: NodeDatapath,
  devices: string[],
  ctx: ApplyContext = {},
  endpointDevices: ReadonlyMap<string, EndpointDevice> = new Map(),
): DatapathPlan {
  const notEnforced: string[] = [];
  const policy = planPolicy(ctx, endpointDevices, notEnforced);
  for (const d of spec.devices ?? [])
    if (!devices.includes(d))
      notEnforced.push(`device ${d}: no such device on this node (nothing attached to it)`);
  const strictCidrs = new Set<string>();
  const nodeIPs = peerNodeIPs(ctx);
  for (const text of spec.wireguard?.strictCIDRs ?? []) {
    const c = parseCidr(text);
    // The tunnel's own UDP runs between node addresses: a strict network that covers one
    // would drop it and cut the nodes off. Left out and named, not enforced.
    const node = nodeIPs.find((ip) => cidrContains(c, ip));
    if (c.family !== 4)
      notEnforced.push(`strict mode for ${text}: IPv6 strict mode is not supported`);
    else if (node)
      notEnforced.push(
        `strict mode for ${text}: it covers the node address ${node}, and would drop the tunnel's own packets`,
      );
    else strictCidrs.add(formatCidr(c));
  }
  const bandwidth = (spec.bandwidth ?? []).filter((b) => {
    if (isIPv4(b.ip)) return true;
    notEnforced.push(`egress limit of pod ${b.pod} (${b.ip}): IPv6 pods are not shaped yet`);
    return false;
  });
  const wg = ctx.wireguard;
  return {
    devices: [...devices].sort(),
    egressDeny: egressDenyEntries(spec.egressDeny ?? []),
    strictCidrs: [...strictCidrs].sort(),
    bandwidth,
    ...(wg
      ? { wireguard: { ifname: wg.ifname, peerKeys: wg.peers.map((p) => p.publicKey).sort() } }
      : {}),
    ...(policy ? { policy } : {}),
    notEnforced,
  };
}

/** Pure: what a driver must read back once the plan is applied. */
export function expectedState(plan: DatapathPlan): DatapathState {
  return {
    attachedDevices: plan.devices,
    egressDeny: describeDenyEntries(plan.egressDeny),
    strictCidrs: plan.strictCidrs,
    egressSkip: egressSkipBits(plan.egressDeny, plan.strictCidrs, plan.bandwidth.length),
    bandwidth: Object.fromEntries(plan.bandwidth.map((b) => [b.ip, b.egressBitsPerSecond])),
    ...(plan.wireguard ? { wireguard: plan.wireguard } : {}),
    ...(plan.policy ? { policy: policyState(plan.policy) } : {}),
  };
}

/** Pure: the policy maps and attachments as a driver reads them back. */
export function policyState(p: PolicyPlan): NonNullable<DatapathState["policy"]> {
  return {
    devices: [...p.devices],
    endpoints: [...p.endpoints].map(([ifindex, v]) => describeEndpoint(ifindex, v)).sort(),
    entries: describePolicyEntries(p.entries),
    ipcache: p.ipcache.entries,
  };
}

/** Pure: entries per BPF map for status, the same for every driver. */
export function mapEntryCounts(plan: DatapathPlan): Record<string, number> {
  // Not the ipcache: it changes on every node with every pod anywhere, and a count in the
  // status would make each pod start cost a status write per node.
  return {
    egress_deny: plan.egressDeny.filter((e) => e.cidr.family === 4).length,
    egress_deny6: plan.egressDeny.filter((e) => e.cidr.family === 6).length,
    strict_cidrs: plan.strictCidrs.length,
    pod_class: plan.bandwidth.length,
    ...(plan.policy
      ? { endpoints: plan.policy.endpoints.size, policy: plan.policy.entries.length }
      : {}),
  };
}

export interface DriftItem {
  what: "program" | "egressDeny" | "strictCidrs" | "bandwidth" | "wireguard" | "policy";
  /** Human description: "program missing on eth0", "egress-deny entry 169.254.169.254/32 missing". */
  detail: string;
}

export interface ApplyReport {
  attach: "tcx" | "clsact" | "none";
  /** How pod limits are enforced: HTB classes picked by skb->priority (no EDT path yet). */
  bandwidth: "HTB" | "none";
  mapEntries: Record<string, number>;
  /** From the plan: what was asked but cannot be enforced here. */
  notEnforced: string[];
  wireguard?: {
    backend: "kernel" | "userspace";
    peersConfigured: number;
    /** What runs the tunnel, e.g. "wireguard-go v0.0.20250522 (/path)". */
    implementation?: string;
  };
  /** Local pods with policy programs. */
  policyEndpoints?: number;
}

/**
 * The node agent's driver. Implementations: linux (libbpf, qdiscs, WireGuard) and memory (unit
 * tests and scale simulation). apply() converges to spec and is idempotent; read() reports
 * what the node has now.
 */
export interface DatapathDriver {
  readonly kind: "linux" | "memory";
  capabilities(): Promise<Capabilities>;
  /** The devices programs go on for this spec (spec.devices, else the default-route device). */
  devicesFor(spec: NodeDatapath): string[];
  /** Each local pod's host-side interface that this node has now (NetworkPolicy attaches there). */
  endpointDevicesFor(ctx: ApplyContext): Map<string, EndpointDevice>;
  apply(spec: NodeDatapath, ctx?: ApplyContext): Promise<ApplyReport>;
  read(): Promise<DatapathState>;
  /**
   * Key switches only: push keys and peers to a running tunnel at once, before the slower full
   * apply (programs, qdiscs, routes), so a rotation's packets wait in WireGuard's queue as
   * briefly as possible.
   */
  switchKeys?(listenPort: number, wg: NonNullable<ApplyContext["wireguard"]>): Promise<void>;
  /** The tunnel's peers with handshake times and byte counts (undefined: no tunnel). */
  wireguardPeers?(): Promise<PeerState[] | undefined>;
  /**
   * Per local pod (namespace/name): connections an audit-mode policy would have dropped, by
   * direction, as counted by the datapath.
   */
  policyAudit?(): Promise<Map<string, { ingress: number; egress: number }>>;
  /** Remove everything this driver installed (profile deleted, agent uninstalled). */
  teardown(): Promise<void>;
}

/** Pure: entries desired but absent, and present but not desired. */
function setDifference(desired: readonly string[], actual: readonly string[]) {
  const have = new Set(actual);
  const want = new Set(desired);
  return {
    missing: [...want].filter((k) => !have.has(k)),
    extra: [...have].filter((k) => !want.has(k)),
  };
}

function diffEntries(
  what: DriftItem["what"],
  noun: string,
  desired: readonly string[],
  actual: readonly string[],
): DriftItem[] {
  const { missing, extra } = setDifference(desired, actual);
  return [
    ...missing.map((k) => ({ what, detail: `${noun} ${k} missing` })),
    ...extra.map((k) => ({ what, detail: `unexpected ${noun} ${k}` })),
  ];
}

/** Like diffEntries, but one item per kind of difference (maps of thousands of entries). */
function diffCounted(
  what: DriftItem["what"],
  noun: string,
  desired: readonly string[],
  actual: readonly string[],
): DriftItem[] {
  const { missing, extra } = setDifference(desired, actual);
  return [
    ...(missing.length
      ? [{ what, detail: `${missing.length} ${noun} missing (e.g. ${missing[0]})` }]
      : []),
    ...(extra.length
      ? [{ what, detail: `${extra.length} unexpected ${noun} (e.g. ${extra[0]})` }]
      : []),
  ];
}

/** Like diffCounted, for the ipcache's table (compared entry by entry, nothing sorted). */
function diffIpcache(desired: IpcacheEntries, actual: IpcacheEntries): DriftItem[] {
  const { set, remove } = ipcacheChanges(actual, desired);
  const example = (e: [string, number] | undefined) => (e ? describeIpcacheEntry(...e) : "");
  const wrong = set.filter(([prefix]) => actual.has(prefix));
  const missing = set.length - wrong.length;
  return [
    ...(missing
      ? [
          {
            what: "policy" as const,
            detail: `${missing} ipcache entries missing (e.g. ${example(set.find(([p]) => !actual.has(p)))})`,
          },
        ]
      : []),
    ...(wrong.length
      ? [
          {
            what: "policy" as const,
            detail: `${wrong.length} ipcache entries with another identity (e.g. ${example([wrong[0]![0], actual.get(wrong[0]![0])!])}, want ${wrong[0]![1]})`,
          },
        ]
      : []),
    ...(remove.length
      ? [
          {
            what: "policy" as const,
            detail: `${remove.length} unexpected ipcache entries (e.g. ${example([remove[0]!, actual.get(remove[0]!)!])})`,
          },
        ]
      : []),
  ];
}

/** Pure: every difference between desired and actual, as the agent counts and reports drift. */
export function diffDatapath(desired: DatapathState, actual: DatapathState): DriftItem[] {
  const items: DriftItem[] = [];
  for (const d of desired.attachedDevices) {
    if (!actual.attachedDevices.includes(d))
      items.push({ what: "program", detail: `program missing on ${d}` });
  }
  items.push(
    ...diffEntries("egressDeny", "egress-deny entry", desired.egressDeny, actual.egressDeny),
  );
  items.push(
    ...diffEntries("strictCidrs", "strict-mode network", desired.strictCidrs, actual.strictCidrs),
  );
  // A lookup skipped that should run is an entry not enforced; one run that could be skipped
  // only costs time. Both are differences from what was applied.
  if (desired.egressSkip !== actual.egressSkip)
    items.push({
      what: "egressDeny",
      detail: `egress lookups skipped: ${describeEgressSkip(actual.egressSkip)}; want: ${describeEgressSkip(desired.egressSkip)}`,
    });
  for (const [ip, rate] of Object.entries(desired.bandwidth)) {
    const got = actual.bandwidth[ip];
    if (got === undefined)
      items.push({ what: "bandwidth", detail: `rate limit for ${ip} missing` });
    // Drivers may read rates back rounded (tc prints 3-4 significant digits): 0.5 % is the same.
    else if (Math.abs(got - rate) > rate * 0.005)
      items.push({
        what: "bandwidth",
        detail: `rate limit for ${ip} is ${got} bit/s, want ${rate}`,
      });
  }
  for (const ip of Object.keys(actual.bandwidth)) {
    if (!(ip in desired.bandwidth))
      items.push({ what: "bandwidth", detail: `unexpected rate limit for ${ip}` });
  }
  if (desired.policy) {
    const have = actual.policy ?? {
      devices: [],
      endpoints: [],
      entries: [],
      ipcache: new Map<string, number>(),
    };
    for (const d of desired.policy.devices)
      if (!have.devices.includes(d))
        items.push({ what: "policy", detail: `pod programs missing on ${d}` });
    items.push(
      ...diffEntries("policy", "policy endpoint", desired.policy.endpoints, have.endpoints),
      ...diffCounted("policy", "policy entries", desired.policy.entries, have.entries),
      ...diffIpcache(desired.policy.ipcache, have.ipcache),
    );
  }
  const wantWg = desired.wireguard;
  if (wantWg && !actual.wireguard) {
    items.push({
      what: "wireguard",
      detail: `WireGuard interface ${wantWg.ifname} is down or missing`,
    });
  } else if (wantWg && actual.wireguard) {
    const have = new Set(actual.wireguard.peerKeys);
    const missing = wantWg.peerKeys.filter((k) => !have.has(k)).length;
    if (missing > 0) {
      items.push({
        what: "wireguard",
        detail: `${missing} WireGuard peer(s) missing on ${wantWg.ifname}`,
      });
    }
  }
  return items;
}
