import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Flow } from "./flow.js";
import { compactLine, matchesFilter, parseSince, tableRow } from "./observe.js";
import { edgeVerdict, serviceMap } from "./servicemap.js";
import { RecentFlows } from "./ui-server.js";

const flow = (over: Partial<Flow> = {}): Flow => ({
  time: "2026-11-30T01:02:03.123456789Z",
  verdict: "DROPPED",
  drop_reason_desc: "POLICY_DENIED",
  IP: { source: "10.244.1.12", destination: "10.244.2.12", ipVersion: "IPv4" },
  l4: { TCP: { source_port: 40000, destination_port: 5432 } },
  source: {
    identity: 262,
    namespace: "app",
    pod_name: "landing-page-7d9f8c6b5d-x2x4k",
    labels: [],
    workloads: [{ name: "landing-page" }],
  },
  destination: { identity: 260, namespace: "app", pod_name: "postgres", labels: [] },
  Type: "L3_L4",
  node_name: "n2",
  traffic_direction: "INGRESS",
  is_reply: false,
  interface: { index: 3 },
  event_kind: "drop",
  ingress_denied_by: [{ kind: "NetworkPolicy", namespace: "app", name: "postgres" }],
  ...over,
});

describe("observe filters", () => {
  const f = flow();
  const cases: [string, Parameters<typeof matchesFilter>[1], boolean][] = [
    ["to-pod with namespace", { toPod: "app/postgres" }, true],
    ["to-pod in --namespace", { toPod: "postgres", namespace: "app" }, true],
    ["to-pod in default", { toPod: "postgres" }, false],
    ["from-pod", { fromPod: "app/landing-page-7d9f8c6b5d-x2x4k" }, true],
    ["pod either end", { pod: "app/postgres" }, true],
    ["namespace", { namespace: "app" }, true],
    ["other namespace", { namespace: "kube-system" }, false],
    ["verdict", { verdict: "DROPPED" }, true],
    ["other verdict", { verdict: "FORWARDED" }, false],
    ["reason, Netloom's spelling", { reason: "policy_denied" }, true],
    ["reason, Hubble's", { reason: "POLICY_DENIED" }, true],
    ["other reason", { reason: "egress_denied" }, false],
    ["destination port", { port: 5432 }, true],
    ["source port", { port: 40000 }, true],
    ["other port", { port: 80 }, false],
    ["protocol", { protocol: "TCP" }, true],
    ["other protocol", { protocol: "UDP" }, false],
    ["since before", { sinceMs: Date.parse("2026-11-30T01:00:00Z") }, true],
    ["since after", { sinceMs: Date.parse("2026-11-30T01:05:00Z") }, false],
  ];
  for (const [name, q, want] of cases)
    it(`${name}: ${want}`, () => assert.equal(matchesFilter(f, q), want));

  it("--since takes durations and times", () => {
    assert.equal(parseSince("10m", 1_000_000), 400_000);
    assert.equal(parseSince("2026-11-30T01:00:00Z", 0), Date.parse("2026-11-30T01:00:00Z"));
    assert.throws(() => parseSince("yesterday", 0), /duration/);
  });
});

describe("observe output", () => {
  it("compact: who, where, verdict, reason and the denying policy", () => {
    const line = compactLine({ flow: flow(), node_name: "n2", time: flow().time });
    assert.match(line, /^Nov 30 01:02:03\.123 \[n2\] /);
    assert.match(
      line,
      /app\/landing-page-7d9f8c6b5d-x2x4k:40000 \(ID:262\) -> app\/postgres:5432 \(ID:260\)/,
    );
    assert.match(line, /DROPPED \(TCP\) POLICY_DENIED denied by NetworkPolicy app\/postgres$/);
  });
  it("table cells", () => {
    assert.deepEqual(tableRow({ flow: flow(), node_name: "n2", time: flow().time }).slice(1), [
      "n2",
      "app/landing-page-7d9f8c6b5d-x2x4k:40000",
      "app/postgres:5432/TCP",
      "DROPPED",
      "POLICY_DENIED",
    ]);
  });
});

describe("service map", () => {
  it("workloads as nodes, one edge per pair with counts, reasons and who denied", () => {
    const map = serviceMap([
      flow(),
      flow({
        verdict: "FORWARDED",
        drop_reason_desc: undefined,
        event_kind: "new",
      } as Partial<Flow>),
      flow({
        verdict: "FORWARDED",
        event_kind: "new",
        source: { identity: 2, labels: ["reserved:world"] },
        IP: { source: "192.0.2.7", destination: "10.244.2.12", ipVersion: "IPv4" },
      } as Partial<Flow>),
    ]);
    assert.deepEqual(
      map.nodes.map((n) => `${n.kind}:${n.id}`),
      ["external:192.0.2.7", "workload:app/landing-page", "workload:app/postgres"],
    );
    const e = map.edges.find((x) => x.from === "app/landing-page")!;
    assert.equal(e.to, "app/postgres");
    assert.equal(e.dropped, 1);
    assert.equal(e.forwarded, 1);
    assert.deepEqual(e.reasons, { POLICY_DENIED: 1 });
    assert.deepEqual(e.deniedBy, ["NetworkPolicy app/postgres"]);
    assert.equal(edgeVerdict(e), "dropped");
  });
  it("leaves out link-local and multicast traffic (neighbour discovery, MLD) that every pod sends", () => {
    const mld = flow({
      verdict: "FORWARDED",
      event_kind: "new",
      IP: { source: "fd00:244:1::11", destination: "ff02::16", ipVersion: "IPv6" },
      destination: { identity: 2, labels: ["reserved:world"] },
    } as Partial<Flow>);
    assert.deepEqual(serviceMap([mld]), { nodes: [], edges: [] });
  });
});

describe("RecentFlows (what the flow page shows of several nodes' streams)", () => {
  const at = (node: string, second: number) => {
    const time = `2026-11-30T01:02:${String(second).padStart(2, "0")}.000000000Z`;
    return { flow: flow({ time, node_name: node }), node_name: node, time };
  };
  const seconds = (r: RecentFlows) => r.all().map((x) => Number(x.time.slice(17, 19)));

  it("keeps the newest by time when one node's backlog lands after another's live flows", () => {
    const r = new RecentFlows(4);
    r.add(at("n1", 50)); // n1's live flows arrive first
    r.add(at("n1", 51));
    for (let s = 10; s < 16; s++) r.add(at("n2", s)); // then n2's older backlog
    r.add(at("n2", 52));
    assert.deepEqual(seconds(r), [15, 50, 51, 52]);
  });

  it("keeps them in time order whatever the arrival order", () => {
    const r = new RecentFlows(10);
    for (const s of [5, 1, 4, 2, 3, 3]) r.add(at("n1", s));
    assert.deepEqual(seconds(r), [1, 2, 3, 3, 4, 5]);
  });
});
