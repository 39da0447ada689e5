/**
 * The NetworkPolicy maps of the pod programs (netloom_pod_egress / netloom_pod_ingress in
 * bpf/netloom.bpf.c): the one translation from compiled policy (src/policy/compile.ts) to map
 * entries, their byte layouts, the entries as text for drift, and a pure model of the
 * program's lookup that tests hold against `allowedByEntries`.
 *
 * Layouts (host order unless said):
 *   endpoints     key u32 ifindex (the pod's host veth)                              4 bytes
 *                 value struct endpoint_value { u32 identity; u32 flags;
 *                     u32 revision; }                                                12 bytes
 *   policy (LPM)  key struct policy_key { u32 prefixlen; u32 ifindex; u32 identity;
 *                     u8 direction; u8 protocol; be16 port; }                        16 bytes
 *                 value u32 flags (POLICY_ALLOW | POLICY_ALLOW_ENFORCED)
 *                 prefixlen 72: every protocol; 80: every port of the protocol; 80 + n: the
 *                 first n bits of the port. A lookup answers the longest match only, so every
 *                 entry carries the flags of the shorter entries covering it.
 *   ipcache4/6    key struct ipcache{4,6}_key { u32 prefixlen; u8 addr[4|16]; }    8 / 20 bytes
 *                 value u32 identity
 *   ipcache_epoch ARRAY [0] → u32 ipcacheEpoch of the ipcache entries (written after them)
 *   conntrack     key struct ct_key (40 bytes: tuple, family, the direction that accepted
 *                 it), value struct ct_entry { u64 seen; u64 under; } (under: the
 *                 endpoint's revision and the ipcache epoch it was accepted under): written
 *                 by the program only
 *   policy_audit  key struct policy_audit_key { u32 ifindex; u32 direction; }       8 bytes
 *   policy_drops  key struct policy_drop_key { u32 local_identity; u32 peer_identity;
 *                     u32 direction; }                                               12 bytes
 *                 both per-CPU u64 counters
 */
import { createHash } from "node:crypto";
import { type Cidr, formatCidr, parseCidr } from "../../api/cidr.js";
import type { DirectionPolicy, EndpointPolicy, PolicyEntry } from "../../policy/compile.js";
import { RESERVED } from "../../policy/identity.js";
import { LE, readU32, u32 } from "./bytes.js";

export type Direction = "ingress" | "egress";
export const DIRECTIONS: readonly Direction[] = ["ingress", "egress"];
/** enum policy_direction. */
export const DIRECTION_NUMBER = { ingress: 0, egress: 1 } as const;

/** endpoint_value.flags (EP_* in netloom.bpf.c). */
export const ENDPOINT_FLAG = {
  ingressIsolated: 1 << 0,
  ingressIsolatedEnforced: 1 << 1,
  egressIsolated: 1 << 2,
  egressIsolatedEnforced: 1 << 3,
  /** Ingress from IDENTITY_HOST always passes: the node's kubelet probes its pods. */
  allowHost: 1 << 4,
} as const;

/** Policy entry flags: allowed by the full policy set / by the non-audit policies alone. */
export const POLICY_ALLOW = 1 << 0;
export const POLICY_ALLOW_ENFORCED = 1 << 1;

/** A policy entry's identity for a rule without peers (the program looks it up second). */
export const IDENTITY_ANY = 0;
export const IDENTITY_HOST = RESERVED.host;
/** What the program takes for an address the ipcache does not cover. */
export const IDENTITY_WORLD = RESERVED.world;

export const IP_PROTOCOL = { ICMP: 1, TCP: 6, UDP: 17, ICMPV6: 58, SCTP: 132 } as const;
/** Protocols whose destination port the program reads; every other protocol is port 0. */
const PORTED_PROTOCOLS: readonly number[] = [IP_PROTOCOL.TCP, IP_PROTOCOL.UDP, IP_PROTOCOL.SCTP];

