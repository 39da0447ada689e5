import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { PolicyEndpoint } from "../api/networkendpointslice.js";
import { AUDIT_ANNOTATION } from "../api/policyrealization.js";
import { allowedByEntries, type IdentityLabels } from "./compile.js";
import { RESERVED } from "./identity.js";
import type { NetworkPolicy } from "./networkpolicy.js";
import {
  FIRST_CIDR_IDENTITY,
  type NodePolicyInput,
  renderNodePolicy,
  wouldDropByPolicy,
} from "./node.js";

const ns = (name: string) => ({ "kubernetes.io/metadata.name": name });
const identities = new Map<number, IdentityLabels>([
  [256, { namespace: "shop", labels: { app: "web" }, namespaceLabels: ns("shop") }],
  [257, { namespace: "shop", labels: { app: "db" }, namespaceLabels: ns("shop") }],
  [258, { namespace: "ops", labels: { app: "monitor" }, namespaceLabels: ns("ops") }],
]);
const ep = (name: string, namespace: string, identity: number, ip: string): PolicyEndpoint => ({
  namespace,
  name,
  identity,
  ips: [ip, `fd00::${ip.split(".").slice(2).join(":")}`],
});
const slices = new Map<string, PolicyEndpoint[]>([
  ["n1", [ep("db-1", "shop", 257, "10.0.1.5"), ep("web-1", "shop", 256, "10.0.1.6")]],
  ["n2", [ep("web-2", "shop", 256, "10.0.2.5"), ep("mon-1", "ops", 258, "10.0.2.6")]],
]);

function policy(name: string, spec: NetworkPolicy["spec"], annotations = {}): NetworkPolicy {
  return { metadata: { name, namespace: "shop", generation: 3, annotations }, spec };
}
const dbFromWeb = policy("db-from-web", {
  podSelector: { matchLabels: { app: "db" } },
  ingress: [{ from: [{ podSelector: { matchLabels: { app: "web" } } }], ports: [{ port: 5432 }] }],
});
const input = (over: Partial<NodePolicyInput> = {}): NodePolicyInput => ({
  node: "n1",
  enforcement: "Default",
  nodeIPs: ["192.168.0.11"],
  policies: [dbFromWeb],
  identities,
  slices,
  ...over,
});

describe("renderNodePolicy", () => {
  it("compiles the local pods a policy selects, and only those are isolated", () => {
    const r = renderNodePolicy(input());
    assert.deepEqual(
      r.endpoints.map((e) => e.pod),
      ["shop/db-1", "shop/web-1"],
    );
    const db = r.endpoints.find((e) => e.pod === "shop/db-1")!;
    assert.equal(db.tiers.full.ingress.isolated, true);
    assert.equal(db.tiers.full.egress.isolated, false);
    assert.ok(allowedByEntries(db.tiers.full.ingress, 256, "TCP", 5432));
    assert.ok(!allowedByEntries(db.tiers.full.ingress, 256, "TCP", 80));
    assert.ok(!allowedByEntries(db.tiers.full.ingress, 258, "TCP", 5432));
    const web = r.endpoints.find((e) => e.pod === "shop/web-1")!;
    assert.equal(web.tiers.full.ingress.isolated, false);
    assert.deepEqual(r.sources, [{ name: "shop/db-from-web", generation: 3 }]);
  });

  it("maps every pod address in the cluster, the world prefixes and the node as host", () => {
    const r = renderNodePolicy(input());
    const ipc = r.ipcache.entries;
    assert.equal(ipc.get("10.0.2.6/32"), 258, "a pod on another node");
    assert.equal(ipc.get("fd00::2:6/128"), 258, "its IPv6 address too");
    assert.equal(ipc.get("192.168.0.11/32"), RESERVED.host);
    assert.ok((ipc.get("0.0.0.0/0") ?? 0) >= FIRST_CIDR_IDENTITY);
    assert.ok((ipc.get("::/0") ?? 0) >= FIRST_CIDR_IDENTITY);
  });

  it("audit mode: isolated in the full tier only, and the policy is named for its would-drops", () => {
    const audited = policy("db-audit", dbFromWeb.spec, { [AUDIT_ANNOTATION]: "true" });
    const r = renderNodePolicy(input({ policies: [audited] }));
    const db = r.endpoints.find((e) => e.pod === "shop/db-1")!;
    assert.equal(db.tiers.full.ingress.isolated, true);
    assert.equal(db.tiers.enforced.ingress.isolated, false);
    assert.deepEqual(db.audit, { ingress: ["shop/db-audit"], egress: [] });
    const counts = new Map([["shop/db-1", { ingress: 4, egress: 9 }]]);
    assert.deepEqual(wouldDropByPolicy(r, counts), [{ policy: "shop/db-audit", count: 4 }]);
  });

  it("Always isolates every local pod both ways; Never enforces nothing", () => {
    const always = renderNodePolicy(input({ enforcement: "Always", policies: [] }));
    for (const e of always.endpoints)
      for (const t of [e.tiers.full, e.tiers.enforced])
        assert.ok(t.ingress.isolated && t.egress.isolated, e.pod);
    const never = renderNodePolicy(input({ enforcement: "Never" }));
    assert.deepEqual(never.endpoints, []);
    assert.deepEqual(never.sources, []);
  });

  it("a local pod whose identity has not arrived is not enforced (yet)", () => {
    const partial = new Map([...identities].filter(([id]) => id !== 257));
    const r = renderNodePolicy(input({ identities: partial }));
    assert.deepEqual(
      r.endpoints.map((e) => e.pod),
      ["shop/web-1"],
    );
  });
});
