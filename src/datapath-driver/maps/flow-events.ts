/**
 * The flow events of every program (bpf/netloom.bpf.c, "Flow events"): the record layout and
 * its codec, the enums as the program numbers them, and the lost-events counter.
 *
 * Layout of struct flow_event (64 bytes, host order unless said; layout.test.ts checks it
 * against the object's BTF):
 *
 *   0  u64  time_ns          bpf_ktime_get_ns (CLOCK_MONOTONIC)
 *   8  u8   saddr[16]        IPv4 in the first 4 bytes, as the connection was first seen
 *   24 u8   daddr[16]
 *   40 be16 sport            network order (ICMP echo: the echo id)
 *   42 be16 dport
 *   44 u8   protocol
 *   45 u8   family           4 or 6
 *   46 u8   kind             FLOW_KIND
 *   47 u8   verdict          FLOW_VERDICT (Hubble's numbers)
 *   48 u8   reason           FLOW_REASON
 *   49 u8   direction        0 ingress, 1 egress (relative to the endpoint)
 *   50 u8   l4_flags         TCP flags, or the ICMP type
 *   51 u8   pad
 *   52 u32  ifindex
 *   56 u32  local_identity   the endpoint's
 *   60 u32  peer_identity    the other end's
 *
 *   flow_events       RINGBUF of those records (FLOW_RING_BYTES)
 *   flow_events_lost  PERCPU_ARRAY, key 0: records that found the ring full
 */
import { LE } from "./bytes.js";
import type { Direction } from "./policy.js";

export const FLOW_EVENTS_MAP = "flow_events";
export const FLOW_EVENTS_LOST_MAP = "flow_events_lost";
export const FLOW_EVENT_SIZE = 64;
/** max_entries of flow_events: its data size in bytes (a power of 2, page-aligned). */
export const FLOW_RING_BYTES = 256 * 1024;
/** Each record in the ring carries an 8-byte header; a full ring holds this many. */
export const FLOW_RING_RECORDS = Math.floor(FLOW_RING_BYTES / (FLOW_EVENT_SIZE + 8));

export const FLOW_EVENT_OFFSETS = {
  time_ns: 0,
  saddr: 8,
  daddr: 24,
  sport: 40,
  dport: 42,
  protocol: 44,
  family: 45,
  kind: 46,
  verdict: 47,
  reason: 48,
  direction: 49,
  l4_flags: 50,
  pad: 51,
  ifindex: 52,
  local_identity: 56,
  peer_identity: 60,
} as const;

export type FlowKind = "drop" | "new" | "end";
export type FlowVerdict = "FORWARDED" | "DROPPED" | "AUDIT";
export type FlowReason = "policy_denied" | "egress_denied" | "unencrypted";

/** enum flow_kind. */
export const FLOW_KIND: Readonly<Record<FlowKind, number>> = { drop: 1, new: 2, end: 3 };
/** enum flow_verdict: Hubble's flow.Verdict numbers. */
export const FLOW_VERDICT: Readonly<Record<FlowVerdict, number>> = {
  FORWARDED: 1,
  DROPPED: 2,
  AUDIT: 4,
};
/** enum flow_reason (0: none). */
export const FLOW_REASON: Readonly<Record<FlowReason, number>> = {
  policy_denied: 1,
  egress_denied: 2,
  unencrypted: 3,
};

/** One record as the program wrote it, with the numbers named. */
export interface FlowEvent extends FlowEventHead {
  family: 4 | 6;
  source: string;
  destination: string;
  sourcePort: number;
  destinationPort: number;
  protocol: number;
  /** TCP flags of the packet, or its ICMP type. */
  l4Flags: number;
  ifindex: number;
  localIdentity: number;
  peerIdentity: number;
}

const byNumber = <K extends string>(m: Readonly<Record<K, number>>): Map<number, K> =>
  new Map(Object.entries(m).map(([k, v]) => [v as number, k as K]));
const KIND_OF = byNumber(FLOW_KIND);
const VERDICT_OF = byNumber(FLOW_VERDICT);
const REASON_OF = byNumber(FLOW_REASON);

/** Pure: an address in its canonical text (RFC 5952 for IPv6: the longest zero run as "::"). */
export function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  let best = { at: -1, len: 1 };
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.len) best = { at: i, len: j - i };
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.at < 0) return hex.join(":");
  return `${hex.slice(0, best.at).join(":")}::${hex.slice(best.at + best.len).join(":")}`;
}