export const ENDPOINTS_MAP = "endpoints";
export const POLICY_MAP = "policy";
export const IPCACHE_MAP = { 4: "ipcache4", 6: "ipcache6" } as const;
export const IPCACHE_EPOCH_MAP = "ipcache_epoch";
export const CONNTRACK_MAP = "conntrack";
export const POLICY_AUDIT_MAP = "policy_audit";
export const POLICY_DROPS_MAP = "policy_drops";

export const ENDPOINT_KEY_SIZE = 4;
export const ENDPOINT_VALUE_SIZE = 12;
export const POLICY_KEY_SIZE = 16;
export const POLICY_VALUE_SIZE = 4;
export const IPCACHE_KEY_SIZE = { 4: 8, 6: 20 } as const;
export const IPCACHE_VALUE_SIZE = 4;
export const CT_KEY_SIZE = 40;
export const POLICY_AUDIT_KEY_SIZE = 8;
export const POLICY_DROP_KEY_SIZE = 12;

/** max_entries in netloom.bpf.c (layout.test.ts checks them against the object). */
export const MAX_ENTRIES = {
  endpoints: 4096,
  policy: 65536,
  ipcache4: 65536,
  ipcache6: 16384,
  ipcache_epoch: 1,
  conntrack: 65536,
  policy_audit: 16384,
  policy_drops: 16384,
} as const;

/** Prefix lengths of a policy key: ifindex + identity + direction, then protocol, then port. */
export const POLICY_ANY_PROTOCOL_PREFIXLEN = 72;
export const POLICY_PROTOCOL_PREFIXLEN = 80;
export const POLICY_FULL_PREFIXLEN = 96;

// ---------------------------------------------------------------------------------------------
// endpoints

export interface EndpointValue {
  identity: number;
  flags: number;
  /**
   * policyRevision: the program lets a tracked connection's packets pass without looking the
   * policy up while this stays what it was when the connection was accepted.
   */
  revision: number;
}

/** Both policy tiers of one endpoint: every policy, and the non-audit policies alone. */
export interface PolicyTiers {
  full: EndpointPolicy;
  enforced: EndpointPolicy;
}

/** Pure: endpoint_value.flags for an endpoint's tiers. */
export function endpointFlags(tiers: PolicyTiers, opts: { allowHost: boolean }): number {
  let flags = 0;
  if (tiers.full.ingress.isolated) flags |= ENDPOINT_FLAG.ingressIsolated;
  if (tiers.enforced.ingress.isolated) flags |= ENDPOINT_FLAG.ingressIsolatedEnforced;
  if (tiers.full.egress.isolated) flags |= ENDPOINT_FLAG.egressIsolated;
  if (tiers.enforced.egress.isolated) flags |= ENDPOINT_FLAG.egressIsolatedEnforced;
  if (opts.allowHost) flags |= ENDPOINT_FLAG.allowHost;
  return flags;
}

export function encodeEndpointKey(ifindex: number): Buffer {
  return u32(checkU32(ifindex, "ifindex"));
}

export function decodeEndpointKey(key: Buffer): number {
  return readU32(key);
}

/**
 * Pure: a digest of an endpoint's own part of its verdicts — identity, flags and policy
 * entries (policyMapEntries) — as the u32 the program tracks its connections under (with
 * ipcacheEpoch for the peers' identities). Any change to them changes it (but for a 1 in 2^32
 * collision), and the program then decides each tracked connection's next packet again; an
 * agent restart with the same policy computes the same digest, so established connections keep
 * their fast path. Only the endpoint's own entry changes: a pod elsewhere costs no endpoint
 * write (the ipcache and its epoch change on every node, as before).
 */
export function policyRevision(
  v: Omit<EndpointValue, "revision">,
  entries: readonly PolicyMapEntry[],
): number {
  const h = createHash("sha256");
  h.update(u32(v.identity)).update(u32(v.flags));
  // Entries in key order: the same policy gives the same digest whatever order built it.
  const encoded = entries.map((e) => Buffer.concat([encodePolicyKey(e), u32(e.flags)]));
  for (const e of encoded.sort(Buffer.compare)) h.update(e);
  return h.digest().readUInt32LE(0);
}

