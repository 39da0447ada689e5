import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeClock } from "../util/clock.js";
import { AGENT_LEASE_RENEW_MS, agentLease, LeaseKeeper } from "./lease.js";

describe("agent Lease", () => {
  it("is named after the node, labelled for the operator's watch, with a MicroTime renewal", () => {
    const l = agentLease("node-1", "netloom-system", new Date("2026-11-29T12:00:00.123Z"));
    assert.deepEqual(l.metadata, {
      name: "node-1",
      namespace: "netloom-system",
      labels: { "app.kubernetes.io/component": "netloom-agent" },
    });
    assert.deepEqual(l.spec, {
      holderIdentity: "node-1",
      leaseDurationSeconds: 40,
      renewTime: "2026-11-29T12:00:00.123000Z",
    });
  });

  it("renews every 10 s on its clock, and a failed renewal does not stop the next", async () => {
    const clock = new FakeClock("2026-11-29T12:00:00Z");
    const renewals: string[] = [];
    let fail = false;
    const keeper = new LeaseKeeper({
      node: "n1",
      clock,
      renew: async (now) => {
        renewals.push(now.toISOString().slice(11, 19));
        if (fail) throw new Error("API server unavailable");
      },
    });
    keeper.start();
    await clock.advance(0);
    await clock.advance(AGENT_LEASE_RENEW_MS);
    fail = true;
    await clock.advance(AGENT_LEASE_RENEW_MS);
    fail = false;
    await clock.advance(AGENT_LEASE_RENEW_MS);
    keeper.stop();
    await clock.advance(5 * AGENT_LEASE_RENEW_MS);
    assert.deepEqual(renewals, ["12:00:00", "12:00:10", "12:00:20", "12:00:30"]);
  });
});
