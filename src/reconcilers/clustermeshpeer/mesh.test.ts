import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ClusterMeshPeer } from "../../api/clustermeshpeer.js";
import type { NodePeer } from "../../api/nodepeer.js";
import { MESH_CLUSTER_LABEL } from "../../api/remotenodepeer.js";
import {
  afterWrite,
  cacheBehind,
  currentMirrors,
  identityProblem,
  localIdentityProblem,
  meshStatus,
  mirrorChanges,
  mirrorName,
  mirrorsOf,
  podCIDROverlaps,
} from "./mesh.js";

const KEY = `${"A".repeat(43)}=`;
const peer = (name: string, clusterName: string, clusterID: number): ClusterMeshPeer => ({
  apiVersion: "netloom.io/v1alpha1",
  kind: "ClusterMeshPeer",
  metadata: { name },
  spec: {
    clusterName,
    clusterID,
    kubeconfigSecretRef: {
      name: `clustermesh-${clusterName}`,
      namespace: "netloom-system",
      key: "kubeconfig",
    },
  },
});
const nodePeer = (node: string, cidr: string, keyed = true): NodePeer => ({
  apiVersion: "netloom.io/v1alpha1",
  kind: "NodePeer",
  metadata: { name: node },
  spec: { nodeName: node, podCIDRs: [cidr] },
  status: keyed
    ? { profile: "default", publicKey: KEY, nodeIP: "192.168.70.13", listenPort: 51871 }
    : { profile: "default" },
});
const local = { name: "east", id: 1 };