/**
 * Pure: one endpoint's map value and its policy entries (the revision is computed from both).
 * The agent, the tests and the bench all build endpoints this way.
 */
export function endpointMaps(
  ifindex: number,
  identity: number,
  tiers: PolicyTiers,
  opts: { allowHost: boolean },
): { value: EndpointValue; entries: PolicyMapEntry[] } {
  const v = { identity, flags: endpointFlags(tiers, opts) };
  const entries = policyMapEntries(ifindex, tiers);
  return { value: { ...v, revision: policyRevision(v, entries) }, entries };
}

export function encodeEndpointValue(v: EndpointValue): Buffer {
  return Buffer.concat([
    u32(checkU32(v.identity, "identity")),
    u32(checkU32(v.flags, "flags")),
    u32(checkU32(v.revision, "revision")),
  ]);
}

export function decodeEndpointValue(value: Buffer): EndpointValue {
  return { identity: readU32(value, 0), flags: readU32(value, 4), revision: readU32(value, 8) };
}

const ENDPOINT_FLAG_NAMES: [number, string][] = [
  [ENDPOINT_FLAG.ingressIsolated, "ingress-isolated"],
  [ENDPOINT_FLAG.ingressIsolatedEnforced, "ingress-isolated-enforced"],
  [ENDPOINT_FLAG.egressIsolated, "egress-isolated"],
  [ENDPOINT_FLAG.egressIsolatedEnforced, "egress-isolated-enforced"],
  [ENDPOINT_FLAG.allowHost, "allow-host"],
];

/** "if7 identity 256 ingress-isolated,allow-host revision 1a2b3c4d" (flags "-" when none). */
export function describeEndpoint(ifindex: number, v: EndpointValue): string {
  const names = ENDPOINT_FLAG_NAMES.filter(([bit]) => v.flags & bit).map(([, n]) => n);
  const unknown = v.flags & ~ENDPOINT_FLAG_NAMES.reduce((m, [bit]) => m | bit, 0);
  if (unknown) names.push(`0x${unknown.toString(16)}`);
  const revision = v.revision.toString(16).padStart(8, "0");
  return `if${ifindex} identity ${v.identity} ${names.join(",") || "-"} revision ${revision}`;
}

export function describeEndpoints(endpoints: ReadonlyMap<number, EndpointValue>): string[] {
  return [...endpoints].map(([ifindex, v]) => describeEndpoint(ifindex, v)).sort();
}

// ---------------------------------------------------------------------------------------------
// policy

export interface PolicyMapEntry {
  ifindex: number;
  /** The peer's identity; IDENTITY_ANY for rules without peers. */
  identity: number;
  direction: Direction;
  /** IP protocol number, or "any": every protocol and port (prefixlen 72). */
  protocol: number | "any";
  /** The port prefix: the first portBits bits of port count (0 bits: every port). */
  port: number;
  portBits: number;
  /** POLICY_ALLOW | POLICY_ALLOW_ENFORCED. */
  flags: number;
}

/**
 * Pure: the minimal list of aligned (port, bits) prefixes covering exactly [lo, hi]; a prefix
 * of `bits` bits covers the 2^(16 - bits) ports sharing port's first `bits` bits.
 */
export function portRangePrefixes(lo: number, hi: number): { port: number; bits: number }[] {
  checkPort(lo);
  checkPort(hi);
  const out: { port: number; bits: number }[] = [];
  let port = lo;
  while (port <= hi) {
    // The largest aligned block starting at port that stays inside the range.
    let bits = 0;
    while ((port & (blockSize(bits) - 1)) !== 0 || port + blockSize(bits) - 1 > hi) bits++;
    out.push({ port, bits });
    port += blockSize(bits);
  }
  return out;
}

const blockSize = (bits: number): number => 2 ** (16 - bits);

/** A port's first `bits` bits, the rest cleared. */
const portPrefix = (port: number, bits: number): number =>
  bits === 0 ? 0 : port & ~(blockSize(bits) - 1) & 0xffff;

