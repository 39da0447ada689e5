/**
 * What one node enforces for NetworkPolicy, rendered by its agent from what it watches (pure):
 * the policies, every identity, every node's endpoint slice. Per local pod: both directions in
 * two tiers — `full` (every policy) and `enforced` (without audit-mode policies): a connection
 * the full tier refuses but the enforced tier allows is counted as a would-drop and let through.
 * Plus the address → identity entries every local program looks up (pods cluster-wide, the
 * policies' ipBlock prefixes, this node's own addresses as "host").
 */
import type { PolicyEndpoint } from "../api/networkendpointslice.js";
import { AUDIT_ANNOTATION } from "../api/policyrealization.js";
import type { Ipcache } from "../datapath-driver/maps/policy.js";
import { matchesSelector } from "../reconcilers/shared/selector.js";
import {
  compileEndpoint,
  type EndpointPolicy,
  type IdentityLabels,
  type LocalEndpoint,
  worldIdentities,
} from "./compile.js";
import { IpcacheTable, slicesOf } from "./ipcache.js";
import type { NetworkPolicy } from "./networkpolicy.js";
import { type Protocol, policyTypesOf } from "./verdict.js";

export type PolicyEnforcement = "Default" | "Always" | "Never";

/** CIDR identities are node-local (each agent numbers its own), above every cluster's range. */
export const FIRST_CIDR_IDENTITY = 1 << 24;

export interface EndpointPlan {
  /** namespace/name */
  pod: string;
  ips: string[];
  identity: number;
  tiers: { full: EndpointPolicy; enforced: EndpointPolicy };
  /** Audit-mode policies that isolate this pod, per direction (their would-drops are counted). */
  audit: { ingress: string[]; egress: string[] };
  /** Enforced policies that isolate this pod, per direction: what a drop there is "denied by". */
  isolatedBy: { ingress: string[]; egress: string[] };
}

export interface NodePolicy {
  enforcement: PolicyEnforcement;
  endpoints: EndpointPlan[];
  /** Every address the local programs look up (src/policy/ipcache.ts). */
  ipcache: Ipcache;
  /** The policies selecting a local pod, with the generation and mode rendered (realization). */
  sources: { name: string; generation: number; audit?: boolean }[];
}

export interface NodePolicyInput {
  node: string;
  enforcement: PolicyEnforcement;
  /** This node's own addresses: traffic from them is the "host" identity. */
  nodeIPs: readonly string[];
  policies: readonly NetworkPolicy[];
  /** identity → its labels (every NetworkIdentity). */
  identities: ReadonlyMap<number, IdentityLabels>;
  /** Every endpoint slice: node name → its pods. */
  slices: ReadonlyMap<string, readonly PolicyEndpoint[]>;
  /**
   * The agent's table, kept across renders so that only changed slices are looked at again;
   * without one the ipcache is rendered from scratch.
   */
  ipcache?: IpcacheTable;
}

export const isAuditPolicy = (p: NetworkPolicy) =>
  p.metadata.annotations?.[AUDIT_ANNOTATION] === "true";

const policyName = (p: NetworkPolicy) => `${p.metadata.namespace}/${p.metadata.name}`;

/** Pure: the node's policy datapath. Local pods without an identity yet are not enforced. */
export function renderNodePolicy(input: NodePolicyInput): NodePolicy {
  const world = worldIdentities(input.policies, FIRST_CIDR_IDENTITY);
  const slices = slicesOf(input.slices);
  const ipcache = (input.ipcache ?? new IpcacheTable()).update({
    slices,
    world: world.prefixes,
    nodeIPs: input.nodeIPs,
  });
  // A named port of a peer identity: from the first node (by name) with a pod of it naming some.
  const namedPorts = new Map<number, Record<string, { port: number; protocol: Protocol }>>();
  const naming = [...slices.values()].filter((s) => s.namedPorts.size > 0);
  for (const slice of naming.sort((a, b) => (a.node < b.node ? -1 : 1)))
    for (const [identity, ports] of slice.namedPorts)
      if (!namedPorts.has(identity))
        namedPorts.set(
          identity,
          Object.fromEntries(ports.map((n) => [n.name, { port: n.port, protocol: n.protocol }])),
        );

  const local = input.enforcement === "Never" ? [] : (input.slices.get(input.node) ?? []);
  const enforcedPolicies = input.policies.filter((p) => !isAuditPolicy(p));
  const sources = new Map<string, { generation: number; audit: boolean }>();
  const endpoints: EndpointPlan[] = [];
  for (const e of local) {
    const labels = input.identities.get(e.identity);
    if (!labels) continue; // its identity has not reached this node yet
    const self: LocalEndpoint = {
      ...labels,
      namedPorts: Object.fromEntries(
        (e.namedPorts ?? []).map((n) => [n.name, { port: n.port, protocol: n.protocol }]),
      ),
    };
    const compile = (policies: readonly NetworkPolicy[]) =>
      compileEndpoint(policies, self, input.identities, world, (id) => namedPorts.get(id) ?? {});
    let full = compile(input.policies);
    let enforced = compile(enforcedPolicies);
    if (input.enforcement === "Always") {
      const isolate = (t: EndpointPolicy): EndpointPolicy => ({
        ingress: { ...t.ingress, isolated: true },
        egress: { ...t.egress, isolated: true },
      });
      full = isolate(full);
      enforced = isolate(enforced);
    }
    const selecting = input.policies.filter(
      (p) =>
        p.metadata.namespace === e.namespace && matchesSelector(p.spec.podSelector, labels.labels),
    );
    for (const p of selecting)
      sources.set(policyName(p), {
        generation: p.metadata.generation ?? 0,
        audit: isAuditPolicy(p),
      });
    const isolating = (dir: "Ingress" | "Egress", audit: boolean) =>
      selecting
        .filter((p) => isAuditPolicy(p) === audit && policyTypesOf(p).includes(dir))
        .map(policyName)
        .sort();
    endpoints.push({
      pod: `${e.namespace}/${e.name}`,
      ips: [...e.ips],
      identity: e.identity,
      tiers: { full, enforced },
      audit: { ingress: isolating("Ingress", true), egress: isolating("Egress", true) },
      isolatedBy: { ingress: isolating("Ingress", false), egress: isolating("Egress", false) },
    });
  }
  return {
    enforcement: input.enforcement,
    endpoints: endpoints.sort((a, b) => (a.pod < b.pod ? -1 : 1)),
    ipcache,
    sources: [...sources]
      .map(([name, { generation, audit }]) => ({ name, generation, ...(audit ? { audit } : {}) }))
      .sort((a, b) => (a.name < b.name ? -1 : 1)),
  };
}

/**
 * Pure: per audit-mode policy, the connections it would have dropped on this node, from the
 * datapath's per-pod, per-direction counts. A count goes to every audit policy isolating that
 * pod in that direction (with one audit policy per pod, as a team trying one out has, exact).
 */
export function wouldDropByPolicy(
  plan: NodePolicy,
  counts: ReadonlyMap<string, { ingress: number; egress: number }>,
): { policy: string; count: number }[] {
  const out = new Map<string, number>();
  for (const e of plan.endpoints)
    for (const dir of ["ingress", "egress"] as const)
      for (const policy of e.audit[dir])
        out.set(policy, (out.get(policy) ?? 0) + (counts.get(e.pod)?.[dir] ?? 0));
  return [...out]
    .map(([policy, count]) => ({ policy, count }))
    .sort((a, b) => (a.policy < b.policy ? -1 : 1));
}
