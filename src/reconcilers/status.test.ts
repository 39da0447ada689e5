import assert from "node:assert/strict";
import { basename } from "node:path";
import { describe, it } from "node:test";
import { expectGolden, goldenCases, readGoldenInputs } from "../../test/support/golden.js";
import { foldBandwidthPolicy } from "./bandwidthpolicy/status.js";
import { foldEncryptionProfile } from "./encryptionprofile/status.js";
import { foldNetworkConfig } from "./networkconfig/status.js";
import { foldVerdicts, sampleList } from "./shared/fold.js";

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
          i.now,
        );
      }
      for (const ep of i.encryptionProfiles) {
        out[`EncryptionProfile/${ep.metadata.name}`] = foldEncryptionProfile(
          ep,
          i.encryptionProfiles,
          i.nodes,
          i.states,
          i.now,
        );
      }
      for (const bp of i.bandwidthPolicies) {
        out[`BandwidthPolicy/${bp.metadata.namespace}/${bp.metadata.name}`] = foldBandwidthPolicy(
          bp,
          i.pods,
          i.states,
          i.now,
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