export function policyPrefixlen(e: Pick<PolicyMapEntry, "protocol" | "portBits">): number {
  return e.protocol === "any"
    ? POLICY_ANY_PROTOCOL_PREFIXLEN
    : POLICY_PROTOCOL_PREFIXLEN + e.portBits;
}

/**
 * Pure: the entries of one endpoint before the covering flags are ORed in: full-tier entries
 * with POLICY_ALLOW, enforced-tier ones with POLICY_ALLOW_ENFORCED, one per (peer, protocol,
 * port prefix); entries with the same key merge their flags. Directions that are not isolated
 * get none (the program allows them without a lookup). `policyMapEntries` is what the map
 * holds.
 */
export function ownPolicyEntries(ifindex: number, tiers: PolicyTiers): PolicyMapEntry[] {
  checkU32(ifindex, "ifindex");
  const out = new Map<string, PolicyMapEntry>();
  const add = (d: DirectionPolicy, direction: Direction, flag: number) => {
    if (!d.isolated) return;
    for (const e of d.entries) {
      for (const p of entryPrefixes(e)) {
        const entry: PolicyMapEntry = { ifindex, direction, ...p, flags: flag };
        const key = policyEntryKey(entry);
        const have = out.get(key);
        if (have) have.flags |= flag;
        else out.set(key, entry);
      }
    }
  };
  for (const direction of DIRECTIONS) {
    add(tiers.full[direction], direction, POLICY_ALLOW);
    add(tiers.enforced[direction], direction, POLICY_ALLOW_ENFORCED);
  }
  return [...out.values()];
}

function entryPrefixes(
  e: PolicyEntry,
): Pick<PolicyMapEntry, "identity" | "protocol" | "port" | "portBits">[] {
  if (e.peer !== "any" && (e.peer === IDENTITY_ANY || !Number.isInteger(e.peer)))
    throw new Error(`policy peer identity ${e.peer} is not a positive integer`);
  const identity = e.peer === "any" ? IDENTITY_ANY : checkU32(e.peer, "peer identity");
  if (e.protocol === "any") {
    if (e.ports[0] !== 0 || e.ports[1] !== 65535)
      throw new Error(`an any-protocol entry covers every port, not ${e.ports.join("-")}`);
    return [{ identity, protocol: "any", port: 0, portBits: 0 }];
  }
  const protocol = IP_PROTOCOL[e.protocol];
  return portRangePrefixes(e.ports[0], e.ports[1]).map((p) => ({
    identity,
    protocol,
    port: p.port,
    portBits: p.bits,
  }));
}

/** One string per map key (flags left out). */
function policyEntryKey(e: Omit<PolicyMapEntry, "flags">): string {
  return `${e.ifindex}/${e.identity}/${e.direction}/${e.protocol}/${e.port}/${e.portBits}`;
}

/**
 * Pure: every entry with the flags of the entries covering it (same ifindex, identity and
 * direction, shorter prefix, matching it) ORed in — an LPM lookup sees the longest match only,
 * which must therefore carry the union.
 */
export function withCoveringFlags(entries: readonly PolicyMapEntry[]): PolicyMapEntry[] {
  const own = new Map(entries.map((e) => [policyEntryKey(e), e.flags]));
  return entries.map((e) => {
    let flags = e.flags;
    if (e.protocol !== "any") {
      flags |= own.get(policyEntryKey({ ...e, protocol: "any", port: 0, portBits: 0 })) ?? 0;
      for (let bits = 0; bits < e.portBits; bits++)
        flags |=
          own.get(policyEntryKey({ ...e, port: portPrefix(e.port, bits), portBits: bits })) ?? 0;
    }
    return { ...e, flags };
  });
}

/** Pure: what the policy map holds for one endpoint (sorted by describePolicyEntry). */
export function policyMapEntries(ifindex: number, tiers: PolicyTiers): PolicyMapEntry[] {
  return withCoveringFlags(ownPolicyEntries(ifindex, tiers)).sort(byDescription);
}

