import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NetworkPolicy } from "./networkpolicy.js";
import { type Connection, type Endpoint, policyTypesOf, policyVerdict } from "./verdict.js";

const ns = "shop";
const pod = (app: string, ip: string, namedPorts?: Record<string, number>): Endpoint => ({
  kind: "pod",
  namespace: ns,
  labels: { app },
  namespaceLabels: { "kubernetes.io/metadata.name": ns },
  ip,
  ...(namedPorts
    ? {
        namedPorts: Object.fromEntries(
          Object.entries(namedPorts).map(([n, port]) => [n, { port, protocol: "TCP" as const }]),
        ),
      }
    : {}),
});
const policy = (name: string, spec: NetworkPolicy["spec"]): NetworkPolicy => ({
  metadata: { name, namespace: ns },
  spec,
});
const tcp = (source: Endpoint, destination: Endpoint, port: number): Connection => ({
  source,
  destination,
  port,
  protocol: "TCP",
});

// The seeds' scenario: what a compromised landing page can and cannot reach.
const agent = pod("agent", "10.244.1.10");
const monitor = pod("monitor", "10.244.1.11");
const landing = pod("landing-page", "10.244.2.10");
const postgres = pod("postgres", "10.244.3.10", { sql: 5432 });
const redis = pod("redis", "10.244.3.11");
const openai = pod("openai-proxy", "10.244.3.12");
const metadata: Endpoint = { kind: "external", ip: "169.254.169.254" };
const internet: Endpoint = { kind: "external", ip: "203.0.113.9" };

const policies: NetworkPolicy[] = [
  policy("postgres", {
    podSelector: { matchLabels: { app: "postgres" } },
    ingress: [
      { from: [{ podSelector: { matchLabels: { app: "monitor" } } }], ports: [{ port: "sql" }] },
    ],
  }),
  policy("redis", {
    podSelector: { matchLabels: { app: "redis" } },
    ingress: [
      {
        from: [
          {
            podSelector: {
              matchExpressions: [{ key: "app", operator: "In", values: ["agent", "monitor"] }],
            },
          },
        ],
        ports: [{ port: 6379 }],
      },
    ],
  }),
  policy("agent", {
    podSelector: { matchLabels: { app: "agent" } },
    ingress: [{ from: [{ podSelector: { matchLabels: { app: "monitor" } } }] }],
  }),
  policy("openai-proxy", {
    podSelector: { matchLabels: { app: "openai-proxy" } },
    ingress: [
      {
        from: [{ podSelector: { matchLabels: { app: "agent" } } }],
        ports: [{ port: 8000, endPort: 8010 }],
      },
    ],
  }),
  policy("no-metadata", {
    podSelector: {},
    policyTypes: ["Egress"],
    egress: [
      { to: [{ ipBlock: { cidr: "0.0.0.0/0", except: ["169.254.169.254/32"] } }] },
      { to: [{ namespaceSelector: {} }] },
    ],
  }),
];

describe("policyVerdict: the seeds' matrix, connection by connection", () => {
  const cases: [string, Connection, boolean][] = [
    ["agent → openai-proxy:8000", tcp(agent, openai, 8000), true],
    ["agent → openai-proxy:8010 (endPort)", tcp(agent, openai, 8010), true],
    ["agent → openai-proxy:8011", tcp(agent, openai, 8011), false],
    ["agent → postgres:5432", tcp(agent, postgres, 5432), false],
    ["monitor → postgres:5432 (named port sql)", tcp(monitor, postgres, 5432), true],
    ["monitor → postgres:5433", tcp(monitor, postgres, 5433), false],
    ["landing-page → redis:6379", tcp(landing, redis, 6379), false],
    ["agent → redis:6379", tcp(agent, redis, 6379), true],
    ["landing-page → agent:8080", tcp(landing, agent, 8080), false],
    ["monitor → agent:8080", tcp(monitor, agent, 8080), true],
    ["landing-page → openai-proxy:8000", tcp(landing, openai, 8000), false],
    ["agent → 169.254.169.254:80", tcp(agent, metadata, 80), false],
    ["landing-page → 169.254.169.254:80", tcp(landing, metadata, 80), false],
    ["landing-page → the internet", tcp(landing, internet, 443), true],
  ];
  for (const [name, c, want] of cases)
    it(`${name}: ${want ? "ALLOW" : "DENY"}`, () =>
      assert.equal(policyVerdict(policies, c).allowed, want));

  it("names the policies that isolate and allow", () => {
    const v = policyVerdict(policies, tcp(monitor, postgres, 5432));
    assert.deepEqual(v.ingress, {
      allowed: true,
      isolatedBy: ["shop/postgres"],
      allowedBy: ["shop/postgres"],
    });
    assert.deepEqual(v.egress.allowedBy, ["shop/no-metadata"]);
  });
});

