// The operator's shared I/O: informers (caches), API clients, events. Reconcilers read caches
// here and call pure functions; this is the only module that knows where objects come from.
import {
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  type V1Lease,
  type V1Node,
  type V1Pod,
} from "@kubernetes/client-node";
import type { Logger } from "pino";
import { Gauge } from "prom-client";
import type { z } from "zod";
import {
  AGENT_LEASE_LABEL,
  AGENT_LEASE_LABEL_VALUE,
  DEFAULT_LEASE_NAMESPACE,
} from "../agent/lease.js";
import { bandwidthPolicy } from "../api/bandwidthpolicy.js";
import { type ClusterMeshPeer, clusterMeshPeer } from "../api/clustermeshpeer.js";
import { encryptionProfile } from "../api/encryptionprofile.js";
import { KINDS } from "../api/kinds.js";
import { networkConfig } from "../api/networkconfig.js";
import { type NodeNetworkState, nodeNetworkState } from "../api/nodenetworkstate.js";
import { type Parsed, parseApiObject } from "../api/parse.js";
import type { Informer } from "../controllers/informer.js";
import type { Manager } from "../controllers/manager.js";
import { LeaseKind, NodeKind, PodKind, type ResourceKind } from "../controllers/resource.js";
import { type EventTarget, recordEvent } from "../kube/events.js";
import type { LocalIdentity } from "./clustermeshpeer/mesh.js";
import {
  type BandwidthPolicy,
  type EncryptionProfile,
  type NetworkConfig,
  type NodeView,
  nodeView,
  type PodView,
  podView,
  slimNode,
  slimPod,
} from "./model.js";
import { OPERATOR_FIELD_MANAGER } from "./nodenetworkstate/names.js";
import type { Judging } from "./shared/fold.js";

function crdKind(kind: string): ResourceKind {
  const k = KINDS.find((d) => d.kind === kind)!;
  return {
    group: "netloom.io",
    version: "v1alpha1",
    kind,
    plural: k.plural,
    namespaced: k.scope === "Namespaced",
  };
}

export const NetworkConfigKind = crdKind("NetworkConfig");
export const EncryptionProfileKind = crdKind("EncryptionProfile");
export const BandwidthPolicyKind = crdKind("BandwidthPolicy");
export const ClusterMeshPeerKind = crdKind("ClusterMeshPeer");
export const NodeNetworkStateKind = crdKind("NodeNetworkState");
export const NodePeerKind = crdKind("NodePeer");
export const RemoteNodePeerKind = crdKind("RemoteNodePeer");
export const NetworkIdentityKind = crdKind("NetworkIdentity");
export const NetworkEndpointSliceKind = crdKind("NetworkEndpointSlice");
export const PolicyRealizationKind = crdKind("PolicyRealization");

/**
 * A typed view of an informer of one of our kinds: every object is parsed with the kind's zod
 * schema once (memoized per object the informer holds), so reconcilers see only objects the
 * code can use; invalid() says what is wrong with one that does not parse.
 */
export class Cache<T> {
  private readonly parsed = new WeakMap<object, Parsed<T>>();

  constructor(
    readonly informer: Informer<KubernetesObject>,
    private readonly parser: (o: unknown) => Parsed<T>,
  ) {}

  private parse(o: KubernetesObject | undefined): Parsed<T> | undefined {
    if (!o) return undefined;
    let p = this.parsed.get(o);
    if (!p) {
      p = this.parser(o);
      this.parsed.set(o, p);
    }
    return p;
  }

  private valid(objects: KubernetesObject[]): T[] {
    return objects.flatMap((o) => {
      const p = this.parse(o);
      return p?.ok ? [p.value] : [];
    });
  }

