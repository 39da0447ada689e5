/**
 * The eBPF half of the Linux datapath: loads bpf/netloom.bpf.o with libbpf, pins its maps per
 * node, attaches the programs (tcx links, or cls_bpf on clsact as the fallback) and keeps the
 * maps equal to the desired policy.
 *
 * Programs and their hooks (PROGRAM_HOOK): netloom_egress and netloom_tunnel_egress run at a
 * device's egress; the NetworkPolicy programs run on the host side of a pod's veth,
 * netloom_pod_egress at its ingress (what the pod sends), netloom_pod_ingress at its egress
 * (what the pod receives).
 *
 * Pin layout under pinDir (one directory per node, so simulated nodes never share state):
 *   maps/<map name>          every map; libbpf reuses a compatible pin at load, so an agent
 *                            restart keeps the map contents (the flow_events ring buffer
 *                            too: PinnedFlowEvents reads it by its pin)
 *   links/<ifname>-egress    the tcx link of a device's egress hook, links/<ifname>-ingress
 *                            of its ingress hook; a restart swaps the program behind it with
 *                            bpf_link_update (atomic, never two copies attached)
 *
 * clsact filters are not pinned: they live in the device's clsact qdisc (ingress or egress
 * hook) under a fixed handle/priority (TC_HANDLE / TC_PRIORITY) and BPF_TC_F_REPLACE swaps
 * them atomically.
 *
 * Device lookups use if_nametoindex in the calling thread's network namespace; run the agent
 * of a simulated node with `nsenter --net=/run/netns/NAME` (not `ip netns exec`, which remounts
 * /sys and hides the bpffs pins).
 */
import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statfsSync,
  unlinkSync,
} from "node:fs";
import { join } from "node:path";
import { formatCidr, parseCidr, parseIP } from "../../api/cidr.js";
import { LE, readU32, u32 } from "../maps/bytes.js";
import {
  DENY_KEY_SIZE,
  DENY_MAP,
  DENY_SKIP_BITS,
  type DenyEntry,
  decodeDenyKey,
  decodeLpmV4Key,
  denySkipBits,
  describeDenyEntry,
  EGRESS_SKIP,
  EGRESS_SKIP_MAP,
  encodeDenyKey,
  encodeLpmV4Key,
  LPM_V4_KEY_SIZE,
} from "../maps/egress-deny.js";
import { FLOW_EVENTS_LOST_MAP, FLOW_EVENTS_MAP } from "../maps/flow-events.js";
import {
  CONNTRACK_MAP,
  CT_KEY_SIZE,
  type Direction,
  decodeEndpointKey,
  decodeEndpointValue,
  decodeIpcacheEntry,
  decodePolicyAuditKey,
  decodePolicyDropKey,
  decodePolicyEntry,
  describePolicyEntry,
  ENDPOINT_KEY_SIZE,
  ENDPOINT_VALUE_SIZE,
  ENDPOINTS_MAP,
  type EndpointValue,
  encodeEndpointKey,
  encodeEndpointValue,
  encodeIpcacheKey,
  encodePolicyKey,
  IPCACHE_EPOCH_MAP,
  IPCACHE_KEY_SIZE,
  IPCACHE_MAP,
  IPCACHE_VALUE_SIZE,
  type IpcacheEntries,
  ipcacheChanges,
  ipcacheEpoch,
  POLICY_AUDIT_KEY_SIZE,
  POLICY_AUDIT_MAP,
  POLICY_DROP_KEY_SIZE,
  POLICY_DROPS_MAP,
  POLICY_KEY_SIZE,
  POLICY_MAP,
  POLICY_VALUE_SIZE,
  type PolicyAuditCount,
  type PolicyDropCount,
  type PolicyMapEntry,
  sumPerCpu,
} from "../maps/policy.js";
import {
  BPF_TC_EGRESS,
  BPF_TC_INGRESS,
  BPF_TCX_EGRESS,
  BPF_TCX_INGRESS,
  type CPtr,
  closeFd,
  EINVAL,
  findProgram,
  ifNameToIndex,
  LibbpfError,
  linkCreate,
  linkDetach,
  linkInfo,
  linkUpdate,
  mapDelete,
  mapFd,
  mapKeys,
  mapLookup,
  mapName,
  mapSetPinPath,
  mapUpdate,
  objectClose,
  objectLoad,
  objectMaps,
  objectOpenFile,
  objGet,
  objPin,
  progIdOfFd,
  progQuery,
  progQueryRaw,
  programFd,
  tcAttach,
  tcDetach,
  tcHookCreate,
  tcQuery,
} from "./libbpf.js";

