import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";
import { Counter, Gauge } from "prom-client";
import type { ClusterMeshPeer } from "../../api/clustermeshpeer.js";
import { API_VERSION } from "../../api/common.js";
import { type NodePeer, nodePeer } from "../../api/nodepeer.js";
import { parseApiObject } from "../../api/parse.js";
import { MESH_CLUSTER_LABEL } from "../../api/remotenodepeer.js";
import { applyObject } from "../../controllers/apply.js";
import type { Controller } from "../../controllers/controller.js";
import { describeError, statusCodeOf } from "../../controllers/errors.js";
import { NodeKind } from "../../controllers/resource.js";
import { newKubeConfig } from "../../kube/kubeconfig.js";
import { ClusterMeshPeerKind, type OperatorContext, RemoteNodePeerKind } from "../context.js";
import { OPERATOR_FIELD_MANAGER } from "../nodenetworkstate/names.js";
import { registerStatusController, type UserObject } from "../shared/status-controller.js";
import {
  afterWrite,
  cacheBehind,
  currentMirrors,
  identityProblem,
  type MeshFacts,
  type Mirror,
  meshStatus,
  mirrorChanges,
  mirrorsOf,
  type Owner,
  podCIDROverlaps,
  type WrittenMirror,
} from "./mesh.js";
import { RemoteCluster } from "./remote.js";

type Obj = ClusterMeshPeer & UserObject;

/** The ClusterMeshPeer (object name) a mirror belongs to. */
export const MESH_PEER_LABEL = "netloom.io/cluster-mesh-peer";
/** The Role an administrator extends, per peer, so that the operator may read its Secret. */
const SECRETS_ROLE = "netloom-operator-clustermesh-secrets";

interface PeerRuntime {
  facts: MeshFacts;
  remote?: RemoteCluster;
  /** When the Secret was last read, and for which generation of the peer. */
  secretReadAt?: number;
  secretReadFor?: number;
  /** Mirrors updated until the cache shows the write (see currentMirrors). */
  written: Map<string, WrittenMirror>;
}

/**
 * The Secret is read when the peer changes and then once a minute (rotated credentials), not
 * on every remote event: a rotation announcement must reach the local mirror without waiting
 * for a round trip to the local API server first.
 */
const SECRET_REREAD_MS = 60_000;

/**
 * ClusterMeshPeer, in two controllers: "clustermesh" does the I/O — reads the peer's Secret
 * (that one Secret, by name), keeps a read-only watch of the remote cluster's NodePeers, and
 * makes the local RemoteNodePeers exactly the remote nodes' mirrors (one write per remote
 * change); "clustermeshpeer" folds what it found into the status, as for every other kind.
 */
