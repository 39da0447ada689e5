/**
 * The operator's half of NetworkPolicy on a real API server (agents simulated): identities
 * allocated once per label set and collected when unused, endpoint slices per node with named
 * ports, a pod restart with a new address writing its slice and no identity.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ensureNamespace } from "../../src/kube/namespace.js";
import { kubeRequest } from "../../src/kube/raw.js";
import { identityGcDecision, identitySpecOf } from "../../src/policy/endpoints.js";
import { eventually, nodeName, type SimCluster, startSimCluster } from "../support/sim-cluster.js";

const base = "/apis/netloom.io/v1alpha1";

interface Identity {
  metadata: { name: string; resourceVersion: string; labels: Record<string, string> };
  spec: { namespace: string; podLabels: Record<string, string> };
}
interface Slice {
  metadata: { name: string; resourceVersion: string };
  spec: {
    nodeName: string;
    endpoints: {
      namespace: string;
      name: string;
      identity: number;
      ips: string[];
      namedPorts?: { name: string; port: number; protocol: string }[];
    }[];
  };
}

describe("identity gc decision", () => {
  it("keeps what is used, waits out the grace, then deletes", () => {
    assert.deepEqual(identityGcDecision(true, 0, 10_000, 1000), { action: "keep" });
    assert.deepEqual(identityGcDecision(false, undefined, 10_000, 1000), {
      action: "wait",
      ms: 1000,
    });
    assert.deepEqual(identityGcDecision(false, 9_500, 10_000, 1000), { action: "wait", ms: 500 });
    assert.deepEqual(identityGcDecision(false, 9_000, 10_000, 1000), { action: "delete" });
  });
});

describe("NetworkPolicy identities and endpoint slices on a real API server", () => {
  let env: SimCluster;
  const list = async <T>(plural: string): Promise<T[]> =>
    (await kubeRequest(env.kc, "GET", `${base}/${plural}`)).json<{ items: T[] }>().items;
  const pod = async (
    name: string,
    node: number,
    ips: string[],
    labels: Record<string, string>,
    ports: { name: string; containerPort: number; protocol?: string }[] = [],
  ) => {
    await env.core.createNamespacedPod({
      namespace: "shop",
      body: {
        metadata: { name, namespace: "shop", labels: { ...labels, "pod-template-hash": name } },
        spec: {
          nodeName: nodeName(node),
          containers: [{ name: "app", image: "registry.invalid/app:1", ports }],
        },
      },
    });
    const r = await kubeRequest(env.kc, "PATCH", `/api/v1/namespaces/shop/pods/${name}/status`, {
      body: { status: { phase: "Running", podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) } },
      contentType: "application/merge-patch+json",
    });
    assert.equal(r.status, 200, r.body);
  };
  const remove = (name: string) =>
    kubeRequest(env.kc, "DELETE", `/api/v1/namespaces/shop/pods/${name}?gracePeriodSeconds=0`);

  before(async () => {
    env = await startSimCluster(2, { identityGcGraceMs: 1500 });
    await ensureNamespace(env.kc, "shop");
  });
  after(async () => {
    await env?.stop();
  });

  it("two replicas share one identity (pod-template-hash left out); the slice carries addresses and named ports", async () => {
    await pod("web-a", 0, ["10.244.0.10", "fd00:244::10"], { app: "web" }, [
      { name: "http", containerPort: 8080 },
    ]);
    await pod("web-b", 1, ["10.244.1.10"], { app: "web" }, [{ name: "http", containerPort: 8080 }]);
    await pod("db", 1, ["10.244.1.11"], { app: "db" });
    const slices = await eventually(
      "both slices with every pod",
      async () => {
        const s = await list<Slice>("networkendpointslices");
        return s.length === 2 && s.flatMap((x) => x.spec.endpoints).length === 3 ? s : undefined;
      },
      30_000,
    );
    const ids = await list<Identity>("networkidentities");
    assert.equal(ids.length, 2, "one identity per label set, not per pod");
    const endpoints = slices.flatMap((s) => s.spec.endpoints);
    const of = (n: string) => endpoints.find((e) => e.name === n)!;
    assert.equal(of("web-a").identity, of("web-b").identity);
    assert.notEqual(of("web-a").identity, of("db").identity);
    assert.deepEqual(of("web-a").ips, ["10.244.0.10", "fd00:244::10"]);
    assert.deepEqual(of("web-a").namedPorts, [{ name: "http", port: 8080, protocol: "TCP" }]);
    const web = ids.find((i) => String(of("web-a").identity) === i.metadata.name)!;
    assert.deepEqual(web.spec.podLabels, { app: "web" });
    const nsLabels = { "kubernetes.io/metadata.name": "shop" };
    assert.equal(
      web.metadata.labels["netloom.io/label-set"],
      identitySpecOf({ namespace: "shop", labels: { app: "web" } }, nsLabels).key,
    );
  });

  it("a pod restarted with a new address rewrites its node's slice and no identity", async () => {
    const before = (await list<Identity>("networkidentities")).map(
      (i) => `${i.metadata.name}@${i.metadata.resourceVersion}`,
    );
    await remove("db");
    await pod("db", 1, ["10.244.1.99"], { app: "db" });
    await eventually(
      "the slice with db's new address",
      async () =>
        (await list<Slice>("networkendpointslices"))
          .flatMap((s) => s.spec.endpoints)
          .some((e) => e.name === "db" && e.ips[0] === "10.244.1.99"),
      30_000,
    );
    assert.deepEqual(
      (await list<Identity>("networkidentities")).map(
        (i) => `${i.metadata.name}@${i.metadata.resourceVersion}`,
      ),
      before,
    );
  });

  it("an identity no pod uses any more is collected after the grace period", async () => {
    const db = (await list<Identity>("networkidentities")).find(
      (i) => i.spec.podLabels.app === "db",
    )!;
    await remove("db");
    await eventually(
      `identity ${db.metadata.name} collected`,
      async () =>
        !(await list<Identity>("networkidentities")).some(
          (i) => i.metadata.name === db.metadata.name,
        ),
      30_000,
    );
    assert.equal((await list<Identity>("networkidentities")).length, 1, "web's stays");
  });
});