export type ProgramName =
  | "netloom_egress"
  | "netloom_tunnel_egress"
  | "netloom_pod_egress"
  | "netloom_pod_ingress";
export type AttachMode = "tcx" | "clsact";
/** A device's hook: ingress (packets the device receives) or egress (packets it sends). */
export type Hook = "ingress" | "egress";

export const PROGRAMS: readonly ProgramName[] = [
  "netloom_egress",
  "netloom_tunnel_egress",
  "netloom_pod_egress",
  "netloom_pod_ingress",
];

/**
 * Where each program runs. The pod programs sit on the host side of the pod's veth, where
 * the pod's egress is the device's ingress and the other way round.
 */
export const PROGRAM_HOOK: Readonly<Record<ProgramName, Hook>> = {
  netloom_egress: "egress",
  netloom_tunnel_egress: "egress",
  netloom_pod_egress: "ingress",
  netloom_pod_ingress: "egress",
};

const HOOKS: readonly Hook[] = ["ingress", "egress"];
const TCX_ATTACH_TYPE: Readonly<Record<Hook, number>> = {
  ingress: BPF_TCX_INGRESS,
  egress: BPF_TCX_EGRESS,
};
const TC_ATTACH_POINT: Readonly<Record<Hook, number>> = {
  ingress: BPF_TC_INGRESS,
  egress: BPF_TC_EGRESS,
};

/** cls_bpf filter identity on a clsact hook ("NL"); priority 1 runs it first. */
export const TC_HANDLE = 0x4e4c;
export const TC_PRIORITY = 1;

/** Drop-counter indexes (enum drop_reason in netloom.bpf.c). */
const DROP_POLICY_DENIED = 0;
const DROP_UNENCRYPTED = 1;
const DROP_OVER_RATE = 2;

const MAP_NAMES = [
  "egress_deny",
  "egress_deny6",
  "strict_cidrs",
  EGRESS_SKIP_MAP,
  "pod_class",
  "drops",
  ENDPOINTS_MAP,
  POLICY_MAP,
  IPCACHE_MAP[4],
  IPCACHE_MAP[6],
  CONNTRACK_MAP,
  IPCACHE_EPOCH_MAP,
  POLICY_AUDIT_MAP,
  POLICY_DROPS_MAP,
  FLOW_EVENTS_MAP,
  FLOW_EVENTS_LOST_MAP,
] as const;
type MapName = (typeof MAP_NAMES)[number];

export interface SyncResult {
  /** Entries written (new or changed). */
  written: number;
  /** Entries removed because they are no longer desired. */
  deleted: number;
}

export interface Drops {
  policyDenied: number;
  unencrypted: number;
  overRate: number;
}

const BPF_FS_MAGIC = 0xcafe4a11;

/** Mounts bpffs on /sys/fs/bpf unless it is mounted already. */
export function ensureBpffs(): void {
  if (statfsSync("/sys/fs/bpf").type === BPF_FS_MAGIC) return;
  execFileSync("mount", ["-t", "bpf", "bpf", "/sys/fs/bpf"], { stdio: ["ignore", "pipe", "pipe"] });
  if (statfsSync("/sys/fs/bpf").type !== BPF_FS_MAGIC)
    throw new Error("mount -t bpf bpf /sys/fs/bpf did not leave a bpffs on /sys/fs/bpf");
}

