import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { kstatus } from "./kstatus.js";

function cr(name: string, generation: number, status?: object): object {
  return {
    apiVersion: "netloom.io/v1alpha1",
    kind: "Widget",
    metadata: { name, namespace: "default", generation },
    ...(status === undefined ? {} : { status }),
  };
}

describe("kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status)", () => {
  it("computes the statuses Flux and kpt would", async () => {
    const results = await kstatus([
      cr("no-status", 1),
      cr("stale-generation", 3, { observedGeneration: 2 }),
      cr("reconciling", 1, {
        observedGeneration: 1,
        conditions: [
          { type: "Reconciling", status: "True", reason: "Progressing", message: "applying" },
        ],
      }),
      cr("stalled", 1, {
        observedGeneration: 1,
        conditions: [
          { type: "Stalled", status: "True", reason: "InvalidSpec", message: "peer overlaps" },
        ],
      }),
      cr("ready", 2, {
        observedGeneration: 2,
        conditions: [{ type: "Ready", status: "True", reason: "Ready", message: "all good" }],
      }),
    ]);
    assert.deepEqual(
      results.map((r) => [r.name, r.status]),
      [
        ["no-status", "Current"],
        ["stale-generation", "InProgress"],
        ["reconciling", "InProgress"],
        ["stalled", "Failed"],
        ["ready", "Current"],
      ],
    );
    for (const r of results) {
      assert.equal(r.kind, "Widget");
      assert.equal(r.namespace, "default");
    }
    assert.equal(
      results[1]?.message,
      "Widget generation is 3, but latest observed generation is 2",
    );
    assert.equal(results[2]?.message, "applying");
    assert.equal(results[3]?.message, "peer overlaps");
  });

  it("returns an empty array for no objects", async () => {
    assert.deepEqual(await kstatus([]), []);
  });

  it("rejects with the tool's error on bad input", async () => {
    await assert.rejects(kstatus([{ metadata: { name: "x" } }]), /object has no kind/);
  });
});
