import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NodeNetworkState } from "../api/nodenetworkstate.js";
import { AUDIT_ANNOTATION } from "../api/policyrealization.js";
import type { NetworkPolicy } from "./networkpolicy.js";
import { realizationOf, type SelectablePod } from "./realization.js";

const now = new Date("2026-11-30T00:00:00Z");
const pods: SelectablePod[] = [
  { namespace: "shop", name: "db-1", labels: { app: "db" }, nodeName: "n1", hasIP: true },
  { namespace: "shop", name: "db-2", labels: { app: "db" }, nodeName: "n2", hasIP: true },
  { namespace: "shop", name: "db-3", labels: { app: "db" }, nodeName: "n3", hasIP: false },
  { namespace: "other", name: "db-4", labels: { app: "db" }, nodeName: "n3", hasIP: true },
  { namespace: "shop", name: "web-1", labels: { app: "web" }, nodeName: "n3", hasIP: true },
];
const policy = (annotations = {}): NetworkPolicy => ({
  metadata: { name: "db", namespace: "shop", generation: 4, annotations },
  spec: { podSelector: { matchLabels: { app: "db" } } },
});
function state(
  node: string,
  generation: number,
  extra: Partial<NonNullable<NodeNetworkState["status"]>> = {},
): NodeNetworkState {
  return {
    apiVersion: "netloom.io/v1alpha1",
    kind: "NodeNetworkState",
    metadata: { name: node },
    spec: { nodeName: node },
    status: {
      heartbeatTime: now.toISOString(),
      sources: { networkPolicies: [{ name: "shop/db", generation }] },
      conditions: [
        {
          type: "Ready",
          status: "True",
          reason: "Applied",
          message: "",
          lastTransitionTime: now.toISOString(),
        },
      ],
      ...extra,
    },
  };
}
const judging = { now };

describe("realizationOf", () => {
  it("desired nodes are those hosting selected pods with an address; realized when they report the generation", () => {
    const half = realizationOf(
      policy(),
      pods,
      new Map([
        ["n1", state("n1", 4)],
        ["n2", state("n2", 3)],
      ]),
      judging,
    );
    assert.equal(half.fields.selectedPods, 2);
    assert.equal(half.fields.nodes, "1/2");
    assert.equal(half.summary.state, "Progressing");
    assert.equal(half.summary.generation, 4);
    const all = realizationOf(
      policy(),
      pods,
      new Map([
        ["n1", state("n1", 4)],
        ["n2", state("n2", 4)],
      ]),
      judging,
    );
    assert.equal(all.fields.nodes, "2/2");
    assert.equal(all.summary.state, "Realized");
    assert.ok(all.decisions.some((d) => d.type === "Ready" && d.status === "True"));
  });

  it("a node that never enforces makes it Degraded, named", () => {
    const r = realizationOf(
      policy(),
      pods,
      new Map([
        ["n1", state("n1", 4)],
        ["n2", state("n2", 4, { policy: { enforcement: "Never" } })],
      ]),
      judging,
    );
    assert.equal(r.summary.state, "Degraded");
    assert.match(r.summary.message, /n2.*policyEnforcement: Never/);
  });

  it("audit mode sums the would-drops of this policy over its nodes", () => {
    const w = (count: number) => ({
      sources: { networkPolicies: [{ name: "shop/db", generation: 4, audit: true }] },
      policy: {
        wouldDrop: [
          { policy: "shop/db", count },
          { policy: "shop/x", count: 100 },
        ],
      },
    });
    const r = realizationOf(
      policy({ [AUDIT_ANNOTATION]: "true" }),
      pods,
      new Map([
        ["n1", state("n1", 4, w(3))],
        ["n2", state("n2", 4, w(5))],
      ]),
      judging,
    );
    assert.equal(r.fields.mode, "Audit");
    assert.equal(r.fields.wouldDrop, 8);
    assert.equal(r.summary.mode, "Audit");
    assert.match(
      r.summary.message,
      /audit mode.*PolicyRealization shop\/db has the nodes, pods and would-drops/,
    );
  });

  it("the summary (on the NetworkPolicy every agent watches) changes with the state, not with counts or progress", () => {
    const audited = policy({ [AUDIT_ANNOTATION]: "true" });
    const report = (node: string, generation: number, wouldDrop = 0) =>
      state(node, generation, {
        sources: { networkPolicies: [{ name: "shop/db", generation, audit: true }] },
        policy: { wouldDrop: [{ policy: "shop/db", count: wouldDrop }] },
      });
    const summary = (...states: NodeNetworkState[]) =>
      JSON.stringify(
        realizationOf(audited, pods, new Map(states.map((s) => [s.spec.nodeName, s])), judging)
          .summary,
      );
    const n2 = report("n2", 4);
    assert.equal(summary(report("n1", 4, 3), n2), summary(report("n1", 4, 9), n2), "would-drops");
    assert.equal(
      summary(report("n1", 3), report("n2", 3)),
      summary(report("n1", 4), report("n2", 3)),
      "one more node done",
    );
    assert.notEqual(summary(report("n1", 4), report("n2", 3)), summary(report("n1", 4), n2));
  });

  it("switching audit mode keeps the generation: a node still in the old mode is not realized", () => {
    const r = realizationOf(
      policy({ [AUDIT_ANNOTATION]: "true" }),
      pods,
      new Map([
        ["n1", state("n1", 4)],
        ["n2", state("n2", 4)],
      ]),
      judging,
    );
    assert.equal(r.summary.state, "Progressing");
    assert.match(r.decisions.find((d) => d.type === "Ready")?.message ?? "", /waiting for n1, n2/);
  });

  it("selecting no running pod is realized at once", () => {
    const r = realizationOf(
      { ...policy(), spec: { podSelector: { matchLabels: { app: "none" } } } },
      pods,
      new Map(),
      judging,
    );
    assert.equal(r.summary.state, "Realized");
    assert.equal(r.fields.nodes, "0/0");
  });
});
