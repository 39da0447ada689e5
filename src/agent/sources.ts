// What a node agent renders its own datapath from: the objects its watches deliver, parsed here
// (once per object) and handed to the same pure rendering the golden tests pin down.
import type { V1Node, V1Pod } from "@kubernetes/client-node";
import { bandwidthPolicy } from "../api/bandwidthpolicy.js";
import { encryptionProfile } from "../api/encryptionprofile.js";
import { networkConfig } from "../api/networkconfig.js";
import { type NetworkEndpointSlice, networkEndpointSlice } from "../api/networkendpointslice.js";
import { type NetworkIdentity, networkIdentity } from "../api/networkidentity.js";
import type { NodeDatapath } from "../api/nodenetworkstate.js";
import { type NodePeer, nodePeer } from "../api/nodepeer.js";
import { type Parsed, parseApiObject } from "../api/parse.js";
import { MESH_CLUSTER_LABEL, type RemoteNodePeer, remoteNodePeer } from "../api/remotenodepeer.js";
import { buildDirectory, type EndpointDirectory } from "../flows/context.js";
import type { IdentityLabels } from "../policy/compile.js";
import { IpcacheTable } from "../policy/ipcache.js";
import { type NetworkPolicy, networkPolicy } from "../policy/networkpolicy.js";
import { type NodePolicy, renderNodePolicy } from "../policy/node.js";
import type { BandwidthPolicy, EncryptionProfile, NetworkConfig } from "../reconcilers/model.js";
import { nodeView, podView } from "../reconcilers/model.js";
import { type RenderedNode, renderNodeState } from "../reconcilers/nodenetworkstate/desired.js";

/** The agent's watched objects as the API server sent them. */
export interface RawSources {
  /** This node's Node object (undefined: the node is gone). */
  node: unknown;
  /** The Pods on this node (field selector spec.nodeName). */
  pods: readonly unknown[];
  networkConfigs: readonly unknown[];
  encryptionProfiles: readonly unknown[];
  bandwidthPolicies: readonly unknown[];
  /** Every NetworkPolicy, NetworkIdentity and NetworkEndpointSlice (absent: not watched). */
  networkPolicies?: readonly unknown[];
  identities?: readonly unknown[];
  endpointSlices?: readonly unknown[];
}

export type Rendered =
  | {
      ok: true;
      spec: NodeDatapath;
      rendered: RenderedNode;
      policy: NodePolicy;
      /** Identities and pod addresses cluster-wide: what flow records name their ends by. */
      directory: EndpointDirectory;
    }
  | { ok: true; spec: undefined }
  | { ok: false; error: string };

const namespaceOf = (o: unknown) =>
  (o as { metadata?: { namespace?: string } })?.metadata?.namespace ?? "";

/**
 * Parses watched objects with their zod schemas, memoized per object (a watch event replaces
 * the object, so a changed one is parsed again). One parser may serve many simulated agents.
 */
export class SourceParser {
  private readonly memo = new WeakMap<object, Parsed<unknown>>();

  parse<T>(schema: { safeParse(o: unknown): unknown }, obj: unknown): Parsed<T> {
    if (typeof obj !== "object" || obj === null) return { ok: false, error: "not an object" };
    let p = this.memo.get(obj);
    if (!p) {
      p = parseApiObject(schema as never, obj);
      this.memo.set(obj, p);
    }
    return p as Parsed<T>;
  }

  /** Every object parsed, or the first error (an object the code cannot use). */
  private all<T>(schema: { safeParse(o: unknown): unknown }, objs: readonly unknown[]) {
    const out: T[] = [];
    for (const o of objs) {
      const p = this.parse<T>(schema, o);
      if (!p.ok) return p;
      out.push(p.value);
    }
    return { ok: true as const, value: out };
  }

