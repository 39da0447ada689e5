import assert from "node:assert/strict";
import { basename } from "node:path";
import { describe, it } from "node:test";
import { expectGolden, goldenCases, readGoldenInputs } from "../../../test/support/golden.js";
import { nodeDatapath } from "../../api/nodenetworkstate.js";
import { decidePodBandwidth, renderNodeState } from "./desired.js";

describe("renderNodeState (golden fixtures: test/fixtures/golden/render)", () => {
  for (const dir of goldenCases("test/fixtures/golden/render")) {
    it(basename(dir), () => {
      const inputs = readGoldenInputs(dir);
      const rendered = Object.fromEntries(
        inputs.nodes.map((node) => {
          const r = renderNodeState({
            ...inputs,
            node,
            pods: inputs.pods.filter((p) => p.nodeName === node.name),
          });
          const parsed = nodeDatapath.safeParse(r.spec);
          assert.ok(
            parsed.success,
            `${node.name}: rendered spec is invalid: ${JSON.stringify(parsed.error?.issues)}`,
          );
          return [
            node.name,
            {
              spec: r.spec,
              conflicts: r.conflicts,
              bandwidth: r.bandwidth,
              badAnnotations: r.badAnnotations,
            },
          ];
        }),
      );
      const { expected, actual } = expectGolden(dir, rendered);
      assert.equal(actual, expected);
    });
  }
});

describe("decidePodBandwidth", () => {
  const pod = {
    namespace: "ns",
    name: "p",
    labels: { app: "a" },
    annotations: {},
    nodeName: "n",
    ip: "10.0.0.1",
  };
  const bp = (name: string, rate: string, ns = "ns") => ({
    apiVersion: "netloom.io/v1alpha1" as const,
    kind: "BandwidthPolicy" as const,
    metadata: { name, namespace: ns, generation: 1 },
    spec: { podSelector: {}, egress: { rate } },
  });
  it("picks the most restrictive rate and breaks ties by source name", () => {
    const r = decidePodBandwidth(pod, [bp("b", "10M"), bp("a", "10M"), bp("c", "1G")]);
    assert.equal(r.entry?.egressBitsPerSecond, 10_000_000);
    assert.equal(r.entry?.source, "ns/a");
    assert.equal(r.decision?.candidates.length, 3);
  });
  it("ignores policies of other namespaces and pods without limits", () => {
    assert.deepEqual(decidePodBandwidth(pod, [bp("x", "1M", "other")]), {});
  });
  it("holds the annotation to the BandwidthPolicy's bounds: what anyone creating a pod sets", () => {
    const annotated = (v: string) => ({
      ...pod,
      annotations: { "kubernetes.io/egress-bandwidth": v },
    });
    // Rounds to 0, overflows every integer, is above what any NIC here carries, is not a rate,
    // is not a whole number of bits.
    for (const v of ["1m", "999", "1e100", "200G", "fast", "NaN", "", "1000.5"]) {
      const r = decidePodBandwidth(annotated(v), []);
      assert.equal(r.entry, undefined, `${v}: no limit from it`);
      assert.match(r.badAnnotation ?? "", /between 1k and 100G|not a Kubernetes quantity/, v);
    }
    for (const [v, bits] of [
      ["1k", 1_000],
      ["100G", 100_000_000_000],
      ["2.5M", 2_500_000],
    ] as const)
      assert.equal(decidePodBandwidth(annotated(v), []).entry?.egressBitsPerSecond, bits, v);
  });
  it("honours the egress-bandwidth annotation and reports a bad one", () => {
    const annotated = { ...pod, annotations: { "kubernetes.io/egress-bandwidth": "5M" } };
    assert.equal(
      decidePodBandwidth(annotated, [bp("a", "10M")]).entry?.egressBitsPerSecond,
      5_000_000,
    );
    const bad = { ...pod, annotations: { "kubernetes.io/egress-bandwidth": "-3M" } };
    assert.match(decidePodBandwidth(bad, []).badAnnotation ?? "", /between 1k and 100G/);
  });
});
