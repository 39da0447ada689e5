/**
 * What the agent knows to name the two ends of a flow (pure data, rebuilt when the agent renders):
 * every identity's labels, every pod's address (the endpoint slices of every node, and this
 * node's own pods), the local pods' enforced and audit-mode policies (what a drop is denied
 * by), which host interface is which local pod, and the sources of egress deny and strict mode.
 */
import { parseIP } from "../api/cidr.js";
import { formatAddress } from "../datapath-driver/maps/flow-events.js";
import type { IdentityLabels } from "../policy/compile.js";
import type { EndpointPlan, NodePolicy } from "../policy/node.js";

export interface PodRef {
  namespace: string;
  name: string;
  /** Its identity as the operator allocated it (absent: not allocated yet). */
  identity?: number;
}

/** Identities and pod addresses, cluster-wide: built by the agent's SourceParser. */
export interface EndpointDirectory {
  identities: ReadonlyMap<number, IdentityLabels>;
  /** The pod at a canonical address (canonicalAddress), if any. */
  podAt(address: string): PodRef | undefined;
  /** Every pod with an address, once per address. */
  pods(): Iterable<PodRef>;
}

/** Pods by address from every node's endpoint slice: the agent's IpcacheTable. */
export interface PodIndex {
  podAt(address: string): PodRef | undefined;
  allPods(): Iterable<PodRef>;
}

export interface FlowContext {
  node: string;
  directory: EndpointDirectory;
  /** Local pods ("namespace/name") and the policies isolating them. */
  endpoints: ReadonlyMap<string, EndpointPlan>;
  /** A local pod's host-side interface (ifindex) → the pod. */
  interfaces: ReadonlyMap<number, PodRef>;
  /** A device's name (undefined: unknown). */
  interfaceName(ifindex: number): string | undefined;
  /** The NetworkConfig (egress deny) and EncryptionProfile (strict mode) applied. */
  sources: { networkConfig?: string; encryptionProfile?: string };
}

/** Pure: an address as flow events print it (so "fd00::1" and "fd00:0::1" are one key). */
export function canonicalAddress(ip: string): string | undefined {
  try {
    return formatAddress(parseIP(ip).bytes);
  } catch {
    return undefined;
  }
}

/**
 * The directory from what the agent watches: every node's endpoint slice (as the agent's
 * ipcache table indexes them, not copied) and this node's Pods (a pod whose identity is not
 * allocated yet is still named by its address).
 */
export function buildDirectory(
  identities: ReadonlyMap<number, IdentityLabels>,
  slices: PodIndex,
  localPods: readonly { namespace: string; name: string; ips: readonly string[] }[],
): EndpointDirectory {
  const local = new Map<string, PodRef>();
  for (const p of localPods)
    for (const ip of p.ips) {
      const key = canonicalAddress(ip);
      if (key) local.set(key, { namespace: p.namespace, name: p.name });
    }
  return {
    identities,
    podAt: (address) => slices.podAt(address) ?? local.get(address),
    pods: function* () {
      yield* slices.allPods();
      for (const [address, pod] of local) if (!slices.podAt(address)) yield pod;
    },
  };
}

export const EMPTY_DIRECTORY: EndpointDirectory = {
  identities: new Map(),
  podAt: () => undefined,
  pods: () => [],
};

/** Pure: the flow context of a node with nothing rendered yet. */
export function emptyContext(node: string): FlowContext {
  return {
    node,
    directory: EMPTY_DIRECTORY,
    endpoints: new Map(),
    interfaces: new Map(),
    interfaceName: () => undefined,
    sources: {},
  };
}

/** Pure: the pods behind host interfaces, from "namespace/name" keys (the driver's). */
export function interfacePods(podOf: ReadonlyMap<number, string>): Map<number, PodRef> {
  const out = new Map<number, PodRef>();
  for (const [ifindex, key] of podOf) {
    const slash = key.indexOf("/");
    if (slash > 0) out.set(ifindex, { namespace: key.slice(0, slash), name: key.slice(slash + 1) });
  }
  return out;
}

/** Pure: the local endpoints of a node policy by pod. */
export function endpointsOf(policy: NodePolicy | undefined): Map<string, EndpointPlan> {
  return new Map((policy?.endpoints ?? []).map((e) => [e.pod, e]));
}
