import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../../api/fixtures.js";
import type { NodeDatapath, PodBandwidth } from "../../api/nodenetworkstate.js";
import {
  type ApplyContext,
  type ApplyReport,
  type Capabilities,
  type DatapathDriver,
  type DatapathPlan,
  type DatapathState,
  type EndpointDevice,
  mapEntryCounts,
  planDatapath,
} from "../driver.js";
import { describeDenyEntries } from "../maps/egress-deny.js";
import {
  describeEndpoints,
  describePolicyEntries,
  ipcacheChanges,
  type PolicyDropCount,
} from "../maps/policy.js";
import { UserspaceWireguard } from "../wireguard/backend.js";
import type { PeerState } from "../wireguard/uapi.js";
import { BpfDatapath } from "./bpf-datapath.js";
import {
  classIdFor,
  classMinorFor,
  defaultRouteDevice,
  type HtbClass,
  probeFq,
  probeWireguardKernel,
  readHtbClasses,
  removeHtb,
  syncHtb,
} from "./htb.js";
import { ifNameToIndex } from "./libbpf.js";

export const BPF_OBJECT = join(REPO_ROOT, "dist", "bpf", "netloom.bpf.o");

function deviceExists(name: string): boolean {
  try {
    ifNameToIndex(name);
    return true;
  } catch {
    return false;
  }
}

/**
 * This node's host routes (address → device), both families: a CNI plugin routes each pod's
 * address to its host-side veth (Calico does, and so does the box), so that is where the
 * pod's programs go.
 */
function hostRoutes(): Map<string, string> {
  const out = new Map<string, string>();
  for (const family of ["-4", "-6"]) {
    let routes: { dst?: string; dev?: string }[] = [];
    try {
      routes = JSON.parse(
        execFileSync("ip", ["-j", family, "route", "show", "table", "main"], { encoding: "utf8" }),
      );
    } catch {
      continue; // no such family here
    }
    for (const r of routes) {
      if (!r.dst || !r.dev) continue;
      out.set(r.dst.replace(/\/(32|128)$/, ""), r.dev);
    }
  }
  return out;
}

/** Lines of a verifier log kept in a status message: its end says why. */
const KERNEL_LOG_LINES = 6;

/**
 * Pure: an error from the kernel as a status message: the call and errno, then the last lines
 * of libbpf's log (the verifier's verdict comes last), bounded for a condition message.
 */
export function kernelMessage(e: unknown, maxChars = 800): string {
  const text = e instanceof Error ? e.message : String(e);
  const [head = "", ...rest] = text.split("\n");
  const log = rest.filter((l) => l.trim() && l !== "libbpf log:").slice(-KERNEL_LOG_LINES);
  const msg = [head, ...log].join(" | ");
  return msg.length > maxChars ? `${msg.slice(0, maxChars - 1)}…` : msg;
}

/** Pure: one HTB class per limited pod, the same on every device its packets leave by. */
export function htbClasses(bandwidth: readonly PodBandwidth[]): HtbClass[] {
  return bandwidth.map((b) => ({
    minor: classMinorFor(b.ip),
    rateBitsPerSecond: b.egressBitsPerSecond,
    ...(b.burstBytes ? { burstBytes: b.burstBytes } : {}),
  }));
}

export interface LinuxDriverOptions {
  /** Pins (maps, links) live here; an agent restart re-adopts them. */
  pinDir: string;
  objectPath?: string;
}

/**
 * The real datapath: eBPF programs on every device pod traffic leaves by (tcx links where the
 * kernel has them, else clsact), the egress-deny and strict-mode maps, and HTB classes fed by
 * the program's skb->priority where fq (EDT) is missing.
 */
export class LinuxDriver implements DatapathDriver {
  readonly kind = "linux" as const;
  private bpf: BpfDatapath | undefined;
  private caps: Capabilities | undefined;
  /** Devices this driver attached to in the current process (plus pinned ones found at start). */
  private attached = new Set<string>();
  /** Pod interfaces with the NetworkPolicy programs (plus pinned ones found at start). */
  private podAttached = new Set<string>();
  /** ifindex → pod of the last applied policy (audit counts are per interface). */
  private podOf = new Map<number, string>();
  private policyApplied = false;
  /**
   * What the kernel's ipcache holds as far as this agent knows (last written or read; undefined:
   * read it first): an apply writes only the difference, as every pod of the cluster is in it.
   */
  private ipcacheHeld: Map<string, number> | undefined;
  private readonly wireguard = new UserspaceWireguard();
  /** The WireGuard interface this driver manages (undefined: none wanted). */
  private wgIfname: string | undefined;