/** Number of possible CPUs: the per-CPU map value count (bits set in the possible mask). */
export function possibleCpuCount(): number {
  const text = readFileSync("/sys/devices/system/cpu/possible", "utf8").trim();
  let n = 0;
  for (const part of text.split(",")) {
    const [lo, hi] = part.split("-").map(Number);
    if (lo === undefined || Number.isNaN(lo)) throw new Error(`cannot parse cpu list "${text}"`);
    n += (hi ?? lo) - lo + 1;
  }
  return n;
}

function linkPinPath(pinDir: string, ifname: string, hook: Hook): string {
  return join(pinDir, "links", `${ifname}-${hook}`);
}

function isErrno(e: unknown, errno: number): boolean {
  return e instanceof LibbpfError && e.errno === errno;
}

export class BpfDatapath {
  private closed = false;
  private readonly progIds = new Map<ProgramName, number>();

  private constructor(
    private readonly obj: CPtr,
    readonly pinDir: string,
    private readonly maps: ReadonlyMap<MapName, number>,
    private readonly progFds: ReadonlyMap<ProgramName, number>,
  ) {}

  /**
   * Opens and loads the object. Every map is pinned at `${pinDir}/maps/${name}`; an existing
   * compatible pin is reused (contents kept), an incompatible one makes the load fail.
   */
  static open(opts: { objectPath: string; pinDir: string }): BpfDatapath {
    ensureBpffs();
    mkdirSync(join(opts.pinDir, "maps"), { recursive: true });
    mkdirSync(join(opts.pinDir, "links"), { recursive: true });
    if (statfsSync(opts.pinDir).type !== BPF_FS_MAGIC)
      throw new Error(`pin directory ${opts.pinDir} is not on a bpffs (use /sys/fs/bpf/...)`);
    const obj = objectOpenFile(opts.objectPath);
    try {
      const maps = new Map<MapName, number>();
      const handles = new Map<MapName, CPtr>();
      for (const m of objectMaps(obj)) {
        const name = mapName(m);
        // Internal maps (.rodata, .bss) are per object, never shared across loads.
        if (name.includes(".")) continue;
        mapSetPinPath(m, join(opts.pinDir, "maps", name));
        if ((MAP_NAMES as readonly string[]).includes(name)) handles.set(name as MapName, m);
      }
      for (const name of MAP_NAMES) {
        if (!handles.has(name))
          throw new Error(`${opts.objectPath} has no map "${name}": not a netloom object?`);
      }
      try {
        objectLoad(obj, opts.objectPath);
      } catch (e) {
        if (isErrno(e, EINVAL) && /reuse pinned map/.test((e as LibbpfError).log ?? "")) {
          throw new Error(
            `a map pinned under ${join(opts.pinDir, "maps")} does not match ${opts.objectPath} (an incompatible object version made it): remove the pins (BpfDatapath.removePins) to start over. ${(e as Error).message}`,
            { cause: e },
          );
        }
        throw e;
      }
      for (const [name, m] of handles) maps.set(name, mapFd(m));
      const progFds = new Map<ProgramName, number>();
      for (const p of PROGRAMS) progFds.set(p, programFd(findProgram(obj, p)));
      return new BpfDatapath(obj, opts.pinDir, maps, progFds);
    } catch (e) {
      objectClose(obj);
      throw e;
    }
  }

  /**
   * Is tcx available? A cheap probe without side effects: BPF_PROG_QUERY for BPF_TCX_EGRESS on
   * "lo". Kernels with tcx (6.6+) answer (0 programs); older ones reject the attach type with
   * EINVAL. Other errors (EPERM without CAP_NET_ADMIN) are thrown: the answer is unknown.
   */
  static detectTcx(): boolean {
    const ret = progQueryRaw(ifNameToIndex("lo"), BPF_TCX_EGRESS);
    if (ret === 0) return true;
    if (ret === -EINVAL) return false;
    throw new LibbpfError("bpf_prog_query", -ret, "tcx probe on lo");
  }

