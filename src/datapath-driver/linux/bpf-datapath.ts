/**
 * The eBPF half of the Linux datapath: loads bpf/netloom.bpf.o with libbpf, pins its maps per
 * node, attaches the egress programs (tcx links, or cls_bpf on clsact as the fallback) and
 * keeps the maps equal to the desired policy.
 *
 * Pin layout under pinDir (one directory per node, so simulated nodes never share state):
 *   maps/<map name>          every map; libbpf reuses a compatible pin at load, so an agent
 *                            restart keeps the map contents
 *   links/<ifname>-egress    the tcx link of a device; a restart swaps the program behind it
 *                            with bpf_link_update (atomic, never two copies attached)
 *
 * clsact filters are not pinned: they live in the device's clsact qdisc under a fixed
 * handle/priority (TC_HANDLE / TC_PRIORITY) and BPF_TC_F_REPLACE swaps them atomically.
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
  type DenyEntry,
  decodeDenyKey,
  decodeLpmV4Key,
  describeDenyEntry,
  encodeDenyKey,
  encodeLpmV4Key,
  LPM_V4_KEY_SIZE,
} from "../maps/egress-deny.js";
import {
  BPF_TC_EGRESS,
  BPF_TCX_EGRESS,
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

export type ProgramName = "netloom_egress" | "netloom_tunnel_egress";
export type AttachMode = "tcx" | "clsact";

export const PROGRAMS: readonly ProgramName[] = ["netloom_egress", "netloom_tunnel_egress"];

/** cls_bpf filter identity on the clsact egress hook ("NL"); priority 1 runs it first. */
export const TC_HANDLE = 0x4e4c;
export const TC_PRIORITY = 1;

/** Drop-counter indexes (enum drop_reason in netloom.bpf.c). */
const DROP_POLICY_DENIED = 0;
const DROP_UNENCRYPTED = 1;
const DROP_OVER_RATE = 2;

const MAP_NAMES = ["egress_deny", "egress_deny6", "strict_cidrs", "pod_class", "drops"] as const;
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

function linkPinPath(pinDir: string, ifname: string): string {
  return join(pinDir, "links", `${ifname}-egress`);
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
   * Attaches program to ifname's egress; idempotent and hitless. tcx: swap the program of the
   * pinned link (bpf_link_update), else create and pin a link. clsact: create the qdisc if
   * needed and attach/replace the filter at (TC_HANDLE, TC_PRIORITY). Then the other mode's
   * Netloom attachment on the device is removed, so one copy runs (after a brief overlap,
   * never a gap).
   */
  attach(ifname: string, program: ProgramName, mode: AttachMode): void {
    const progFd = this.progFd(program);
    const ifindex = ifNameToIndex(ifname);
    if (mode === "tcx") {
      const pin = linkPinPath(this.pinDir, ifname);
      if (!(existsSync(pin) && updatePinnedLink(pin, ifindex, progFd))) {
        const linkFd = linkCreate(progFd, ifindex, BPF_TCX_EGRESS);
        try {
          objPin(linkFd, pin);
        } finally {
          closeFd(linkFd); // unpinned (pin failed) → the link goes away with its last fd
        }
      }
      tcDetach(ifindex, BPF_TC_EGRESS, TC_HANDLE, TC_PRIORITY);
    } else {
      tcHookCreate(ifindex, BPF_TC_EGRESS);
      tcAttach(ifindex, BPF_TC_EGRESS, progFd, TC_HANDLE, TC_PRIORITY);
      const pin = linkPinPath(this.pinDir, ifname);
      if (existsSync(pin)) detachPinnedLink(pin);
    }
  }

  /** Removes Netloom's program from ifname (the given mode, or both). */
  detach(ifname: string, mode?: AttachMode): void {
    this.live();
    if (mode !== "clsact") {
      const pin = linkPinPath(this.pinDir, ifname);
      if (existsSync(pin)) detachPinnedLink(pin);
    }
    if (mode !== "tcx") {
      let ifindex: number | undefined;
      try {
        ifindex = ifNameToIndex(ifname);
      } catch {
        ifindex = undefined; // device gone: its qdiscs and filters went with it
      }
      if (ifindex !== undefined) tcDetach(ifindex, BPF_TC_EGRESS, TC_HANDLE, TC_PRIORITY);
    }
  }

  /**
   * Program ids on ifname's egress. tcx: every program on the tcx egress hook, in run order
   * (other owners' too). clsact: the filter at Netloom's (TC_HANDLE, TC_PRIORITY) only.
   */
  attachedProgramIds(ifname: string, mode: AttachMode): number[] {
    this.live();
    return BpfDatapath.attachedOn(ifname, mode);
  }

  /** attachedProgramIds without loading anything (for tests and `netloom` diagnostics). */
  static attachedOn(ifname: string, mode: AttachMode): number[] {
    const ifindex = ifNameToIndex(ifname);
    if (mode === "tcx") return progQuery(ifindex, BPF_TCX_EGRESS);
    const id = tcQuery(ifindex, BPF_TC_EGRESS, TC_HANDLE, TC_PRIORITY);
    return id === undefined ? [] : [id];
  }

  // -------------------------------------------------------------------------------------------
  // egress_deny

  /**
   * Makes egress_deny and egress_deny6 hold exactly these entries (egressDenyEntries). Extra
   * keys are deleted after the desired ones are written.
   */
  syncEgressDeny(entries: readonly DenyEntry[]): { written: number; deleted: number } {
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
    return { written, deleted };
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
    return syncMap(this.fd("strict_cidrs"), LPM_V4_KEY_SIZE, 1, desired);
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
    return syncMap(fd, 4, 4, desired);
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

  /** Entries in the policy maps (the array of drop counters is fixed-size and left out). */
  mapEntryCounts(): Record<string, number> {
    return {
      egress_deny: mapKeys(this.fd("egress_deny"), DENY_KEY_SIZE[4]).length,
      egress_deny6: mapKeys(this.fd("egress_deny6"), DENY_KEY_SIZE[6]).length,
      strict_cidrs: mapKeys(this.fd("strict_cidrs"), LPM_V4_KEY_SIZE).length,
      pod_class: mapKeys(this.fd("pod_class"), 4).length,
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
 * Swaps the program of the tcx link pinned at pin when it is still attached to ifindex's egress;
 * false when the pin is stale (device deleted or recreated) — the pin is then removed.
 */
function updatePinnedLink(pin: string, ifindex: number, progFd: number): boolean {
  const fd = objGet(pin);
  try {
    const info = linkInfo(fd);
    if (info.ifindex === ifindex && info.attachType === BPF_TCX_EGRESS) {
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