const byDescription = (a: PolicyMapEntry, b: PolicyMapEntry): number => {
  const x = describePolicyEntry(a);
  const y = describePolicyEntry(b);
  return x < y ? -1 : x > y ? 1 : 0;
};

function protocolName(n: number): string {
  const hit = Object.entries(IP_PROTOCOL).find(([, v]) => v === n);
  return hit ? hit[0] : `proto${n}`;
}

function flagsText(flags: number): string {
  const names: string[] = [];
  if (flags & POLICY_ALLOW) names.push("allow");
  if (flags & POLICY_ALLOW_ENFORCED) names.push("enforced");
  const unknown = flags & ~(POLICY_ALLOW | POLICY_ALLOW_ENFORCED);
  if (unknown) names.push(`0x${unknown.toString(16)}`);
  return names.join("+") || "none";
}

/** "if7 ingress peer 256 TCP/8080-8095 allow+enforced"; peer "any", ports "*" for every port. */
export function describePolicyEntry(e: PolicyMapEntry): string {
  const peer = e.identity === IDENTITY_ANY ? "any" : String(e.identity);
  let what: string;
  if (e.protocol === "any") what = "any";
  else {
    const last = e.port + blockSize(e.portBits) - 1;
    const ports = e.portBits === 0 ? "*" : last === e.port ? `${e.port}` : `${e.port}-${last}`;
    what = `${protocolName(e.protocol)}/${ports}`;
  }
  return `if${e.ifindex} ${e.direction} peer ${peer} ${what} ${flagsText(e.flags)}`;
}

export function describePolicyEntries(entries: readonly PolicyMapEntry[]): string[] {
  return entries.map(describePolicyEntry).sort();
}

export function encodePolicyKey(e: Omit<PolicyMapEntry, "flags">): Buffer {
  const key = Buffer.alloc(POLICY_KEY_SIZE);
  const prefixlen = policyPrefixlen(e);
  if (e.portBits < 0 || e.portBits > 16 || (e.protocol === "any" && e.portBits !== 0))
    throw new Error(`policy entry ${policyEntryKey(e)}: port bits out of range`);
  if (e.protocol !== "any" && (!Number.isInteger(e.protocol) || e.protocol < 0 || e.protocol > 255))
    throw new Error(`policy entry ${policyEntryKey(e)}: protocol is not a u8`);
  key.set(u32(prefixlen), 0);
  key.set(u32(checkU32(e.ifindex, "ifindex")), 4);
  key.set(u32(checkU32(e.identity, "identity")), 8);
  key[12] = DIRECTION_NUMBER[e.direction];
  // Bits past the prefix are cleared: the kernel ignores them, get_next_key reports them.
  key[13] = e.protocol === "any" ? 0 : e.protocol;
  key.writeUInt16BE(portPrefix(checkPort(e.port), e.portBits), 14);
  return key;
}

export function decodePolicyEntry(key: Buffer, value: Buffer): PolicyMapEntry {
  const prefixlen = readU32(key, 0);
  const anyProtocol = prefixlen <= POLICY_ANY_PROTOCOL_PREFIXLEN;
  return {
    ifindex: readU32(key, 4),
    identity: readU32(key, 8),
    direction: key[12] === DIRECTION_NUMBER.egress ? "egress" : "ingress",
    protocol: anyProtocol ? "any" : (key[13] ?? 0),
    port: anyProtocol ? 0 : key.readUInt16BE(14),
    portBits: anyProtocol ? 0 : prefixlen - POLICY_PROTOCOL_PREFIXLEN,
    flags: readU32(value),
  };
}

// ---------------------------------------------------------------------------------------------
// the program's decision, modelled

export type Verdict = "pass" | "audit" | "drop";

export interface ModelDecision {
  /** Allowed by the full policy set (audit-mode policies included). */
  full: boolean;
  /** Allowed by the non-audit policies: this decides. */
  enforced: boolean;
  /** pass; audit: passes, but the full set would drop it (counted); drop. */
  verdict: Verdict;
}

