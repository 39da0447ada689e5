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