const u32At = (b: Buffer, o: number) => (LE ? b.readUInt32LE(o) : b.readUInt32BE(o));
const u64At = (b: Buffer, o: number) => (LE ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o));

/** The few fields the agent needs of every record at once (the rest is decoded when read). */
export interface FlowEventHead {
  monotonicNs: bigint;
  kind: FlowKind;
  verdict: FlowVerdict;
  reason?: FlowReason;
  direction: Direction;
}

/**
 * Pure: a record's head, or why the record is not one; a record whose head reads decodes
 * (decodeFlowEvent checks the same).
 */
export function peekFlowEvent(
  b: Buffer,
): { ok: true; head: FlowEventHead } | { ok: false; error: string } {
  if (b.length !== FLOW_EVENT_SIZE)
    return { ok: false, error: `a flow event is ${FLOW_EVENT_SIZE} bytes, not ${b.length}` };
  const o = FLOW_EVENT_OFFSETS;
  const family = b[o.family];
  if (family !== 4 && family !== 6) return { ok: false, error: `family ${family}` };
  const kind = KIND_OF.get(b[o.kind] ?? 0);
  if (!kind) return { ok: false, error: `kind ${b[o.kind]}` };
  const verdict = VERDICT_OF.get(b[o.verdict] ?? 0);
  if (!verdict) return { ok: false, error: `verdict ${b[o.verdict]}` };
  const reasonNumber = b[o.reason] ?? 0;
  const reason = REASON_OF.get(reasonNumber);
  if (reasonNumber !== 0 && !reason) return { ok: false, error: `reason ${reasonNumber}` };
  const direction = b[o.direction];
  if (direction !== 0 && direction !== 1) return { ok: false, error: `direction ${direction}` };
  return {
    ok: true,
    head: {
      monotonicNs: u64At(b, o.time_ns),
      kind,
      verdict,
      ...(reason ? { reason } : {}),
      direction: direction === 0 ? "ingress" : "egress",
    },
  };
}

/** Pure: a record, or why it is not one (its size or an unknown enum value). */
export function decodeFlowEvent(
  b: Buffer,
): { ok: true; event: FlowEvent } | { ok: false; error: string } {
  const p = peekFlowEvent(b);
  if (!p.ok) return p;
  const o = FLOW_EVENT_OFFSETS;
  const family = b[o.family] === 4 ? 4 : 6;
  const addr = (at: number) => formatAddress(b.subarray(at, at + (family === 4 ? 4 : 16)));
  return {
    ok: true,
    event: {
      ...p.head,
      family,
      source: addr(o.saddr),
      destination: addr(o.daddr),
      sourcePort: b.readUInt16BE(o.sport),
      destinationPort: b.readUInt16BE(o.dport),
      protocol: b[o.protocol] ?? 0,
      l4Flags: b[o.l4_flags] ?? 0,
      ifindex: u32At(b, o.ifindex),
      localIdentity: u32At(b, o.local_identity),
      peerIdentity: u32At(b, o.peer_identity),
    },
  };
}

/** Pure: the record the program would write for e (tests, and the codec's round trip). */
export function encodeFlowEvent(e: FlowEvent, addrBytes: (ip: string) => Uint8Array): Buffer {
  const b = Buffer.alloc(FLOW_EVENT_SIZE);
  const o = FLOW_EVENT_OFFSETS;
  if (LE) b.writeBigUInt64LE(e.monotonicNs, o.time_ns);
  else b.writeBigUInt64BE(e.monotonicNs, o.time_ns);
  b.set(addrBytes(e.source), o.saddr);
  b.set(addrBytes(e.destination), o.daddr);
  b.writeUInt16BE(e.sourcePort, o.sport);
  b.writeUInt16BE(e.destinationPort, o.dport);
  b[o.protocol] = e.protocol;
  b[o.family] = e.family;
  b[o.kind] = FLOW_KIND[e.kind];
  b[o.verdict] = FLOW_VERDICT[e.verdict];
  b[o.reason] = e.reason ? FLOW_REASON[e.reason] : 0;
  b[o.direction] = e.direction === "ingress" ? 0 : 1;
  b[o.l4_flags] = e.l4Flags;
  const u32 = (v: number, at: number) => (LE ? b.writeUInt32LE(v, at) : b.writeUInt32BE(v, at));
  u32(e.ifindex, o.ifindex);
  u32(e.localIdentity, o.local_identity);
  u32(e.peerIdentity, o.peer_identity);
  return b;
}
