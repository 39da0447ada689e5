import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NodePeer } from "../api/nodepeer.js";
import { firstRotationDue, ROTATION_GUARD_MS, rotationClash } from "./rotation.js";

const T = new Date("2026-11-24T10:00:00.000Z").getTime();

function announcing(name: string, switchAtMs: number, profile = "p"): NodePeer {
  return {
    apiVersion: "netloom.io/v1alpha1",
    kind: "NodePeer",
    metadata: { name },
    spec: { nodeName: name },
    status: {
      profile,
      publicKey: `${name}-old`,
      nextPublicKey: `${name}-new`,
      nextKeySwitchTime: new Date(switchAtMs).toISOString(),
    },
  };
}

describe("rotationClash", () => {
  const peers = [announcing("b", T), announcing("self", T - 100), announcing("x", T, "other")];

  it("before announcing, any peer switch closer than the guard clashes", () => {
    for (const ms of [-ROTATION_GUARD_MS + 1, 0, ROTATION_GUARD_MS - 1]) {
      assert.equal(rotationClash("self", "p", peers, new Date(T + ms), false)?.node, "b");
    }
    for (const ms of [-ROTATION_GUARD_MS, ROTATION_GUARD_MS]) {
      assert.equal(rotationClash("self", "p", peers, new Date(T + ms), false), undefined);
    }
  });

  it("once announced, only the side that goes second gives way: later time, then larger name", () => {
    const b = [announcing("b", T)];
    assert.equal(rotationClash("a", "p", b, new Date(T + 500), true)?.node, "b");
    assert.equal(rotationClash("a", "p", b, new Date(T - 500), true), undefined);
    assert.equal(rotationClash("c", "p", b, new Date(T), true)?.node, "b");
    assert.equal(rotationClash("a", "p", b, new Date(T), true), undefined);
  });

  it("ignores itself, other profiles and peers with no announcement", () => {
    const quiet = announcing("q", T);
    quiet.status = { profile: "p", publicKey: "q" };
    assert.equal(
      rotationClash("self", "p", [quiet, peers[1]!, peers[2]!], new Date(T), false),
      undefined,
    );
  });
});

describe("rotationClash across clusters", () => {
  it("counts a remote cluster's node whatever its profile is called", () => {
    const remote = announcing("west/n3", T, "their-profile");
    remote.metadata.labels = { "netloom.io/cluster": "west" };
    assert.equal(rotationClash("self", "p", [remote], new Date(T + 100), false)?.node, "west/n3");
    const local = announcing("n4", T, "their-profile");
    assert.equal(rotationClash("self", "p", [local], new Date(T + 100), false), undefined);
  });
});

describe("firstRotationDue", () => {
  it("spreads nodes over one interval after rotation is switched on", () => {
    const interval = 3_600_000;
    const due = Array.from({ length: 200 }, (_, i) => firstRotationDue(`node-${i}`, T, interval));
    for (const d of due) assert.ok(d >= T + interval && d < T + 2 * interval);
    const buckets = new Set(due.map((d) => Math.floor(((d - T - interval) / interval) * 10)));
    assert.equal(buckets.size, 10, "every tenth of the interval has some node");
    assert.equal(firstRotationDue("node-1", T, interval), due[1], "stable per node");
  });
});
