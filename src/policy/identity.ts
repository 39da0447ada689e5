/**
 * Security identities, as Cilium has them: one number per distinct set of policy-relevant
 * labels (a pod's own and its namespace's), allocated once cluster-wide and kept across pod
 * restarts and IP changes, so that a policy map keyed by identity changes only when a new
 * label set appears — never per pod. Pure: the label set, the reserved numbers and the choice
 * of a free number; the writes are the operator's.
 */
import { createHash } from "node:crypto";

/** Reserved identities (Cilium's numbering), below the first allocated one. */
export const RESERVED = { host: 1, world: 2, unmanaged: 3, remoteNode: 6 } as const;
/** The first number handed to a label set; everything below is reserved. */
export const FIRST_ALLOCATED = 256;
/** Cluster-local numbers fit 16 bits; bits 16–23 carry the cluster ID (as Cilium's). */
export const LOCAL_MAX = 0xffff;

/** Labels that change per pod instance or rollout and would make every pod its own identity. */
const IGNORED_POD_LABELS = [
  "pod-template-hash",
  "controller-revision-hash",
  "pod-template-generation",
  "statefulset.kubernetes.io/pod-name",
  "apps.kubernetes.io/pod-index",
  "batch.kubernetes.io/controller-uid",
  "batch.kubernetes.io/job-name",
  "controller-uid",
  "job-name",
];

/** Pure: a pod's labels without the per-instance ones. */
export function policyPodLabels(
  podLabels: Readonly<Record<string, string>>,
): Record<string, string> {
  return Object.fromEntries(
    Object.entries(podLabels)
      .filter(([k]) => !IGNORED_POD_LABELS.includes(k))
      .sort(([a], [b]) => (a < b ? -1 : 1)),
  );
}

/**
 * Pure: the policy-relevant labels of a pod, namespaced so that pod and namespace labels with
 * the same key stay apart: `pod:<key>` and `ns:<key>`, plus the namespace's name (which every
 * namespace carries as kubernetes.io/metadata.name).
 */
export function identityLabels(
  namespace: string,
  podLabels: Readonly<Record<string, string>>,
  namespaceLabels: Readonly<Record<string, string>>,
): Record<string, string> {
  const out: Record<string, string> = { "ns:kubernetes.io/metadata.name": namespace };
  for (const [k, v] of Object.entries(namespaceLabels)) out[`ns:${k}`] = v;
  for (const [k, v] of Object.entries(podLabels))
    if (!IGNORED_POD_LABELS.includes(k)) out[`pod:${k}`] = v;
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** Pure: a stable key for a label set (what identities are looked up by). */
export function labelSetKey(labels: Readonly<Record<string, string>>): string {
  const canonical = Object.entries(labels)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join("\n");
  return createHash("sha256").update(canonical).digest("hex").slice(0, 32);
}

/** Pure: the number an identity carries on the wire and in maps: cluster ID in bits 16–23. */
export function numericIdentity(clusterID: number, local: number): number {
  if (!Number.isInteger(local) || local < 1 || local > LOCAL_MAX)
    throw new Error(`identity ${local} is not in 1-${LOCAL_MAX}`);
  if (!Number.isInteger(clusterID) || clusterID < 0 || clusterID > 255)
    throw new Error(`cluster ID ${clusterID} is not in 0-255`);
  return (clusterID << 16) | local;
}

/**
 * Pure: the lowest free number for a new label set, at or above FIRST_ALLOCATED; undefined
 * when all 65,280 are taken.
 */
export function freeIdentity(taken: Iterable<number>): number | undefined {
  const used = new Set(taken);
  for (let n = FIRST_ALLOCATED; n <= LOCAL_MAX; n++) if (!used.has(n)) return n;
  return undefined;
}
