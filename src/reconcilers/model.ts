// The operator's view of Kubernetes objects: only the fields decisions need, so that the pure
// layers (desired.ts, status.ts) are tested with plain data and golden YAML.
import type { V1Node, V1Pod } from "@kubernetes/client-node";
import type { BandwidthPolicy } from "../api/bandwidthpolicy.js";
import type { EncryptionProfile } from "../api/encryptionprofile.js";
import type { NetworkConfig } from "../api/networkconfig.js";

export interface NodeView {
  name: string;
  uid: string;
  labels: Record<string, string>;
  podCIDRs: string[];
  internalIP?: string;
}

export interface PodView {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  nodeName?: string;
  ip?: string;
}

export function nodeView(n: V1Node): NodeView {
  const podCIDRs = n.spec?.podCIDRs?.length
    ? n.spec.podCIDRs
    : n.spec?.podCIDR
      ? [n.spec.podCIDR]
      : [];
  const internalIP = n.status?.addresses?.find((a) => a.type === "InternalIP")?.address;
  return {
    name: n.metadata?.name ?? "",
    uid: n.metadata?.uid ?? "",
    labels: n.metadata?.labels ?? {},
    podCIDRs,
    ...(internalIP ? { internalIP } : {}),
  };
}

export function podView(p: V1Pod): PodView {
  const ip = p.status?.podIP;
  return {
    namespace: p.metadata?.namespace ?? "",
    name: p.metadata?.name ?? "",
    labels: p.metadata?.labels ?? {},
    annotations: p.metadata?.annotations ?? {},
    ...(p.spec?.nodeName ? { nodeName: p.spec.nodeName } : {}),
    ...(ip ? { ip } : {}),
  };
}

/** Annotations the code reads: the kubernetes.io/ and netloom.io/ ones (egress-bandwidth). */
const readAnnotation = (k: string) => k.startsWith("kubernetes.io/") || k.startsWith("netloom.io/");

function slimMeta(m: V1Pod["metadata"]) {
  const annotations = Object.entries(m?.annotations ?? {}).filter(([k]) => readAnnotation(k));
  return {
    name: m?.name,
    namespace: m?.namespace,
    uid: m?.uid,
    resourceVersion: m?.resourceVersion,
    ...(m?.labels ? { labels: m.labels } : {}),
    ...(annotations.length ? { annotations: Object.fromEntries(annotations) } : {}),
    ...(m?.deletionTimestamp ? { deletionTimestamp: m.deletionTimestamp } : {}),
  };
}

/**
 * What the operator keeps of a Pod in its cache: what podView and the selectors read. Every
 * Pod of the cluster is cached, so the rest (containers, managedFields, conditions) is dropped.
 */
export function slimPod(p: V1Pod): V1Pod {
  return {
    apiVersion: p.apiVersion,
    kind: p.kind,
    metadata: slimMeta(p.metadata),
    spec: {
      // Only named ports: NetworkPolicy may refer to them.
      containers: (p.spec?.containers ?? []).flatMap((c) => {
        const ports = (c.ports ?? []).filter((x) => x.name);
        return ports.length ? [{ name: c.name, ports }] : [];
      }),
      ...(p.spec?.nodeName ? { nodeName: p.spec.nodeName } : {}),
    },
    status: {
      ...(p.status?.podIP ? { podIP: p.status.podIP } : {}),
      ...(p.status?.podIPs ? { podIPs: p.status.podIPs } : {}),
      ...(p.status?.phase ? { phase: p.status.phase } : {}),
    },
  };
}

/** What the operator keeps of a Node: what nodeView reads (no images, no conditions). */
export function slimNode(n: V1Node): V1Node {
  return {
    apiVersion: n.apiVersion,
    kind: n.kind,
    metadata: slimMeta(n.metadata),
    spec: {
      ...(n.spec?.podCIDR ? { podCIDR: n.spec.podCIDR } : {}),
      ...(n.spec?.podCIDRs ? { podCIDRs: n.spec.podCIDRs } : {}),
    },
    status: { ...(n.status?.addresses ? { addresses: n.status.addresses } : {}) },
  };
}

export const podKey = (p: { namespace: string; name: string }) => `${p.namespace}/${p.name}`;

export type { BandwidthPolicy, EncryptionProfile, NetworkConfig };

/** Everything a node's desired state depends on. */
export interface NodeInputs {
  node: NodeView;
  networkConfigs: NetworkConfig[];
  encryptionProfiles: EncryptionProfile[];
  /** BandwidthPolicies of the namespaces of the node's pods (others cannot select them). */
  bandwidthPolicies: BandwidthPolicy[];
  /** Pods scheduled on this node. */
  pods: PodView[];
}