  /** Teardown: detaches every pinned tcx link, then removes all pins under pinDir. */
  static removePins(pinDir: string): void {
    const links = join(pinDir, "links");
    if (existsSync(links)) {
      for (const name of readdirSync(links)) detachPinnedLink(join(links, name));
    }
    rmSync(pinDir, { recursive: true, force: true });
  }

  private live(): void {
    if (this.closed) throw new Error("BpfDatapath is closed");
  }

  private fd(name: MapName): number {
    this.live();
    const fd = this.maps.get(name);
    if (fd === undefined) throw new Error(`map ${name} not loaded`);
    return fd;
  }

  private progFd(program: ProgramName): number {
    this.live();
    const fd = this.progFds.get(program);
    if (fd === undefined) throw new Error(`program ${program} not loaded`);
    return fd;
  }

  /** Kernel program id of one of this object's programs (what attachedProgramIds reports). */
  programId(program: ProgramName): number {
    let id = this.progIds.get(program);
    if (id === undefined) {
      id = progIdOfFd(this.progFd(program));
      this.progIds.set(program, id);
    }
    return id;
  }

  /**
   * Attaches program to its hook on ifname (PROGRAM_HOOK); idempotent and hitless. tcx: swap
   * the program of the hook's pinned link (bpf_link_update), else create and pin a link.
   * clsact: create the qdisc if needed and attach/replace the filter at (TC_HANDLE,
   * TC_PRIORITY) on the hook. Then the other mode's Netloom attachment on that hook is removed,
   * so one copy runs (after a brief overlap, never a gap).
   */
  attach(ifname: string, program: ProgramName, mode: AttachMode): void {
    const progFd = this.progFd(program);
    const hook = PROGRAM_HOOK[program];
    const ifindex = ifNameToIndex(ifname);
    const pin = linkPinPath(this.pinDir, ifname, hook);
    if (mode === "tcx") {
      const attachType = TCX_ATTACH_TYPE[hook];
      if (!(existsSync(pin) && updatePinnedLink(pin, ifindex, attachType, progFd))) {
        const linkFd = linkCreate(progFd, ifindex, attachType);
        try {
          objPin(linkFd, pin);
        } finally {
          closeFd(linkFd); // unpinned (pin failed) → the link goes away with its last fd
        }
      }
      tcDetach(ifindex, TC_ATTACH_POINT[hook], TC_HANDLE, TC_PRIORITY);
    } else {
      tcHookCreate(ifindex, TC_ATTACH_POINT[hook]);
      tcAttach(ifindex, TC_ATTACH_POINT[hook], progFd, TC_HANDLE, TC_PRIORITY);
      if (existsSync(pin)) detachPinnedLink(pin);
    }
  }

  /** Removes Netloom's programs from ifname (the given mode and hook, or all). */
  detach(ifname: string, mode?: AttachMode, hook?: Hook): void {
    this.live();
    const hooks = hook ? [hook] : HOOKS;
    if (mode !== "clsact") {
      for (const h of hooks) {
        const pin = linkPinPath(this.pinDir, ifname, h);
        if (existsSync(pin)) detachPinnedLink(pin);
      }
    }
    if (mode !== "tcx") {
      let ifindex: number | undefined;
      try {
        ifindex = ifNameToIndex(ifname);
      } catch {
        ifindex = undefined; // device gone: its qdiscs and filters went with it
      }
      if (ifindex !== undefined)
        for (const h of hooks) tcDetach(ifindex, TC_ATTACH_POINT[h], TC_HANDLE, TC_PRIORITY);
    }
  }

  /**
   * Program ids on ifname's hook (egress unless said). tcx: every program on the tcx hook, in
   * run order (other owners' too). clsact: the filter at Netloom's (TC_HANDLE, TC_PRIORITY) only.
   */
  attachedProgramIds(ifname: string, mode: AttachMode, hook: Hook = "egress"): number[] {
    this.live();
    return BpfDatapath.attachedOn(ifname, mode, hook);
  }

