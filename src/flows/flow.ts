/**
 * The flow record the agent serves (one NDJSON line per event): Hubble's GetFlowsResponse and
 * flow.Flow field names where they apply, so `jq` paths known from `hubble observe -o json`
 * work (.flow.verdict, .flow.IP.source, .flow.l4.TCP.destination_port,
 * .flow.source.pod_name, .flow.drop_reason_desc, .flow.traffic_direction, ...). Netloom's own
 * additions: event_kind, and *_denied_by naming NetworkConfigs and EncryptionProfiles too.
 * docs/flows.md is the reference.
 */
import type {
  FlowEvent,
  FlowKind,
  FlowReason,
  FlowVerdict,
} from "../datapath-driver/maps/flow-events.js";
import { IP_PROTOCOL } from "../datapath-driver/maps/policy.js";
import type { IdentityLabels } from "../policy/compile.js";
import { RESERVED } from "../policy/identity.js";
import { FIRST_CIDR_IDENTITY } from "../policy/node.js";
import type { FlowContext, PodRef } from "./context.js";

/** drop_reason_desc: Hubble's enum style, Netloom's reasons. */
export const DROP_REASON_DESC: Readonly<Record<FlowReason, string>> = {
  policy_denied: "POLICY_DENIED",
  egress_denied: "EGRESS_DENIED",
  unencrypted: "UNENCRYPTED",
};

export interface FlowEndpoint {
  /** The numeric identity (reserved: host 1, world 2; node-local CIDR identities ≥ 2^24). */
  identity: number;
  namespace?: string;
  pod_name?: string;
  /** "k8s:key=value" per pod label, "k8s:io.kubernetes.pod.namespace=NS", or "reserved:NAME". */
  labels: string[];
  /** The pod's workload as the metrics name it (its name without the generated suffixes). */
  workloads?: { name: string }[];
}

export interface PolicyRef {
  kind: "NetworkPolicy" | "NetworkConfig" | "EncryptionProfile";
  namespace?: string;
  name: string;
}

export interface TcpFlags {
  FIN?: true;
  SYN?: true;
  RST?: true;
  PSH?: true;
  ACK?: true;
  URG?: true;
  ECE?: true;
  CWR?: true;
}

export interface Flow {
  /** RFC 3339 with nanoseconds, UTC. */
  time: string;
  verdict: FlowVerdict;
  /** Dropped flows; on AUDIT flows what would have dropped them. */
  drop_reason_desc?: string;
  IP: { source: string; destination: string; ipVersion: "IPv4" | "IPv6" };
  l4?:
    | { TCP: { source_port: number; destination_port: number; flags?: TcpFlags } }
    | { UDP: { source_port: number; destination_port: number } }
    | { SCTP: { source_port: number; destination_port: number } }
    | { ICMPv4: { type: number } }
    | { ICMPv6: { type: number } };
  source: FlowEndpoint;
  destination: FlowEndpoint;
  Type: "L3_L4";
  node_name: string;
  traffic_direction: "INGRESS" | "EGRESS";
  /** Always false: every record names the connection as it was first seen. */
  is_reply: false;
  interface: { index: number; name?: string };
  /** drop: a dropped packet; new: a connection's first packet; end: its first FIN or RST. */
  event_kind: FlowKind;
  ingress_denied_by?: PolicyRef[];
  egress_denied_by?: PolicyRef[];
}

/** One NDJSON line of GET /v1/flows. */
export type FlowLine =
  | { flow: Flow; node_name: string; time: string }
  | {
      lost_events: { source: LostEventSource; num_events_lost: number };
      node_name: string;
      time: string;
    };

/** BPF_RING_BUFFER: the kernel found the ring full; CLIENT_STREAM: this client read too slowly. */
export type LostEventSource = "BPF_RING_BUFFER" | "CLIENT_STREAM";

/** Pure: nanoseconds since the epoch as RFC 3339 with nine fractional digits. */
export function formatTimeNs(ns: bigint): string {
  const ms = ns / 1_000_000n;
  const iso = new Date(Number(ms)).toISOString(); // 2026-01-02T03:04:05.678Z
  const fraction = (ns % 1_000_000_000n).toString().padStart(9, "0");
  return `${iso.slice(0, 19)}.${fraction}Z`;
}