describe("policyVerdict: the spec's corners", () => {
  it("defaults policyTypes as the API server does", () => {
    assert.deepEqual(policyTypesOf(policy("a", { podSelector: {} })), ["Ingress"]);
    assert.deepEqual(policyTypesOf(policy("b", { podSelector: {}, egress: [] })), ["Ingress"]);
    assert.deepEqual(policyTypesOf(policy("c", { podSelector: {}, egress: [{}] })), [
      "Ingress",
      "Egress",
    ]);
  });

  it("a policy isolates only the direction of its types; a pod nothing selects is open", () => {
    const denyIngress = [policy("deny", { podSelector: { matchLabels: { app: "redis" } } })];
    assert.equal(policyVerdict(denyIngress, tcp(agent, redis, 6379)).allowed, false);
    assert.equal(
      policyVerdict(denyIngress, tcp(redis, agent, 80)).allowed,
      true,
      "egress not isolated",
    );
    assert.equal(policyVerdict([], tcp(agent, redis, 6379)).allowed, true);
  });

  it("namespaceSelector and podSelector in one peer are AND; in two peers OR", () => {
    const other: Endpoint = {
      kind: "pod",
      namespace: "ops",
      labels: { app: "monitor" },
      namespaceLabels: { team: "ops" },
      ip: "10.244.4.1",
    };
    const and = [
      policy("and", {
        podSelector: { matchLabels: { app: "redis" } },
        ingress: [
          {
            from: [
              {
                namespaceSelector: { matchLabels: { team: "ops" } },
                podSelector: { matchLabels: { app: "agent" } },
              },
            ],
          },
        ],
      }),
    ];
    const or = [
      policy("or", {
        podSelector: { matchLabels: { app: "redis" } },
        ingress: [
          {
            from: [
              { namespaceSelector: { matchLabels: { team: "ops" } } },
              { podSelector: { matchLabels: { app: "agent" } } },
            ],
          },
        ],
      }),
    ];
    assert.equal(
      policyVerdict(and, tcp(other, redis, 1)).allowed,
      false,
      "ops pod is not an agent",
    );
    assert.equal(policyVerdict(or, tcp(other, redis, 1)).allowed, true, "any ops pod");
    assert.equal(
      policyVerdict(or, tcp(agent, redis, 1)).allowed,
      true,
      "an agent in this namespace",
    );
  });

  it("an ipBlock never matches a pod (Cilium's choice), only addresses outside the cluster", () => {
    const p = [
      policy("ip", {
        podSelector: { matchLabels: { app: "redis" } },
        ingress: [{ from: [{ ipBlock: { cidr: "10.244.0.0/16" } }] }],
      }),
    ];
    assert.equal(policyVerdict(p, tcp(agent, redis, 1)).allowed, false);
    assert.equal(
      policyVerdict(p, tcp({ kind: "external", ip: "10.244.9.9" }, redis, 1)).allowed,
      true,
    );
  });

  it("NotIn matches a pod without the key; matchLabels {k: ''} needs k with an empty value", () => {
    const notIn = [
      policy("n", {
        podSelector: { matchLabels: { app: "redis" } },
        ingress: [
          {
            from: [
              {
                podSelector: {
                  matchExpressions: [{ key: "tier", operator: "NotIn", values: ["web"] }],
                },
              },
            ],
          },
        ],
      }),
    ];
    assert.equal(policyVerdict(notIn, tcp(agent, redis, 1)).allowed, true);
    const empty = [
      policy("e", {
        podSelector: { matchLabels: { app: "redis" } },
        ingress: [{ from: [{ podSelector: { matchLabels: { tier: "" } } }] }],
      }),
    ];
    assert.equal(policyVerdict(empty, tcp(agent, redis, 1)).allowed, false);
  });

  it("UDP and SCTP ports need their protocol; a port without protocol is TCP", () => {
    const p = [
      policy("u", {
        podSelector: { matchLabels: { app: "redis" } },
        ingress: [{ ports: [{ port: 53 }] }],
      }),
    ];
    assert.equal(policyVerdict(p, { ...tcp(agent, redis, 53), protocol: "UDP" }).allowed, false);
    assert.equal(policyVerdict(p, tcp(agent, redis, 53)).allowed, true);
  });
});
