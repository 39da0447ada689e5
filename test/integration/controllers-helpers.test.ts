import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  ApiextensionsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  type V1ConfigMap,
} from "@kubernetes/client-node";
import {
  addFinalizer,
  applyObject,
  applyStatus,
  isConflict,
  mergePatchStatus,
  type ResourceKind,
  removeFinalizer,
  setCondition,
} from "../../src/controllers/index.js";
import { startTestCluster, type TestCluster } from "../support/cluster.js";

let cluster: TestCluster;
let core: CoreV1Api;
let objects: KubernetesObjectApi;
let custom: CustomObjectsApi;
const NS = "helpers";

const WidgetKind: ResourceKind = {
  group: "test.netloom.io",
  version: "v1",
  kind: "Widget",
  plural: "widgets",
  namespaced: true,
};

interface Widget {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    resourceVersion?: string;
    managedFields?: Array<{ manager?: string; subresource?: string }>;
  };
  spec?: { size?: number };
  status?: { phase?: string; conditions?: unknown[] };
}

async function retry<T>(fn: () => Promise<T>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > end) throw err;
      await sleep(200);
    }
  }
}

async function rejectsWithConflict(p: Promise<unknown>): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isConflict(err), `expected 409, got ${String(err).slice(0, 200)}`);
    return true;
  });
}

describe("finalizer, apply and status helpers against a real API server", {
  timeout: 85_000,
}, () => {
  before(async () => {
    cluster = await startTestCluster();
    core = cluster.kubeconfig.makeApiClient(CoreV1Api);
    objects = KubernetesObjectApi.makeApiClient(cluster.kubeconfig);
    custom = cluster.kubeconfig.makeApiClient(CustomObjectsApi);
    await core.createNamespace({ body: { metadata: { name: NS } } });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("adds and removes a finalizer with a resourceVersion precondition", async () => {
    const created = await core.createNamespacedConfigMap({
      namespace: NS,
      body: { metadata: { name: "fin", finalizers: ["other.io/keep"] } },
    });
    const obj = { apiVersion: "v1", kind: "ConfigMap", metadata: created.metadata };
    const added = await addFinalizer(objects, obj, "netloom.io/cleanup");
    assert.deepEqual(added?.metadata?.finalizers, ["other.io/keep", "netloom.io/cleanup"]);
    assert.equal(
      await addFinalizer(objects, { ...obj, metadata: added?.metadata }, "netloom.io/cleanup"),
      undefined,
    );
    // The original read is stale now: the API server refuses instead of dropping a finalizer.
    await rejectsWithConflict(
      removeFinalizer(
        objects,
        {
          ...obj,
          metadata: { ...obj.metadata, finalizers: ["other.io/keep", "netloom.io/cleanup"] },
        },
        "netloom.io/cleanup",
      ),
    );
    const removed = await removeFinalizer(
      objects,
      { ...obj, metadata: added?.metadata },
      "netloom.io/cleanup",
    );
    assert.deepEqual(removed?.metadata?.finalizers, ["other.io/keep"]);
  });

  it("server-side applies with a field manager per controller", async () => {
    const desired = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "ssa", namespace: NS, labels: { owner: "a" } },
      data: { mtu: "1450" },
    };
    const first = (await applyObject(objects, desired, "controller-a")) as V1ConfigMap;
    assert.equal(first.data?.mtu, "1450");
    assert.ok(
      first.metadata?.managedFields?.some(
        (f) => f.manager === "controller-a" && f.operation === "Apply",
      ),
    );
    // Another manager claiming the same field conflicts unless it forces.
    const rival = { ...desired, data: { mtu: "9000" } };
    await rejectsWithConflict(applyObject(objects, rival, "controller-b", { force: false }));
    const forced = (await applyObject(objects, rival, "controller-b")) as V1ConfigMap;
    assert.equal(forced.data?.mtu, "9000");
    // Re-applying the same intent is a no-op write (resourceVersion unchanged).
    const again = (await applyObject(objects, rival, "controller-b")) as V1ConfigMap;
    assert.equal(again.metadata?.resourceVersion, forced.metadata?.resourceVersion);
  });

  it("patches the /status subresource of a custom resource (apply and merge)", async () => {
    const ext = cluster.kubeconfig.makeApiClient(ApiextensionsV1Api);
    await ext.createCustomResourceDefinition({
      body: {
        metadata: { name: "widgets.test.netloom.io" },
        spec: {
          group: "test.netloom.io",
          scope: "Namespaced",
          names: { kind: "Widget", plural: "widgets", singular: "widget", listKind: "WidgetList" },
          versions: [
            {
              name: "v1",
              served: true,
              storage: true,
              subresources: { status: {} },
              schema: {
                openAPIV3Schema: {
                  type: "object",
                  properties: {
                    spec: { type: "object", x_kubernetes_preserve_unknown_fields: true },
                    status: { type: "object", x_kubernetes_preserve_unknown_fields: true },
                  },
                },
              },
            },
          ],
        },
      },
    });
    const target = { kind: WidgetKind, name: "w1", namespace: NS };
    const created = (await retry(() =>
      custom.createNamespacedCustomObject({
        group: "test.netloom.io",
        version: "v1",
        namespace: NS,
        plural: "widgets",
        body: {
          apiVersion: "test.netloom.io/v1",
          kind: "Widget",
          metadata: { name: "w1" },
          spec: { size: 3 },
        },
      }),
    )) as Widget;

    const conditions = setCondition(
      undefined,
      { type: "Ready", status: "True", reason: "Applied", message: "ok" },
      1,
      new Date(),
    );
    const applied = (await applyStatus(
      custom,
      target,
      { phase: "Ready", conditions },
      "widget-controller",
    )) as Widget;
    assert.equal(applied.status?.phase, "Ready");
    assert.deepEqual(applied.spec, { size: 3 }, "status writes never touch spec");
    assert.ok(
      applied.metadata.managedFields?.some(
        (f) => f.manager === "widget-controller" && f.subresource === "status",
      ),
    );

    // Merge patch guarded by a stale resourceVersion is refused; with the current one it lands.
    await rejectsWithConflict(
      mergePatchStatus(custom, target, { phase: "Stale" }, created.metadata.resourceVersion),
    );
    const merged = (await mergePatchStatus(
      custom,
      target,
      { phase: "Degraded" },
      applied.metadata.resourceVersion,
    )) as Widget;
    assert.equal(merged.status?.phase, "Degraded");
    assert.equal(merged.status?.conditions?.length, 1, "merge keeps the other status fields");

    // A status sent to the main resource is ignored: the subresource is the only way in.
    const viaMain = (await applyObject(
      objects,
      {
        apiVersion: "test.netloom.io/v1",
        kind: "Widget",
        metadata: { name: "w1", namespace: NS },
        status: { phase: "Hacked" },
      },
      "someone",
    )) as Widget;
    assert.equal(viaMain.status?.phase, "Degraded");
  });
});
