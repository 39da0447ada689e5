import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NodeNetworkState } from "../../api/nodenetworkstate.js";
import {
  applyFailed,
  applying,
  judgeNode,
  type NodeFacts,
  noState,
  notRendered,
  silent,
} from "./fold.js";

const NOW = new Date("2026-11-29T12:00:00Z");
const wanted = { name: "default", generation: 3 };

function state(
  over: { heartbeatAgoMs?: number; ready?: [string, string]; observed?: number } = {},
): NodeNetworkState {
  const { heartbeatAgoMs = 1000, ready = ["True", "Applied"], observed = 7 } = over;
  return {
    apiVersion: "netloom.io/v1alpha1",
    kind: "NodeNetworkState",
    metadata: { name: "n1", generation: 7 },
    spec: { nodeName: "n1", sources: { networkConfig: wanted } },
    status: {
      observedGeneration: observed,
      heartbeatTime: new Date(NOW.getTime() - heartbeatAgoMs).toISOString(),
      conditions: [
        {
          type: "Ready",
          status: ready[0] as "True",
          reason: ready[1],
          message: "m",
          lastTransitionTime: NOW.toISOString(),
          observedGeneration: 7,
        },
      ],
    },
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
      "notRendered: older generation",
      notRendered,
      facts(state(), { refs: [{ name: "default", generation: 2 }] }),
      "pending",
    ],
    ["notRendered: rendered", notRendered, facts(state()), undefined],
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
    ["applying: older generation applied", applying, facts(state({ observed: 6 })), "pending"],
    ["applying: applied", applying, facts(state()), undefined],
  ];
  for (const [name, check, f, want] of cases)
    it(name, () => assert.equal((check(f) as { state?: string } | undefined)?.state, want));
});

describe("judgeNode", () => {
  it("passes its stale window to the chain (the operator's --stale-after reaches it)", () => {
    const s = state({ heartbeatAgoMs: 20_000 });
    const src = (x: NodeNetworkState) => x.spec.sources?.networkConfig;
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
