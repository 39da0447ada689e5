import type { NodeDatapath } from "../api/nodenetworkstate.js";
import {
  type ApplyContext,
  type ApplyReport,
  type Capabilities,
  type DatapathDriver,
  type DatapathState,
  type DriftItem,
  type EndpointDevice,
  expectedState,
  mapEntryCounts,
  planDatapath,
} from "./driver.js";
import type { PeerConfig, PeerState } from "./wireguard/uapi.js";

/**
 * An in-memory datapath: applies by recording, reads back what it recorded. For unit tests and
 * scale simulation only; it can be told to fail or to drift like a real node.
 */
export class MemoryDriver implements DatapathDriver {
  readonly kind = "memory" as const;
  private state: DatapathState = emptyState();
  private failure: string | undefined;
  private readFailure: string | undefined;
  private peers: PeerConfig[] | undefined;
  private peersAt = 0;
  applies = 0;
  /** Simulated time an apply takes (a slow node), 0 by default. */
  delayMs = 0;
  /** Audit-mode would-drop counts per pod that policyAudit() reports (tests set them). */
  audit = new Map<string, { ingress: number; egress: number }>();
  /** Simulated pod interfaces: every pod gets one, numbered in order of first sight. */
  private readonly podIfindex = new Map<string, number>();

  constructor(private readonly devices: string[] = ["eth0"]) {}

  async capabilities(): Promise<Capabilities> {
    return { tcx: false, fq: false, wireguardKernel: false };
  }

  devicesFor(spec: NodeDatapath): string[] {
    return spec.devices?.length ? spec.devices : this.devices;
  }

  endpointDevicesFor(ctx: ApplyContext): Map<string, EndpointDevice> {
    const out = new Map<string, EndpointDevice>();
    for (const e of ctx.policy?.endpoints ?? []) {
      let ifindex = this.podIfindex.get(e.pod);
      if (ifindex === undefined) {
        ifindex = 1000 + this.podIfindex.size;
        this.podIfindex.set(e.pod, ifindex);
      }
      out.set(e.pod, { ifname: `lxc${ifindex}`, ifindex });
    }
    return out;
  }

  async policyAudit(): Promise<Map<string, { ingress: number; egress: number }>> {
    return new Map(this.audit);
  }

  /** Every apply fails with this message until cleared with undefined. */
  failWith(message: string | undefined): void {
    this.failure = message;
  }

  /** Every read() fails with this message until cleared with undefined. */
  failReadWith(message: string | undefined): void {
    this.readFailure = message;
  }

  /** An out-of-band change, as a person with bpftool would make: drops one piece of state. */
  injectDrift(what: DriftItem["what"] = "program"): void {
    if (what === "wireguard") delete this.state.wireguard;
    if (what === "strictCidrs") this.state.strictCidrs = this.state.strictCidrs.slice(1);
    if (what === "program") this.state.attachedDevices = this.state.attachedDevices.slice(1);
    if (what === "egressDeny") this.state.egressDeny = this.state.egressDeny.slice(1);
    if (what === "policy" && this.state.policy)
      this.state.policy.entries = this.state.policy.entries.slice(1);
    if (what === "bandwidth") {
      const first = Object.keys(this.state.bandwidth)[0];
      if (first) delete this.state.bandwidth[first];
    }
  }

  async apply(spec: NodeDatapath, ctx: ApplyContext = {}): Promise<ApplyReport> {
    this.applies++;
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.failure) throw new Error(this.failure);
    const plan = planDatapath(spec, this.devicesFor(spec), ctx, this.endpointDevicesFor(ctx));
    const state = expectedState(plan);
    // The kernel's own copy: the agent's ipcache table changes with its next render.
    if (state.policy) state.policy = { ...state.policy, ipcache: new Map(state.policy.ipcache) };
    this.state = state;
    this.peers = ctx.wireguard?.peers;
    this.peersAt = Math.floor(Date.now() / 1000);
    return {
      attach: "none",
      bandwidth: "none",
      mapEntries: mapEntryCounts(plan),
      notEnforced: plan.notEnforced,
      ...(plan.policy ? { policyEndpoints: plan.policy.endpoints.size } : {}),
      ...(ctx.wireguard
        ? {
            wireguard: {
              backend: "userspace" as const,
              peersConfigured: ctx.wireguard.peers.filter((p) => p.allowedIPs.length > 0).length,
            },
          }
        : {}),
    };
  }

  /** Simulated sessions: every configured peer handshook when it was configured. */
  async wireguardPeers(): Promise<PeerState[] | undefined> {
    if (!this.peers) return undefined;
    return this.peers.map((p) => ({
      publicKey: p.publicKey,
      allowedIPs: p.allowedIPs,
      ...(p.endpoint ? { endpoint: p.endpoint } : {}),
      lastHandshakeSeconds: this.peersAt,
      rxBytes: 0,
      txBytes: 0,
    }));
  }

  async read(): Promise<DatapathState> {
    if (this.readFailure) throw new Error(this.readFailure);
    // The ipcache is shared, not cloned (every pod of the cluster): drift replaces it, never
    // edits it in place.
    const { policy, ...rest } = this.state;
    const out: DatapathState = structuredClone(rest);
    if (policy) {
      const { ipcache, ...maps } = policy;
      out.policy = { ...structuredClone(maps), ipcache };
    }
    return out;
  }

  async teardown(): Promise<void> {
    this.state = emptyState();
    this.peers = undefined;
  }
}

function emptyState(): DatapathState {
  return { attachedDevices: [], egressDeny: [], strictCidrs: [], egressSkip: 0, bandwidth: {} };
}
