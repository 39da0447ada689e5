import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { FlowEvent } from "../datapath-driver/maps/flow-events.js";
import type { IdentityLabels } from "../policy/compile.js";
import { IpcacheTable } from "../policy/ipcache.js";
import type { EndpointPlan } from "../policy/node.js";
import { buildDirectory, type FlowContext, interfacePods } from "./context.js";
import { formatTimeNs, parseTimeNs, renderFlow, workloadLabel, workloadOf } from "./flow.js";

const plan = (
  pod: string,
  identity: number,
  isolatedBy: EndpointPlan["isolatedBy"],
  audit: EndpointPlan["audit"] = { ingress: [], egress: [] },
): EndpointPlan => ({
  pod,
  ips: [],
  identity,
  tiers: {
    full: { ingress: { isolated: false, entries: [] }, egress: { isolated: false, entries: [] } },
    enforced: {
      ingress: { isolated: false, entries: [] },
      egress: { isolated: false, entries: [] },
    },
  },
  audit,
  isolatedBy,
});

const ctx: FlowContext = {
  node: "node-1",
  directory: buildDirectory(
    new Map<number, IdentityLabels>([
      [1000, { namespace: "shop", labels: { tier: "web", app: "web" }, namespaceLabels: {} }],
      [2000, { namespace: "shop", labels: { app: "db" }, namespaceLabels: { team: "a" } }],
    ]),
    IpcacheTable.ofSlices(
      new Map([
        [
          "node-2",
          [
            {
              namespace: "shop",
              name: "web-7d9f8c6b5d-x2x4k",
              identity: 1000,
              ips: ["10.244.2.5"],
            },
          ],
        ],
        [
          "node-1",
          [{ namespace: "shop", name: "db-0", identity: 2000, ips: ["10.244.1.7", "fd00::7"] }],
        ],
      ]),
    ),
    [{ namespace: "shop", name: "db-0", ips: ["10.244.1.7"] }],
  ),
  endpoints: new Map([
    [
      "shop/db-0",
      plan(
        "shop/db-0",
        2000,
        { ingress: ["shop/db-allow-web", "shop/default-deny"], egress: [] },
        { ingress: ["shop/trial"], egress: [] },
      ),
    ],
  ]),
  interfaces: interfacePods(new Map([[17, "shop/db-0"]])),
  interfaceName: (i) => (i === 17 ? "cali17" : undefined),
  sources: { networkConfig: "default", encryptionProfile: "strict" },
};

const drop: FlowEvent = {
  monotonicNs: 0n,
  family: 4,
  source: "10.244.2.5",
  destination: "10.244.1.7",
  sourcePort: 40312,
  destinationPort: 9090,
  protocol: 6,
  kind: "drop",
  verdict: "DROPPED",
  reason: "policy_denied",
  direction: "ingress",
  l4Flags: 0x02,
  ifindex: 17,
  localIdentity: 2000,
  peerIdentity: 1000,
};

const T = 1_764_417_600_123_456_789n; // 2025-11-29T12:00:00.123456789Z