  /**
   * Pure given the objects: this node's desired datapath. A NetworkConfig or EncryptionProfile
   * that does not parse could select this node, so nothing is rendered and the error is
   * returned (the agent keeps what it applied last); a BandwidthPolicy counts only in the
   * namespaces of this node's pods. `ipcache` is the agent's own table, kept across renders
   * (incremental: only changed slices are looked at again); its entries are live.
   */
  render(raw: RawSources, ipcache: IpcacheTable = new IpcacheTable()): Rendered {
    if (!raw.node) return { ok: true, spec: undefined };
    const node = nodeView(raw.node as V1Node);
    const pods = raw.pods.map((p) => podView(p as V1Pod));
    const namespaces = new Set(pods.map((p) => p.namespace));
    const ncs = this.all<NetworkConfig>(networkConfig, raw.networkConfigs);
    if (!ncs.ok) return ncs;
    const eps = this.all<EncryptionProfile>(encryptionProfile, raw.encryptionProfiles);
    if (!eps.ok) return eps;
    const bps = this.all<BandwidthPolicy>(
      bandwidthPolicy,
      raw.bandwidthPolicies.filter((b) => namespaces.has(namespaceOf(b))),
    );
    if (!bps.ok) return bps;
    const rendered = renderNodeState({
      node,
      networkConfigs: ncs.value,
      encryptionProfiles: eps.value,
      bandwidthPolicies: bps.value,
      pods,
    });
    const { policy, directory } = this.policy(
      raw,
      node.name,
      node.internalIP,
      rendered.spec,
      ipcache,
    );
    const spec: NodeDatapath = policy.sources.length
      ? { ...rendered.spec, sources: { ...rendered.spec.sources, networkPolicies: policy.sources } }
      : rendered.spec;
    return { ok: true, spec, rendered, policy, directory };
  }

  /**
   * Pure given the objects: what this node enforces for NetworkPolicy, and the directory of
   * identities and pod addresses. An object that does not parse is left out (policies,
   * identities and slices are many and independent; one bad one must not stop the others):
   * its pods are not enforced until it is fixed.
   */
  private policy(
    raw: RawSources,
    nodeName: string,
    nodeIP: string | undefined,
    spec: NodeDatapath,
    ipcache: IpcacheTable,
  ): { policy: NodePolicy; directory: EndpointDirectory } {
    const policies: NetworkPolicy[] = [];
    for (const o of raw.networkPolicies ?? []) {
      const p = this.parse<NetworkPolicy>(networkPolicy, o);
      if (p.ok) policies.push(p.value);
    }
    const identities = new Map<number, IdentityLabels>();
    for (const o of raw.identities ?? []) {
      const p = this.parse<NetworkIdentity>(networkIdentity, o);
      const n = p.ok ? Number(p.value.metadata.name) : Number.NaN;
      if (p.ok && Number.isInteger(n) && n > 0)
        identities.set(n, {
          namespace: p.value.spec.namespace,
          labels: p.value.spec.podLabels,
          namespaceLabels: p.value.spec.namespaceLabels,
        });
    }
    const slices = new Map<string, NetworkEndpointSlice["spec"]["endpoints"]>();
    for (const o of raw.endpointSlices ?? []) {
      const p = this.parse<NetworkEndpointSlice>(networkEndpointSlice, o);
      if (p.ok) slices.set(p.value.spec.nodeName, p.value.spec.endpoints);
    }
    const policy = renderNodePolicy({
      node: nodeName,
      enforcement: spec.policyEnforcement ?? "Default",
      nodeIPs: nodeIP ? [nodeIP] : [],
      policies,
      identities,
      slices,
      ipcache,
    });
    const localPods = raw.pods.map((o) => {
      const p = o as V1Pod;
      const ips = (p.status?.podIPs ?? []).map((x) => x.ip).filter((ip): ip is string => !!ip);
      if (ips.length === 0 && p.status?.podIP) ips.push(p.status.podIP);
      return { namespace: p.metadata?.namespace ?? "", name: p.metadata?.name ?? "", ips };
    });
    return { policy, directory: buildDirectory(identities, ipcache, localPods) };
  }

  /** The peer entries that parse; each that does not is returned as an error (left out). */
  peers(objs: readonly unknown[]): { peers: NodePeer[]; errors: string[] } {
    const peers: NodePeer[] = [];
    const errors: string[] = [];
    for (const o of objs) {
      if ((o as { kind?: unknown }).kind === "RemoteNodePeer") {
        const p = this.parse<RemoteNodePeer>(remoteNodePeer, o);
        if (p.ok) peers.push(remotePeerView(p.value));
        else errors.push(p.error);
        continue;
      }
      const p = this.parse<NodePeer>(nodePeer, o);
      if (p.ok) peers.push(p.value);
      else errors.push(p.error);
    }
    return { peers, errors };
  }
}

/**
 * Pure: a remote cluster's node as a peer entry like a local one: named `<cluster>/<node>`
 * (node names are unique only within a cluster) and labelled with its cluster, so that it is
 * peered with whatever this node's profile is called (each cluster names its own).
 */
export function remotePeerView(r: RemoteNodePeer): NodePeer {
  const name = `${r.spec.clusterName}/${r.spec.nodeName}`;
  return {
    apiVersion: r.apiVersion,
    kind: "NodePeer",
    metadata: { name, labels: { [MESH_CLUSTER_LABEL]: r.spec.clusterName } },
    spec: { nodeName: name, podCIDRs: r.spec.podCIDRs },
    status: r.spec.peer,
  };
}