  constructor(private readonly opts: LinuxDriverOptions) {}

  async capabilities(): Promise<Capabilities> {
    this.caps ??= {
      tcx: BpfDatapath.detectTcx(),
      fq: probeFq(),
      wireguardKernel: probeWireguardKernel(),
    };
    return this.caps;
  }

  /** The devices to attach to that exist here; planDatapath reports the named ones that do not. */
  devicesFor(spec: NodeDatapath): string[] {
    if (spec.devices?.length) return spec.devices.filter(deviceExists);
    const dev = defaultRouteDevice();
    return dev ? [dev] : [];
  }

  endpointDevicesFor(ctx: ApplyContext): Map<string, EndpointDevice> {
    const out = new Map<string, EndpointDevice>();
    const endpoints = ctx.policy?.endpoints ?? [];
    if (endpoints.length === 0) return out;
    const routes = hostRoutes();
    for (const e of endpoints)
      for (const ip of e.ips) {
        const ifname = routes.get(ip);
        if (!ifname) continue;
        try {
          out.set(e.pod, { ifname, ifindex: ifNameToIndex(ifname) });
          break;
        } catch {
          // gone between the route dump and now: the next apply or drift check finds it
        }
      }
    return out;
  }

  private mode(): "tcx" | "clsact" {
    return this.caps?.tcx ? "tcx" : "clsact";
  }

  private open(): BpfDatapath {
    if (!this.bpf) {
      const objectPath = this.opts.objectPath ?? BPF_OBJECT;
      if (!existsSync(objectPath))
        throw new Error(`eBPF object ${objectPath} is missing: run make bpf`);
      this.bpf = BpfDatapath.open({ objectPath, pinDir: this.opts.pinDir });
      // Adopt links a previous agent pinned, so devices no longer wanted are detached too.
      const links = join(this.opts.pinDir, "links");
      if (existsSync(links)) {
        const pins = readdirSync(links);
        // Pod interfaces carry programs on both hooks; native devices on egress only.
        for (const f of pins)
          if (f.endsWith("-ingress")) this.podAttached.add(f.slice(0, -"-ingress".length));
        for (const f of pins) {
          const dev = f.endsWith("-egress") ? f.slice(0, -"-egress".length) : undefined;
          if (dev && !this.podAttached.has(dev)) this.attached.add(dev);
        }
      }
    }
    return this.bpf;
  }

  /**
   * What the kernel refuses is reported, not fatal: an object the verifier rejects or a device
   * that refuses a program leaves the rest of the node's datapath (WireGuard, other devices)
   * applied, with the kernel's message in notEnforced (Degraded=True). The drift check then
   * finds what is missing and retries it.
   */
  async apply(spec: NodeDatapath, ctx: ApplyContext = {}): Promise<ApplyReport> {
    await this.capabilities();
    const devices = this.devicesFor(spec);
    if (devices.length === 0 && !spec.devices?.length)
      throw new Error("no device to attach to: no default route and spec.devices is empty");
    const plan = planDatapath(spec, devices, ctx, this.endpointDevicesFor(ctx));
    const refused: string[] = [];
    const bpf = this.tryOpen(refused);
    if (bpf) this.applyPolicy(bpf, plan, refused);
    if (bpf) {
      // Maps first, then programs: a freshly attached program never sees half-filled maps.
      bpf.syncEgressDeny(plan.egressDeny);
      bpf.syncStrictCidrs(plan.strictCidrs);
      bpf.syncPodClasses(new Map(plan.bandwidth.map((b) => [b.ip, classIdFor(b.ip)])));
      for (const dev of devices) {
        try {
          syncHtb(dev, htbClasses(plan.bandwidth));
          bpf.attach(dev, "netloom_egress", this.mode());
          this.attached.add(dev);
        } catch (e) {
          refused.push(`programs on device ${dev}: ${kernelMessage(e)}`);
        }
      }
      for (const dev of [...this.attached]) {
        if (devices.includes(dev)) continue;
        bpf.detach(dev);
        removeHtb(dev);
        this.attached.delete(dev);
      }
    }
    const wg = await this.applyWireguard(spec, plan, ctx, bpf);
    return {
      attach: bpf ? this.mode() : "none",
      bandwidth: bpf ? "HTB" : "none",
      mapEntries: bpf ? mapEntryCounts(plan) : {},
      notEnforced: [...refused, ...plan.notEnforced],
      ...(plan.policy ? { policyEndpoints: bpf ? plan.policy.endpoints.size : 0 } : {}),
      ...(wg ? { wireguard: wg } : {}),
    };
  }

