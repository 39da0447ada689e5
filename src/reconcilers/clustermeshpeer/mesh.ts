/**
 * ClusterMesh decisions, pure: is a peer's identity usable, which remote nodes become local
 * mirrors (RemoteNodePeers), do pod CIDRs overlap, what changes, and what the status says.
 * The I/O (the remote watch, the Secret, the writes) is in remote.ts and reconcile.ts.
 */
import { createHash } from "node:crypto";
import { type Cidr, formatCidr, parseCidr } from "../../api/cidr.js";
import type { ClusterMeshPeer } from "../../api/clustermeshpeer.js";
import type { NodePeer } from "../../api/nodepeer.js";
import { MESH_CLUSTER_LABEL, type RemoteNodePeerSpec } from "../../api/remotenodepeer.js";
import type { ConditionDecision } from "../shared/fold.js";

/** This cluster's place in the mesh: operator configuration (--cluster-name, --cluster-id). */
export interface LocalIdentity {
  name: string;
  id: number;
}

export interface Problem {
  reason: string;
  message: string;
}

const CLUSTER_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Pure: why a local identity cannot be used, or undefined. */
export function localIdentityProblem(name: string | undefined, id: string | undefined) {
  if (name === undefined && id === undefined) return undefined;
  if (!name || name.length > 32 || !CLUSTER_NAME.test(name))
    return `--cluster-name must be a DNS label of at most 32 characters (e.g. east), not "${name ?? ""}"`;
  const n = Number(id);
  if (!Number.isInteger(n) || n < 1 || n > 255)
    return `--cluster-id must be a whole number from 1 to 255, not "${id ?? ""}"`;
  return undefined;
}

/**
 * Pure: why this peer cannot be connected, judged by names and IDs alone: no local identity,
 * the local cluster's own ID or name, or an ID or name another peer has too (CEL sees one
 * object at a time, so uniqueness across peers is checked here).
 */
export function identityProblem(
  peer: ClusterMeshPeer,
  all: readonly ClusterMeshPeer[],
  local: LocalIdentity | undefined,
): Problem | undefined {
  if (!local)
    return {
      reason: "LocalIdentityMissing",
      message:
        "this cluster has no mesh identity: start the operator with --cluster-name and --cluster-id",
    };
  const { clusterID: id, clusterName: name } = peer.spec;
  if (id === local.id)
    return {
      reason: "DuplicateClusterID",
      message: `clusterID ${id} is this cluster's own (${local.name}); every cluster in a mesh needs its own ID`,
    };
  if (name === local.name)
    return {
      reason: "DuplicateClusterName",
      message: `clusterName ${name} is this cluster's own name`,
    };
  const others = all.filter((p) => p.metadata.name !== peer.metadata.name);
  const sameID = others.filter((p) => p.spec.clusterID === id).map((p) => p.metadata.name);
  if (sameID.length)
    return {
      reason: "DuplicateClusterID",
      message: `clusterID ${id} is also used by ClusterMeshPeer ${sameID.sort().join(", ")}; cluster IDs must be unique`,
    };
  const sameName = others.filter((p) => p.spec.clusterName === name).map((p) => p.metadata.name);
  if (sameName.length)
    return {
      reason: "DuplicateClusterName",
      message: `clusterName ${name} is also used by ClusterMeshPeer ${sameName.sort().join(", ")}`,
    };
  return undefined;
}

/** Pure: the mirror's object name: `<cluster>.<node>`, hashed when that is too long. */
export function mirrorName(cluster: string, node: string): string {
  const plain = `${cluster}.${node}`;
  if (plain.length <= 253) return plain;
  return `${cluster}.${createHash("sha256").update(node).digest("hex").slice(0, 40)}`;
}

export interface Mirror {
  name: string;
  spec: RemoteNodePeerSpec;
}

/**
 * Pure: the local mirrors of a remote cluster's NodePeers (each already parsed by its schema).
 * Only nodes another node can reach are mirrored: a public key, an address, a port and pod
 * CIDRs; a node still starting (no key yet) comes once it has one.
 */
