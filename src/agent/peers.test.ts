import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NodeNetworkState } from "../api/nodenetworkstate.js";
import { PEER_SWITCH_FALLBACK_MS, planPeers } from "./peers.js";

const T = new Date("2026-11-24T10:00:00Z");
const at = (ms: number) => new Date(T.getTime() + ms);

function state(
  name: string,
  wireguard: NonNullable<NodeNetworkState["status"]>["wireguard"],
): NodeNetworkState {
  return {
    apiVersion: "netloom.io/v1alpha1",
    kind: "NodeNetworkState",
    metadata: { name },
    spec: {
      nodeName: name,
      podCIDRs: ["10.244.2.0/24"],
      wireguard: { profile: "p", interfaceName: "wg0", listenPort: 51871 },
    },
    status: { wireguard },
  };
}

const announcing = state("b", {
  publicKey: "old",
  endpoint: "192.0.2.2:51871",
  nextPublicKey: "new",
  nextKeySwitchTime: T.toISOString(),
});

describe("planPeers during a peer's key rotation", () => {
  it("keeps the old key after the announced switch time until the node says it switched", () => {
    for (const ms of [-3000, 0, PEER_SWITCH_FALLBACK_MS - 1]) {
      const plan = planPeers("a", "p", [announcing], at(ms));
      assert.deepEqual(
        plan.peers.map((p) => p.publicKey),
        ["old"],
        `at ${ms} ms no standby and no early switch`,
      );
      assert.deepEqual(plan.peers[0]?.allowedIPs, ["10.244.2.0/24"]);
      assert.deepEqual(plan.nextSwitch, at(PEER_SWITCH_FALLBACK_MS));
    }
  });

  it("moves to the new key as soon as the node publishes it as current", () => {
    const switched = state("b", { publicKey: "new", endpoint: "192.0.2.2:51871" });
    const plan = planPeers("a", "p", [switched], at(10));
    assert.deepEqual(
      plan.peers.map((p) => p.publicKey),
      ["new"],
    );
    assert.equal(plan.nextSwitch, undefined);
  });

  it("falls back to the announced key when the node's confirmation is late", () => {
    const plan = planPeers("a", "p", [announcing], at(PEER_SWITCH_FALLBACK_MS));
    assert.deepEqual(
      plan.peers.map((p) => p.publicKey),
      ["new"],
    );
    assert.equal(plan.nextSwitch, undefined);
  });

  it("skips itself, other profiles, and nodes without key, endpoint or pod CIDRs", () => {
    const other = { ...announcing, metadata: { name: "c" } };
    other.spec = { ...other.spec, wireguard: { ...other.spec.wireguard!, profile: "q" } };
    const keyless = state("d", { endpoint: "192.0.2.4:51871" });
    const plan = planPeers("b", "p", [announcing, other, keyless], at(0));
    assert.deepEqual(plan.peers, []);
    assert.equal(plan.expected, 1, "the keyless node still counts as expected");
  });
});

describe("planPeers with node encryption", () => {
  const encrypting = (s: NodeNetworkState): NodeNetworkState => ({
    ...s,
    spec: { ...s.spec, wireguard: { ...s.spec.wireguard!, nodeEncryption: true } },
  });
  it("adds each peer's node IP as a /32 (from its status, else its endpoint)", () => {
    const switched = encrypting(state("b", { publicKey: "k", endpoint: "192.0.2.2:51871" }));
    const withIP = { ...switched, status: { ...switched.status, nodeIP: "192.0.2.20" } };
    const [fromEndpoint] = planPeers("a", "p", [switched], at(0), undefined, true).peers;
    assert.deepEqual(fromEndpoint?.allowedIPs, ["10.244.2.0/24", "192.0.2.2/32"]);
    assert.equal(fromEndpoint?.nodeIP, "192.0.2.2");
    const [fromStatus] = planPeers("a", "p", [withIP], at(0), undefined, true).peers;
    assert.equal(fromStatus?.nodeIP, "192.0.2.20");
    const [off] = planPeers("a", "p", [switched], at(0)).peers;
    assert.deepEqual(off?.allowedIPs, ["10.244.2.0/24"]);
  });
  it("leaves out a peer that is not in node encryption itself (a control-plane node)", () => {
    const controlPlane = state("cp", { publicKey: "k", endpoint: "192.0.2.9:51871" });
    const [peer] = planPeers("a", "p", [controlPlane], at(0), undefined, true).peers;
    assert.deepEqual(peer?.allowedIPs, ["10.244.2.0/24"], "pod traffic only");
    assert.equal(peer?.nodeIP, undefined);
  });
});
