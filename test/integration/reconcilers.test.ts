import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { DEFAULT_LEASE_NAMESPACE } from "../../src/agent/lease.js";
import { readManifests } from "../../src/api/fixtures.js";
import type { NodeNetworkState } from "../../src/api/nodenetworkstate.js";
import { applyManifests } from "../../src/kube/apply.js";
import { kubeRequest } from "../../src/kube/raw.js";
import { kstatus } from "../support/kstatus.js";
import {
  createNode,
  createPod,
  eventually,
  nodeName,
  type SimCluster,
  startSimCluster,
} from "../support/sim-cluster.js";

const NODES = 50;
const LANDING_PODS = 10;
const base = "/apis/netloom.io/v1alpha1";

interface Cond {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration?: number;
}
interface Obj {
  kind: string;
  metadata: { name: string; generation: number; finalizers?: string[] };
  status?: {
    observedGeneration?: number;
    conditions?: Cond[];
    desiredNodes?: number;
    readyNodes?: number;
    nodes?: string;
    selectedPods?: number;
    enforcedPods?: number;
  };
}

const cond = (o: Obj | undefined, type: string) =>
  o?.status?.conditions?.find((c) => c.type === type);

describe(`reconcilers with ${NODES} simulated agents on a real API server`, () => {
  let env: SimCluster;
  const get = async <T = Obj>(path: string): Promise<T | undefined> => {
    const r = await kubeRequest(env.kc, "GET", path);
    return r.status === 200 ? r.json<T>() : undefined;
  };
  const patch = (path: string, body: unknown) =>
    kubeRequest(env.kc, "PATCH", path, { body, contentType: "application/merge-patch+json" });
  const readyAt = (path: string, generation?: number) =>
    eventually(
      `${path} Ready`,
      async () => {
        const o = await get(path);
        const ready = cond(o, "Ready");
        const gen = generation ?? o?.metadata.generation;
        return ready?.status === "True" && o?.status?.observedGeneration === gen ? o : undefined;
      },
      60_000,
    );
  const states = async () =>
    (await get<{ items: NodeNetworkState[] }>(`${base}/nodenetworkstates`))?.items ?? [];

  /** Mutating requests the audit log saw since `since` lines, by resource/subresource. */
  const auditWrites = (sinceLine: number) => {
    const lines = readFileSync(env.cluster.state.auditLogPath!, "utf8")
      .trim()
      .split("\n")
      .slice(sinceLine);
    return lines
      .map(
        (l) =>
          JSON.parse(l) as {
            stage: string;
            verb: string;
            objectRef?: {
              resource?: string;
              subresource?: string;
              name?: string;
              namespace?: string;
            };
          },
      )
      .filter(
        (e) =>
          e.stage === "ResponseComplete" &&
          ["create", "update", "patch", "delete"].includes(e.verb),
      );
  };
  const auditLength = () =>
    readFileSync(env.cluster.state.auditLogPath!, "utf8").trim().split("\n").length;

  before(async () => {
    env = await startSimCluster(NODES, { auditLog: true, heartbeatMs: 5_000 });
    for (let i = 0; i < LANDING_PODS; i++) {
      await createPod(env.kc, env.core, "default", `landing-page-${i}`, i, `10.244.${i}.10`, {
        app: "landing-page",
      });
    }
    await createPod(env.kc, env.core, "default", "api-0", 20, "10.244.20.10", { app: "api" });
  });
  after(async () => env?.stop());

  it("every sample converges: Ready with correct counts, kstatus Current", async () => {
    await applyManifests(env.kc, readManifests("config/samples"), "test");
    const nc = await readyAt(`${base}/networkconfigs/default`);
    assert.equal(nc.status?.desiredNodes, NODES);
    assert.equal(nc.status?.readyNodes, NODES);
    assert.equal(nc.status?.nodes, `${NODES}/${NODES}`);
    const ep = await readyAt(`${base}/encryptionprofiles/default`);
    assert.equal(ep.status?.nodes, `${NODES}/${NODES}`);
    const bp = await readyAt(`${base}/namespaces/default/bandwidthpolicies/landing-page`);
    assert.equal(bp.status?.selectedPods, LANDING_PODS);
    assert.equal(bp.status?.enforcedPods, LANDING_PODS);
    assert.equal(bp.status?.desiredNodes, LANDING_PODS);
    const peer = await eventually("clustermeshpeer status", async () => {
      const o = await get(`${base}/clustermeshpeers/west`);
      return cond(o, "Stalled")?.status === "True" ? o : undefined;
    });
    // This operator has no mesh identity (--cluster-name, --cluster-id): it says so.
    assert.equal(cond(peer, "Stalled")?.reason, "LocalIdentityMissing");

    const verdicts = await kstatus([nc, ep, bp, peer] as object[]);
    assert.deepEqual(
      verdicts.map((v) => `${v.kind}:${v.status}`),
      [
        "NetworkConfig:Current",
        "EncryptionProfile:Current",
        "BandwidthPolicy:Current",
        "ClusterMeshPeer:Failed",
      ],
    );
    // Every agent rendered the deny rule, the landing-page nodes their pod's rate, and each
    // reports the generations it applied.
    const all = await states();
    assert.equal(all.length, NODES);
    for (const s of all) {
      assert.deepEqual(s.status?.sources?.networkConfig, {
        name: "default",
        generation: nc.metadata.generation,
      });
      assert.equal(s.status?.sources?.encryptionProfile?.name, "default");
    }
    const rendered = [...env.sim.agents.values()].map(({ agent }) => agent.currentDesired());
    for (const d of rendered) assert.equal(d?.egressDeny?.[0]?.cidr, "169.254.169.254/32");
    for (const { driver } of env.sim.agents.values())
      assert.ok((await driver.read()).egressDeny.includes("169.254.169.254/32"));
    assert.equal(
      rendered.filter((d) => d?.bandwidth?.some((b) => b.egressBitsPerSecond === 50_000_000))
        .length,
      LANDING_PODS,
    );
    assert.equal(
      env.sim.agents.get(nodeName(0))?.agent.currentDesired()?.mtu,
      1420,
      "MTU lowered by WireGuard overhead",
    );
  });

  it("a spec change is Reconciling (kstatus InProgress) while nodes lag, then Ready at the new generation", async () => {
    for (const { driver } of env.sim.agents.values()) driver.delayMs = 1500;
    const path = `${base}/networkconfigs/default`;
    const res = await patch(path, {
      spec: { egressDeny: [{ cidr: "169.254.169.254/32" }, { cidr: "100.100.100.200/32" }] },
    });
    assert.equal(res.status, 200, res.body);
    const generation = res.json<Obj>().metadata.generation;
    const lagging = await eventually(
      "Reconciling=True",
      async () => {
        const o = await get(path);
        return cond(o, "Reconciling")?.status === "True" &&
          o?.status?.observedGeneration === generation
          ? o
          : undefined;
      },
      30_000,
      50,
    );
    assert.match(
      cond(lagging, "Reconciling")?.message ?? "",
      /nodes applied generation \d+; waiting for node-/,
    );
    assert.equal((await kstatus([lagging]))[0]?.status, "InProgress");
    for (const { driver } of env.sim.agents.values()) driver.delayMs = 0;
    const done = await readyAt(path, generation);
    assert.equal(done.status?.readyNodes, NODES);
    assert.equal((await kstatus([done]))[0]?.status, "Current");
  });

  it("a failing agent makes Ready=False naming the node and its error; kstatus Failed; it recovers", async () => {
    const bad = nodeName(7);
    env.sim.driver(bad).failWith("bpf attach failed: device eth9 not found");
    const path = `${base}/networkconfigs/default`;
    const res = await patch(path, { spec: { mtu: 1450 } });
    const generation = res.json<Obj>().metadata.generation;
    try {
      const failed = await eventually(
        "Ready=False naming only the failed node",
        async () => {
          const o = await get(path);
          return cond(o, "Ready")?.status === "False" && o?.status?.readyNodes === NODES - 1
            ? o
            : undefined;
        },
        30_000,
      );
      assert.equal(
        cond(failed, "Ready")?.message,
        `1 of ${NODES} nodes have not applied generation ${generation}: ${bad} (bpf attach failed: device eth9 not found)`,
      );
      assert.equal(cond(failed, "Stalled")?.status, "True");
      assert.equal((await kstatus([failed]))[0]?.status, "Failed");
    } finally {
      env.sim.driver(bad).failWith(undefined);
    }
    await readyAt(path, generation);
  });

  /**
   * Waits until nothing but agents' Lease renewals has been written for `quietMs`: the tail
   * of the previous test (a late Ready Event) is not the next measurement's.
   */
  const settled = async (quietMs = 1500) => {
    let mark = auditLength();
    let since = Date.now();
    while (Date.now() - since < quietMs) {
      await new Promise((r) => setTimeout(r, 250));
      const busy = auditWrites(mark).some(
        (w) =>
          !(
            w.objectRef?.resource === "leases" && w.objectRef.namespace === DEFAULT_LEASE_NAMESPACE
          ),
      );
      mark = auditLength();
      if (busy) since = Date.now();
    }
  };

  it("a node joining a 50-node cluster costs O(1) writes", async () => {
    await settled();
    const mark = auditLength();
    await createNode(env.core, NODES);
    env.sim.addNode(nodeName(NODES));
    await eventually("the new node counted Ready", async () => {
      const o = await get(`${base}/networkconfigs/default`);
      return o?.status?.readyNodes === NODES + 1 && cond(o, "Ready")?.status === "True"
        ? o
        : undefined;
    });
    await eventually("encryption profile counted it", async () => {
      const o = await get(`${base}/encryptionprofiles/default`);
      return o?.status?.readyNodes === NODES + 1 ? o : undefined;
    });
    const writes = auditWrites(mark);
    const nodeObjects = ["nodenetworkstates", "nodepeers"];
    const specWrites = writes.filter(
      (w) => nodeObjects.includes(w.objectRef?.resource ?? "") && !w.objectRef?.subresource,
    );
    // Agents' writes are their reports (NodeNetworkState and NodePeer status) and their Leases.
    const byAgents = (w: (typeof writes)[number]) =>
      (nodeObjects.includes(w.objectRef?.resource ?? "") &&
        w.objectRef?.subresource === "status") ||
      // Lease renewals (agents' liveness, the operator's leader election) go on regardless.
      w.objectRef?.resource === "leases";
    const byOperator = writes.filter((w) => w.objectRef?.resource !== "nodes" && !byAgents(w));
    const peerWrites = writes.filter(
      (w) => w.objectRef?.resource === "nodepeers" && w.objectRef.subresource === "status",
    );
    process.stderr.write(
      `node join: ${specWrites.length} spec write(s) (NodeNetworkState, NodePeer), ${peerWrites.length} peer-data write(s), ${byOperator.length} operator write(s) in all (${byOperator.map((w) => `${w.verb} ${w.objectRef?.resource}/${w.objectRef?.subresource ?? ""}`).join(", ")})\n`,
    );
    assert.deepEqual(
      specWrites.map((w) => `${w.objectRef?.resource}/${w.objectRef?.name}`).sort(),
      [`nodenetworkstates/${nodeName(NODES)}`, `nodepeers/${nodeName(NODES)}`],
      "only the new node's objects are written",
    );
    assert.deepEqual(
      [...new Set(peerWrites.map((w) => w.objectRef?.name))],
      [nodeName(NODES)],
      "only the new node publishes peer data: the others' keys did not change",
    );
    // Independent of the node count: two objects for the node; per object selecting the node
    // (NetworkConfig, EncryptionProfile), at most two status writes and their two Events.
    const selecting = 2;
    assert.ok(
      byOperator.length <= 2 + 4 * selecting,
      `O(1) operator writes, got ${byOperator.length}`,
    );
  });

  it("a BandwidthPolicy change is one write; only the nodes whose pods it selects report", async () => {
    // Longer than one heartbeat (5 s here): the joined node's session counts ride on its
    // heartbeat, and that report is not this change's.
    await settled(6_000);
    const mark = auditLength();
    const path = `${base}/namespaces/default/bandwidthpolicies/landing-page`;
    const res = await patch(path, { spec: { egress: { rate: "40M" } } });
    const generation = res.json<Obj>().metadata.generation;
    await readyAt(path, generation);
    const writes = auditWrites(mark);
    const specWrites = writes.filter(
      (w) =>
        ["nodenetworkstates", "nodepeers"].includes(w.objectRef?.resource ?? "") &&
        !w.objectRef?.subresource,
    );
    const reports = writes.filter(
      (w) => w.objectRef?.resource === "nodenetworkstates" && w.objectRef.subresource === "status",
    );
    process.stderr.write(
      `bandwidth policy change: ${specWrites.length} per-node spec writes; reports from ${new Set(reports.map((w) => w.objectRef?.name)).size} nodes (${LANDING_PODS} selected of ${NODES + 1})\n`,
    );
    assert.deepEqual(specWrites, [], "no per-node write for a change of a source");
    assert.deepEqual(
      [...new Set(reports.map((w) => w.objectRef?.name))].sort(),
      Array.from({ length: LANDING_PODS }, (_, i) => nodeName(i)).sort(),
    );
  });

  it("an object is InProgress before its first reconcile, never Current", async () => {
    await env.stopOperator();
    const path = `${base}/networkconfigs/late`;
    const created = await kubeRequest(env.kc, "POST", `${base}/networkconfigs`, {
      body: {
        apiVersion: "netloom.io/v1alpha1",
        kind: "NetworkConfig",
        metadata: { name: "late" },
        spec: { nodeSelector: { matchLabels: { pool: "none" } } },
      },
    });
    assert.equal(created.status, 201, created.body);
    assert.equal((await kstatus([created.json()]))[0]?.status, "InProgress");
    assert.equal((await kstatus([(await get(path))!]))[0]?.status, "InProgress");
    await env.startOperator();
    const ready = await readyAt(path);
    assert.equal(cond(ready, "Ready")?.reason, "NoNodesSelected");
    assert.equal((await kstatus([ready]))[0]?.status, "Current");
  });

  it("a Node deleted takes its NodeNetworkState and NodePeer with it", async () => {
    const gone = nodeName(NODES);
    env.sim.removeNode(gone);
    await env.core.deleteNode({ name: gone });
    for (const plural of ["nodenetworkstates", "nodepeers"])
      await eventually(`${plural}/${gone} deleted`, async () =>
        (await kubeRequest(env.kc, "GET", `${base}/${plural}/${gone}`)).status === 404
          ? true
          : undefined,
      );
  });

  it("deleting a NetworkConfig removes its effect from every node before the object goes", async () => {
    const del = await kubeRequest(env.kc, "DELETE", `${base}/networkconfigs/default`);
    assert.equal(del.status, 200, del.body);
    await eventually(
      "the NetworkConfig is gone",
      async () =>
        (await kubeRequest(env.kc, "GET", `${base}/networkconfigs/default`)).status === 404
          ? true
          : undefined,
      60_000,
    );
    const all = await states();
    assert.equal(all.length, NODES);
    for (const s of all) {
      assert.equal(s.status?.sources?.networkConfig, undefined, `${s.metadata.name} reports it`);
      assert.equal(cond(s as unknown as Obj, "Ready")?.status, "True");
    }
    for (const [node, { driver }] of env.sim.agents)
      assert.deepEqual((await driver.read()).egressDeny, [], `${node} still denies`);
  });
});