describe("flow records", () => {
  it("a policy drop: both pods named, the policies denying it, Hubble's field names", () => {
    assert.deepEqual(renderFlow(drop, ctx, T), {
      time: "2025-11-29T12:00:00.123456789Z",
      verdict: "DROPPED",
      drop_reason_desc: "POLICY_DENIED",
      IP: { source: "10.244.2.5", destination: "10.244.1.7", ipVersion: "IPv4" },
      l4: { TCP: { source_port: 40312, destination_port: 9090, flags: { SYN: true } } },
      source: {
        identity: 1000,
        namespace: "shop",
        pod_name: "web-7d9f8c6b5d-x2x4k",
        labels: ["k8s:app=web", "k8s:tier=web", "k8s:io.kubernetes.pod.namespace=shop"],
        workloads: [{ name: "web" }],
      },
      destination: {
        identity: 2000,
        namespace: "shop",
        pod_name: "db-0",
        labels: ["k8s:app=db", "k8s:io.kubernetes.pod.namespace=shop"],
        workloads: [{ name: "db" }],
      },
      Type: "L3_L4",
      node_name: "node-1",
      traffic_direction: "INGRESS",
      is_reply: false,
      interface: { index: 17, name: "cali17" },
      event_kind: "drop",
      ingress_denied_by: [
        { kind: "NetworkPolicy", namespace: "shop", name: "db-allow-web" },
        { kind: "NetworkPolicy", namespace: "shop", name: "default-deny" },
      ],
    });
  });

  it("audit: the audit-mode policies that would have denied it", () => {
    const f = renderFlow({ ...drop, kind: "new", verdict: "AUDIT" }, ctx, T);
    assert.equal(f.verdict, "AUDIT");
    assert.equal(f.drop_reason_desc, "POLICY_DENIED");
    assert.deepEqual(f.ingress_denied_by, [
      { kind: "NetworkPolicy", namespace: "shop", name: "trial" },
    ]);
  });

  it("a forwarded connection names no policy and no reason", () => {
    const { reason: _r, ...forwarded } = drop;
    const f = renderFlow({ ...forwarded, kind: "new", verdict: "FORWARDED" }, ctx, T);
    assert.equal(f.drop_reason_desc, undefined);
    assert.equal(f.ingress_denied_by, undefined);
    assert.equal(f.event_kind, "new");
  });

  it("egress deny and strict mode on a native device: the NetworkConfig and EncryptionProfile, the pod by its address", () => {
    const e: FlowEvent = {
      ...drop,
      source: "10.244.1.7",
      destination: "169.254.169.254",
      destinationPort: 80,
      direction: "egress",
      reason: "egress_denied",
      ifindex: 2,
      localIdentity: 2000,
      peerIdentity: 2,
    };
    const f = renderFlow(e, ctx, T);
    assert.equal(f.drop_reason_desc, "EGRESS_DENIED");
    assert.equal(f.traffic_direction, "EGRESS");
    assert.equal(f.source.pod_name, "db-0");
    assert.deepEqual(f.destination, { identity: 2, labels: ["reserved:world"] });
    assert.deepEqual(f.egress_denied_by, [{ kind: "NetworkConfig", name: "default" }]);
    assert.deepEqual(f.interface, { index: 2 });
    const strict = renderFlow({ ...e, reason: "unencrypted" }, ctx, T);
    assert.equal(strict.drop_reason_desc, "UNENCRYPTED");
    assert.deepEqual(strict.egress_denied_by, [{ kind: "EncryptionProfile", name: "strict" }]);
  });

  it("IPv6, UDP and ICMP", () => {
    const v6 = renderFlow(
      { ...drop, family: 6, source: "fd00::9", destination: "fd00::7", protocol: 17, l4Flags: 0 },
      ctx,
      T,
    );
    assert.equal(v6.IP.ipVersion, "IPv6");
    assert.deepEqual(v6.l4, { UDP: { source_port: 40312, destination_port: 9090 } });
    assert.equal(v6.destination.pod_name, "db-0");
    assert.equal(v6.source.pod_name, undefined);
    const ping = renderFlow({ ...drop, protocol: 1, l4Flags: 8 }, ctx, T);
    assert.deepEqual(ping.l4, { ICMPv4: { type: 8 } });
    const other = renderFlow({ ...drop, protocol: 47 }, ctx, T);
    assert.equal(other.l4, undefined);
  });

  it("times: RFC 3339 with nanoseconds, both ways", () => {
    assert.equal(formatTimeNs(T), "2025-11-29T12:00:00.123456789Z");
    assert.equal(formatTimeNs(0n), "1970-01-01T00:00:00.000000000Z");
    assert.equal(parseTimeNs("2025-11-29T12:00:00.123456789Z"), T);
    assert.equal(parseTimeNs("2025-11-29T13:00:00.123456789+01:00"), T);
    assert.equal(parseTimeNs("2025-11-29T12:00:00Z"), T - 123_456_789n);
    assert.equal(parseTimeNs("2025-11-29T12:00:00.5Z"), T - 123_456_789n + 500_000_000n);
    assert.equal(parseTimeNs("yesterday"), undefined);
    assert.equal(parseTimeNs("2025-11-29 12:00:00Z"), undefined);
  });

  it("workloads: a pod's name without the suffixes its controller generated", () => {
    assert.equal(workloadOf("web-7d9f8c6b5d-x2x4k"), "web");
    assert.equal(workloadOf("checkout-api-5c9bd8f7b-q7z8w"), "checkout-api");
    assert.equal(workloadOf("netloom-agent-x2x4k"), "netloom-agent");
    assert.equal(workloadOf("db-0"), "db");
    assert.equal(workloadOf("nginx"), "nginx");
    assert.equal(workloadOf("my-agent"), "my-agent", "vowels: not a generated suffix");
    assert.equal(workloadLabel({ identity: 1, labels: [] }), "host");
    assert.equal(workloadLabel({ identity: 2, labels: [] }), "world");
    assert.equal(workloadLabel({ identity: 1 << 24, labels: [] }), "world");
    assert.equal(workloadLabel({ identity: 3000, labels: [] }), "unknown");
    assert.equal(
      workloadLabel({
        identity: 1000,
        namespace: "shop",
        workloads: [{ name: "web" }],
        labels: [],
      }),
      "shop/web",
    );
  });
});
