import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { finalizersPatch, hasFinalizer, withFinalizer, withoutFinalizer } from "./finalizers.js";

describe("finalizers", () => {
  const obj = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "a", namespace: "ns", resourceVersion: "7", finalizers: ["x"] },
  };
  it("adds and removes without duplicates or mutation", () => {
    assert.deepEqual(withFinalizer(obj.metadata.finalizers, "netloom.io/cleanup"), [
      "x",
      "netloom.io/cleanup",
    ]);
    assert.deepEqual(withFinalizer(["x"], "x"), ["x"]);
    assert.deepEqual(withoutFinalizer(obj.metadata.finalizers, "x"), []);
    assert.deepEqual(obj.metadata.finalizers, ["x"]);
    assert.equal(hasFinalizer(obj, "x"), true);
  });
  it("builds a merge patch guarded by resourceVersion", () => {
    assert.deepEqual(finalizersPatch(obj, ["x", "y"]), {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "a", namespace: "ns", resourceVersion: "7", finalizers: ["x", "y"] },
    });
    assert.throws(() => finalizersPatch({ metadata: { name: "a" } }, []), /resourceVersion/);
  });
});
