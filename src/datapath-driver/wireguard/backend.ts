import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type Clock, RealClock } from "../../util/clock.js";
import { sh } from "../../util/exec.js";
import { spawnDaemon } from "../../util/process.js";
import {
  type DeviceState,
  type PeerConfig,
  socketPath,
  uapiGet,
  uapiKick,
  uapiRemove,
  uapiUpdate,
} from "./uapi.js";

/**
 * How long a rotated-away peer key stays (with no allowed IPs) before it is removed: long enough
 * for packets already queued on it to go out; removing a peer discards its queues.
 */
export const RETIRED_PEER_DRAIN_MS = 3000;

/** fwmark of the tunnel's UDP and number of the node-route table ("NL"), with node encryption. */
export const NODE_ENCRYPTION_MARK = 0x4e4c;

export interface WireguardDeviceConfig {
  ifname: string;
  privateKey: string;
  listenPort: number;
  mtu: number;
  peers: PeerConfig[];
}

/**
 * WireGuard through wireguard-go (this kernel has no WireGuard module): one daemon per
 * interface, configured over its UAPI socket. The daemon outlives the agent, so an agent
 * restart does not interrupt encrypted traffic; the agent re-adopts the running interface.
 */
export class UserspaceWireguard {
  readonly backend = "userspace" as const;

  /** Per interface: retired peer keys (see retiringPeers) and when each was retired. */
  private readonly retired = new Map<string, Map<string, number>>();

  /** Drain removals started by timers; settled() waits for them. */
  private removals: Promise<void> = Promise.resolve();
  private drains = 0;

  constructor(
    private readonly runDir = "/var/run/wireguard",
    private readonly clock: Clock = new RealClock(),
  ) {}

  /** Settles when the drain removals started so far are done (tests await it). */
  settled(): Promise<void> {
    return this.removals;
  }

  private sock(ifname: string): string {
    return socketPath(ifname, this.runDir);
  }

  private linkExists(ifname: string): boolean {
    return sh("ip", ["link", "show", "dev", ifname], { allowFail: true }).includes(ifname);
  }

  /**
   * Whether the link named `ifname` may be deleted as ours: absent, or a TUN device (what
   * wireguard-go makes) or a kernel WireGuard link. An EncryptionProfile naming a host link
   * ("eth0") must not make the agent delete it.
   */
  private ownLink(ifname: string): boolean {
    const out = sh("ip", ["-j", "-d", "link", "show", "dev", ifname], { allowFail: true });
    if (!out.trim().startsWith("[")) return true;
    const [link] = JSON.parse(out) as { linkinfo?: { info_kind?: string } }[];
    return ["tun", "wireguard"].includes(link?.linkinfo?.info_kind ?? "");
  }

  private assertOwnLink(ifname: string): void {
    if (!this.ownLink(ifname))
      throw new Error(
        `interface ${ifname} exists and is not a WireGuard device: it is left alone; choose another wireguard.interfaceName in the EncryptionProfile`,
      );
  }

  /** Whether the interface and its daemon are up (the daemon answers on its socket). */
  async alive(ifname: string): Promise<boolean> {
    // The socket answers only while the daemon (and with it the TUN device) lives.
    if (!existsSync(this.sock(ifname))) return false;
    try {
      await uapiGet(this.sock(ifname));
      return true;
    } catch {
      return false;
    }
  }

  private async ensureDevice(ifname: string): Promise<void> {
    if (await this.alive(ifname)) return;
    this.assertOwnLink(ifname);
    // A dead daemon leaves its socket and possibly its TUN device: clear both first.
    if (this.linkExists(ifname)) sh("ip", ["link", "del", ifname], { allowFail: true });
    rmSync(this.sock(ifname), { force: true });
    const logDir = process.env.NETLOOM_WIREGUARD_LOG_DIR;
    // Debugging handshakes: the daemon in the foreground, detached, with its verbose log kept.
    if (logDir)
      spawnDaemon("wireguard-go", ["-f", ifname], join(logDir, `${ifname}.log`), {
        ...process.env,
        LOG_LEVEL: "verbose",
      });
    else sh("wireguard-go", [ifname]); // daemonizes once the device and socket exist
    for (let i = 0; i < 50 && !(await this.alive(ifname)); i++) await sleep(100);
    if (!(await this.alive(ifname))) throw new Error(`wireguard-go did not bring up ${ifname}`);
  }

