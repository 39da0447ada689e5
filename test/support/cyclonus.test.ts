import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  CYCLONUS_VERSION,
  cyclonusVerdicts,
  type Labels,
  type OracleExternal,
  type OraclePeer,
  type OraclePod,
  type OracleQuery,
  type OracleVerdict,
} from "./cyclonus.js";
import { goToolDir } from "./go-tool.js";
import { skipWhen, unmet } from "./prerequisites.js";

const NS_LABELS: Record<string, Labels> = { x: { team: "x" }, y: { team: "a" }, z: { team: "b" } };

function pod(namespace: string, podLabels: Labels = {}, ip?: string): OraclePod {
  return {
    namespace,
    podLabels,
    namespaceLabels: NS_LABELS[namespace] ?? {},
    ...(ip ? { ip } : {}),
  };
}

function ext(ip: string): OracleExternal {
  return { ip };
}

function policy(name: string, namespace: string, spec: object): object {
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name, namespace },
    spec,
  };
}

function q(
  source: OraclePeer,
  destination: OraclePeer,
  port = 80,
  extra: Partial<OracleQuery> = {},
): OracleQuery {
  return { source, destination, port, protocol: "TCP", ...extra };
}

/** The verdict with these directions. */
function v(ingress: boolean, egress: boolean): OracleVerdict {
  return { allowed: ingress && egress, ingress, egress };
}

const ALLOW = v(true, true);
const NO_INGRESS = v(false, true);
const NO_EGRESS = v(true, false);

const db = pod("x", { app: "db" }, "10.244.1.10");
const client = pod("x", { app: "client" }, "10.244.1.11");

async function check(policies: object[], cases: [OracleQuery, OracleVerdict][]): Promise<void> {
  const got = await cyclonusVerdicts({ policies, queries: cases.map(([query]) => query) });
  assert.deepEqual(
    got,
    cases.map(([, want]) => want),
  );
}

