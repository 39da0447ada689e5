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
import { KEYS, NAMESPACES, policies, VALUES } from "../../test/support/policy-generators.js";
import { skipWhen, unmet } from "../../test/support/prerequisites.js";
import { type Connection, type Endpoint, type Protocol, policyVerdict } from "./verdict.js";

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