  /** attachedProgramIds without loading anything (for tests and `netloom` diagnostics). */
  static attachedOn(ifname: string, mode: AttachMode, hook: Hook = "egress"): number[] {
    const ifindex = ifNameToIndex(ifname);
    if (mode === "tcx") return progQuery(ifindex, TCX_ATTACH_TYPE[hook]);
    const id = tcQuery(ifindex, TC_ATTACH_POINT[hook], TC_HANDLE, TC_PRIORITY);
    return id === undefined ? [] : [id];
  }

  // -------------------------------------------------------------------------------------------
  // egress_deny

  /**
   * Makes egress_deny and egress_deny6 hold exactly these entries (egressDenyEntries). Extra
   * keys are deleted after the desired ones are written.
   */
  syncEgressDeny(entries: readonly DenyEntry[]): { written: number; deleted: number } {
    const skip = denySkipBits(entries);
    // Lookups on before their first entry is added, off only after their last is removed.
    this.writeEgressSkip(this.readEgressSkip() & (skip | ~DENY_SKIP_BITS));
    let written = 0;
    let deleted = 0;
    for (const family of [4, 6] as const) {
      const desired = new Map<string, { key: Buffer; value: Buffer }>();
      for (const e of entries.filter((x) => x.cidr.family === family))
        desired.set(describeDenyEntry(e), { key: encodeDenyKey(e), value: Buffer.from([1]) });
      const r = syncMap(this.fd(DENY_MAP[family]), DENY_KEY_SIZE[family], 1, desired);
      written += r.written;
      deleted += r.deleted;
    }
    this.writeEgressSkip((this.readEgressSkip() & ~DENY_SKIP_BITS) | skip);
    return { written, deleted };
  }

  /** egress_skip: the lookups the programs leave out (EGRESS_SKIP bits). */
  readEgressSkip(): number {
    const v = mapLookup(this.fd(EGRESS_SKIP_MAP), u32(0), 4);
    return v ? readU32(v) : 0;
  }

  writeEgressSkip(bits: number): void {
    if (this.readEgressSkip() !== bits) mapUpdate(this.fd(EGRESS_SKIP_MAP), u32(0), u32(bits));
  }

  /** What egress_deny and egress_deny6 hold. */
  readEgressDeny(): DenyEntry[] {
    return ([4, 6] as const).flatMap((family) => {
      const fd = this.fd(DENY_MAP[family]);
      return mapKeys(fd, DENY_KEY_SIZE[family]).map(decodeDenyKey);
    });
  }

  // -------------------------------------------------------------------------------------------
  // strict_cidrs

  /** IPv4 networks only (planDatapath keeps IPv6 out and reports it). */
  syncStrictCidrs(cidrs: readonly string[]): SyncResult {
    const desired = new Map<string, { key: Buffer; value: Buffer }>();
    for (const text of cidrs) {
      const c = parseCidr(text);
      if (c.family !== 4) throw new Error(`strict_cidrs holds IPv4 networks, not ${text}`);
      desired.set(formatCidr(c), { key: encodeLpmV4Key(c), value: Buffer.from([1]) });
    }
    if (desired.size > 0) this.writeEgressSkip(this.readEgressSkip() & ~EGRESS_SKIP.strict);
    const r = syncMap(this.fd("strict_cidrs"), LPM_V4_KEY_SIZE, 1, desired);
    if (desired.size === 0) this.writeEgressSkip(this.readEgressSkip() | EGRESS_SKIP.strict);
    return r;
  }

  readStrictCidrs(): string[] {
    return mapKeys(this.fd("strict_cidrs"), LPM_V4_KEY_SIZE)
      .map((k) => formatCidr(decodeLpmV4Key(k)))
      .sort();
  }