  /**
   * Keys and peers, changed ones only, then, in a rotation, a handshake at once (see
   * peersToHandshake): the other end may have packets queued for us and nothing to make it
   * retry for 5 s.
   */
  async updatePeers(cfg: Omit<WireguardDeviceConfig, "mtu"> & { fwmark?: number }): Promise<void> {
    const retired = this.retired.get(cfg.ifname) ?? new Map<string, number>();
    this.retired.set(cfg.ifname, retired);
    const now = this.clock.now().getTime();
    const draining = new Set(
      [...retired].filter(([, at]) => now - at < RETIRED_PEER_DRAIN_MS).map(([k]) => k),
    );
    for (const k of retired.keys()) if (!draining.has(k)) retired.delete(k); // removed below
    const { handshake, retired: newlyRetired } = await uapiUpdate(
      this.sock(cfg.ifname),
      cfg,
      draining,
    );
    await uapiKick(this.sock(cfg.ifname), handshake);
    for (const k of newlyRetired) retired.set(k, now);
    if (newlyRetired.length > 0)
      this.clock.schedule(
        `wireguard-drain/${cfg.ifname}/${this.drains++}`,
        new Date(now + RETIRED_PEER_DRAIN_MS),
        () => {
          this.removals = this.removals.then(() => this.removeDrained(cfg.ifname));
        },
      );
  }

  /** Removes retired peers whose drain time is over (they hold no allowed IPs any more). */
  private async removeDrained(ifname: string): Promise<void> {
    const retired = this.retired.get(ifname);
    if (!retired) return;
    const now = this.clock.now().getTime();
    const due = [...retired].filter(([, at]) => now - at >= RETIRED_PEER_DRAIN_MS).map(([k]) => k);
    if (due.length === 0) return;
    try {
      const state = await uapiGet(this.sock(ifname));
      const idle = new Set(
        state.peers.filter((p) => p.allowedIPs.length === 0).map((p) => p.publicKey),
      );
      await uapiRemove(
        this.sock(ifname),
        due.filter((k) => idle.has(k)),
      );
      for (const k of due) retired.delete(k);
    } catch {
      // The interface is gone or busy: the next update removes them (they are no longer kept).
    }
  }

  /** Converges the interface: keys, port, peers (changed ones only), MTU, routes. */
  async apply(cfg: WireguardDeviceConfig): Promise<void> {
    await this.ensureDevice(cfg.ifname);
    sh("ip", ["link", "set", "dev", cfg.ifname, "mtu", String(cfg.mtu), "up"]);
    const hosts = cfg.peers.flatMap((p) => (p.nodeIP ? [`${p.nodeIP}/32`] : []));
    await this.updatePeers({ ...cfg, fwmark: hosts.length ? NODE_ENCRYPTION_MARK : 0 });
    this.syncRoutes(
      cfg.ifname,
      cfg.peers.flatMap((p) => p.allowedIPs).filter((c) => !hosts.includes(c)),
    );
    this.syncHostRoutes(cfg.ifname, hosts);
  }

  /**
   * Node encryption: peer node IPs go through the tunnel, but the tunnel's own UDP goes to those
   * same IPs. So the node routes live in their own table, used by a rule that skips packets
   * carrying the tunnel's fwmark (what wg-quick does for a full tunnel).
   */
  private syncHostRoutes(ifname: string, hosts: string[]): void {
    const table = String(NODE_ENCRYPTION_MARK);
    const rule = ["not", "fwmark", table, "table", table, "pref", table];
    const hasRule = sh("ip", ["rule", "show", "pref", table], { allowFail: true }).trim() !== "";
    if (hosts.length === 0) {
      if (hasRule) sh("ip", ["rule", "del", ...rule], { allowFail: true });
      sh("ip", ["route", "flush", "table", table], { allowFail: true });
      return;
    }
    this.syncRoutes(ifname, hosts, table);
    if (!hasRule) sh("ip", ["rule", "add", ...rule]);
  }

  /** Routes through the tunnel in `table`: exactly `cidrs` (replacing underlay routes). */
  private syncRoutes(ifname: string, cidrs: string[], table = "main"): void {
    const want = new Set(cidrs);
    for (const c of want) sh("ip", ["route", "replace", c, "dev", ifname, "table", table]);
    const out = sh("ip", ["-j", "route", "show", "dev", ifname, "table", table], {
      allowFail: true,
    }).trim();
    for (const r of out ? (JSON.parse(out) as { dst: string }[]) : []) {
      const dst = r.dst.includes("/") ? r.dst : `${r.dst}/32`;
      if (!want.has(dst) && !want.has(r.dst))
        sh("ip", ["route", "del", r.dst, "dev", ifname, "table", table], { allowFail: true });
    }
  }

  async read(ifname: string): Promise<DeviceState | undefined> {
    if (!(await this.alive(ifname))) return undefined;
    return uapiGet(this.sock(ifname));
  }

  /** Deleting the TUN device ends wireguard-go; its routes go with the device. */
  remove(ifname: string): void {
    this.retired.delete(ifname);
    if (!this.ownLink(ifname)) return;
    this.syncHostRoutes(ifname, []);
    if (this.linkExists(ifname)) sh("ip", ["link", "del", ifname], { allowFail: true });
    rmSync(this.sock(ifname), { force: true });
  }
}
