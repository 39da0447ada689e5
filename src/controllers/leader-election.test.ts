import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { leaseDecision, nextLeaseSpec, releasedLeaseSpec } from "./leader-election.js";

describe("leaseDecision", () => {
  const base = { identity: "me", leaseDurationSeconds: 15, observedAtMs: 1000 };
  it("renews its own lease and takes a free one", () => {
    assert.equal(leaseDecision({ ...base, holder: "me", nowMs: 1001 }), "renew");
    assert.equal(leaseDecision({ ...base, holder: "", nowMs: 1001 }), "acquire");
  });
  it("waits for another holder until leaseDuration after the last observed change", () => {
    assert.equal(leaseDecision({ ...base, holder: "other", nowMs: 1000 + 14_999 }), "wait");
    assert.equal(leaseDecision({ ...base, holder: "other", nowMs: 1000 + 15_000 }), "acquire");
  });
});

describe("lease specs", () => {
  const now = new Date("2025-01-01T00:00:00.123Z");
  it("keeps acquireTime and transitions on renew, moves them on takeover", () => {
    const held = {
      holderIdentity: "me",
      acquireTime: new Date(0),
      leaseTransitions: 2,
      leaseDurationSeconds: 15,
    };
    const renewed = nextLeaseSpec(held, "me", 15, now);
    assert.equal(renewed.acquireTime, held.acquireTime);
    assert.equal(renewed.leaseTransitions, 2);
    const taken = nextLeaseSpec(held, "other", 15, now);
    assert.equal(taken.holderIdentity, "other");
    assert.equal(taken.leaseTransitions, 3);
    assert.equal(taken.acquireTime?.getTime(), now.getTime());
  });
  it("serializes times as RFC 3339 with microseconds (MicroTime)", () => {
    const spec = nextLeaseSpec({}, "me", 15, now);
    assert.equal(JSON.stringify(spec.renewTime), '"2025-01-01T00:00:00.123000Z"');
  });
  it("release clears the holder and shortens the lease to 1 s", () => {
    const spec = releasedLeaseSpec(
      { holderIdentity: "me", leaseDurationSeconds: 15, leaseTransitions: 4 },
      now,
    );
    assert.equal(spec.holderIdentity, "");
    assert.equal(spec.leaseDurationSeconds, 1);
    assert.equal(spec.leaseTransitions, 4);
  });
});
