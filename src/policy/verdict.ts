/**
 * Kubernetes NetworkPolicy semantics as one pure function: is this connection allowed, and by
 * which policies? The datapath is compiled to agree with it, and it is checked against an
 * independent implementation (the cyclonus matcher) on generated cases.
 *
 * Choices where the spec leaves room (each documented in docs/networkpolicy.md):
 *   - an ipBlock matches addresses outside the cluster only, never a pod's IP (as Cilium:
 *     cilium/cilium#9209; Calico matches pod IPs);
 *   - a named port resolves against the destination pod's container ports, in both directions.
 */
import { cidrContains, parseCidr } from "../api/cidr.js";
import { matchesSelector } from "../reconcilers/shared/selector.js";
import type { NetworkPolicy, PolicyPeer, PolicyPort } from "./networkpolicy.js";

export type Protocol = "TCP" | "UDP" | "SCTP";

/** One end of a connection: a pod (namespace, labels, its namespace's labels) or an address. */
export type Endpoint =
  | {
      kind: "pod";
      namespace: string;
      labels: Record<string, string>;
      namespaceLabels: Record<string, string>;
      ip: string;
      /** Container ports by name (named ports in policies resolve against these). */
      namedPorts?: Record<string, { port: number; protocol: Protocol }>;
    }
  | { kind: "external"; ip: string };

export interface Connection {
  source: Endpoint;
  destination: Endpoint;
  port: number;
  protocol: Protocol;
}

export interface DirectionVerdict {
  /** Whether this direction lets the connection through. */
  allowed: boolean;
  /** Policies that select the endpoint for this direction (none: not isolated). */
  isolatedBy: string[];
  /** Policies with a rule that allows it. */
  allowedBy: string[];
}

export interface Verdict {
  allowed: boolean;
  egress: DirectionVerdict;
  ingress: DirectionVerdict;
}

/** The policyTypes the API server defaults: Ingress, and Egress when there are egress rules. */
export function policyTypesOf(p: NetworkPolicy): ("Ingress" | "Egress")[] {
  if (p.spec.policyTypes?.length) return p.spec.policyTypes;
  return p.spec.egress?.length ? ["Ingress", "Egress"] : ["Ingress"];
}

const key = (p: NetworkPolicy) => `${p.metadata.namespace}/${p.metadata.name}`;

function selects(p: NetworkPolicy, e: Endpoint): boolean {
  return (
    e.kind === "pod" &&
    e.namespace === p.metadata.namespace &&
    matchesSelector(p.spec.podSelector, e.labels)
  );
}

/** Does a peer of policy p (in its namespace) match the other end of the connection? */
export function peerMatches(p: NetworkPolicy, peer: PolicyPeer, other: Endpoint): boolean {
  if (peer.ipBlock) {
    if (other.kind !== "external") return false;
    if (!cidrContains(parseCidr(peer.ipBlock.cidr), other.ip)) return false;
    return !(peer.ipBlock.except ?? []).some((x) => cidrContains(parseCidr(x), other.ip));
  }
  if (other.kind !== "pod") return false;
  if (peer.namespaceSelector) {
    if (!matchesSelector(peer.namespaceSelector, other.namespaceLabels)) return false;
  } else if (other.namespace !== p.metadata.namespace) return false;
  return matchesSelector(peer.podSelector, other.labels);
}

/** Does a rule's port entry match the connection (named ports on the destination pod)? */
export function portMatches(rulePort: PolicyPort, c: Connection): boolean {
  if ((rulePort.protocol ?? "TCP") !== c.protocol) return false;
  const p = rulePort.port;
  if (p === undefined) return true;
  if (typeof p === "number") {
    const end = rulePort.endPort ?? p;
    return c.port >= p && c.port <= end;
  }
  const d = c.destination;
  const named = d.kind === "pod" ? d.namedPorts?.[p] : undefined;
  return named !== undefined && named.port === c.port && named.protocol === c.protocol;
}

function direction(
  policies: readonly NetworkPolicy[],
  c: Connection,
  dir: "Egress" | "Ingress",
): DirectionVerdict {
  const self = dir === "Egress" ? c.source : c.destination;
  const other = dir === "Egress" ? c.destination : c.source;
  const isolating = policies.filter((p) => policyTypesOf(p).includes(dir) && selects(p, self));
  if (isolating.length === 0) return { allowed: true, isolatedBy: [], allowedBy: [] };
  const allowedBy = isolating
    .filter((p) => {
      const rules =
        dir === "Egress"
          ? (p.spec.egress ?? []).map((r) => ({ peers: r.to, ports: r.ports }))
          : (p.spec.ingress ?? []).map((r) => ({ peers: r.from, ports: r.ports }));
      return rules.some(
        (r) =>
          (!r.peers?.length || r.peers.some((peer) => peerMatches(p, peer, other))) &&
          (!r.ports?.length || r.ports.some((port) => portMatches(port, c))),
      );
    })
    .map(key)
    .sort();
  return { allowed: allowedBy.length > 0, isolatedBy: isolating.map(key).sort(), allowedBy };
}

/** Pure: the verdict on one connection under these policies (all namespaces). */
export function policyVerdict(policies: readonly NetworkPolicy[], c: Connection): Verdict {
  const egress = direction(policies, c, "Egress");
  const ingress = direction(policies, c, "Ingress");
  return { allowed: egress.allowed && ingress.allowed, egress, ingress };
}