describe("cluster mesh decisions", () => {
  it("checks the local identity flags", () => {
    assert.equal(localIdentityProblem(undefined, undefined), undefined, "no mesh: fine");
    assert.equal(localIdentityProblem("east", "1"), undefined);
    assert.match(localIdentityProblem("East_1", "1") ?? "", /--cluster-name must be a DNS label/);
    assert.match(
      localIdentityProblem("east", "0") ?? "",
      /--cluster-id must be a whole number from 1 to 255/,
    );
    assert.match(localIdentityProblem("east", undefined) ?? "", /--cluster-id/);
  });

  it("refuses a peer without a local identity, with our own ID or name, or sharing one with another peer", () => {
    const west = peer("west", "west", 2);
    assert.equal(identityProblem(west, [west], local), undefined);
    assert.equal(identityProblem(west, [west], undefined)?.reason, "LocalIdentityMissing");
    assert.match(
      identityProblem(peer("w", "west", 1), [], local)?.message ?? "",
      /clusterID 1 is this cluster's own \(east\)/,
    );
    assert.equal(identityProblem(peer("e", "east", 9), [], local)?.reason, "DuplicateClusterName");
    const twin = peer("west-again", "north", 2);
    assert.match(
      identityProblem(west, [west, twin], local)?.message ?? "",
      /clusterID 2 is also used by ClusterMeshPeer west-again/,
    );
    assert.equal(
      identityProblem(west, [west, peer("w2", "west", 3)], local)?.reason,
      "DuplicateClusterName",
    );
  });

  it("mirrors only remote nodes another node can reach, named by cluster and node", () => {
    const mirrors = mirrorsOf(peer("west", "west", 2), [
      nodePeer("n1", "10.245.1.0/24"),
      nodePeer("starting", "10.245.2.0/24", false),
    ]);
    assert.deepEqual(
      mirrors.map((m) => [m.name, m.spec.nodeName, m.spec.clusterID, m.spec.podCIDRs]),
      [["west.n1", "n1", 2, ["10.245.1.0/24"]]],
    );
    assert.equal(mirrorName("west", "x".repeat(300)).length, "west.".length + 40);
  });

  it("names pod CIDR overlaps with local nodes and other clusters", () => {
    const mirrors = mirrorsOf(peer("west", "west", 2), [nodePeer("n1", "10.244.1.0/24")]);
    assert.deepEqual(
      podCIDROverlaps(mirrors, [
        { who: "local node a", podCIDRs: ["10.244.0.0/16"] },
        { who: "node north/x", podCIDRs: ["10.246.0.0/24", "fd00::/64"] },
      ]),
      ["remote node west/n1 10.244.1.0/24 overlaps local node a 10.244.0.0/16"],
    );
  });

  it("writes only what changed and deletes what the remote cluster no longer has", () => {
    const [m] = mirrorsOf(peer("west", "west", 2), [nodePeer("n1", "10.245.1.0/24")]);
    assert.ok(m);
    const labels = { [MESH_CLUSTER_LABEL]: "west" };
    // As the API server returns it: the same fields in another order.
    const reordered = Object.fromEntries(Object.entries(structuredClone(m.spec)).reverse());
    const same = { name: m.name, spec: reordered, labels };
    const gone = { name: "west.n9", spec: {}, labels };
    const otherCluster = { name: "north.n1", spec: {}, labels: { [MESH_CLUSTER_LABEL]: "north" } };
    assert.deepEqual(mirrorChanges("west", [m], [same, gone, otherCluster]), {
      apply: [],
      remove: ["west.n9"],
    });
    const changed = { ...same, spec: { ...m.spec, podCIDRs: ["10.245.9.0/24"] } };
    assert.deepEqual(mirrorChanges("west", [m], [changed]).apply, [m]);
  });

  it("a withdrawn announcement is written even while the cache has not yet shown the announcement (e2e: it stayed mirrored 2 s)", () => {
    const p = peer("west", "west", 2);
    const labels = { [MESH_CLUSTER_LABEL]: "west" };
    const at = (status: NodePeer["status"]) => {
      const [m] = mirrorsOf(p, [{ ...nodePeer("n1", "10.245.1.0/24"), status }]);
      assert.ok(m);
      return m;
    };
    const base = { profile: "default", publicKey: KEY, nodeIP: "192.168.70.13", listenPort: 51871 };
    const m0 = at(base);
    const m1 = at({
      ...base,
      nextPublicKey: `${"B".repeat(43)}=`,
      nextKeySwitchTime: "2026-11-30T00:53:18.939Z",
    });
    const cache = (rv: string, m: typeof m0) => [
      { name: m.name, spec: m.spec, labels, resourceVersion: rv },
    ];
    const written = new Map<string, NonNullable<ReturnType<typeof afterWrite>>>();
    const write = (cached: ReturnType<typeof cache>, m: typeof m0, version: string) => {
      const w = afterWrite(
        currentMirrors(cached, written)[0],
        written.get(m.name),
        m.spec,
        version,
      );
      assert.ok(w);
      written.set(m.name, w);
    };
    const changes = (cached: ReturnType<typeof cache>, desired: typeof m0) =>
      mirrorChanges("west", [desired], currentMirrors(cached, written)).apply.map((m) => m.spec);

    // Mirrored at rv 1; the node announces a key: written (rv 2).
    assert.deepEqual(changes(cache("1", m0), m1), [m1.spec]);
    write(cache("1", m0), m1, "2");
    // The node withdraws it before the cache has shown rv 2. The stale cache equals the
    // withdrawn state, and a comparison with it alone writes nothing:
    assert.deepEqual(mirrorChanges("west", [m0], cache("1", m0)).apply, []);
    // what this operator wrote counts instead: the withdrawal is written (rv 3).
    assert.deepEqual(changes(cache("1", m0), m0), [m0.spec]);
    write(cache("1", m0), m0, "3");
    // The cache shows rv 2 (our first write): still behind, nothing to write.
    assert.ok(cacheBehind(cache("2", m1)[0], written.get(m0.name)!));
    assert.deepEqual(changes(cache("2", m1), m0), []);
    // Caught up (rv 3), or someone else's edit (rv 9): the cache counts again.
    assert.equal(cacheBehind(cache("3", m0)[0], written.get(m0.name)!), false);
    assert.equal(cacheBehind(cache("9", m1)[0], written.get(m0.name)!), false);
    written.clear();
    assert.deepEqual(changes(cache("9", m1), m0), [m0.spec]);
    // A new mirror is not remembered: a second create is a no-op.
    assert.equal(afterWrite(undefined, undefined, m0.spec, "1"), undefined);
  });

  it("status: Stalled for what a person must fix, Reconciling while unreachable, Ready when connected", () => {
    const p = peer("west", "west", 2);
    const base = { overlaps: [], mirrored: 2, local };
    const ready = (f: Parameters<typeof meshStatus>[1]) =>
      meshStatus(p, f).conditions.find((c) => c.type === "Ready");
    const stalled = (f: Parameters<typeof meshStatus>[1]) =>
      meshStatus(p, f).conditions.find((c) => c.type === "Stalled")?.status;
    const at = new Date("2026-11-29T12:00:00Z");
    const connected = meshStatus(p, { ...base, remote: { phase: "connected", lastSync: at } });
    assert.equal(connected.conditions.find((c) => c.type === "Ready")?.status, "True");
    assert.deepEqual(connected.fields, {
      remoteNodes: 2,
      connected: true,
      lastSyncTime: "2026-11-29T12:00:00Z",
      localClusterName: "east",
      localClusterID: 1,
    });
    const unreachable = {
      phase: "unreachable" as const,
      error: "connect ECONNREFUSED",
      lastSync: at,
    };
    assert.equal(ready({ ...base, remote: unreachable })?.reason, "RemoteUnreachable");
    assert.match(
      ready({ ...base, remote: unreachable })?.message ?? "",
      /2 mirrored node\(s\) stay/,
    );
    assert.equal(stalled({ ...base, remote: unreachable }), "False");
    const refused = { phase: "refused" as const, code: 401, error: "Unauthorized" };
    assert.equal(ready({ ...base, remote: refused })?.reason, "RemoteUnauthorized");
    assert.match(ready({ ...base, remote: refused })?.message ?? "", /answered 401: Unauthorized/);
    assert.equal(stalled({ ...base, remote: refused }), "True");
    const overlap = {
      ...base,
      overlaps: ["x overlaps y"],
      remote: { phase: "connected" as const, lastSync: at },
    };
    assert.equal(ready(overlap)?.reason, "PodCIDROverlap");
    assert.equal(stalled(overlap), "True");
  });
});
