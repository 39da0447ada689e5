/**
 * The operator's half of identities, pure: which label set a pod has, which identity stands for
 * it, and what a node's endpoint slice holds. The writes (one per new label set, one per
 * changed slice) are in src/reconcilers/networkpolicy/.
 */
import type { PolicyEndpoint } from "../api/networkendpointslice.js";
import type { NetworkIdentitySpec } from "../api/networkidentity.js";
import { freeIdentity, identityLabels, labelSetKey, policyPodLabels } from "./identity.js";

/** What the operator knows of a pod (from its slim cache). */
export interface PodFacts {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  nodeName?: string | undefined;
  ips: string[];
  namedPorts: { name: string; port: number; protocol: "TCP" | "UDP" | "SCTP" }[];
  /** Succeeded/Failed pods hold no address any more. */
  terminated?: boolean;
}

/** Pure: the identity spec of a pod, and the key identities are looked up by. */
export function identitySpecOf(
  pod: Pick<PodFacts, "namespace" | "labels">,
  namespaceLabels: Readonly<Record<string, string>>,
): { key: string; spec: NetworkIdentitySpec } {
  const podLabels = policyPodLabels(pod.labels);
  const nsLabels = Object.fromEntries(
    Object.entries(namespaceLabels).sort(([a], [b]) => (a < b ? -1 : 1)),
  );
  return {
    key: labelSetKey(identityLabels(pod.namespace, podLabels, nsLabels)),
    spec: { namespace: pod.namespace, podLabels, namespaceLabels: nsLabels },
  };
}

/** Pure: the number for a new label set; undefined when every number is taken. */
export function allocateIdentity(taken: Iterable<number>): number | undefined {
  return freeIdentity(taken);
}

/** Pure: a node's slice: its running pods that have an address and an identity, sorted. */
export function sliceEndpoints(
  pods: readonly PodFacts[],
  identityOf: (pod: PodFacts) => number | undefined,
): PolicyEndpoint[] {
  const out: PolicyEndpoint[] = [];
  for (const p of pods) {
    if (p.terminated || p.ips.length === 0) continue;
    const identity = identityOf(p);
    if (identity === undefined) continue;
    out.push({
      namespace: p.namespace,
      name: p.name,
      identity,
      ips: [...p.ips],
      ...(p.namedPorts.length
        ? {
            namedPorts: [...p.namedPorts].sort((a, b) => (a.name < b.name ? -1 : 1)),
          }
        : {}),
    });
  }
  return out.sort((a, b) =>
    a.namespace === b.namespace ? (a.name < b.name ? -1 : 1) : a.namespace < b.namespace ? -1 : 1,
  );
}

/** How long an identity no pod uses is kept before it is deleted (a pod may come back). */
export const IDENTITY_GC_GRACE_MS = 5 * 60_000;

/**
 * Pure: what to do with one identity, given whether a pod uses its label set now and since
 * when it has been unused: keep it, delete it, or look again after some time.
 */
export function identityGcDecision(
  used: boolean,
  unusedSince: number | undefined,
  now: number,
  graceMs = IDENTITY_GC_GRACE_MS,
): { action: "keep" } | { action: "delete" } | { action: "wait"; ms: number } {
  if (used) return { action: "keep" };
  const since = unusedSince ?? now;
  const left = since + graceMs - now;
  return left <= 0 ? { action: "delete" } : { action: "wait", ms: left };
}
