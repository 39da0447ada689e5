import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Registry } from "prom-client";
import type { FlowEventHead } from "../datapath-driver/maps/flow-events.js";
import type { Flow, FlowEndpoint } from "./flow.js";
import { FlowMetrics, OTHER, TopWorkloads } from "./metrics.js";

describe("TopWorkloads: bounded workload labels", () => {
  it("the first n get labels of their own, later ones are other until they outnumber one", () => {
    const top = new TopWorkloads(2);
    assert.deepEqual(top.observe("a/x"), { label: "a/x" });
    assert.deepEqual(top.observe("a/y"), { label: "a/y" });
    assert.deepEqual(top.observe("a/y"), { label: "a/y" });
    assert.deepEqual(top.observe("a/z"), { label: OTHER }, "1 drop is not more than x's 1");
    // z now has 2 drops, more than x's 1: x makes room.
    assert.deepEqual(top.observe("a/z"), { label: "a/z", evicted: "a/x" });
    assert.deepEqual(top.labelled(), ["a/y", "a/z"]);
    assert.deepEqual(top.observe("a/x"), { label: OTHER }, "x's 2 are not more than y's or z's 2");
  });

  it("reserved ends are always named and take no slot", () => {
    const top = new TopWorkloads(1);
    for (const w of ["host", "world", "remote-node", "unknown"])
      assert.deepEqual(top.observe(w), { label: w });
    assert.deepEqual(top.observe("a/x"), { label: "a/x" });
    assert.deepEqual(top.labelled(), ["a/x"]);
  });

  it("a workload whose pods are gone gives up its slot and its count", () => {
    const top = new TopWorkloads(1);
    top.observe("a/x");
    top.observe("a/x");
    assert.deepEqual(
      top.retain((w) => w !== "a/x"),
      ["a/x"],
    );
    assert.deepEqual(top.labelled(), []);
    assert.deepEqual(top.observe("a/y"), { label: "a/y" }, "the slot is free again");
  });

  it("never more than n labelled, whatever the order (1,000 random drops over 50 workloads)", () => {
    const top = new TopWorkloads(5);
    let seed = 7;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed;
    };
    const labels = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const { label } = top.observe(`ns/w${next() % 50}`);
      labels.add(label);
      assert.ok(top.labelled().length <= 5);
    }
    assert.ok(labels.has(OTHER));
  });
});

const endpoint = (ns: string, workload: string): FlowEndpoint => ({
  identity: 1000,
  namespace: ns,
  labels: [],
  workloads: [{ name: workload }],
});

function dropped(src: FlowEndpoint, dst: FlowEndpoint): { head: FlowEventHead; flow: () => Flow } {
  const flow: Flow = {
    time: "2026-01-01T00:00:00.000000000Z",
    verdict: "DROPPED",
    drop_reason_desc: "POLICY_DENIED",
    IP: { source: "10.0.0.1", destination: "10.0.0.2", ipVersion: "IPv4" },
    source: src,
    destination: dst,
    Type: "L3_L4",
    node_name: "node-1",
    traffic_direction: "INGRESS",
    is_reply: false,
    interface: { index: 1 },
    event_kind: "drop",
  };
  return {
    head: {
      monotonicNs: 0n,
      kind: "drop",
      verdict: "DROPPED",
      reason: "policy_denied",
      direction: "ingress",
    },
    flow: () => flow,
  };
}

describe("FlowMetrics", () => {
  const setup = (top: number) => {
    const registry = new Registry();
    const metrics = new FlowMetrics(
      registry,
      () => ({ read: 10, lostInRing: 3, undecodable: 1, lostToClients: 2 }),
      top,
    );
    const series = async (name: string): Promise<Record<string, string | number>[]> =>
      (await registry.getSingleMetric(name)?.get())?.values.map((v) => ({
        ...v.labels,
        value: v.value,
      })) ?? [];
    return { metrics, series, registry };
  };

  it("flows by verdict, reason and direction; connection ends not counted; forwarded flows never named", async () => {
    const { metrics, series } = setup(20);
    let named = 0;
    const fwd = (kind: "new" | "end") =>
      metrics.record({ monotonicNs: 0n, kind, verdict: "FORWARDED", direction: "egress" }, () => {
        named++;
        throw new Error("a forwarded flow is not named for the metrics");
      });
    fwd("new");
    fwd("new");
    fwd("end");
    const d = dropped(endpoint("a", "web"), endpoint("a", "db"));
    metrics.record(d.head, d.flow);
    assert.deepEqual(await series("netloom_agent_flows_total"), [
      { verdict: "FORWARDED", reason: "none", direction: "egress", value: 2 },
      { verdict: "DROPPED", reason: "policy_denied", direction: "ingress", value: 1 },
    ]);
    assert.equal(named, 0, "no naming for forwarded flows");
    assert.deepEqual(await series("netloom_agent_flow_drops_total"), [
      { reason: "policy_denied", source_workload: "a/web", destination_workload: "a/db", value: 1 },
    ]);
    assert.deepEqual(await series("netloom_agent_flow_events_lost_total"), [
      { source: "bpf_ring_buffer", value: 3 },
      { source: "decode", value: 1 },
      { source: "client_stream", value: 2 },
    ]);
    assert.deepEqual(await series("netloom_agent_flow_events_total"), [{ value: 10 }]);
  });

  it("beyond the top n: other; a displaced workload's series go; a gone workload's series go", async () => {
    const { metrics, series } = setup(2);
    const drop = (src: string, dst: string) => {
      const host: FlowEndpoint = { identity: 1, labels: ["reserved:host"] };
      const d = dropped(endpoint("a", src), dst === "host" ? host : endpoint("a", dst));
      metrics.record(d.head, d.flow);
    };
    drop("x", "y"); // x, y labelled
    drop("z", "y"); // z is other (1 ≤ x's 1)
    const rows = async () =>
      (await series("netloom_agent_flow_drops_total")).map(
        (r) => `${r.source_workload}->${r.destination_workload}=${r.value}`,
      );
    assert.deepEqual(await rows(), ["a/x->a/y=1", "other->a/y=1"]);
    drop("z", "y"); // z: 2 drops > x's 1: x evicted, its series removed
    assert.deepEqual(await rows(), ["other->a/y=1", "a/z->a/y=1"]);
    assert.deepEqual(metrics.labelledWorkloads(), ["a/y", "a/z"]);
    // Every pod of y goes: the series naming y go, other's series without y stay.
    metrics.retain((w) => w !== "a/y");
    assert.deepEqual(await rows(), []);
    drop("z", "host");
    assert.deepEqual(await rows(), ["a/z->host=1"]);
  });
});