export function mirrorsOf(peer: ClusterMeshPeer, remote: readonly NodePeer[]): Mirror[] {
  const { clusterName, clusterID } = peer.spec;
  const out: Mirror[] = [];
  for (const p of remote) {
    const st = p.status;
    const cidrs = p.spec.podCIDRs ?? [];
    if (!st?.publicKey || !st.nodeIP || !st.listenPort || cidrs.length === 0) continue;
    if (p.metadata.deletionTimestamp) continue;
    out.push({
      name: mirrorName(clusterName, p.spec.nodeName),
      spec: { clusterName, clusterID, nodeName: p.spec.nodeName, podCIDRs: [...cidrs], peer: st },
    });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : 1));
}

function overlaps(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const bits = Math.min(a.prefixLength, b.prefixLength);
  for (let bit = 0; bit < bits; bit++) {
    const mask = 0x80 >> (bit & 7);
    if ((a.address[bit >> 3]! & mask) !== (b.address[bit >> 3]! & mask)) return false;
  }
  return true;
}

export interface Owner {
  /** "node a" (local) or "node b/n1" (another remote cluster). */
  who: string;
  podCIDRs: readonly string[];
}

/**
 * Pure: pod CIDRs of this peer's nodes that overlap a local node's or another remote
 * cluster's: routes to them would be ambiguous, so nothing of this peer is programmed.
 */
export function podCIDROverlaps(mirrors: readonly Mirror[], others: readonly Owner[]): string[] {
  const problems: string[] = [];
  for (const m of mirrors) {
    for (const text of m.spec.podCIDRs) {
      const c = parseCidr(text);
      for (const o of others) {
        const hit = o.podCIDRs.find((t) => overlaps(c, parseCidr(t)));
        if (hit)
          problems.push(
            `remote node ${m.spec.clusterName}/${m.spec.nodeName} ${formatCidr(c)} overlaps ${o.who} ${hit}`,
          );
      }
    }
  }
  return problems;
}

/** Pure: JSON with object keys sorted, so that what the API server returns compares equal. */
export function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === "object" && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1)))
      : x,
  );
}

export interface ExistingMirror {
  name: string;
  spec?: unknown;
  labels?: Record<string, string>;
  resourceVersion?: string;
}

/**
 * A mirror this operator updated, until its cache shows the write: what it wrote, the version
 * the write made (`written`), and the versions that write superseded.
 */
export interface WrittenMirror {
  spec: unknown;
  written?: string;
  superseded: readonly string[];
}

/**
 * Pure: the mirrors as the API server holds them. The operator's cache learns of its own
 * writes only through its watch (6-150 ms later in the e2e runs), so where the cache still
 * shows a version a write of ours superseded, what we wrote counts. Compared with the stale
 * copy, a remote change that undoes the last one (a key announcement withdrawn right after it
 * was mirrored) looked like no change, and the withdrawn key stayed mirrored: peers in this
 * cluster take an announced key up at its fallback time, and this one the node never uses.
 */
export function currentMirrors(
  cached: readonly ExistingMirror[],
  written: ReadonlyMap<string, WrittenMirror>,
): ExistingMirror[] {
  return cached.map((e) => {
    const w = written.get(e.name);
    return w && cacheBehind(e, w) ? { ...e, spec: w.spec } : e;
  });
}

/**
 * Pure: what to remember after writing `spec` over `before` (as currentMirrors saw it), the
 * write answered with version `version`; undefined for a new mirror (the cache has nothing
 * stale to compare against then, and a second create is a no-op).
 */
export function afterWrite(
  before: ExistingMirror | undefined,
  previous: WrittenMirror | undefined,
  spec: unknown,
  version: string | undefined,
): WrittenMirror | undefined {
  if (before?.resourceVersion === undefined) return undefined;
  const superseded = new Set([...(previous?.superseded ?? []), before.resourceVersion]);
  if (previous?.written) superseded.add(previous.written);
  if (version) superseded.delete(version);
  return { spec, ...(version ? { written: version } : {}), superseded: [...superseded] };
}

/** Pure: whether a remembered write is still needed: the cache shows a version it superseded. */
export function cacheBehind(cached: ExistingMirror | undefined, w: WrittenMirror): boolean {
  return cached?.resourceVersion !== undefined && w.superseded.includes(cached.resourceVersion);
}

/**
 * Pure: the writes that make the local mirrors of one cluster exactly `desired`: a write for
 * each new or changed remote node, a delete for each one gone (O(changes), never O(nodes)).
 */
