import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { V1Lease } from "@kubernetes/client-node";
import { lastSeenByNode } from "./context.js";

const lease = (node: string, renewTime: string): V1Lease => ({
  metadata: { name: node, namespace: "netloom-system" },
  spec: { holderIdentity: node, renewTime: renewTime as unknown as Date },
});

describe("lastSeenByNode (liveness the operator could see)", () => {
  const now = new Date("2026-11-29T12:00:00Z");
  const leases = [lease("a", "2026-11-29T11:59:55Z"), lease("b", "2026-11-29T11:58:00Z")];

  it("is the Lease's renewal while the operator has been watching all along", () => {
    const seen = lastSeenByNode(leases, Date.parse("2026-11-29T10:00:00Z"), now);
    assert.equal(seen.get("a")?.toISOString(), "2026-11-29T11:59:55.000Z");
    assert.equal(seen.get("b")?.toISOString(), "2026-11-29T11:58:00.000Z");
  });

  it("is never before the operator got back in touch: its own outage is not the agents' silence", () => {
    const back = Date.parse("2026-11-29T11:59:50Z");
    const seen = lastSeenByNode(leases, back, now);
    assert.equal(seen.get("a")?.toISOString(), "2026-11-29T11:59:55.000Z", "renewed since");
    assert.equal(seen.get("b")?.toISOString(), "2026-11-29T11:59:50.000Z", "not yet renewed");
  });

  it("judges no one silent while the watch is down", () => {
    const seen = lastSeenByNode(leases, undefined, now);
    assert.equal(seen.get("b")?.getTime(), now.getTime());
  });

  it("ignores Leases without a holder or a renewal", () => {
    const seen = lastSeenByNode(
      [{ metadata: { name: "x" }, spec: {} }, lease("", "2026-11-29T11:59:55Z")],
      0,
      now,
    );
    assert.equal(seen.size, 0);
  });
});