/**
 * Pure: RFC 3339 (any number of fractional digits, Z or an offset) as nanoseconds since the
 * epoch; undefined when it is not one.
 */
export function parseTimeNs(text: string): bigint | undefined {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/i.exec(
    text,
  );
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) return undefined;
  return BigInt(ms) * 1_000_000n + BigInt((m[2] ?? "").padEnd(9, "0"));
}

/** The characters Kubernetes uses for generated name suffixes (rand.SafeEncodeString). */
const SAFE = "[bcdfghjklmnpqrstvwxz2456789]";
const DEPLOYMENT_POD = new RegExp(`^(.+)-${SAFE}{6,10}-${SAFE}{5}$`);
const GENERATED_POD = new RegExp(`^(.+)-${SAFE}{5}$`);
const ORDINAL_POD = /^(.+)-\d+$/;

/**
 * Pure: a pod's workload name, from its own name: without a Deployment's template hash and
 * random suffix (web-7d9f8c6b5d-x2x4k → web), a DaemonSet's or Job's suffix (agent-x2x4k →
 * agent), a StatefulSet's ordinal (db-0 → db). Owner references are not at hand on the node;
 * a bare pod named like one of those is taken for its "workload".
 */
export function workloadOf(podName: string): string {
  return (
    DEPLOYMENT_POD.exec(podName)?.[1] ??
    GENERATED_POD.exec(podName)?.[1] ??
    ORDINAL_POD.exec(podName)?.[1] ??
    podName
  );
}

const RESERVED_NAME = new Map<number, string>([
  [RESERVED.host, "host"],
  [RESERVED.world, "world"],
  [RESERVED.unmanaged, "unmanaged"],
  [RESERVED.remoteNode, "remote-node"],
]);

/** Pure: what the metrics call an endpoint: "namespace/workload", or a reserved name. */
export function workloadLabel(e: FlowEndpoint): string {
  const w = e.workloads?.[0]?.name;
  if (w && e.namespace) return `${e.namespace}/${w}`;
  if (e.identity >= FIRST_CIDR_IDENTITY) return "world";
  return RESERVED_NAME.get(e.identity) ?? (e.namespace ? `${e.namespace}/unknown` : "unknown");
}

/** Label lists per identity's labels (the directory's objects live until the next render). */
const labelCache = new WeakMap<IdentityLabels, string[]>();

function labelsOf(identity: number, labels: IdentityLabels | undefined): string[] {
  if (labels) {
    let out = labelCache.get(labels);
    if (!out) {
      out = podLabels(labels);
      labelCache.set(labels, out);
    }
    return out;
  }
  if (identity >= FIRST_CIDR_IDENTITY) return ["reserved:world"];
  const reserved = RESERVED_NAME.get(identity);
  return reserved ? [`reserved:${reserved}`] : [];
}

function podLabels(labels: IdentityLabels): string[] {
  return [
    ...Object.entries(labels.labels)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `k8s:${k}=${v}`),
    `k8s:io.kubernetes.pod.namespace=${labels.namespace}`,
  ];
}

const workloadCache = new WeakMap<PodRef, string>();

function podWorkload(pod: PodRef): string {
  let w = workloadCache.get(pod);
  if (w === undefined) {
    w = workloadOf(pod.name);
    workloadCache.set(pod, w);
  }
  return w;
}

function endpoint(identity: number, pod: PodRef | undefined, ctx: FlowContext): FlowEndpoint {
  const labels = ctx.directory.identities.get(identity);
  return {
    identity,
    ...(pod ? { namespace: pod.namespace, pod_name: pod.name } : {}),
    labels: labelsOf(identity, labels),
    ...(pod ? { workloads: [{ name: podWorkload(pod) }] } : {}),
  };
}

/** Events carry canonical addresses (formatAddress), the directory's keys. */
const podByAddress = (ctx: FlowContext, ip: string): PodRef | undefined => ctx.directory.podAt(ip);

