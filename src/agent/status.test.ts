import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { statusPatch } from "./status.js";

describe("statusPatch", () => {
  it("deletes the WireGuard section once the node no longer encrypts", () => {
    assert.deepEqual(statusPatch({ observedGeneration: 3 }), {
      observedGeneration: 3,
      wireguard: null,
    });
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