export function registerClusterMeshPeerController(ctx: OperatorContext): Controller {
  const runtimes = new Map<string, PeerRuntime>();
  const local = ctx.clusterIdentity;
  const readiness = new Gauge({
    name: "netloom_clustermesh_remote_cluster_readiness_status",
    help: "1 while the remote cluster's peer data is being watched, else 0 (as Cilium's clustermesh readiness).",
    labelNames: ["target_cluster"],
    registers: [ctx.manager.registry],
  });
  const failures = new Counter({
    name: "netloom_clustermesh_remote_cluster_failures_total",
    help: "Failures to list or watch the remote cluster's peer data.",
    labelNames: ["target_cluster"],
    registers: [ctx.manager.registry],
  });
  const remoteNodes = new Gauge({
    name: "netloom_clustermesh_remote_cluster_nodes",
    help: "Remote nodes mirrored from the cluster.",
    labelNames: ["target_cluster"],
    registers: [ctx.manager.registry],
  });
  const lastSync = new Gauge({
    name: "netloom_clustermesh_remote_cluster_last_sync_timestamp_seconds",
    help: "When the cluster's peer data last arrived (Unix seconds).",
    labelNames: ["target_cluster"],
    registers: [ctx.manager.registry],
  });

  const mirrorsOfPeer = (peer: string) =>
    ctx.remotePeers.list().filter((m) => m.metadata?.labels?.[MESH_PEER_LABEL] === peer);

  const status = registerStatusController<Obj>(ctx, {
    name: "clustermeshpeer",
    kind: ClusterMeshPeerKind,
    cache: ctx.clusterMeshPeers,
    finalizer: true,
    watch: (b) =>
      b.watches(RemoteNodePeerKind, (m) => {
        const peer = m.metadata?.labels?.[MESH_PEER_LABEL];
        return peer ? [peer] : [];
      }),
    fold: (peer) => {
      const rt = runtimes.get(peer.metadata.name);
      const facts: MeshFacts = rt?.facts ?? {
        remote: { phase: "idle" },
        overlaps: [],
        mirrored: 0,
        local,
      };
      const { conditions, fields } = meshStatus(peer, {
        ...facts,
        mirrored: mirrorsOfPeer(peer.metadata.name).length,
      });
      return { decisions: conditions, fields, activeNodes: 1 };
    },
    // The mirror controller deletes a deleted peer's mirrors; the finalizer waits for it.
    pendingCleanup: (peer) => mirrorsOfPeer(peer.metadata.name).map((m) => m.metadata?.name ?? ""),
  });

  const stopRemote = async (rt: PeerRuntime | undefined) => {
    const r = rt?.remote;
    if (!r) return;
    delete rt.remote;
    await r.stop();
    readiness.remove({ target_cluster: r.cluster });
  };

  const deleteMirrors = async (names: readonly string[]) => {
    for (const name of names)
      await ctx.objects
        .delete({ apiVersion: API_VERSION, kind: "RemoteNodePeer", metadata: { name } })
        .catch((e: unknown) => {
          if (statusCodeOf(e) !== 404) throw e;
        });
  };

  const mirror = ctx.manager.controller("clustermesh").for(ClusterMeshPeerKind);
  // Local nodes' pod CIDRs take part in the overlap check.
  mirror.watches(NodeKind, () =>
    ctx.clusterMeshPeers.informer.list().map((p) => p.metadata?.name ?? ""),
  );
  const controller = mirror.complete(async (key, { log }) => {
    const raw = ctx.clusterMeshPeers.informer.get(key);
    const peer = ctx.clusterMeshPeers.get(key);
    let rt = runtimes.get(key);
    if (!raw || !peer || raw.metadata?.deletionTimestamp) {
      await stopRemote(rt);
      runtimes.delete(key);
      await deleteMirrors(mirrorsOfPeer(key).map((m) => m.metadata?.name ?? ""));
      status.enqueue(key);
      return;
    }
    if (!rt) {
      rt = {
        facts: { remote: { phase: "idle" }, overlaps: [], mirrored: 0, local },
        written: new Map(),
      };
      runtimes.set(key, rt);
    }
    const cluster = peer.spec.clusterName;
    const done = () => {
      status.enqueue(key);
      return { requeueAfterMs: 60_000 }; // re-read the Secret now and then (rotated credentials)
    };

    const identity = identityProblem(peer, ctx.clusterMeshPeers.list(), local);
    if (identity) {
      // Nothing programmed for a peer that cannot be told apart from another cluster.
      await stopRemote(rt);
      await deleteMirrors(mirrorsOfPeer(key).map((m) => m.metadata?.name ?? ""));
      rt.facts = { identity, remote: { phase: "idle" }, overlaps: [], mirrored: 0, local };
      return done();
    }

    const generation = peer.metadata.generation ?? 0;
    const fresh =
      rt.remote !== undefined &&
      rt.secretReadFor === generation &&
      Date.now() - (rt.secretReadAt ?? 0) < SECRET_REREAD_MS;
    const creds = fresh
      ? { kubeconfig: undefined, version: rt.remote?.credentialsVersion ?? "" }
      : await readKubeconfig(ctx, peer);
    if (!fresh) {
      rt.secretReadAt = Date.now();
      rt.secretReadFor = generation;
    }
    if ("problem" in creds) {
      // Tunnels stay as they are (last known good); the status says what to fix.
      await stopRemote(rt);
      rt.facts = {
        secret: creds.problem,
        remote: { phase: "idle" },
        overlaps: [],
        mirrored: 0,
        local,
      };
      return done();
    }
    if (
      rt.remote &&
      (rt.remote.credentialsVersion !== creds.version || rt.remote.cluster !== cluster)
    )
      await stopRemote(rt);
    if (!rt.remote && creds.kubeconfig) {
      rt.remote = new RemoteCluster(cluster, creds.version, creds.kubeconfig, log, () =>
        controller.enqueue(key),
      );
      rt.remote.start();
      log.info({ cluster }, "watching the remote cluster's NodePeers");
    }
    const remote = rt.remote;
    if (!remote) return done();
    const state = remote.state();
    readiness.set({ target_cluster: cluster }, state.phase === "connected" ? 1 : 0);
    if (state.phase === "unreachable" || state.phase === "refused")
      if (rt.facts.remote.phase !== state.phase) failures.inc({ target_cluster: cluster });
    if ("lastSync" in state && state.lastSync)
      lastSync.set({ target_cluster: cluster }, state.lastSync.getTime() / 1000);

    const seen = remote.peers();
    let overlaps: string[] = [];
    if (seen) {
      const parsed: NodePeer[] = [];
      for (const o of seen) {
        const p = parseApiObject(nodePeer, o);
        if (p.ok) parsed.push(p.value);
        else
          log.warn({ cluster, node: o.metadata?.name, error: p.error }, "remote NodePeer left out");
      }
      const desired = mirrorsOf(peer, parsed);
      overlaps = podCIDROverlaps(desired, owners(ctx, key));
      const cached = ctx.remotePeers
        .list()
        .filter((m) => m.metadata?.labels?.[MESH_PEER_LABEL] === key)
        .map((m) => ({
          name: m.metadata?.name ?? "",
          spec: (m as { spec?: unknown }).spec,
          labels: m.metadata?.labels ?? {},
          resourceVersion: m.metadata?.resourceVersion,
        }));
      // Our writes the cache has not shown yet count as done (currentMirrors).
      const { written } = rt;
      for (const [name, w] of written)
        if (
          !cacheBehind(
            cached.find((e) => e.name === name),
            w,
          )
        )
          written.delete(name);
      const existing = currentMirrors(cached, written);
      const { apply, remove } = mirrorChanges(cluster, overlaps.length ? [] : desired, existing);
      for (const m of apply) {
        const done = await applyObject(ctx.objects, mirrorObject(key, m), OPERATOR_FIELD_MANAGER);
        const before = existing.find((e) => e.name === m.name);
        const w = afterWrite(before, written.get(m.name), m.spec, done.metadata?.resourceVersion);
        if (w) written.set(m.name, w);
      }
      await deleteMirrors(remove);
      if (apply.length || remove.length)
        log.info(
          {
            cluster,
            applied: apply.map((m) => ({
              name: m.name,
              key: m.spec.peer.publicKey?.slice(0, 8),
              ...(m.spec.peer.nextPublicKey
                ? { next: m.spec.peer.nextPublicKey.slice(0, 8), at: m.spec.peer.nextKeySwitchTime }
                : {}),
            })),
            deleted: remove,
            // From the remote event to the mirror written (rotation timelines line up on it).
            sinceRemoteMs:
              "lastSync" in state && state.lastSync
                ? Date.now() - state.lastSync.getTime()
                : undefined,
          },
          "mirrors synced",
        );
      remoteNodes.set({ target_cluster: cluster }, overlaps.length ? 0 : desired.length);
    }
    rt.facts = { remote: state, overlaps, mirrored: 0, local };
    return done();
  });
  return status;
}