const TCP_FLAG_BITS: readonly [keyof TcpFlags, number][] = [
  ["FIN", 0x01],
  ["SYN", 0x02],
  ["RST", 0x04],
  ["PSH", 0x08],
  ["ACK", 0x10],
  ["URG", 0x20],
  ["ECE", 0x40],
  ["CWR", 0x80],
];

function l4Of(e: FlowEvent): Flow["l4"] {
  const ports = { source_port: e.sourcePort, destination_port: e.destinationPort };
  switch (e.protocol) {
    case IP_PROTOCOL.TCP: {
      const flags: TcpFlags = {};
      for (const [name, bit] of TCP_FLAG_BITS) if (e.l4Flags & bit) flags[name] = true;
      return { TCP: { ...ports, ...(e.l4Flags ? { flags } : {}) } };
    }
    case IP_PROTOCOL.UDP:
      return { UDP: ports };
    case IP_PROTOCOL.SCTP:
      return { SCTP: ports };
    case IP_PROTOCOL.ICMP:
      return { ICMPv4: { type: e.l4Flags } };
    case IP_PROTOCOL.ICMPV6:
      return { ICMPv6: { type: e.l4Flags } };
    default:
      return undefined;
  }
}

/** Pure: the policies a drop (or an audit-mode would-drop) is denied by, as far as known. */
function deniedBy(e: FlowEvent, localPod: string | undefined, ctx: FlowContext): PolicyRef[] {
  if (e.reason === "egress_denied")
    return ctx.sources.networkConfig
      ? [{ kind: "NetworkConfig", name: ctx.sources.networkConfig }]
      : [];
  if (e.reason === "unencrypted")
    return ctx.sources.encryptionProfile
      ? [{ kind: "EncryptionProfile", name: ctx.sources.encryptionProfile }]
      : [];
  if (e.reason !== "policy_denied" || !localPod) return [];
  const plan = ctx.endpoints.get(localPod);
  const names = e.verdict === "AUDIT" ? plan?.audit[e.direction] : plan?.isolatedBy[e.direction];
  return (names ?? []).map((n) => {
    const slash = n.indexOf("/");
    return { kind: "NetworkPolicy", namespace: n.slice(0, slash), name: n.slice(slash + 1) };
  });
}

/**
 * Pure: an event as a flow record. The local end is the pod behind the event's interface (the
 * pod programs) or, on a native device, the pod at the source address; the other end is named
 * by its address. timeNs is the event's wall-clock time.
 */
export function renderFlow(e: FlowEvent, ctx: FlowContext, timeNs: bigint): Flow {
  const egress = e.direction === "egress";
  const localAddress = egress ? e.source : e.destination;
  const peerAddress = egress ? e.destination : e.source;
  const localPod = ctx.interfaces.get(e.ifindex) ?? podByAddress(ctx, localAddress);
  const local = endpoint(e.localIdentity, localPod, ctx);
  const peer = endpoint(e.peerIdentity, podByAddress(ctx, peerAddress), ctx);
  const l4 = l4Of(e);
  const ifname = ctx.interfaceName(e.ifindex);
  const denied = deniedBy(e, localPod ? `${localPod.namespace}/${localPod.name}` : undefined, ctx);
  return {
    time: formatTimeNs(timeNs),
    verdict: e.verdict,
    ...(e.reason ? { drop_reason_desc: DROP_REASON_DESC[e.reason] } : {}),
    IP: {
      source: e.source,
      destination: e.destination,
      ipVersion: e.family === 4 ? "IPv4" : "IPv6",
    },
    ...(l4 ? { l4 } : {}),
    source: egress ? local : peer,
    destination: egress ? peer : local,
    Type: "L3_L4",
    node_name: ctx.node,
    traffic_direction: egress ? "EGRESS" : "INGRESS",
    is_reply: false,
    interface: { index: e.ifindex, ...(ifname ? { name: ifname } : {}) },
    event_kind: e.kind,
    ...(denied.length ? { [egress ? "egress_denied_by" : "ingress_denied_by"]: denied } : {}),
  };
}
