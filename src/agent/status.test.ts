import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { describeSources, peerStatusPatch, statusPatch } from "./status.js";

describe("statusPatch", () => {
  it("deletes the WireGuard section once the node no longer encrypts", () => {
    assert.deepEqual(statusPatch({ appliedSpecHash: "h" }), {
      appliedSpecHash: "h",
      sources: null,
      policy: null,
      wireguard: null,
    });
  });
  it("deletes a source no longer applied (a merge patch merges objects)", () => {
    const patch = statusPatch({ sources: { encryptionProfile: { name: "p", generation: 2 } } });
    assert.deepEqual(patch.sources, {
      networkConfig: null,
      encryptionProfile: { name: "p", generation: 2 },
      bandwidthPolicies: null,
      networkPolicies: null,
    });
  });
  it("deletes a NetworkPolicy no longer applied and a would-drop count no longer reported", () => {
    const patch = statusPatch({
      sources: { networkPolicies: [] },
      policy: { enforcement: "Default", endpoints: 2 },
    });
    assert.deepEqual(patch.policy, { enforcement: "Default", endpoints: 2, wouldDrop: null });
    assert.equal((patch.sources as Record<string, unknown>).networkConfig, null);
  });
  it("deletes a finished key announcement (a merge patch would keep it otherwise)", () => {
    const patch = statusPatch({ wireguard: { publicKey: "k2", lastRotationTime: "t" } });
    assert.deepEqual(patch.wireguard, {
      nextPublicKey: null,
      nextKeySwitchTime: null,
      publicKey: "k2",
      lastRotationTime: "t",
    });
  });
  it("keeps an announcement in progress", () => {
    const patch = statusPatch({
      wireguard: { publicKey: "k1", nextPublicKey: "k2", nextKeySwitchTime: "t" },
    });
    assert.deepEqual(patch.wireguard, {
      publicKey: "k1",
      nextPublicKey: "k2",
      nextKeySwitchTime: "t",
    });
  });
});

describe("peerStatusPatch", () => {
  it("clears every field the node no longer publishes", () => {
    const patch = peerStatusPatch({ profile: "p", publicKey: "k" });
    assert.equal(patch.profile, "p");
    assert.equal(patch.publicKey, "k");
    for (const k of [
      "nodeIP",
      "listenPort",
      "nextPublicKey",
      "nextKeySwitchTime",
      "lastRotationTime",
    ])
      assert.equal(patch[k], null, k);
  });
});

describe("describeSources", () => {
  it("names each source with its generation, and says so when none selects the node", () => {
    assert.equal(
      describeSources({
        networkConfig: { name: "default", generation: 3 },
        bandwidthPolicies: [{ name: "ns/bp", generation: 1 }],
      }),
      "NetworkConfig default (generation 3), BandwidthPolicy ns/bp (generation 1)",
    );
    assert.match(describeSources({}), /no source selects this node/);
  });
});