describe(`cyclonus oracle (github.com/mattfenwick/cyclonus ${CYCLONUS_VERSION} pkg/matcher)`, {
  skip: skipWhen(unmet({ tools: ["go"] })),
}, () => {
  it("allows everything without policies", async () => {
    await check(
      [],
      [
        [q(client, db), ALLOW],
        [q(db, ext("192.0.2.7"), 443), ALLOW],
        [q(ext("192.0.2.7"), db, 5432, { protocol: "UDP" }), ALLOW],
      ],
    );
  });

  it("a policy with policyTypes Ingress and no rules denies ingress but not egress", async () => {
    const deny = policy("deny-db-ingress", "x", {
      podSelector: { matchLabels: { app: "db" } },
      policyTypes: ["Ingress"],
    });
    await check(
      [deny],
      [
        [q(client, db), NO_INGRESS],
        [q(ext("192.0.2.7"), db), NO_INGRESS],
        [q(db, client), ALLOW],
        [q(db, ext("192.0.2.7")), ALLOW],
      ],
    );
  });

  it("defaults empty policyTypes as the API server does (Ingress; Egress if spec.egress)", async () => {
    const ingressOnly = policy("no-types", "x", {
      podSelector: { matchLabels: { app: "db" } },
      egress: [],
    });
    const withEgress = policy("no-types-egress", "x", {
      podSelector: { matchLabels: { app: "client" } },
      egress: [{ to: [{ podSelector: { matchLabels: { app: "db" } } }] }],
    });
    await check(
      [ingressOnly, withEgress],
      [
        [q(client, db), NO_INGRESS],
        [q(db, pod("y")), ALLOW],
        [q(client, pod("x", { app: "other" })), NO_EGRESS],
        // Ingress is implied too: client is isolated for ingress with no ingress rules.
        [q(pod("x", { app: "other" }), client), NO_INGRESS],
      ],
    );
  });

  it("namespaceSelector and podSelector in one peer are ANDed, in two peers ORed", async () => {
    const and = policy("and", "x", {
      podSelector: { matchLabels: { app: "db" } },
      ingress: [
        {
          from: [
            {
              namespaceSelector: { matchLabels: { team: "a" } },
              podSelector: { matchLabels: { role: "client" } },
            },
          ],
        },
      ],
    });
    const or = policy("or", "x", {
      podSelector: { matchLabels: { app: "cache" } },
      ingress: [
        {
          from: [
            { namespaceSelector: { matchLabels: { team: "a" } } },
            { podSelector: { matchLabels: { role: "client" } } },
          ],
        },
      ],
    });
    const cache = pod("x", { app: "cache" });
    await check(
      [and, or],
      [
        [q(pod("y", { role: "client" }), db), ALLOW],
        [q(pod("y", { role: "other" }), db), NO_INGRESS],
        [q(pod("z", { role: "client" }), db), NO_INGRESS],
        [q(pod("x", { role: "client" }), db), NO_INGRESS],
        [q(pod("y", { role: "other" }), cache), ALLOW],
        [q(pod("x", { role: "client" }), cache), ALLOW],
        // A podSelector alone selects pods in the policy's namespace only.
        [q(pod("z", { role: "client" }), cache), NO_INGRESS],
        [q(pod("x", { role: "other" }), cache), NO_INGRESS],
      ],
    );
  });

  it("matches port ranges (endPort) inclusively, per protocol", async () => {
    const range = policy("range", "x", {
      podSelector: { matchLabels: { app: "db" } },
      ingress: [{ ports: [{ protocol: "TCP", port: 8000, endPort: 8080 }] }],
    });
    await check(
      [range],
      [
        [q(client, db, 8000), ALLOW],
        [q(client, db, 8080), ALLOW],
        [q(ext("192.0.2.7"), db, 8042), ALLOW],
        [q(client, db, 7999), NO_INGRESS],
        [q(client, db, 8081), NO_INGRESS],
        [q(client, db, 8000, { protocol: "UDP" }), NO_INGRESS],
      ],
    );
  });

  it("matches named ports by the destination pod's port name, not its number", async () => {
    const named = policy("named", "x", {
      podSelector: { matchLabels: { app: "db" } },
      ingress: [{ ports: [{ port: "http" }] }],
    });
    await check(
      [named],
      [
        [q(client, db, 8080, { portName: "http" }), ALLOW],
        [q(client, db, 8080, { portName: "metrics" }), NO_INGRESS],
        [q(client, db, 80), NO_INGRESS],
        [q(client, db, 8080, { portName: "http", protocol: "UDP" }), NO_INGRESS],
      ],
    );
  });

  it("matches an ipBlock with except for addresses outside the cluster", async () => {
    const egress = policy("egress-cidr", "x", {
      podSelector: { matchLabels: { app: "client" } },
      policyTypes: ["Egress"],
      egress: [{ to: [{ ipBlock: { cidr: "192.0.2.0/24", except: ["192.0.2.128/25"] } }] }],
    });
    await check(
      [egress],
      [
        [q(client, ext("192.0.2.7")), ALLOW],
        [q(client, ext("192.0.2.127")), ALLOW],
        [q(client, ext("192.0.2.128")), NO_EGRESS],
        [q(client, ext("192.0.2.200")), NO_EGRESS],
        [q(client, ext("198.51.100.1")), NO_EGRESS],
      ],
    );
  });

  it("never matches an ipBlock against a pod, whatever its IP (Netloom follows Cilium)", async () => {
    const ingress = policy("from-cidr", "x", {
      podSelector: { matchLabels: { app: "db" } },
      ingress: [{ from: [{ ipBlock: { cidr: "10.244.0.0/16" } }] }],
    });
    const egress = policy("to-cidr", "x", {
      podSelector: { matchLabels: { app: "client" } },
      policyTypes: ["Egress"],
      egress: [{ to: [{ ipBlock: { cidr: "0.0.0.0/0" } }] }],
    });
    await check(
      [ingress, egress],
      [
        [q(pod("y", {}, "10.244.2.5"), db), NO_INGRESS],
        [q(pod("y"), db), NO_INGRESS],
        [q(ext("10.244.200.1"), db), ALLOW],
        [q(client, pod("y", {}, "10.244.2.5")), NO_EGRESS],
        [q(client, ext("203.0.113.9")), ALLOW],
        // client -> db: egress has no pod peer; db's ingress ipBlock does not match client.
        [q(client, db), v(false, false)],
      ],
    );
  });

  it("NotIn matches a pod without the label (Kubernetes; cyclonus alone would not)", async () => {
    const notIn = policy("not-prod", "x", {
      podSelector: { matchLabels: { app: "db" } },
      ingress: [
        {
          from: [
            {
              podSelector: {
                matchExpressions: [{ key: "env", operator: "NotIn", values: ["prod"] }],
              },
            },
          ],
        },
      ],
    });
    // NotIn in spec.podSelector: selects pods without `tier` too.
    const isolate = policy("isolate-non-frontend", "y", {
      podSelector: { matchExpressions: [{ key: "tier", operator: "NotIn", values: ["frontend"] }] },
      policyTypes: ["Ingress"],
    });
    await check(
      [notIn, isolate],
      [
        [q(pod("x", { app: "client" }), db), ALLOW],
        [q(pod("x", { env: "dev" }), db), ALLOW],
        [q(pod("x", { env: "prod" }), db), NO_INGRESS],
        [q(client, pod("y")), NO_INGRESS],
        [q(client, pod("y", { tier: "backend" })), NO_INGRESS],
        [q(client, pod("y", { tier: "frontend" })), ALLOW],
      ],
    );
  });

  it('matchLabels {k: ""} requires k with the empty value (Kubernetes; not cyclonus alone)', async () => {
    const emptyValue = policy("canary-empty", "x", {
      podSelector: { matchLabels: { app: "db" } },
      ingress: [{ from: [{ podSelector: { matchLabels: { canary: "" } } }] }],
    });
    const target = policy("isolate-marked", "y", {
      podSelector: { matchLabels: { isolated: "" } },
      policyTypes: ["Ingress"],
    });
    await check(
      [emptyValue, target],
      [
        [q(pod("x", { app: "client" }), db), NO_INGRESS],
        [q(pod("x", { canary: "" }), db), ALLOW],
        [q(pod("x", { canary: "yes" }), db), NO_INGRESS],
        [q(client, pod("y")), ALLOW],
        [q(client, pod("y", { isolated: "" })), NO_INGRESS],
      ],
    );
  });

  it("an egress deny-all policy denies egress to pods and outside, not ingress", async () => {
    const denyEgress = policy("deny-egress", "x", { podSelector: {}, policyTypes: ["Egress"] });
    await check(
      [denyEgress],
      [
        [q(client, pod("y")), NO_EGRESS],
        [q(client, db), NO_EGRESS],
        [q(client, ext("192.0.2.7"), 53, { protocol: "UDP" }), NO_EGRESS],
        [q(pod("y"), client), ALLOW],
        [q(ext("192.0.2.7"), client), ALLOW],
      ],
    );
  });

  it("a policy in another namespace does not select the pod", async () => {
    const denyInY = policy("deny-all", "y", {
      podSelector: {},
      policyTypes: ["Ingress", "Egress"],
    });
    await check(
      [denyInY],
      [
        [q(client, db), ALLOW],
        [q(pod("z"), db), ALLOW],
        [q(client, pod("y")), NO_INGRESS],
        [q(pod("y"), client), NO_EGRESS],
      ],
    );
  });

  it("namespaces carry kubernetes.io/metadata.name as the API server sets it", async () => {
    const byName = policy("from-y", "x", {
      podSelector: { matchLabels: { app: "db" } },
      ingress: [
        { from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "y" } } }] },
      ],
    });
    await check(
      [byName],
      [
        [q(pod("y"), db), ALLOW],
        [q(pod("z"), db), NO_INGRESS],
      ],
    );
  });

  it("rejects a policy without metadata.namespace, and a query without a peer kind", async () => {
    const noNamespace = {
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: "nowhere" },
      spec: { podSelector: {} },
    };
    await assert.rejects(
      cyclonusVerdicts({ policies: [noNamespace], queries: [] }),
      /policy 0 \(nowhere\): metadata\.namespace is empty/,
    );
    await assert.rejects(
      cyclonusVerdicts({ policies: [], queries: [q({ namespace: "" } as OraclePod, db)] }),
      /query 0: source has neither a namespace/,
    );
  });

  it(`test/tools/cyclonus-oracle pins cyclonus ${CYCLONUS_VERSION}`, async () => {
    const gomod = await readFile(join(goToolDir("cyclonus-oracle"), "go.mod"), "utf8");
    assert.match(gomod, new RegExp(`github\\.com/mattfenwick/cyclonus ${CYCLONUS_VERSION}\\b`));
  });
});
