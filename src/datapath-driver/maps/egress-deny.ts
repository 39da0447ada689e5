/**
 * The egress_deny (IPv4) and egress_deny6 (IPv6) LPM maps: the one translation from
 * NetworkConfig rules to map entries, their byte layout, and the entries as text for drift.
 *
 * Layouts (bpf/netloom.bpf.c): the (protocol, port) comes before the address, so one trie holds
 * the networks of every port and the program looks up twice (every port, then its own port):
 *   key    struct deny_v4_key { u32 prefixlen (host order); u8 protocol; u8 pad; be16 port;
 *                               u8 addr[4]; }                                         12 bytes
 *          struct deny_v6_key { ...; u8 addr[16]; }                                   24 bytes
 *          prefixlen = DENY_PORT_BITS + the network's prefix length
 *   value  u8 (1)
 *   egress_skip  ARRAY [0] → u32 EGRESS_SKIP bits: the lookups that would find nothing, which
 *          the programs skip (a 10,000-entry deny list of ports alone costs one LPM lookup a
 *          packet, not two, and no strict network none). 0: every lookup runs.
 */
import { type Cidr, formatCidr, parseCidr } from "../../api/cidr.js";
import type { EgressDenyRule } from "../../api/networkconfig.js";
import { LE } from "./bytes.js";

export const DENY_PORT_BITS = 32;
export const DENY_KEY_SIZE = { 4: 12, 6: 24 } as const;
/** max_entries of both maps: the API's bound, 1024 rules × 16 ports × 2 protocols. */
export const DENY_MAX_ENTRIES = 32768;
export const DENY_MAP = { 4: "egress_deny", 6: "egress_deny6" } as const;
export const EGRESS_SKIP_MAP = "egress_skip";
/** enum egress_skip in bpf/netloom.bpf.c. */
export const EGRESS_SKIP = {
  deny4EveryPort: 1,
  deny4Ports: 2,
  deny6EveryPort: 4,
  deny6Ports: 8,
  strict: 16,
  podClass: 32,
} as const;
/** The bits syncEgressDeny owns (syncStrictCidrs and syncPodClasses own one each). */
export const DENY_SKIP_BITS = 1 | 2 | 4 | 8;

/** Pure: the skip bits of the deny lookups these entries leave empty. */
export function denySkipBits(entries: readonly DenyEntry[]): number {
  let present = 0;
  for (const e of entries) {
    const everyPort = e.protocol === EVERY_PORT;
    if (e.cidr.family === 4)
      present |= everyPort ? EGRESS_SKIP.deny4EveryPort : EGRESS_SKIP.deny4Ports;
    else present |= everyPort ? EGRESS_SKIP.deny6EveryPort : EGRESS_SKIP.deny6Ports;
  }
  return DENY_SKIP_BITS & ~present;
}

/** Pure: egress_skip for a node's deny entries, strict networks and capped pods (pod_class). */
export function egressSkipBits(
  entries: readonly DenyEntry[],
  strictCidrs: readonly string[],
  podClasses: number,
): number {
  return (
    denySkipBits(entries) |
    (strictCidrs.length === 0 ? EGRESS_SKIP.strict : 0) |
    (podClasses === 0 ? EGRESS_SKIP.podClass : 0)
  );
}

/** "every-port IPv4 deny, strict mode": the lookups a skip value leaves out, for drift. */
export function describeEgressSkip(bits: number): string {
  const names: [number, string][] = [
    [EGRESS_SKIP.deny4EveryPort, "every-port IPv4 deny"],
    [EGRESS_SKIP.deny4Ports, "per-port IPv4 deny"],
    [EGRESS_SKIP.deny6EveryPort, "every-port IPv6 deny"],
    [EGRESS_SKIP.deny6Ports, "per-port IPv6 deny"],
    [EGRESS_SKIP.strict, "strict mode"],
    [EGRESS_SKIP.podClass, "pod rate classes"],
  ];
  const skipped = names.filter(([bit]) => bits & bit).map(([, name]) => name);
  return skipped.length ? skipped.join(", ") : "none";
}

/** strict_cidrs (IPv4 only) keeps the plain LPM key: prefixlen, then the address. */
export const LPM_V4_KEY_SIZE = 8;

