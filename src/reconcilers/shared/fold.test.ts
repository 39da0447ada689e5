import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NodeNetworkState, Sources } from "../../api/nodenetworkstate.js";
import {
  applyFailed,
  applying,
  judgeNode,
  type NodeFacts,
  noState,
  notApplied,
  notReported,
  silent,
} from "./fold.js";

const NOW = new Date("2026-11-29T12:00:00Z");
const wanted = { name: "default", generation: 3 };

function state(
  over: { heartbeatAgoMs?: number; ready?: [string, string]; reported?: boolean } = {},
): NodeNetworkState {
  const { heartbeatAgoMs = 1000, ready = ["True", "Applied"], reported = true } = over;
  return {
    apiVersion: "netloom.io/v1alpha1",
    kind: "NodeNetworkState",
    metadata: { name: "n1", generation: 1 },
    spec: { nodeName: "n1" },
    status: reported
      ? {
          sources: { networkConfig: wanted },
          heartbeatTime: new Date(NOW.getTime() - heartbeatAgoMs).toISOString(),
          conditions: [
            {
              type: "Ready",
              status: ready[0] as "True",
              reason: ready[1],
              message: "m",
              lastTransitionTime: NOW.toISOString(),
              observedGeneration: 1,
            },
          ],
        }
      : {},
  };
}

const facts = (s: NodeNetworkState | undefined, over: Partial<NodeFacts> = {}): NodeFacts => ({
  node: "n1",
  state: s,
  wanted,
  refs: [wanted],
  now: NOW,
  staleAfterMs: 45_000,
  ...over,
});

describe("node judgement, one check at a time", () => {
  const cases: [string, (f: NodeFacts) => unknown, NodeFacts, string | undefined][] = [
    ["noState: none yet", noState, facts(undefined), "pending"],
    ["noState: has one", noState, facts(state()), undefined],
    [
      "notApplied: an older generation",
      notApplied,
      facts(state(), { refs: [{ name: "default", generation: 2 }] }),
      "pending",
    ],
    ["notApplied: another object", notApplied, facts(state(), { refs: [] }), "pending"],
    ["notApplied: this generation", notApplied, facts(state()), undefined],
    ["notReported: no report yet", notReported, facts(state({ reported: false })), "pending"],
    ["notReported: reported", notReported, facts(state()), undefined],
    ["silent: 46 s of 45", silent, facts(state({ heartbeatAgoMs: 46_000 })), "failed"],
    ["silent: 44 s of 45", silent, facts(state({ heartbeatAgoMs: 44_000 })), undefined],
    [
      "silent: a recent Lease renewal outranks an old report",
      silent,
      facts(state({ heartbeatAgoMs: 600_000 }), { lastSeen: new Date(NOW.getTime() - 5_000) }),
      undefined,
    ],
    [
      "silent: a stale Lease fails the node whatever it reported",
      silent,
      facts(state({ heartbeatAgoMs: 1_000 }), { lastSeen: new Date(NOW.getTime() - 50_000) }),
      "failed",
    ],
    [
      "silent: the window is the caller's",
      silent,
      facts(state({ heartbeatAgoMs: 11_000 }), { staleAfterMs: 10_000 }),
      "failed",
    ],
    [
      "applyFailed: Ready=False",
      applyFailed,
      facts(state({ ready: ["False", "ApplyFailed"] })),
      "failed",
    ],
    [
      "applyFailed: Applying is not a failure",
      applyFailed,
      facts(state({ ready: ["False", "Applying"] })),
      undefined,
    ],
    [
      "applying: not Ready yet",
      applying,
      facts(state({ ready: ["False", "Applying"] })),
      "pending",
    ],
    ["applying: applied", applying, facts(state()), undefined],
  ];
  for (const [name, check, f, want] of cases)
    it(name, () => assert.equal((check(f) as { state?: string } | undefined)?.state, want));
});

describe("judgeNode", () => {
  it("passes its stale window to the chain (the operator's --stale-after reaches it)", () => {
    const s = state({ heartbeatAgoMs: 20_000 });
    const src = (x: Sources) => x.networkConfig;
    assert.equal(judgeNode("n1", s, wanted, src, { now: NOW }).state, "ready");
    assert.equal(
      judgeNode("n1", s, wanted, src, { now: NOW, staleAfterMs: 15_000 }).state,
      "failed",
    );
    const renewed = new Map([["n1", new Date(NOW.getTime() - 1_000)]]);
    assert.equal(
      judgeNode("n1", s, wanted, src, { now: NOW, staleAfterMs: 15_000, lastSeen: renewed }).state,
      "ready",
      "the node's own Lease renewal, looked up by name",
    );
  });
});

describe("judgeNode, the chain in order", () => {
  const src = (x: Sources) => x.networkConfig;
  it("a node silent past the window fails even before it applied the new generation", () => {
    const s = state({ heartbeatAgoMs: 60_000 });
    s.status!.sources = { networkConfig: { name: "default", generation: 2 } };
    assert.equal(judgeNode("n1", s, wanted, src, { now: NOW }).state, "failed");
  });
  it("a failed apply is reported whatever generation it named", () => {
    const s = state({ ready: ["False", "InvalidSpec"] });
    s.status!.sources = { networkConfig: { name: "default", generation: 2 } };
    assert.equal(judgeNode("n1", s, wanted, src, { now: NOW }).state, "failed");
  });
  it("ready once the wanted generation is among the applied sources and Ready=True", () => {
    assert.equal(judgeNode("n1", state(), wanted, src, { now: NOW }).state, "ready");
    const older = state();
    older.status!.sources = { networkConfig: { name: "default", generation: 2 } };
    assert.equal(judgeNode("n1", older, wanted, src, { now: NOW }).state, "pending");
  });
});