  /**
   * NetworkPolicy: maps first (ipcache, entries, endpoints), then both programs on every pod
   * interface; interfaces no longer enforced lose them. A pod interface that refuses a program
   * is named, the others are enforced.
   */
  private applyPolicy(bpf: BpfDatapath, plan: DatapathPlan, refused: string[]): void {
    const p = plan.policy;
    this.policyApplied = p !== undefined;
    if (!p) return;
    const held = this.ipcacheHeld ?? bpf.readIpcache();
    this.ipcacheHeld = undefined; // until the write succeeds
    const changes = ipcacheChanges(held, p.ipcache.entries);
    bpf.writeIpcache(changes, p.ipcache.epoch);
    for (const [prefix, identity] of changes.set) held.set(prefix, identity);
    for (const prefix of changes.remove) held.delete(prefix);
    this.ipcacheHeld = held;
    bpf.syncPolicy(p.entries);
    bpf.syncEndpoints(p.endpoints);
    this.podOf = new Map(p.podOf);
    for (const dev of p.devices) {
      try {
        bpf.attach(dev, "netloom_pod_egress", this.mode());
        bpf.attach(dev, "netloom_pod_ingress", this.mode());
        this.podAttached.add(dev);
      } catch (e) {
        refused.push(`NetworkPolicy programs on pod interface ${dev}: ${kernelMessage(e)}`);
      }
    }
    for (const dev of [...this.podAttached]) {
      if (p.devices.includes(dev)) continue;
      bpf.detach(dev);
      this.podAttached.delete(dev);
    }
  }

  /** The pod behind each host interface with the NetworkPolicy programs: ifindex → namespace/name. */
  podInterfaces(): ReadonlyMap<number, string> {
    return this.podOf;
  }

  /** Per pod: connections audit-mode policies would have dropped, by direction. */
  async policyAudit(): Promise<Map<string, { ingress: number; egress: number }>> {
    const out = new Map<string, { ingress: number; egress: number }>();
    for (const c of this.tryOpen([])?.readPolicyAudit() ?? []) {
      const pod = this.podOf.get(c.ifindex);
      if (!pod) continue;
      const counts = out.get(pod) ?? { ingress: 0, egress: 0 };
      counts[c.direction] += c.wouldDrop;
      out.set(pod, counts);
    }
    return out;
  }

  /** The loaded object, or undefined with the kernel's refusal added to `refused`. */
  private tryOpen(refused: string[]): BpfDatapath | undefined {
    try {
      return this.open();
    } catch (e) {
      refused.push(
        `eBPF programs not loaded (egress deny, strict mode and pod limits are not enforced): ${kernelMessage(e)}`,
      );
      return undefined;
    }
  }

  async switchKeys(listenPort: number, wg: NonNullable<ApplyContext["wireguard"]>): Promise<void> {
    if (this.wgIfname !== wg.ifname) return;
    await this.wireguard.updatePeers({
      ifname: wg.ifname,
      privateKey: wg.privateKey,
      listenPort,
      peers: wg.peers,
    });
  }

  /**
   * The tunnel: keys and peers through wireguard-go, routes to remote pod CIDRs through it, and
   * the tunnel program + HTB on it, because inner packets still carry the pod's source IP there
   * (on the underlay they are UDP between nodes, and a per-pod limit would be lost).
   */
  private async applyWireguard(
    spec: NodeDatapath,
    plan: DatapathPlan,
    ctx: ApplyContext,
    bpf: BpfDatapath | undefined,
  ): Promise<ApplyReport["wireguard"]> {
    const want = spec.wireguard && ctx.wireguard;
    if (!want) {
      if (this.wgIfname) {
        bpf?.detach(this.wgIfname);
        this.wireguard.remove(this.wgIfname);
        this.wgIfname = undefined;
      }
      return undefined;
    }
    const { ifname, privateKey, peers } = ctx.wireguard!;
    if (this.wgIfname && this.wgIfname !== ifname) this.wireguard.remove(this.wgIfname);
    await this.wireguard.apply({
      ifname,
      privateKey,
      listenPort: spec.wireguard!.listenPort,
      mtu: spec.mtu ?? 1420,
      peers,
    });
    this.wgIfname = ifname;
    if (bpf) {
      syncHtb(ifname, htbClasses(plan.bandwidth));
      bpf.attach(ifname, "netloom_tunnel_egress", this.mode());
    }
    return {
      backend: this.wireguard.backend,
      implementation: this.wireguard.implementation(ifname),
      peersConfigured: peers.filter((p) => p.allowedIPs.length > 0).length,
    };
  }

