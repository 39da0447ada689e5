import type { NodeNetworkStateSpec } from "../api/nodenetworkstate.js";

/** What the node's kernel can do, detected once at start and reported in status. */
export interface Capabilities {
  tcx: boolean;
  fq: boolean;
  wireguardKernel: boolean;
}

/** The datapath state that can drift: what a driver reads back from the node. */
export interface DatapathState {
  /** Devices with the Netloom programs attached. */
  attachedDevices: string[];
  /** Egress-deny map keys ("cidr" or "cidr proto/port"). */
  egressDeny: string[];
  /** Pod IP → enforced egress bits/s. */
  bandwidth: Record<string, number>;
}

export interface DriftItem {
  what: "program" | "egressDeny" | "bandwidth";
  /** Human description: "program missing on eth0", "egress-deny entry 169.254.169.254/32 missing". */
  detail: string;
}

export interface ApplyReport {
  attach: "tcx" | "clsact" | "none";
  bandwidth: "EDT" | "HTB" | "none";
  mapEntries: Record<string, number>;
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
  apply(spec: NodeNetworkStateSpec): Promise<ApplyReport>;
  read(): Promise<DatapathState>;
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
export function desiredDatapath(spec: NodeNetworkStateSpec, devices: string[]): DatapathState {
  return {
    attachedDevices: [...devices].sort(),
    egressDeny: (spec.egressDeny ?? []).flatMap(denyKey).sort(),
    bandwidth: Object.fromEntries((spec.bandwidth ?? []).map((b) => [b.ip, b.egressBitsPerSecond])),
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
    else if (got !== rate)
      items.push({
        what: "bandwidth",
        detail: `rate limit for ${ip} is ${got} bit/s, want ${rate}`,
      });
  }
  for (const ip of Object.keys(actual.bandwidth)) {
    if (!(ip in desired.bandwidth))
      items.push({ what: "bandwidth", detail: `unexpected rate limit for ${ip}` });
  }
  return items;
}
