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
  mapEntryCounts,
  planDatapath,
} from "../driver.js";
import { describeDenyEntries } from "../maps/egress-deny.js";
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

export const BPF_OBJECT = join(REPO_ROOT, "dist", "bpf", "netloom.bpf.o");

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

  devicesFor(spec: NodeDatapath): string[] {
    if (spec.devices?.length) return spec.devices;
    const dev = defaultRouteDevice();
    return dev ? [dev] : [];
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
        for (const f of readdirSync(links))
          if (f.endsWith("-egress")) this.attached.add(f.slice(0, -"-egress".length));
      }
    }
    return this.bpf;
  }

  async apply(spec: NodeDatapath, ctx: ApplyContext = {}): Promise<ApplyReport> {
    await this.capabilities();
    const bpf = this.open();
    const devices = this.devicesFor(spec);
    if (devices.length === 0)
      throw new Error("no device to attach to: no default route and spec.devices is empty");
    const plan = planDatapath(spec, devices, ctx);
    // Maps first, then programs: a freshly attached program never sees half-filled maps.
    bpf.syncEgressDeny(plan.egressDeny);
    bpf.syncStrictCidrs(plan.strictCidrs);
    for (const dev of devices) syncHtb(dev, htbClasses(plan.bandwidth));
    bpf.syncPodClasses(new Map(plan.bandwidth.map((b) => [b.ip, classIdFor(b.ip)])));
    for (const dev of devices) {
      bpf.attach(dev, "netloom_egress", this.mode());
      this.attached.add(dev);
    }
    for (const dev of [...this.attached]) {
      if (devices.includes(dev)) continue;
      bpf.detach(dev);
      removeHtb(dev);
      this.attached.delete(dev);
    }
    const wg = await this.applyWireguard(spec, plan, ctx, bpf);
    return {
      attach: this.mode(),
      bandwidth: "HTB",
      mapEntries: mapEntryCounts(plan),
      notEnforced: plan.notEnforced,
      ...(wg ? { wireguard: wg } : {}),
    };
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
    bpf: BpfDatapath,
  ): Promise<ApplyReport["wireguard"]> {
    const want = spec.wireguard && ctx.wireguard;
    if (!want) {
      if (this.wgIfname) {
        bpf.detach(this.wgIfname);
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
    syncHtb(ifname, htbClasses(plan.bandwidth));
    bpf.attach(ifname, "netloom_tunnel_egress", this.mode());
    return {
      backend: this.wireguard.backend,
      peersConfigured: peers.filter((p) => p.allowedIPs.length > 0).length,
    };
  }

  async read(): Promise<DatapathState> {
    const bpf = this.open();
    const attachedDevices = [...this.attached]
      .filter((d) => bpf.attachedProgramIds(d, this.mode()).length > 0)
      .sort();
    const bandwidth: Record<string, number> = {};
    const classes = [...this.attached].map((d) => readHtbClasses(d));
    for (const [ip, classid] of bpf.readPodClasses()) {
      const minor = classid & 0xffff;
      // The rate a pod gets is what every device enforces; report the lowest (a missing class: none).
      const rates = classes.map((c) => c.get(minor));
      if (rates.length > 0 && rates.every((r) => r !== undefined))
        bandwidth[ip] = Math.min(...(rates as number[]));
    }
    const wg = this.wgIfname ? await this.wireguard.read(this.wgIfname) : undefined;
    return {
      attachedDevices,
      egressDeny: describeDenyEntries(bpf.readEgressDeny()),
      strictCidrs: bpf.readStrictCidrs(),
      bandwidth,
      ...(wg && this.wgIfname
        ? {
            wireguard: { ifname: this.wgIfname, peerKeys: wg.peers.map((p) => p.publicKey).sort() },
          }
        : {}),
    };
  }

  async wireguardPeers(): Promise<PeerState[] | undefined> {
    return this.wgIfname ? (await this.wireguard.read(this.wgIfname))?.peers : undefined;
  }

  /** Packets dropped by the programs, by reason, since the maps were created. */
  drops(): { policyDenied: number; unencrypted: number; overRate: number } {
    return this.open().readDrops();
  }

  async teardown(): Promise<void> {
    const bpf = this.open();
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
    bpf.close();
    this.bpf = undefined;
    BpfDatapath.removePins(this.opts.pinDir);
  }
}