  // -------------------------------------------------------------------------------------------
  // pod_class

  /** pod IPv4 → HTB class id (major << 16 | minor). */
  syncPodClasses(entries: Map<string, number>): SyncResult {
    const fd = this.fd("pod_class");
    const desired = new Map<string, { key: Buffer; value: Buffer }>();
    for (const [ip, classid] of entries) {
      const p = parseIP(ip);
      if (p.family !== 4) throw new Error(`pod_class is keyed by IPv4 source, not ${ip}`);
      if (!Number.isInteger(classid) || classid < 0 || classid > 0xffffffff)
        throw new Error(`pod ${ip}: class id ${classid} is not a u32`);
      desired.set(Buffer.from(p.bytes).toString("hex"), {
        key: Buffer.from(p.bytes),
        value: u32(classid),
      });
    }
    if (desired.size > 0) this.writeEgressSkip(this.readEgressSkip() & ~EGRESS_SKIP.podClass);
    const r = syncMap(fd, 4, 4, desired);
    if (desired.size === 0) this.writeEgressSkip(this.readEgressSkip() | EGRESS_SKIP.podClass);
    return r;
  }

  readPodClasses(): Map<string, number> {
    const fd = this.fd("pod_class");
    const out = new Map<string, number>();
    for (const key of mapKeys(fd, 4)) {
      const v = mapLookup(fd, key, 4);
      if (v) out.set(Array.from(key).join("."), readU32(v));
    }
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // NetworkPolicy: endpoints, policy, ipcache4/6 (conntrack belongs to the programs)

  /** host veth ifindex → the pod's identity and isolation flags (endpointFlags). */
  syncEndpoints(endpoints: ReadonlyMap<number, EndpointValue>): SyncResult {
    const desired = new Map<string, { key: Buffer; value: Buffer }>();
    for (const [ifindex, v] of endpoints)
      desired.set(String(ifindex), {
        key: encodeEndpointKey(ifindex),
        value: encodeEndpointValue(v),
      });
    return syncMap(this.fd(ENDPOINTS_MAP), ENDPOINT_KEY_SIZE, ENDPOINT_VALUE_SIZE, desired);
  }

  readEndpoints(): Map<number, EndpointValue> {
    const fd = this.fd(ENDPOINTS_MAP);
    const out = new Map<number, EndpointValue>();
    for (const key of mapKeys(fd, ENDPOINT_KEY_SIZE)) {
      const v = mapLookup(fd, key, ENDPOINT_VALUE_SIZE);
      if (v) out.set(decodeEndpointKey(key), decodeEndpointValue(v));
    }
    return out;
  }

  /**
   * Makes the policy map hold exactly these entries: policyMapEntries of every endpoint on the
   * node, concatenated. Two entries for one key are a caller's mistake and refused.
   */
  syncPolicy(entries: readonly PolicyMapEntry[]): SyncResult {
    const desired = new Map<string, { key: Buffer; value: Buffer }>();
    for (const e of entries) {
      const key = encodePolicyKey(e);
      const id = key.toString("hex");
      const value = u32(e.flags);
      const have = desired.get(id);
      if (have && !have.value.equals(value))
        throw new Error(`policy entry given twice with different flags: ${describePolicyEntry(e)}`);
      desired.set(id, { key, value });
    }
    return syncMap(this.fd(POLICY_MAP), POLICY_KEY_SIZE, POLICY_VALUE_SIZE, desired);
  }

  readPolicy(): PolicyMapEntry[] {
    const fd = this.fd(POLICY_MAP);
    const out: PolicyMapEntry[] = [];
    for (const key of mapKeys(fd, POLICY_KEY_SIZE)) {
      const v = mapLookup(fd, key, POLICY_VALUE_SIZE);
      if (v) out.push(decodePolicyEntry(key, v));
    }
    return out;
  }

  /**
   * One of the program's policy lookups, from user space (an LPM lookup answers the longest
   * match there too): the flags of the entry the kernel finds for a packet, 0 when none.
   */
  policyLookup(packet: {
    ifindex: number;
    identity: number;
    direction: Direction;
    protocol: number;
    port: number;
  }): number {
    const key = encodePolicyKey({ ...packet, portBits: 16 });
    const v = mapLookup(this.fd(POLICY_MAP), key, POLICY_VALUE_SIZE);
    return v ? readU32(v) : 0;
  }

  /**
   * Writes these ipcache changes (ipcacheChanges against what the maps hold), then
   * ipcache_epoch: connections the programs tracked under another ipcache are decided again.
   * Only what changed is written: the ipcache holds every pod of the cluster.
   */
  writeIpcache(changes: { set: [string, number][]; remove: string[] }, epoch: number): SyncResult {
    let written = 0;
    let deleted = 0;
    for (const [prefix, identity] of changes.set) {
      const cidr = parseCidr(prefix);
      mapUpdate(this.fd(IPCACHE_MAP[cidr.family]), encodeIpcacheKey(cidr), u32(identity));
      written++;
    }
    for (const prefix of changes.remove) {
      const cidr = parseCidr(prefix);
      if (mapDelete(this.fd(IPCACHE_MAP[cidr.family]), encodeIpcacheKey(cidr))) deleted++;
    }
    // After the entries: a connection decided between the two is decided again.
    const fd = this.fd(IPCACHE_EPOCH_MAP);
    if (!mapLookup(fd, u32(0), 4)?.equals(u32(epoch))) {
      mapUpdate(fd, u32(0), u32(epoch));
      written++;
    }
    return { written, deleted };
  }

  /** Makes ipcache4 and ipcache6 hold exactly these entries (ipcacheEntries), read first. */
  syncIpcache(entries: IpcacheEntries): SyncResult {
    return this.writeIpcache(ipcacheChanges(this.readIpcache(), entries), ipcacheEpoch(entries));
  }

  /** Both families' entries as the table's canonical prefix → identity. */
  readIpcache(): Map<string, number> {
    const out = new Map<string, number>();
    for (const family of [4, 6] as const) {
      const fd = this.fd(IPCACHE_MAP[family]);
      for (const key of mapKeys(fd, IPCACHE_KEY_SIZE[family])) {
        const v = mapLookup(fd, key, IPCACHE_VALUE_SIZE);
        if (v) out.set(...decodeIpcacheEntry(key, v));
      }
    }
    return out;
  }

  /** New flows that audit-mode policies would have dropped, per endpoint and direction. */
  readPolicyAudit(): PolicyAuditCount[] {
    const fd = this.fd(POLICY_AUDIT_MAP);
    const valueSize = 8 * possibleCpuCount();
    return mapKeys(fd, POLICY_AUDIT_KEY_SIZE).flatMap((key) => {
      const v = mapLookup(fd, key, valueSize);
      return v ? [{ ...decodePolicyAuditKey(key), wouldDrop: sumPerCpu(v) }] : [];
    });
  }

  /** Packets NetworkPolicy dropped, per (local identity, peer identity, direction). */
  readPolicyDrops(): PolicyDropCount[] {
    const fd = this.fd(POLICY_DROPS_MAP);
    const valueSize = 8 * possibleCpuCount();
    return mapKeys(fd, POLICY_DROP_KEY_SIZE).flatMap((key) => {
      const v = mapLookup(fd, key, valueSize);
      return v ? [{ ...decodePolicyDropKey(key), packets: sumPerCpu(v) }] : [];
    });
  }

  // -------------------------------------------------------------------------------------------
  // counters

  /** Drop counters summed over every possible CPU. */
  readDrops(): Drops {
    const fd = this.fd("drops");
    const cpus = possibleCpuCount();
    const read = (reason: number): number => {
      // Per-CPU values come back as one 8-byte-aligned slot per possible CPU.
      const v = mapLookup(fd, u32(reason), 8 * cpus);
      if (!v) return 0;
      let sum = 0n;
      for (let i = 0; i < cpus; i++)
        sum += LE ? v.readBigUInt64LE(8 * i) : v.readBigUInt64BE(8 * i);
      return Number(sum);
    };
    return {
      policyDenied: read(DROP_POLICY_DENIED),
      unencrypted: read(DROP_UNENCRYPTED),
      overRate: read(DROP_OVER_RATE),
    };
  }

  /**
   * Entries in the policy maps and the connection tracker (the counter maps are left out: the
   * drop array is fixed-size, the per-CPU hashes are read by their own readers).
   */
  mapEntryCounts(): Record<string, number> {
    return {
      egress_deny: mapKeys(this.fd("egress_deny"), DENY_KEY_SIZE[4]).length,
      egress_deny6: mapKeys(this.fd("egress_deny6"), DENY_KEY_SIZE[6]).length,
      strict_cidrs: mapKeys(this.fd("strict_cidrs"), LPM_V4_KEY_SIZE).length,
      pod_class: mapKeys(this.fd("pod_class"), 4).length,
      endpoints: mapKeys(this.fd(ENDPOINTS_MAP), ENDPOINT_KEY_SIZE).length,
      policy: mapKeys(this.fd(POLICY_MAP), POLICY_KEY_SIZE).length,
      ipcache4: mapKeys(this.fd(IPCACHE_MAP[4]), IPCACHE_KEY_SIZE[4]).length,
      ipcache6: mapKeys(this.fd(IPCACHE_MAP[6]), IPCACHE_KEY_SIZE[6]).length,
      conntrack: mapKeys(this.fd(CONNTRACK_MAP), CT_KEY_SIZE).length,
    };
  }

  /** Closes the object's fds. Pinned maps and links, and clsact filters, stay. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    objectClose(this.obj);
  }
}

/** Writes desired (keyed by any string unique per map key), then deletes every other key. */
function syncMap(
  fd: number,
  keySize: number,
  valueSize: number,
  desired: Map<string, { key: Buffer; value: Buffer }>,
): { written: number; deleted: number } {
  let written = 0;
  let deleted = 0;
  const keep = new Set<string>();
  // A lookup in an LPM trie answers the longest match, not the exact key: check presence first.
  const present = new Set(mapKeys(fd, keySize).map((k) => k.toString("hex")));
  for (const { key, value } of desired.values()) {
    keep.add(key.toString("hex"));
    const have = present.has(key.toString("hex")) ? mapLookup(fd, key, valueSize) : undefined;
    if (have?.equals(value)) continue;
    mapUpdate(fd, key, value);
    written++;
  }
  for (const key of mapKeys(fd, keySize)) {
    if (keep.has(key.toString("hex"))) continue;
    if (mapDelete(fd, key)) deleted++;
  }
  return { written, deleted };
}

/**
 * Swaps the program of the tcx link pinned at pin when it is still attached to ifindex's hook
 * (attachType); false when the pin is stale (device deleted or recreated) — the pin is then
 * removed.
 */
function updatePinnedLink(
  pin: string,
  ifindex: number,
  attachType: number,
  progFd: number,
): boolean {
  const fd = objGet(pin);
  try {
    const info = linkInfo(fd);
    if (info.ifindex === ifindex && info.attachType === attachType) {
      linkUpdate(fd, progFd);
      return true;
    }
    try {
      linkDetach(fd);
    } catch {
      // already defunct
    }
    unlinkSync(pin);
    return false;
  } finally {
    closeFd(fd);
  }
}

/** Detaches the link pinned at pin (even if some process still holds an fd) and unpins it. */
function detachPinnedLink(pin: string): void {
  let fd = -1;
  try {
    fd = objGet(pin);
    linkDetach(fd);
  } catch {
    // defunct link (device gone) or not a link: removing the pin is all that is left
  } finally {
    closeFd(fd);
  }
  unlinkSync(pin);
}
