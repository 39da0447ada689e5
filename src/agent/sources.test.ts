import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SourceParser } from "./sources.js";

const peer = (name: string, status: Record<string, unknown>) => ({
  apiVersion: "netloom.io/v1alpha1",
  kind: "NodePeer",
  metadata: { name },
  spec: { nodeName: name, podCIDRs: ["10.244.2.0/24"] },
  status,
});

describe("SourceParser.peers: another node's data is checked where it is used", () => {
  const good = {
    profile: "p",
    publicKey: `${"k".repeat(42)}A=`,
    nodeIP: "192.0.2.2",
    listenPort: 51871,
  };
  const cases: [string, Record<string, unknown>, RegExp][] = [
    // A newline would inject lines into the UAPI text protocol.
    ["a key with a newline", { ...good, publicKey: "x\nendpoint=203.0.113.9:51871" }, /publicKey/],
    ["a key of the wrong length", { ...good, publicKey: "AAAA=" }, /publicKey/],
    ["a node IP that is not an IP", { ...good, nodeIP: "evil.example.com" }, /nodeIP/],
    ["a port out of range", { ...good, listenPort: 70000 }, /listenPort/],
    ["an announcement without its time", { ...good, nextPublicKey: good.publicKey }, /next/],
  ];
  for (const [what, status, field] of cases) {
    it(`refuses ${what}, naming the field`, () => {
      const r = new SourceParser().peers([peer("b", good), peer("c", status)]);
      assert.deepEqual(
        r.peers.map((p) => p.metadata.name),
        ["b"],
      );
      assert.equal(r.errors.length, 1);
      assert.match(r.errors[0]!, /NodePeer c is not usable/);
      assert.match(r.errors[0]!, field);
    });
  }
});

describe("SourceParser.render", () => {
  const node = {
    metadata: { name: "n1", labels: { pool: "a" } },
    spec: { podCIDR: "10.244.1.0/24" },
  };
  const nc = (name: string, selector: Record<string, string>, cidr: string) => ({
    apiVersion: "netloom.io/v1alpha1",
    kind: "NetworkConfig",
    metadata: { name, generation: 2, creationTimestamp: "2026-11-01T00:00:00Z" },
    spec: { nodeSelector: { matchLabels: selector }, egressDeny: [{ cidr }] },
  });
  const raw = (networkConfigs: unknown[], bandwidthPolicies: unknown[] = []) => ({
    node,
    pods: [],
    networkConfigs,
    encryptionProfiles: [],
    bandwidthPolicies,
  });

  it("renders from the configs that select the node and names their generations", () => {
    const r = new SourceParser().render(
      raw([nc("a", { pool: "a" }, "10.0.0.0/8"), nc("b", { pool: "b" }, "192.0.2.0/24")]),
    );
    assert.ok(r.ok && r.spec);
    assert.deepEqual(r.spec.egressDeny, [{ cidr: "10.0.0.0/8" }]);
    assert.deepEqual(r.spec.sources?.networkConfig, { name: "a", generation: 2 });
    assert.deepEqual(r.spec.podCIDRs, ["10.244.1.0/24"]);
  });

  it("refuses to render when any NetworkConfig does not parse (it might select the node)", () => {
    const r = new SourceParser().render(
      raw([nc("a", { pool: "a" }, "10.0.0.0/8"), nc("b", { pool: "b" }, "10.0.0.0/33")]),
    );
    assert.equal(r.ok, false);
    assert.match(r.ok ? "" : r.error, /NetworkConfig b is not usable: spec\.egressDeny\[0\]\.cidr/);
  });

  it("ignores a broken BandwidthPolicy in a namespace with no pod on this node", () => {
    const broken = {
      apiVersion: "netloom.io/v1alpha1",
      kind: "BandwidthPolicy",
      metadata: { name: "x", namespace: "elsewhere" },
      spec: { egress: { rate: "not-a-rate" } },
    };
    const r = new SourceParser().render(raw([nc("a", { pool: "a" }, "10.0.0.0/8")], [broken]));
    assert.ok(r.ok);
  });

  it("renders nothing for a node that is gone", () => {
    const r = new SourceParser().render({ ...raw([]), node: undefined });
    assert.deepEqual(r, { ok: true, spec: undefined });
  });
});
