import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NodePeer, NodePeerStatus } from "../api/nodepeer.js";
import { endpointOf, PEER_SWITCH_FALLBACK_MS, planPeers, usablePeers } from "./peers.js";

const T = new Date("2026-11-24T10:00:00Z");
const at = (ms: number) => new Date(T.getTime() + ms);

/** A peer entry in profile p; `endpoint` is split into the status' nodeIP and listenPort. */
function state(
  name: string,
  wg: Omit<NodePeerStatus, "nodeIP" | "listenPort"> & { endpoint?: string },
): NodePeer {
  const { endpoint, ...rest } = wg;
  const [ip, port] = endpoint ? endpoint.split(":") : [];
  return {
    apiVersion: "netloom.io/v1alpha1",
    kind: "NodePeer",
    metadata: { name },
    spec: { nodeName: name, podCIDRs: ["10.244.2.0/24"] },
    status: {
      profile: "p",
      ...rest,
      ...(ip && port ? { nodeIP: ip, listenPort: Number(port) } : {}),
    },
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
    other.status = { ...other.status, profile: "q" };
    const keyless = state("d", { endpoint: "192.0.2.4:51871" });
    const plan = planPeers("b", "p", [announcing, other, keyless], at(0));
    assert.deepEqual(plan.peers, []);
    assert.equal(plan.expected, 1, "the keyless node still counts as expected");
  });
});

describe("planPeers with node encryption", () => {
  const encrypting = (s: NodePeer): NodePeer => ({
    ...s,
    status: { ...s.status, nodeEncryption: true },
  });
  it("adds each peer's node IP as a host route (/32, /128 for IPv6)", () => {
    const switched = encrypting(state("b", { publicKey: "k", endpoint: "192.0.2.2:51871" }));
    const [peer] = planPeers("a", "p", [switched], at(0), undefined, true).peers;
    assert.deepEqual(peer?.allowedIPs, ["10.244.2.0/24", "192.0.2.2/32"]);
    assert.equal(peer?.nodeIP, "192.0.2.2");
    assert.equal(peer?.endpoint, "192.0.2.2:51871");
    const v6 = { ...switched, status: { ...switched.status, nodeIP: "fd00::2" } };
    const [six] = planPeers("a", "p", [v6], at(0), undefined, true).peers;
    assert.deepEqual(six?.allowedIPs, ["10.244.2.0/24", "fd00::2/128"]);
    assert.equal(six?.endpoint, "[fd00::2]:51871");
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

describe("usablePeers: what no single peer entry can show", () => {
  const K = (c: string) => `${c.repeat(42)}A=`;
  it("leaves out every node claiming a key another node (or this one) claims, and names them", () => {
    const peers = [
      state("b", { publicKey: K("b"), endpoint: "192.0.2.2:51871" }),
      state("c", { publicKey: K("c"), endpoint: "192.0.2.3:51871" }),
      // d copies c's key: traffic for c's pods would go to d.
      state("d", { publicKey: K("c"), endpoint: "192.0.2.4:51871" }),
      // e announces this node's own key as its next one.
      state("e", {
        publicKey: K("e"),
        nextPublicKey: K("a"),
        nextKeySwitchTime: "2026-11-24T10:00:00Z",
        endpoint: "192.0.2.5:51871",
      }),
    ];
    const r = usablePeers("a", [K("a")], peers);
    assert.deepEqual(
      r.peers.map((p) => p.metadata.name),
      ["b"],
    );
    assert.equal(r.problems.length, 2);
    assert.match(r.problems.join("\n"), /claimed by a, e/);
    assert.match(r.problems.join("\n"), /claimed by c, d/);
  });
  it("a node's own entry and a node announcing its current key again clash with nobody", () => {
    const peers = [
      state("a", { publicKey: K("a"), endpoint: "192.0.2.1:51871" }),
      state("b", {
        publicKey: K("b"),
        nextPublicKey: K("b"),
        nextKeySwitchTime: "2026-11-24T10:00:00Z",
      }),
    ];
    assert.deepEqual(usablePeers("a", [K("a")], peers).problems, []);
  });
});

describe("endpointOf", () => {
  it("brackets IPv6 addresses", () => {
    assert.equal(endpointOf("192.0.2.1", 51871), "192.0.2.1:51871");
    assert.equal(endpointOf("fd00::1", 51871), "[fd00::1]:51871");
  });
});
