import type { NodeNetworkStateSpec } from "../api/nodenetworkstate.js";
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
}

/** The datapath state that can drift: what a driver reads back from the node. */
export interface DatapathState {
  /** Devices with the Netloom programs attached. */
  attachedDevices: string[];
  /** Egress-deny map keys ("cidr" or "cidr proto/port"). */
  egressDeny: string[];
  /** Pod IP → enforced egress bits/s. */
  bandwidth: Record<string, number>;
  /** The WireGuard interface (absent: none wanted / none found) and its peers' public keys. */
  wireguard?: { ifname: string; peerKeys: string[] };
}

export interface DriftItem {
  what: "program" | "egressDeny" | "bandwidth" | "wireguard";
  /** Human description: "program missing on eth0", "egress-deny entry 169.254.169.254/32 missing". */
  detail: string;
}

export interface ApplyReport {
  attach: "tcx" | "clsact" | "none";
  bandwidth: "EDT" | "HTB" | "none";
  mapEntries: Record<string, number>;
  wireguard?: { backend: "kernel" | "userspace"; peersConfigured: number };
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
  devicesFor(spec: NodeNetworkStateSpec): string[];
  apply(spec: NodeNetworkStateSpec, ctx?: ApplyContext): Promise<ApplyReport>;
  read(): Promise<DatapathState>;
  /**
   * Key switches only: push keys and peers to a running tunnel at once, before the slower full
   * apply (programs, qdiscs, routes), so a rotation's packets wait in WireGuard's queue as
   * briefly as possible.
   */
  switchKeys?(listenPort: number, wg: NonNullable<ApplyContext["wireguard"]>): Promise<void>;
  /** The tunnel's peers with handshake times and byte counts (undefined: no tunnel). */
  wireguardPeers?(): Promise<PeerState[] | undefined>;
  /** Remove everything this driver installed (profile deleted, agent uninstalled). */
  teardown(): Promise<void>;
}

function denyKey(r: NonNullable<NodeNetworkStateSpec["egressDeny"]>[number]): string[] {
  if (!r.ports?.length) return [r.cidr];
  return r.ports.flatMap((p) =>
    (p.protocol ? [p.protocol] : ["TCP", "UDP"]).map((proto) => `${r.cidr} ${proto}/${p.port}`),
  );
}

/** Pure: the state a spec asks for, in the shape a driver reads back. */
export function desiredDatapath(
  spec: NodeNetworkStateSpec,
  devices: string[],
  ctx: ApplyContext = {},
): DatapathState {
  const wg = ctx.wireguard;
  return {
    attachedDevices: [...devices].sort(),
    egressDeny: (spec.egressDeny ?? []).flatMap(denyKey).sort(),
    bandwidth: Object.fromEntries((spec.bandwidth ?? []).map((b) => [b.ip, b.egressBitsPerSecond])),
    ...(wg
      ? { wireguard: { ifname: wg.ifname, peerKeys: wg.peers.map((p) => p.publicKey).sort() } }
      : {}),
  };
}

/** Pure: every difference between desired and actual, as the agent counts and reports drift. */
export function diffDatapath(desired: DatapathState, actual: DatapathState): DriftItem[] {
  const items: DriftItem[] = [];
  for (const d of desired.attachedDevices) {
    if (!actual.attachedDevices.includes(d))
      items.push({ what: "program", detail: `program missing on ${d}` });
  }
  const have = new Set(actual.egressDeny);
  const want = new Set(desired.egressDeny);
  for (const k of want)
    if (!have.has(k)) items.push({ what: "egressDeny", detail: `egress-deny entry ${k} missing` });
  for (const k of have)
    if (!want.has(k))
      items.push({ what: "egressDeny", detail: `unexpected egress-deny entry ${k}` });
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
