/**
 * The NetworkPolicy semantics of policyVerdict against an independent implementation of the
 * spec, the cyclonus matcher (test/tools/cyclonus-oracle, which corrects cyclonus where it
 * departs from the spec and follows Cilium on ipBlocks, as Netloom does): random policies,
 * pods and connections, every verdict compared direction by direction.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  CYCLONUS_VERSION,
  cyclonusVerdicts,
  type OraclePeer,
  type OracleQuery,
} from "../../test/support/cyclonus.js";
import { skipWhen, unmet } from "../../test/support/prerequisites.js";
import type { NetworkPolicy, PolicyPeer, PolicyPort, Selector } from "./networkpolicy.js";
import { type Connection, type Endpoint, type Protocol, policyVerdict } from "./verdict.js";

const NAMESPACES: { name: string; labels: Record<string, string> }[] = [
  { name: "a", labels: { team: "x" } },
  { name: "b", labels: { team: "y" } },
  { name: "c", labels: {} },
];
const KEYS = ["app", "tier"];
const VALUES = ["web", "db", "front"];

const selector: fc.Arbitrary<Selector> = fc.oneof(
  fc.constant({}),
  fc.record({
    matchLabels: fc.dictionary(fc.constantFrom(...KEYS), fc.constantFrom(...VALUES, ""), {
      maxKeys: 2,
    }),
  }),
  fc.record({
    matchExpressions: fc.array(
      fc.oneof(
        fc.record({
          key: fc.constantFrom(...KEYS, "team"),
          operator: fc.constantFrom("In" as const, "NotIn" as const),
          values: fc.uniqueArray(fc.constantFrom(...VALUES, "x", "y"), {
            minLength: 1,
            maxLength: 2,
          }),
        }),
        fc.record({
          key: fc.constantFrom(...KEYS, "team"),
          operator: fc.constantFrom("Exists" as const, "DoesNotExist" as const),
        }),
      ),
      { minLength: 1, maxLength: 2 },
    ),
  }),
);

const peer: fc.Arbitrary<PolicyPeer> = fc.oneof(
  fc.record({ podSelector: selector }),
  fc.record({ namespaceSelector: selector }),
  fc.record({ namespaceSelector: selector, podSelector: selector }),
  fc.record({
    ipBlock: fc.constantFrom<{ cidr: string; except?: string[] }>(
      { cidr: "192.0.2.0/24" },
      { cidr: "192.0.2.0/24", except: ["192.0.2.128/25"] },
      { cidr: "0.0.0.0/0", except: ["198.51.100.0/24"] },
      { cidr: "10.244.0.0/16" },
    ),
  }),
);

const port: fc.Arbitrary<PolicyPort> = fc.oneof(
  fc.record({
    protocol: fc.constantFrom("TCP" as const, "UDP" as const),
    port: fc.constantFrom(80, 443, 5432),
  }),
  fc.record({ port: fc.constant(80), endPort: fc.constantFrom(80, 100, 500) }),
  fc.record({ port: fc.constant("http") }),
  fc.record({ protocol: fc.constant("UDP" as const) }),
);

const peers = fc.array(peer, { minLength: 1, maxLength: 2 });
const ports = fc.array(port, { minLength: 1, maxLength: 2 });
const ingressRules = fc.array(fc.record({ from: peers, ports }, { requiredKeys: [] }), {
  maxLength: 2,
});
const egressRules = fc.array(fc.record({ to: peers, ports }, { requiredKeys: [] }), {
  maxLength: 2,
});

const policies: fc.Arbitrary<NetworkPolicy[]> = fc.array(
  fc.record({
    metadata: fc.record({ name: fc.constantFrom("p"), namespace: fc.constantFrom("a", "b", "c") }),
    spec: fc.record(
      {
        podSelector: selector,
        policyTypes: fc.constantFrom(
          ["Ingress" as const],
          ["Egress" as const],
          ["Ingress" as const, "Egress" as const],
        ),
        ingress: ingressRules,
        egress: egressRules,
      },
      { requiredKeys: ["podSelector"] },
    ),
  }) as fc.Arbitrary<NetworkPolicy>,
  { minLength: 1, maxLength: 4 },
);

const podLabels = fc.dictionary(fc.constantFrom(...KEYS), fc.constantFrom(...VALUES, ""), {
  maxKeys: 2,
});

const pods: fc.Arbitrary<Endpoint[]> = fc
  .array(fc.record({ ns: fc.nat(2), labels: podLabels, http: fc.boolean() }), {
    minLength: 2,
    maxLength: 4,
  })
  .map((ps) =>
    ps.map(
      (p, i): Endpoint => ({
        kind: "pod",
        namespace: NAMESPACES[p.ns]!.name,
        labels: p.labels,
        namespaceLabels: {
          ...NAMESPACES[p.ns]!.labels,
          "kubernetes.io/metadata.name": NAMESPACES[p.ns]!.name,
        },
        ip: `10.244.1.${10 + i}`,
        ...(p.http ? { namedPorts: { http: { port: 80, protocol: "TCP" as Protocol } } } : {}),
      }),
    ),
  );

const EXTERNAL: Endpoint[] = ["192.0.2.7", "192.0.2.200", "198.51.100.9", "10.244.9.9"].map(
  (ip) => ({
    kind: "external",
    ip,
  }),
);

function oraclePeer(e: Endpoint): OraclePeer {
  return e.kind === "pod"
    ? { namespace: e.namespace, podLabels: e.labels, namespaceLabels: e.namespaceLabels }
    : { ip: e.ip };
}

function connections(ps: Endpoint[]): Connection[] {
  const out: Connection[] = [];
  const ends = [...ps, ...EXTERNAL];
  for (const s of ends)
    for (const d of ends) {
      if (s === d || (s.kind === "external" && d.kind === "external")) continue;
      for (const [port, protocol] of [
        [80, "TCP"],
        [443, "TCP"],
        [5432, "TCP"],
        [80, "UDP"],
      ] as const)
        out.push({ source: s, destination: d, port, protocol });
    }
  return out;
}

const reason = unmet({ tools: ["go"] });

describe(`policyVerdict against the cyclonus matcher ${CYCLONUS_VERSION} (differential)`, {
  skip: skipWhen(reason),
}, () => {
  it("agrees on every direction of every connection, over random policies and pods", async () => {
    let compared = 0;
    await fc.assert(
      fc.asyncProperty(policies, pods, async (ps, endpoints) => {
        const conns = connections(endpoints);
        const queries: OracleQuery[] = conns.map((c) => {
          const d = c.destination;
          const named =
            d.kind === "pod"
              ? Object.entries(d.namedPorts ?? {}).find(
                  ([, v]) => v.port === c.port && v.protocol === c.protocol,
                )?.[0]
              : undefined;
          return {
            source: oraclePeer(c.source),
            destination: oraclePeer(c.destination),
            port: c.port,
            ...(named ? { portName: named } : {}),
            protocol: c.protocol,
          };
        });
        const oracle = await cyclonusVerdicts({ policies: ps, queries });
        conns.forEach((c, i) => {
          const mine = policyVerdict(ps, c);
          const theirs = oracle[i]!;
          const where = `${JSON.stringify(queries[i])} under ${JSON.stringify(ps)}`;
          assert.equal(mine.ingress.allowed, theirs.ingress, `ingress: ${where}`);
          assert.equal(mine.egress.allowed, theirs.egress, `egress: ${where}`);
        });
        compared += conns.length;
      }),
      { numRuns: 150, seed: Number(process.env.NETLOOM_FC_SEED ?? 1729) },
    );
    process.stderr.write(`policyVerdict vs cyclonus: ${compared} connections agreed\n`);
    assert.ok(compared > 5000, `${compared} connections compared`);
  });
});