export const PROTO_NUMBER = { TCP: 6, UDP: 17 } as const;
export type Protocol = keyof typeof PROTO_NUMBER;
/** The protocol of an entry that denies every port (its port is 0 too). */
export const EVERY_PORT = 0;

/** One map entry: a network and the (protocol, port) denied towards it, or every port. */
export interface DenyEntry {
  cidr: Cidr;
  /** PROTO_NUMBER value, or EVERY_PORT. */
  protocol: number;
  /** 1–65535, or 0 with EVERY_PORT. */
  port: number;
}

export type DenyRule = Pick<EgressDenyRule, "cidr" | "ports">;

/**
 * Pure: the entries the maps must hold for these rules, one per (network, protocol, port); a
 * rule without ports is one every-port entry, a port without protocol means TCP and UDP.
 * Duplicates collapse. No merging across networks is needed: the program looks up the
 * every-port entries and the packet's own (protocol, port), and a deny is a deny.
 */
export function egressDenyEntries(rules: readonly DenyRule[]): DenyEntry[] {
  const entries = new Map<string, DenyEntry>();
  const add = (e: DenyEntry) => entries.set(describeDenyEntry(e), e);
  for (const r of rules) {
    const cidr = parseCidr(r.cidr);
    if (!r.ports?.length) add({ cidr, protocol: EVERY_PORT, port: 0 });
    for (const p of r.ports ?? []) {
      if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535)
        throw new Error(`egress deny ${r.cidr}: port ${p.port} is not in 1-65535`);
      for (const proto of p.protocol ? [p.protocol] : (["TCP", "UDP"] as const))
        add({ cidr, protocol: PROTO_NUMBER[proto], port: p.port });
    }
  }
  return [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, e]) => e);
}

function protoName(n: number): string {
  if (n === PROTO_NUMBER.TCP) return "TCP";
  if (n === PROTO_NUMBER.UDP) return "UDP";
  return `proto${n}`;
}

/** An entry as text, the vocabulary of drift: "10.0.0.0/8" (every port) or "10.0.0.0/8 TCP/22". */
export function describeDenyEntry(e: DenyEntry): string {
  const net = formatCidr(e.cidr);
  return e.protocol === EVERY_PORT ? net : `${net} ${protoName(e.protocol)}/${e.port}`;
}

export function describeDenyEntries(entries: readonly DenyEntry[]): string[] {
  return entries.map(describeDenyEntry).sort();
}

export function encodeDenyKey(e: DenyEntry): Buffer {
  const key = Buffer.alloc(DENY_KEY_SIZE[e.cidr.family]);
  const prefixlen = DENY_PORT_BITS + e.cidr.prefixLength;
  if (LE) key.writeUInt32LE(prefixlen, 0);
  else key.writeUInt32BE(prefixlen, 0);
  key[4] = e.protocol;
  key.writeUInt16BE(e.port, 6);
  Buffer.from(e.cidr.address).copy(key, 8);
  return key;
}

export function decodeDenyKey(key: Buffer): DenyEntry {
  const family = key.length === DENY_KEY_SIZE[6] ? 6 : 4;
  const prefixlen = LE ? key.readUInt32LE(0) : key.readUInt32BE(0);
  return {
    cidr: {
      family,
      prefixLength: prefixlen - DENY_PORT_BITS,
      address: Uint8Array.from(key.subarray(8)),
    },
    protocol: key[4] ?? 0,
    port: key.readUInt16BE(6),
  };
}

/** strict_cidrs' key. */
export function encodeLpmV4Key(c: Cidr): Buffer {
  const key = Buffer.alloc(LPM_V4_KEY_SIZE);
  if (LE) key.writeUInt32LE(c.prefixLength, 0);
  else key.writeUInt32BE(c.prefixLength, 0);
  Buffer.from(c.address).copy(key, 4);
  return key;
}

export function decodeLpmV4Key(key: Buffer): Cidr {
  return {
    family: 4,
    prefixLength: LE ? key.readUInt32LE(0) : key.readUInt32BE(0),
    address: Uint8Array.from(key.subarray(4)),
  };
}