  /** The parsed form of an object from this kind's watch (undefined: does not parse). */
  of(o: KubernetesObject): T | undefined {
    const p = this.parse(o);
    return p?.ok ? p.value : undefined;
  }
  get(key: string): T | undefined {
    const p = this.parse(this.informer.get(key));
    return p?.ok ? p.value : undefined;
  }
  /** Why the object at key is not usable (undefined: absent or fine). */
  invalid(key: string): string | undefined {
    const p = this.parse(this.informer.get(key));
    return p && !p.ok ? p.error : undefined;
  }
  getByName(name: string, namespace?: string): T | undefined {
    const p = this.parse(this.informer.getByName(name, namespace));
    return p?.ok ? p.value : undefined;
  }
  list(namespace?: string): T[] {
    return this.valid(this.informer.list(namespace));
  }
  byIndex(name: string, value: string): T[] {
    return this.valid(this.informer.byIndex(name, value));
  }
}

type Named<T extends { metadata: object }> = T & { metadata: { name: string } };

/** parseApiObject for a kind whose objects always have a name (all of ours). */
function named<S extends z.ZodType<{ metadata: { name?: string | undefined } }>>(
  schema: S,
): (o: unknown) => Parsed<Named<z.infer<S>>> {
  return (o) => {
    const p = parseApiObject(schema, o);
    if (!p.ok) return p;
    const name = p.value.metadata.name;
    if (name === undefined) return { ok: false, error: "object without metadata.name" };
    return { ok: true, value: { ...p.value, metadata: { ...p.value.metadata, name } } };
  };
}

export interface OperatorOptions {
  /** An agent silent this long makes its node count as failed (default 45 s). */
  staleAfterMs?: number;
  /** A deleted object's finalizer is removed after this long even without all nodes (60 s). */
  cleanupTimeoutMs?: number;
  /** Status is re-folded this often while nodes exist, so silent agents are noticed (15 s). */
  statusResyncMs?: number;
  /** Where the agents' Leases live (liveness; default netloom-node-leases). */
  leaseNamespace?: string;
  /** This cluster's name and ID in a cluster mesh (--cluster-name, --cluster-id). */
  clusterIdentity?: LocalIdentity;
  /** An identity no pod has used for this long is deleted (default 5 min). */
  identityGcGraceMs?: number;
  now?: () => Date;
}

export class OperatorContext {
  readonly nodes: Informer<V1Node>;
  readonly pods: Informer<V1Pod>;
  /** The agents' Leases: when each node's agent was last alive. Watched here only. */
  readonly agentLeases: Informer<V1Lease>;
  readonly networkConfigs: Cache<Named<NetworkConfig>>;
  readonly encryptionProfiles: Cache<Named<EncryptionProfile>>;
  readonly bandwidthPolicies: Cache<Named<BandwidthPolicy>>;
  readonly clusterMeshPeers: Cache<Named<ClusterMeshPeer>>;
  readonly states: Cache<Named<NodeNetworkState>>;
  /** The nodes' peer entries (the operator writes their spec; only existence matters here). */
  readonly peers: Informer<KubernetesObject>;
  /** Remote clusters' nodes, mirrored here by the cluster-mesh controller. */
  readonly remotePeers: Informer<KubernetesObject>;
  readonly clusterIdentity: LocalIdentity | undefined;
  readonly objects: KubernetesObjectApi;
  readonly custom: CustomObjectsApi;
  readonly core: CoreV1Api;
  readonly staleAfterMs: number;
  readonly cleanupTimeoutMs: number;
  readonly statusResyncMs: number;
  readonly identityGcGraceMs: number | undefined;
  readonly now: () => Date;
  /** netloom_resource_nodes{kind,name,state}: what the alerts on convergence read. */
  readonly resourceNodes: Gauge<"kind" | "name" | "state">;