function mirrorObject(peerName: string, m: Mirror): KubernetesObject & { spec: unknown } {
  return {
    apiVersion: API_VERSION,
    kind: "RemoteNodePeer",
    metadata: {
      name: m.name,
      labels: { [MESH_CLUSTER_LABEL]: m.spec.clusterName, [MESH_PEER_LABEL]: peerName },
    },
    spec: m.spec,
  };
}

/** Everyone else's pod CIDRs: local nodes, and the mirrors of the other peers. */
function owners(ctx: OperatorContext, peerName: string): Owner[] {
  const local: Owner[] = ctx.nodes.list().map((n) => ({
    who: `local node ${n.metadata?.name ?? ""}`,
    podCIDRs: n.spec?.podCIDRs ?? (n.spec?.podCIDR ? [n.spec.podCIDR] : []),
  }));
  const remote: Owner[] = ctx.remotePeers
    .list()
    .filter((m) => m.metadata?.labels?.[MESH_PEER_LABEL] !== peerName)
    .map((m) => {
      const spec = (
        m as { spec?: { clusterName?: string; nodeName?: string; podCIDRs?: string[] } }
      ).spec;
      return {
        who: `node ${spec?.clusterName ?? "?"}/${spec?.nodeName ?? "?"}`,
        podCIDRs: spec?.podCIDRs ?? [],
      };
    });
  return [...local, ...remote];
}

/**
 * The peer's kubeconfig, from the one Secret it names (the operator holds no list or watch
 * on Secrets, and RBAC names the Secrets it may get).
 */
async function readKubeconfig(
  ctx: OperatorContext,
  peer: ClusterMeshPeer,
): Promise<
  { kubeconfig: KubeConfig; version: string } | { problem: { reason: string; message: string } }
> {
  const { name, namespace, key } = peer.spec.kubeconfigSecretRef;
  const ref = `Secret ${namespace}/${name}`;
  let secret: { data?: Record<string, string>; metadata?: { resourceVersion?: string } };
  try {
    secret = await ctx.core.readNamespacedSecret({ name, namespace });
  } catch (e) {
    const code = statusCodeOf(e);
    if (code === 404)
      return { problem: { reason: "SecretNotFound", message: `${ref} does not exist` } };
    if (code === 403)
      return {
        problem: {
          reason: "SecretForbidden",
          message: `the operator may not read ${ref}: add "${name}" to the resourceNames of Role ${SECRETS_ROLE} in ${namespace} (the operator reads only the Secrets named there)`,
        },
      };
    throw e;
  }
  const data = secret.data?.[key];
  if (!data)
    return { problem: { reason: "SecretKeyMissing", message: `${ref} has no key "${key}"` } };
  try {
    const kc = newKubeConfig();
    kc.loadFromString(Buffer.from(data, "base64").toString("utf8"));
    if (!kc.getCurrentCluster()) throw new Error("it has no current cluster");
    return { kubeconfig: kc, version: secret.metadata?.resourceVersion ?? "" };
  } catch (e) {
    return {
      problem: {
        reason: "InvalidKubeconfig",
        message: `${ref} key "${key}" is not a usable kubeconfig: ${describeError(e)}`,
      },
    };
  }
}
