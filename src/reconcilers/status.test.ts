import assert from "node:assert/strict";
import { basename } from "node:path";
import { describe, it } from "node:test";
import { expectGolden, goldenCases, readGoldenInputs } from "../../test/support/golden.js";
import { foldBandwidthPolicy } from "./bandwidthpolicy/status.js";
import { foldEncryptionProfile } from "./encryptionprofile/status.js";
import { foldNetworkConfig } from "./networkconfig/status.js";
import { foldVerdicts, sampleList } from "./shared/fold.js";
import { statusWriteDecision } from "./shared/status.js";

describe("status folding (golden fixtures: test/fixtures/golden/status)", () => {
  for (const dir of goldenCases("test/fixtures/golden/status")) {
    it(basename(dir), () => {
      const i = readGoldenInputs(dir);
      const out: Record<string, unknown> = {};
      for (const nc of i.networkConfigs) {
        out[`NetworkConfig/${nc.metadata.name}`] = foldNetworkConfig(
          nc,
          i.networkConfigs,
          i.nodes,
          i.states,
          { now: i.now },
        );
      }
      for (const ep of i.encryptionProfiles) {
        out[`EncryptionProfile/${ep.metadata.name}`] = foldEncryptionProfile(
          ep,
          i.encryptionProfiles,
          i.nodes,
          i.states,
          { now: i.now },
        );
      }
      for (const bp of i.bandwidthPolicies) {
        out[`BandwidthPolicy/${bp.metadata.namespace}/${bp.metadata.name}`] = foldBandwidthPolicy(
          bp,
          i.pods,
          i.bandwidthPolicies,
          i.states,
          { now: i.now },
        );
      }
      const { expected, actual } = expectGolden(dir, out);
      assert.equal(actual, expected);
    });
  }
});

describe("foldVerdicts", () => {
  it("is Ready with no nodes selected", () => {
    const f = foldVerdicts(1, []);
    assert.equal(f.nodes, "0/0");
    assert.equal(f.conditions.find((c) => c.type === "Ready")?.status, "True");
  });
  it("names at most five nodes, whatever the cluster size", () => {
    const verdicts = Array.from({ length: 500 }, (_, i) => ({
      node: `node-${i}`,
      state: "failed" as const,
      why: "boom",
    }));
    const msg = foldVerdicts(2, verdicts).conditions[0]!.message;
    assert.match(
      msg,
      /^500 of 500 nodes have not applied generation 2: node-0 \(boom\), .* and 495 more$/,
    );
    assert.equal(sampleList(["a", "b"]), "a, b");
  });
  it("reports a conflict as Stalled, naming the winner", () => {
    const f = foldVerdicts(1, [], { kind: "NetworkConfig", nodes: ["n1"], winners: ["old"] });
    const stalled = f.conditions.find((c) => c.type === "Stalled");
    assert.equal(stalled?.status, "True");
    assert.match(stalled?.message ?? "", /older NetworkConfig old: n1/);
  });
});

describe("the operator's stale window reaches every fold", () => {
  // Each golden case with its clock moved 20 s past its newest report.
  const cases = goldenCases("test/fixtures/golden/status").map((dir) => {
    const i = readGoldenInputs(dir);
    const newest = Math.max(
      ...[...i.states.values()].map((s) => new Date(s.status?.heartbeatTime ?? 0).getTime()),
    );
    return { i, later: new Date(newest + 20_000) };
  });
  const folds: Record<string, (w: number) => number[]> = {
    NetworkConfig: (w) =>
      cases.flatMap(({ i, later }) =>
        i.networkConfigs.map(
          (nc) =>
            foldNetworkConfig(nc, i.networkConfigs, i.nodes, i.states, {
              now: later,
              staleAfterMs: w,
            }).readyNodes,
        ),
      ),
    EncryptionProfile: (w) =>
      cases.flatMap(({ i, later }) =>
        i.encryptionProfiles.map(
          (ep) =>
            foldEncryptionProfile(ep, i.encryptionProfiles, i.nodes, i.states, {
              now: later,
              staleAfterMs: w,
            }).readyNodes,
        ),
      ),
    BandwidthPolicy: (w) =>
      cases.flatMap(({ i, later }) =>
        i.bandwidthPolicies.map(
          (bp) =>
            foldBandwidthPolicy(bp, i.pods, i.bandwidthPolicies, i.states, {
              now: later,
              staleAfterMs: w,
            }).readyNodes,
        ),
      ),
  };
  for (const [kind, readyNodes] of Object.entries(folds)) {
    it(`${kind}: silent 20 s is fine with the default window and failed with a 15 s one`, () => {
      assert.ok(
        readyNodes(45_000).some((n) => n > 0),
        "the fixtures have ready nodes of this kind",
      );
      assert.ok(
        readyNodes(15_000).every((n) => n === 0),
        "no node counts as ready once it is silent past the window",
      );
    });
  }
});

describe("statusWriteDecision (coalescing count-only writes)", () => {
  const cond = (status: "True" | "False", reason: string) => ({
    type: "Ready",
    status,
    reason,
    message: "m",
    lastTransitionTime: "2026-11-29T12:00:00Z",
    observedGeneration: 2,
  });
  const st = (ready: number, c = cond("False", "NodesNotReady"), g = 2) => ({
    observedGeneration: g,
    readyNodes: ready,
    conditions: [c],
  });
  const T = 1_000_000;
  const cases: [
    string,
    Parameters<typeof statusWriteDecision>,
    ReturnType<typeof statusWriteDecision>,
  ][] = [
    ["first write", [undefined, st(1), undefined, T], { write: true }],
    [
      "counts only, 200 ms after a write: held",
      [st(1), st(2), T - 200, T],
      { write: false, holdMs: 800 },
    ],
    ["counts only, 1 s after a write: written", [st(1), st(2), T - 1000, T], { write: true }],
    ["Ready flips: at once", [st(49), st(50, cond("True", "Ready")), T - 10, T], { write: true }],
    [
      "reason changes: at once",
      [st(3), st(3, cond("False", "NodesFailed")), T - 10, T],
      { write: true },
    ],
    [
      "new generation: at once",
      [st(3), st(0, cond("False", "NodesNotReady"), 3), T - 10, T],
      { write: true },
    ],
  ];
  for (const [name, args, want] of cases)
    it(name, () => assert.deepEqual(statusWriteDecision(...args), want));
});