  constructor(
    readonly manager: Manager,
    kubeconfig: KubeConfig,
    readonly log: Logger,
    opts: OperatorOptions = {},
  ) {
    // First to ask for them: the shared Node and Pod caches keep only what the code reads.
    this.nodes = manager.informer<V1Node>(NodeKind, {}, slimNode);
    this.pods = manager.informer<V1Pod>(PodKind, {}, slimPod);
    this.pods.addIndex("node", (p) => (p.spec?.nodeName ? [p.spec.nodeName] : []));
    this.agentLeases = manager.informer<V1Lease>(LeaseKind, {
      namespace: opts.leaseNamespace ?? DEFAULT_LEASE_NAMESPACE,
      labelSelector: `${AGENT_LEASE_LABEL}=${AGENT_LEASE_LABEL_VALUE}`,
    });
    this.pods.addIndex("namespace", (p) => [p.metadata?.namespace ?? ""]);
    this.networkConfigs = new Cache(manager.informer(NetworkConfigKind), named(networkConfig));
    this.encryptionProfiles = new Cache(
      manager.informer(EncryptionProfileKind),
      named(encryptionProfile),
    );
    const bps = manager.informer(BandwidthPolicyKind);
    bps.addIndex("namespace", (b) => [b.metadata?.namespace ?? ""]);
    this.bandwidthPolicies = new Cache(bps, named(bandwidthPolicy));
    this.clusterMeshPeers = new Cache(
      manager.informer(ClusterMeshPeerKind),
      named(clusterMeshPeer),
    );
    this.states = new Cache(manager.informer(NodeNetworkStateKind), named(nodeNetworkState));
    this.peers = manager.informer(NodePeerKind);
    this.remotePeers = manager.informer(RemoteNodePeerKind);
    this.clusterIdentity = opts.clusterIdentity;
    this.objects = KubernetesObjectApi.makeApiClient(kubeconfig);
    this.custom = kubeconfig.makeApiClient(CustomObjectsApi);
    this.core = kubeconfig.makeApiClient(CoreV1Api);
    this.staleAfterMs = opts.staleAfterMs ?? 45_000;
    this.cleanupTimeoutMs = opts.cleanupTimeoutMs ?? 60_000;
    this.statusResyncMs = opts.statusResyncMs ?? 15_000;
    this.identityGcGraceMs = opts.identityGcGraceMs;
    this.now = opts.now ?? (() => new Date());
    this.resourceNodes = new Gauge({
      name: "netloom_resource_nodes",
      help: "Nodes a Netloom object selects (desired), that applied it (ready), that drifted (drifted).",
      labelNames: ["kind", "name", "state"],
      registers: [manager.registry],
    });
  }

  nodeViews(): NodeView[] {
    return this.nodes.list().map(nodeView);
  }

  podViews(namespace?: string): PodView[] {
    return (namespace ? this.pods.byIndex("namespace", namespace) : this.pods.list()).map(podView);
  }

  /** What node judgement needs now: the clock, the stale window, the Lease renewals. */
  judging(): Judging {
    return { now: this.now(), staleAfterMs: this.staleAfterMs, lastSeen: this.lastSeen() };
  }

  /**
   * Node → the last renewal of its agent's Lease, but never earlier than when the operator got
   * (back) in touch with the API server: renewals it could not see (its own start, an API
   * server outage) are not the agents' silence. The node lifecycle controller keeps a local
   * probe time for the same reason.
   */
  lastSeen(): Map<string, Date> {
    return lastSeenByNode(this.agentLeases.list(), this.agentLeases.connectedSince(), this.now());
  }

  stateMap(): Map<string, NodeNetworkState> {
    return new Map(this.states.list().map((s) => [s.metadata.name, s]));
  }

  /** A core/v1 Event about obj; never fails a reconcile. */
  async event(
    obj: EventTarget,
    type: "Normal" | "Warning",
    reason: string,
    message: string,
  ): Promise<void> {
    const err = await recordEvent(
      this.core,
      OPERATOR_FIELD_MANAGER,
      obj,
      type,
      reason,
      message,
      this.now(),
    );
    if (err) this.log.warn({ err: err.message, reason }, "could not record event");
  }
}

/**
 * Pure: node → when its agent was last seen: its Lease's renewTime, or `watchingSince` (epoch
 * ms; `now` while the watch is down) when that is later.
 */
export function lastSeenByNode(
  leases: readonly V1Lease[],
  watchingSince: number | undefined,
  now: Date,
): Map<string, Date> {
  const floor = watchingSince ?? now.getTime();
  const out = new Map<string, Date>();
  for (const l of leases) {
    const node = l.spec?.holderIdentity;
    const renewed = l.spec?.renewTime;
    if (!node || !renewed) continue;
    // The reflector keeps the API's JSON: the MicroTime is a string here.
    const at = new Date(String(renewed)).getTime();
    out.set(node, new Date(Math.max(at, floor)));
  }
  return out;
}