/**
 * Pure: the program's decision for a new flow (not a tracked reply), with the kernel's LPM
 * semantics — each lookup sees the longest matching entry only. `protocol` is the IP protocol
 * number; protocols without ports are looked up with port 0, as the program does.
 */
export function lookupModel(
  entries: readonly PolicyMapEntry[],
  endpointFlagBits: number,
  ifindex: number,
  direction: Direction,
  peer: number,
  protocol: number,
  port: number,
): ModelDecision {
  if (
    direction === "ingress" &&
    peer === IDENTITY_HOST &&
    endpointFlagBits & ENDPOINT_FLAG.allowHost
  )
    return { full: true, enforced: true, verdict: "pass" };
  const lookupPort = PORTED_PROTOCOLS.includes(protocol) ? port : 0;
  const longest = (identity: number): number => {
    let best: PolicyMapEntry | undefined;
    for (const e of entries) {
      if (e.ifindex !== ifindex || e.identity !== identity || e.direction !== direction) continue;
      const matches =
        e.protocol === "any" ||
        (e.protocol === protocol &&
          portPrefix(lookupPort, e.portBits) === portPrefix(e.port, e.portBits));
      if (matches && (!best || policyPrefixlen(e) > policyPrefixlen(best))) best = e;
    }
    return best?.flags ?? 0;
  };
  const flags = longest(peer) | longest(IDENTITY_ANY);
  const [isolated, isolatedEnforced] =
    direction === "ingress"
      ? [ENDPOINT_FLAG.ingressIsolated, ENDPOINT_FLAG.ingressIsolatedEnforced]
      : [ENDPOINT_FLAG.egressIsolated, ENDPOINT_FLAG.egressIsolatedEnforced];
  const full = !(endpointFlagBits & isolated) || (flags & POLICY_ALLOW) !== 0;
  const enforced = !(endpointFlagBits & isolatedEnforced) || (flags & POLICY_ALLOW_ENFORCED) !== 0;
  return { full, enforced, verdict: !enforced ? "drop" : full ? "pass" : "audit" };
}

// ---------------------------------------------------------------------------------------------
// ipcache

/**
 * The ipcache as the agent holds it: canonical prefix (canonicalPrefix) → identity, both
 * families in one table. Compared, diffed and digested in this form, parsed to bytes only for
 * the entries a write changes: a cluster's every pod is in it on every node.
 */
export type IpcacheEntries = ReadonlyMap<string, number>;

/** The ipcache a node must hold, with its digest (what ipcache_epoch holds). */
export interface Ipcache {
  entries: IpcacheEntries;
  /** ipcacheEpoch(entries), kept up to date entry by entry by its owner. */
  epoch: number;
}

/** Pure: a prefix ("10.0.0.0/8") or bare address (a host prefix) as the table's key. */
export function canonicalPrefix(text: string): string {
  return formatCidr(
    parseCidr(text.includes("/") ? text : `${text}/${text.includes(":") ? 128 : 32}`),
  );
}

/**
 * Pure: canonical ipcache entries from prefixes or bare addresses (a host route) → identity.
 * Two spellings of one prefix must agree.
 */
export function ipcacheEntries(
  byCidr: ReadonlyMap<string, number> | Readonly<Record<string, number>>,
): Map<string, number> {
  const pairs = byCidr instanceof Map ? [...byCidr] : Object.entries(byCidr);
  const out = new Map<string, number>();
  for (const [text, identity] of pairs) {
    checkU32(identity, `identity of ${text}`);
    const key = canonicalPrefix(text);
    const have = out.get(key);
    if (have !== undefined && have !== identity)
      throw new Error(`ipcache ${key}: identities ${have} and ${identity} disagree`);
    out.set(key, identity);
  }
  return out;
}

/**
 * Pure: one entry's share of the epoch (FNV-1a over the prefix and identity, then murmur3's
 * finaliser): cheap enough for every pod of a cluster, and the epoch is their sum, so an
 * owner keeps it current entry by entry instead of hashing the whole table per change.
 */
