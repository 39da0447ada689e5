import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { AUDIT_ANNOTATION } from "../api/policyrealization.js";
import { Informer } from "../controllers/informer.js";
import {
  collectionPath,
  NetworkPolicyKind,
  NodeKind,
  PodKind,
  type ResourceKind,
} from "../controllers/resource.js";
import { kubeRequest } from "../kube/raw.js";
import {
  BandwidthPolicyKind,
  EncryptionProfileKind,
  NetworkConfigKind,
  NetworkEndpointSliceKind,
  NetworkIdentityKind,
  NodeNetworkStateKind,
  NodePeerKind,
  RemoteNodePeerKind,
} from "../reconcilers/context.js";
import type { NodeAgent } from "./agent.js";
import type { RawSources } from "./sources.js";

/**
 * What a node agent watches, and how events reach it: the one place that decides an agent's
 * watch fan-out (`netloom agent` and the control-plane benchmark's simulated agents share it).
 */
export interface AgentWatches {
  start(): void;
  /** Resolves when every watch has listed once. */
  synced(): Promise<void>;
  stop(): void;
}

/**
 * Pure: whether an update of a NetworkConfig, EncryptionProfile, BandwidthPolicy or
 * NetworkPolicy can change what an agent renders. Agents read their specs (and a policy's audit
 * annotation), never their status: the operator's status writes, its realization annotations on
 * NetworkPolicies and periodic resyncs keep the generation and the annotation, and re-rendering
 * every node for them would cost each agent a full policy compile per write.
 */
export function specChanged(oldObj: KubernetesObject, newObj: KubernetesObject): boolean {
  const generation = (o: KubernetesObject) => o.metadata?.generation;
  const audit = (o: KubernetesObject) => o.metadata?.annotations?.[AUDIT_ANNOTATION];
  if (generation(oldObj) === undefined || generation(newObj) === undefined) return true;
  return (
    generation(oldObj) !== generation(newObj) ||
    audit(oldObj) !== audit(newObj) ||
    !oldObj.metadata?.deletionTimestamp !== !newObj.metadata?.deletionTimestamp
  );
}

/**
 * An agent watches what its own datapath is rendered from — its Node and the Pods on it (the
 * API server filters both by field selector), the few cluster-wide sources, the BandwidthPolicies,
 * the NetworkPolicies with the identities and endpoint slices they are compiled against
 * — plus, once the node encrypts, every NodePeer and RemoteNodePeer (quiet at rest: they change
 * only with keys and endpoints). Nothing is rendered until every watch has listed once: a half-synced view
 * (no NetworkConfig yet) would tear down what the node enforces.
 */
export function agentWatches(
  kubeconfig: KubeConfig,
  node: string,
  agent: NodeAgent,
  logger?: Logger,
  /** Applied to every object before it is cached (the benchmark's simulated agents share them). */
  transform?: (obj: KubernetesObject) => KubernetesObject,
): AgentWatches {
  const informer = (kind: ResourceKind, fieldSelector?: string) =>
    new Informer<KubernetesObject>({
      kubeconfig,
      kind,
      ...(fieldSelector ? { fieldSelector } : {}),
      ...(logger ? { logger } : {}),
      ...(transform ? { transform } : {}),
    });
  const sources = {
    node: informer(NodeKind, `metadata.name=${node}`),
    pods: informer(PodKind, `spec.nodeName=${node}`),
    networkConfigs: informer(NetworkConfigKind),
    encryptionProfiles: informer(EncryptionProfileKind),
    bandwidthPolicies: informer(BandwidthPolicyKind),
    // NetworkPolicy: the policies, every identity, and every node's slim endpoint slice (never
    // every Pod: a pod start reaches an agent as one slice update).
    networkPolicies: informer(NetworkPolicyKind),
    identities: informer(NetworkIdentityKind),
    endpointSlices: informer(NetworkEndpointSliceKind),
  };
  const peers = informer(NodePeerKind);
  // Remote clusters' nodes, mirrored by the operator: peered with exactly as local ones.
  const remotePeers = informer(RemoteNodePeerKind);
  const peerObjects = () => [...peers.list(), ...remotePeers.list()];
  const all = Object.values(sources);

  let ready = false;
  let stopped = false;
  // Every NodePeer, only once this node encrypts: a cluster without an EncryptionProfile pays
  // no N-by-N lists when its agents start.
  let peersStarted: Promise<void> | undefined;
  let peersReady = false;
  const startPeers = (): Promise<void> => {
    if (!peersStarted && !stopped) {
      peers.start();
      remotePeers.start();
      peersStarted = Promise.all([peers.synced(), remotePeers.synced()]).then(() => {
        peersReady = true;
        void agent.observePeerObjects(peerObjects());
      });
    }
    return peersStarted ?? Promise.resolve();
  };
  const raw = (): RawSources => ({
    node: sources.node.getByName(node),
    pods: sources.pods.list(),
    networkConfigs: sources.networkConfigs.list(),
    encryptionProfiles: sources.encryptionProfiles.list(),
    bandwidthPolicies: sources.bandwidthPolicies.list(),
    networkPolicies: sources.networkPolicies.list(),
    identities: sources.identities.list(),
    endpointSlices: sources.endpointSlices.list(),
  });
  const render = () => {
    if (!ready) return;
    void agent.observeSources(raw()).then(() => {
      if (agent.currentDesired()?.wireguard) void startPeers();
    });
  };
  const peersChanged = () => {
    if (peersReady) void agent.observePeerObjects(peerObjects());
  };
  const specOnly = new Set<unknown>([
    sources.networkConfigs,
    sources.encryptionProfiles,
    sources.bandwidthPolicies,
    sources.networkPolicies,
  ]);
  for (const inf of Object.values(sources))
    inf.addEventHandler({
      add: render,
      update: (oldObj, newObj) => {
        if (!specOnly.has(inf) || specChanged(oldObj, newObj)) render();
      },
      delete: render,
    });
  for (const inf of [peers, remotePeers])
    inf.addEventHandler({ add: peersChanged, update: peersChanged, delete: peersChanged });
  // Its own NodeNetworkState is read once, for the report it left before a restart: watching
  // it would only echo the agent's own writes back to it.
  const previous = async () => {
    const r = await kubeRequest(
      kubeconfig,
      "GET",
      `${collectionPath(NodeNetworkStateKind)}/${node}`,
    ).catch(() => undefined);
    if (r?.status === 200) agent.observeOwnState(r.json());
  };
  const sourcesSynced = Promise.all([...all.map((i) => i.synced()), previous()]);
  // Peers before the first render when this node encrypts: a restarted agent must not apply
  // its tunnel without them (that would drop every session until they arrive).
  const firstRender = sourcesSynced.then(async () => {
    if (agent.wantsPeers(raw())) await startPeers();
    ready = true;
    render();
  });
  return {
    start: () => {
      for (const i of all) i.start();
    },
    synced: async () => {
      await firstRender;
    },
    stop: () => {
      stopped = true;
      for (const i of all) i.stop();
      if (peersStarted) {
        peers.stop();
        remotePeers.stop();
      }
    },
  };
}
