/**
 * The egress_deny (IPv4) and egress_deny6 (IPv6) LPM maps: the one translation from
 * NetworkConfig rules to map entries, their byte layout, and the entries as text for drift.
 *
 * Layouts (bpf/netloom.bpf.c):
 *   key    struct lpm_v4_key { u32 prefixlen (host order); u8 addr[4]; }          8 bytes
 *          struct lpm_v6_key { u32 prefixlen (host order); u8 addr[16]; }        20 bytes
 *   value  struct deny_value { u8 all_ports; u8 nports; u16 pad;
 *                              struct { u8 protocol; u8 pad; be16 port; } ports[16]; }
 */
import { type Cidr, formatCidr, parseCidr } from "../../api/cidr.js";
import type { EgressDenyRule } from "../../api/networkconfig.js";
import { LE } from "./bytes.js";

export const DENY_MAX_PORTS = 16;
export const DENY_VALUE_SIZE = 4 + 4 * DENY_MAX_PORTS;
export const LPM_KEY_SIZE = { 4: 8, 6: 20 } as const;
export const DENY_MAP = { 4: "egress_deny", 6: "egress_deny6" } as const;

export const PROTO_NUMBER = { TCP: 6, UDP: 17 } as const;
export type Protocol = keyof typeof PROTO_NUMBER;

/** One map entry: a network and what is denied towards it. */
export interface DenyEntry {
  cidr: Cidr;
  allPorts: boolean;
  /** (protocol number, port) pairs, sorted; empty when allPorts. */
  ports: [number, number][];
}

export type DenyRule = Pick<EgressDenyRule, "cidr" | "ports">;

function contains(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || outer.prefixLength > inner.prefixLength) return false;
  for (let bit = 0; bit < outer.prefixLength; bit++) {
    const mask = 0x80 >> (bit & 7);
    if ((outer.address[bit >> 3]! & mask) !== (inner.address[bit >> 3]! & mask)) return false;
  }
  return true;
}

/**
 * Pure: the entries the maps must hold for these rules. Rules for the same network merge (an
 * all-ports rule wins; a port without protocol means TCP and UDP). Because the kernel's LPM
 * lookup returns only the longest matching prefix, an entry also carries everything a shorter
 * covering entry denies. Throws, naming the network, when an entry needs more port slots than
 * the map value has.
 */
export function egressDenyEntries(rules: readonly DenyRule[]): DenyEntry[] {
  const byNet = new Map<string, { cidr: Cidr; allPorts: boolean; ports: Set<string> }>();
  for (const r of rules) {
    const cidr = parseCidr(r.cidr);
    const k = formatCidr(cidr);
    const e = byNet.get(k) ?? { cidr, allPorts: false, ports: new Set<string>() };
    byNet.set(k, e);
    if (!r.ports?.length) e.allPorts = true;
    for (const p of r.ports ?? []) {
      if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535)
        throw new Error(`egress deny ${r.cidr}: port ${p.port} is not in 1-65535`);
      for (const proto of p.protocol ? [p.protocol] : (["TCP", "UDP"] as const))
        e.ports.add(`${PROTO_NUMBER[proto]}/${p.port}`);
    }
  }
  const nets = [...byNet.values()];
  return nets
    .map((e) => {
      let allPorts = e.allPorts;
      const ports = new Set(e.ports);
      for (const outer of nets) {
        if (outer === e || !contains(outer.cidr, e.cidr)) continue;
        allPorts ||= outer.allPorts;
        for (const p of outer.ports) ports.add(p);
      }
      const pairs = allPorts
        ? []
        : [...ports]
            .map((p) => p.split("/").map(Number) as [number, number])
            .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      if (pairs.length > DENY_MAX_PORTS)
        throw new Error(
          `egress deny ${formatCidr(e.cidr)}: ${pairs.length} (protocol, port) pairs after merging the rules that cover it; the map holds at most ${DENY_MAX_PORTS} per network`,
        );
      return { cidr: e.cidr, allPorts, ports: pairs };
    })
    .sort((a, b) => formatCidr(a.cidr).localeCompare(formatCidr(b.cidr)));
}

function protoName(n: number): string {
  if (n === PROTO_NUMBER.TCP) return "TCP";
  if (n === PROTO_NUMBER.UDP) return "UDP";
  return `proto${n}`;
}

/** The entries as text, the vocabulary of drift: "10.0.0.0/8" (all ports) or "10.0.0.0/8 TCP/22". */
export function describeDenyEntries(entries: readonly DenyEntry[]): string[] {
  return entries
    .flatMap((e) => {
      const net = formatCidr(e.cidr);
      return e.allPorts
        ? [net]
        : e.ports.map(([proto, port]) => `${net} ${protoName(proto)}/${port}`);
    })
    .sort();
}

export function encodeLpmKey(c: Cidr): Buffer {
  const key = Buffer.alloc(LPM_KEY_SIZE[c.family]);
  if (LE) key.writeUInt32LE(c.prefixLength, 0);
  else key.writeUInt32BE(c.prefixLength, 0);
  Buffer.from(c.address).copy(key, 4);
  return key;
}

export function decodeLpmKey(key: Buffer): Cidr {
  const family = key.length === LPM_KEY_SIZE[6] ? 6 : 4;
  return {
    family,
    prefixLength: LE ? key.readUInt32LE(0) : key.readUInt32BE(0),
    address: Uint8Array.from(key.subarray(4)),
  };
}

export function encodeDenyValue(e: DenyEntry): Buffer {
  const v = Buffer.alloc(DENY_VALUE_SIZE);
  if (e.allPorts) {
    v[0] = 1;
    return v;
  }
  v[1] = e.ports.length;
  e.ports.forEach(([proto, port], i) => {
    v[4 + 4 * i] = proto;
    v.writeUInt16BE(port, 4 + 4 * i + 2);
  });
  return v;
}

export function decodeDenyEntry(key: Buffer, value: Buffer): DenyEntry {
  const cidr = decodeLpmKey(key);
  if (value[0]) return { cidr, allPorts: true, ports: [] };
  const n = Math.min(value[1] ?? 0, DENY_MAX_PORTS);
  const ports: [number, number][] = [];
  for (let i = 0; i < n; i++)
    ports.push([value[4 + 4 * i] ?? 0, value.readUInt16BE(4 + 4 * i + 2)]);
  return { cidr, allPorts: false, ports };
}