export function ipcacheEntryDigest(prefix: string, identity: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < prefix.length; i++) h = Math.imul(h ^ prefix.charCodeAt(i), 0x01000193);
  for (let shift = 0; shift < 32; shift += 8)
    h = Math.imul(h ^ ((identity >>> shift) & 0xff), 0x01000193);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * Pure: the u32 ipcache_epoch holds: the sum (mod 2^32) of every entry's digest, so the same
 * entries in any order give the same number and any change gives another (but for a 1 in 2^32
 * collision). The program decides a tracked connection again when it changes (a peer's new
 * identity); an agent restart with the same entries computes the same number.
 */
export function ipcacheEpoch(entries: IpcacheEntries): number {
  let epoch = 0;
  for (const [prefix, identity] of entries)
    epoch = (epoch + ipcacheEntryDigest(prefix, identity)) >>> 0;
  return epoch;
}

/** Pure: the writes that make an ipcache holding `have` hold `want`. */
export function ipcacheChanges(
  have: IpcacheEntries,
  want: IpcacheEntries,
): { set: [string, number][]; remove: string[] } {
  const set: [string, number][] = [];
  const remove: string[] = [];
  for (const [prefix, identity] of want)
    if (have.get(prefix) !== identity) set.push([prefix, identity]);
  for (const prefix of have.keys()) if (!want.has(prefix)) remove.push(prefix);
  return { set, remove };
}

/** "10.244.1.5/32 identity 256". */
export function describeIpcacheEntry(prefix: string, identity: number): string {
  return `${prefix} identity ${identity}`;
}

export function encodeIpcacheKey(c: Cidr): Buffer {
  const key = Buffer.alloc(IPCACHE_KEY_SIZE[c.family]);
  key.set(u32(c.prefixLength), 0);
  key.set(c.address, 4);
  return key;
}

/** Pure: an ipcache4 or ipcache6 entry as the table's [canonical prefix, identity]. */
export function decodeIpcacheEntry(key: Buffer, value: Buffer): [string, number] {
  const family = key.length === IPCACHE_KEY_SIZE[6] ? 6 : 4;
  const cidr: Cidr = {
    family,
    prefixLength: readU32(key, 0),
    address: Uint8Array.from(key.subarray(4)),
  };
  return [formatCidr(cidr), readU32(value)];
}

// ---------------------------------------------------------------------------------------------
// counters

export interface PolicyAuditCount {
  ifindex: number;
  direction: Direction;
  /** New flows the full policy set (audit-mode policies too) would have dropped. */
  wouldDrop: number;
}

export interface PolicyDropCount {
  localIdentity: number;
  peerIdentity: number;
  direction: Direction;
  /** Packets dropped. */
  packets: number;
}

const directionOf = (n: number): Direction =>
  n === DIRECTION_NUMBER.egress ? "egress" : "ingress";

export function decodePolicyAuditKey(key: Buffer): Omit<PolicyAuditCount, "wouldDrop"> {
  return { ifindex: readU32(key, 0), direction: directionOf(readU32(key, 4)) };
}

export function decodePolicyDropKey(key: Buffer): Omit<PolicyDropCount, "packets"> {
  return {
    localIdentity: readU32(key, 0),
    peerIdentity: readU32(key, 4),
    direction: directionOf(readU32(key, 8)),
  };
}

/** Sums a per-CPU u64 value (one 8-byte slot per possible CPU). */
export function sumPerCpu(value: Buffer): number {
  let sum = 0n;
  for (let off = 0; off + 8 <= value.length; off += 8)
    sum += LE ? value.readBigUInt64LE(off) : value.readBigUInt64BE(off);
  return Number(sum);
}

// ---------------------------------------------------------------------------------------------

function checkU32(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`${what} ${n} is not a u32`);
  return n;
}

function checkPort(n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`port ${n} is not in 0-65535`);
  return n;
}
