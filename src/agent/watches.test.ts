import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { KubernetesObject } from "@kubernetes/client-node";
import { specChanged } from "./watches.js";

const policy = (
  generation: number,
  annotations: Record<string, string> = {},
): KubernetesObject => ({
  apiVersion: "networking.k8s.io/v1",
  kind: "NetworkPolicy",
  metadata: { name: "db", namespace: "shop", generation, annotations },
});

describe("specChanged: which source updates re-render an agent", () => {
  it("the operator's own writes (status, the realization annotation) and resyncs do not", () => {
    const a = policy(3);
    assert.equal(specChanged(a, a), false, "a resync");
    assert.equal(
      specChanged(a, policy(3, { "netloom.io/realization": '{"generation":3}' })),
      false,
      "the realization annotation",
    );
    const nc = { ...policy(2), kind: "NetworkConfig", status: { conditions: [] } };
    assert.equal(specChanged(policy(2), nc), false, "a status write");
  });

  it("a spec change, the audit annotation, a deletion and objects without a generation do", () => {
    assert.equal(specChanged(policy(3), policy(4)), true);
    assert.equal(specChanged(policy(3), policy(3, { "netloom.io/audit": "true" })), true);
    const deleting = policy(3);
    deleting.metadata!.deletionTimestamp = new Date();
    assert.equal(specChanged(policy(3), deleting), true);
    assert.equal(specChanged({ metadata: { name: "x" } }, { metadata: { name: "x" } }), true);
  });
});