  async read(): Promise<DatapathState> {
    // An object the kernel refuses reads as nothing enforced: drift, and a retry on heal.
    const bpf = this.tryOpen([]);
    const attachedDevices = [...this.attached]
      .filter((d) => bpf && bpf.attachedProgramIds(d, this.mode()).length > 0)
      .sort();
    const bandwidth: Record<string, number> = {};
    const classes = [...this.attached].map((d) => readHtbClasses(d));
    for (const [ip, classid] of bpf?.readPodClasses() ?? []) {
      const minor = classid & 0xffff;
      // The rate a pod gets is what every device enforces; report the lowest (a missing class: none).
      const rates = classes.map((c) => c.get(minor));
      if (rates.length > 0 && rates.every((r) => r !== undefined))
        bandwidth[ip] = Math.min(...(rates as number[]));
    }
    const wg = this.wgIfname ? await this.wireguard.read(this.wgIfname) : undefined;
    const onBothHooks = (d: string) => {
      try {
        return (
          bpf !== undefined &&
          bpf.attachedProgramIds(d, this.mode(), "ingress").length > 0 &&
          bpf.attachedProgramIds(d, this.mode(), "egress").length > 0
        );
      } catch {
        return false; // the interface is gone
      }
    };
    return {
      ...(this.policyApplied
        ? {
            policy: {
              devices: [...this.podAttached].filter(onBothHooks).sort(),
              endpoints: bpf ? describeEndpoints(bpf.readEndpoints()) : [],
              entries: describePolicyEntries(bpf?.readPolicy() ?? []),
              ipcache: this.readIpcache(bpf),
            },
          }
        : {}),
      attachedDevices,
      egressDeny: describeDenyEntries(bpf?.readEgressDeny() ?? []),
      strictCidrs: bpf?.readStrictCidrs() ?? [],
      egressSkip: bpf?.readEgressSkip() ?? 0,
      bandwidth,
      ...(wg && this.wgIfname
        ? {
            wireguard: { ifname: this.wgIfname, peerKeys: wg.peers.map((p) => p.publicKey).sort() },
          }
        : {}),
    };
  }

  /** The kernel's ipcache, which the next apply then diffs against. */
  private readIpcache(bpf: BpfDatapath | undefined): Map<string, number> {
    const held = bpf?.readIpcache() ?? new Map<string, number>();
    this.ipcacheHeld = bpf ? new Map(held) : undefined;
    return held;
  }

  async wireguardPeers(): Promise<PeerState[] | undefined> {
    return this.wgIfname ? (await this.wireguard.read(this.wgIfname))?.peers : undefined;
  }

  /** Packets dropped by the programs, by reason, since the maps were created. */
  drops(): { policyDenied: number; unencrypted: number; overRate: number } {
    return this.tryOpen([])?.readDrops() ?? { policyDenied: 0, unencrypted: 0, overRate: 0 };
  }

  /** NetworkPolicy drops by (local identity, peer identity, direction), since the maps were made. */
  policyDrops(): PolicyDropCount[] {
    return this.tryOpen([])?.readPolicyDrops() ?? [];
  }

  async teardown(): Promise<void> {
    // An object the kernel refused leaves pins of its maps all the same: remove them too.
    const bpf = this.tryOpen([]);
    if (!bpf) {
      BpfDatapath.removePins(this.opts.pinDir);
      return;
    }
    if (this.wgIfname) {
      bpf.detach(this.wgIfname);
      this.wireguard.remove(this.wgIfname);
      this.wgIfname = undefined;
    }
    for (const dev of this.attached) {
      bpf.detach(dev);
      removeHtb(dev);
    }
    this.attached.clear();
    for (const dev of this.podAttached) bpf.detach(dev);
    this.podAttached.clear();
    bpf.close();
    this.bpf = undefined;
    this.ipcacheHeld = undefined;
    BpfDatapath.removePins(this.opts.pinDir);
  }
}