export function mirrorChanges(
  cluster: string,
  desired: readonly Mirror[],
  existing: readonly ExistingMirror[],
): { apply: Mirror[]; remove: string[] } {
  const mine = existing.filter((e) => e.labels?.[MESH_CLUSTER_LABEL] === cluster);
  const have = new Map(mine.map((e) => [e.name, e]));
  const apply = desired.filter((d) => {
    const e = have.get(d.name);
    return !e || canonical(e.spec) !== canonical(d.spec);
  });
  const want = new Set(desired.map((d) => d.name));
  const remove = mine.filter((e) => !want.has(e.name)).map((e) => e.name);
  return { apply, remove: remove.sort() };
}

/** What the operator knows of a peer's remote cluster right now. */
export type RemoteState =
  /** No watch yet: the Secret could not be read, or nothing was tried. */
  | { phase: "idle" }
  | { phase: "connecting"; since: Date; error?: string }
  | { phase: "connected"; lastSync: Date }
  /** It was reachable and is not now: what was mirrored stays (last known good). */
  | { phase: "unreachable"; error: string; lastSync?: Date }
  /** The remote API server answered, and said no (credentials, RBAC, no NodePeer CRD). */
  | { phase: "refused"; code: number; error: string; lastSync?: Date };

export interface MeshFacts {
  identity?: Problem | undefined;
  /** Reading the Secret or its kubeconfig failed. */
  secret?: Problem | undefined;
  remote: RemoteState;
  overlaps: readonly string[];
  mirrored: number;
  local?: LocalIdentity | undefined;
}

const stalled = (p: Problem): ConditionDecision[] => [
  { type: "Ready", status: "False", ...p },
  { type: "Reconciling", status: "False", ...p },
  { type: "Stalled", status: "True", ...p },
];
const progressing = (p: Problem): ConditionDecision[] => [
  { type: "Ready", status: "False", ...p },
  { type: "Reconciling", status: "True", ...p },
  { type: "Stalled", status: "False", ...p },
];

/** Pure: a ClusterMeshPeer's conditions and status fields from what the operator knows. */
export function meshStatus(
  peer: ClusterMeshPeer,
  f: MeshFacts,
): { conditions: ConditionDecision[]; fields: Record<string, unknown> } {
  const cluster = peer.spec.clusterName;
  const lastSync = "lastSync" in f.remote ? f.remote.lastSync : undefined;
  const fields: Record<string, unknown> = {
    remoteNodes: f.mirrored,
    connected: f.remote.phase === "connected",
    ...(lastSync ? { lastSyncTime: lastSync.toISOString().replace(/\.\d+Z$/, "Z") } : {}),
    ...(f.local ? { localClusterName: f.local.name, localClusterID: f.local.id } : {}),
  };
  const conditions = ((): ConditionDecision[] => {
    if (f.identity) return stalled(f.identity);
    if (f.secret) return stalled(f.secret);
    const r = f.remote;
    if (r.phase === "refused") {
      const reason =
        r.code === 401
          ? "RemoteUnauthorized"
          : r.code === 403
            ? "RemoteForbidden"
            : "RemoteRefused";
      return stalled({
        reason,
        message: `the API server of cluster ${cluster} answered ${r.code}: ${r.error}`,
      });
    }
    if (f.overlaps.length)
      return stalled({
        reason: "PodCIDROverlap",
        message: `nothing is programmed for cluster ${cluster}: ${f.overlaps.slice(0, 3).join("; ")}${f.overlaps.length > 3 ? ` and ${f.overlaps.length - 3} more` : ""}`,
      });
    if (r.phase === "unreachable")
      return progressing({
        reason: "RemoteUnreachable",
        message: `cannot reach the API server of cluster ${cluster} (${r.error}); its ${f.mirrored} mirrored node(s) stay as last seen`,
      });
    if (r.phase !== "connected")
      return progressing({
        reason: "Connecting",
        message: `connecting to the API server of cluster ${cluster}${"error" in r && r.error ? ` (${r.error})` : ""}`,
      });
    const message = `connected to cluster ${cluster}: ${f.mirrored} remote node(s) mirrored`;
    return [
      { type: "Ready", status: "True", reason: "Connected", message },
      { type: "Reconciling", status: "False", reason: "Connected", message },
      { type: "Stalled", status: "False", reason: "Connected", message },
    ];
  })();
  return { conditions, fields };
}
