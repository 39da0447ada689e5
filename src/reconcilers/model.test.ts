import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { V1Node, V1Pod } from "@kubernetes/client-node";
import { nodeView, podView, slimNode, slimPod } from "./model.js";

describe("the operator's slim caches", () => {
  const pod: V1Pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "web-1",
      namespace: "shop",
      uid: "u1",
      labels: { app: "web" },
      annotations: {
        "kubernetes.io/egress-bandwidth": "10M",
        "kubectl.kubernetes.io/last-applied-configuration": "x".repeat(10_000),
      },
      managedFields: [{ manager: "kubectl", operation: "Apply" }],
    },
    spec: {
      nodeName: "node-1",
      containers: [
        { name: "app", image: "registry.invalid/app:1", env: [{ name: "A", value: "1" }] },
      ],
    },
    status: { podIP: "10.244.1.5", podIPs: [{ ip: "10.244.1.5" }], phase: "Running" },
  };
  const node: V1Node = {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name: "node-1", uid: "n1", labels: { zone: "a" } },
    spec: { podCIDR: "10.244.1.0/24", podCIDRs: ["10.244.1.0/24", "fd00:244:1::/64"] },
    status: {
      addresses: [{ type: "InternalIP", address: "192.0.2.1" }],
      images: [{ names: ["registry.invalid/big:1"], sizeBytes: 1e9 }],
    },
  };

  it("a slim Pod reads the same as the full one, and is a fraction of its size", () => {
    // Every field decisions read; of the annotations, the kubernetes.io/ and netloom.io/ ones.
    assert.deepEqual(podView(slimPod(pod)), {
      ...podView(pod),
      annotations: { "kubernetes.io/egress-bandwidth": "10M" },
    });
    assert.ok(JSON.stringify(slimPod(pod)).length < JSON.stringify(pod).length / 10);
  });
  it("a slim Node reads the same as the full one", () => {
    assert.deepEqual(nodeView(slimNode(node)), nodeView(node));
    assert.equal(slimNode(node).status?.images, undefined);
  });
});
