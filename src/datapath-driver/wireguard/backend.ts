import { execFileSync } from "node:child_process";
import {
  accessSync,
  constants,
  existsSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
} from "node:fs";
import { homedir } from "node:os";
import { basename, delimiter, join } from "node:path";
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

/**
 * The wireguard-go the project builds from the Go module proxy (hack/build-wireguard-go.sh):
 * what `golang.zx2c4.com/wireguard@latest` resolved to; it reports itself as v0.0.20250522.
 * Debian's 0.0.20220316 predates UDP GSO/GRO and batched crypto: it moves about a third of
 * this one's TCP through the tunnel here (docs/benchmarks.md, WireGuard).
 */
export const WIREGUARD_GO_MODULE_VERSION = "v0.0.0-20260522210424-ecfc5a8d5446";

/** Where hack/build-wireguard-go.sh caches it, beside the control plane (src/cluster/binaries.ts). */
export function wireguardGoCacheDir(
  version = WIREGUARD_GO_MODULE_VERSION,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const base = env.XDG_CACHE_HOME ?? join(env.HOME ?? homedir(), ".cache");
  return join(base, "netloom", "wireguard-go", version);
}

/** The wireguard-go binary the agent runs, and why that one. */
export interface WireguardGoBinary {
  path: string;
  /** NETLOOM_WIREGUARD_GO names it; the project's build in the cache; else the one on PATH (Debian's). */
  source: "NETLOOM_WIREGUARD_GO" | "cache" | "PATH";
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Which wireguard-go to run: NETLOOM_WIREGUARD_GO when set (it must exist), else the project's
 * current build when cached, else the first on PATH (Debian's /usr/bin/wireguard-go); undefined
 * when there is none.
 */
export function findWireguardGo(
  env: NodeJS.ProcessEnv = process.env,
): WireguardGoBinary | undefined {
  const named = env.NETLOOM_WIREGUARD_GO;
  if (named) {
    if (!executable(named))
      throw new Error(`NETLOOM_WIREGUARD_GO=${named} is not an executable file`);
    return { path: named, source: "NETLOOM_WIREGUARD_GO" };
  }
  const cached = join(wireguardGoCacheDir(undefined, env), "wireguard-go");
  if (executable(cached)) return { path: cached, source: "cache" };
  for (const dir of (env.PATH ?? "").split(delimiter).filter(Boolean)) {
    const candidate = join(dir, "wireguard-go");
    if (executable(candidate)) return { path: candidate, source: "PATH" };
  }
  return undefined;
}

/** Pure: the version in `wireguard-go --version` ("wireguard-go v0.0.20250522" → "0.0.20250522"). */
export function parseWireguardGoVersion(text: string): string | undefined {
  return /wireguard-go v(\S+)/.exec(text)?.[1];
}

/** What a binary says its version is (undefined when it does not answer). */
export function wireguardGoVersion(path: string): string | undefined {
  try {
    const out = execFileSync(path, ["--version"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 5000,
    });
    return parseWireguardGoVersion(out);
  } catch {
    return undefined;
  }
}

/**
 * The executable of the wireguard-go daemon serving ifname, from /proc (its argv ends with the
 * interface name): the daemon outlives the agent, so it may be another build than the one the
 * agent would start now.
 */
export function runningWireguardGo(ifname: string, proc = "/proc"): string | undefined {
  for (const pid of readdirSync(proc)) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const argv = readFileSync(join(proc, pid, "cmdline"), "utf8")
        .split("\0")
        .filter(Boolean);
      if (argv.at(-1) !== ifname || basename(argv[0] ?? "") !== "wireguard-go") continue;
      return readlinkSync(join(proc, pid, "exe"));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return undefined;
}

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

  private chosen: string | undefined;
  /** Executable → the version it reports (asked once each). */
  private readonly versions = new Map<string, string | undefined>();

  /** `binary`: the wireguard-go to start; found when first needed (findWireguardGo) if not given. */
  constructor(
    private readonly runDir = "/var/run/wireguard",
    private readonly clock: Clock = new RealClock(),
    binary?: string,
  ) {
    this.chosen = binary;
  }

  /** The wireguard-go this backend starts; a bad NETLOOM_WIREGUARD_GO fails the apply that needs it. */
  get binary(): string {
    this.chosen ??= findWireguardGo()?.path ?? "wireguard-go";
    return this.chosen;
  }

  /**
   * "wireguard-go v0.0.20250522 (/root/.cache/…/wireguard-go)", for the agent's report: the
   * daemon serving ifname when one runs, else the binary this backend would start.
   */
  implementation(ifname?: string): string {
    const path = (ifname && runningWireguardGo(ifname)) || this.binary;
    if (!this.versions.has(path)) this.versions.set(path, wireguardGoVersion(path));
    const version = this.versions.get(path);
    return `wireguard-go ${version ? `v${version}` : "(version unknown)"} (${path})`;
  }

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
      spawnDaemon(this.binary, ["-f", ifname], join(logDir, `${ifname}.log`), {
        ...process.env,
        LOG_LEVEL: "verbose",
      });
    else sh(this.binary, [ifname]); // daemonizes once the device and socket exist
    for (let i = 0; i < 50 && !(await this.alive(ifname)); i++) await sleep(100);
    if (!(await this.alive(ifname))) throw new Error(`${this.binary} did not bring up ${ifname}`);
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
