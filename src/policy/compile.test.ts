/**
 * The compiled form (identities, LPM over ipBlock CIDRs, per-endpoint entries) decides every
 * connection exactly as policyVerdict does, over random policies, pods and connections.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  allowedByEntries,
  compileEndpoint,
  type IdentityLabels,
  worldIdentities,
  worldIdentityOf,
} from "./compile.js";
import { identityLabels, labelSetKey } from "./identity.js";
import type { NetworkPolicy, PolicyPeer, PolicyPort, Selector } from "./networkpolicy.js";
import { type Connection, type Endpoint, policyVerdict } from "./verdict.js";

const NAMESPACES: { name: string; labels: Record<string, string> }[] = [
  { name: "a", labels: { team: "x" } },
  { name: "b", labels: { team: "y" } },
];
const KEYS = ["app", "tier"];
const VALUES = ["web", "db", ""];

const selector: fc.Arbitrary<Selector> = fc.oneof(
  fc.constant({}),
  fc.record({
    matchLabels: fc.dictionary(fc.constantFrom(...KEYS), fc.constantFrom(...VALUES), {
      maxKeys: 2,
    }),
  }),
  fc.record({
    matchExpressions: fc.array(
      fc.record({
        key: fc.constantFrom(...KEYS, "team"),
        operator: fc.constantFrom(
          "In" as const,
          "NotIn" as const,
          "Exists" as const,
          "DoesNotExist" as const,
        ),
        values: fc.constant<string[]>(["web", "x"]),
      }),
      { minLength: 1, maxLength: 2 },
    ),
  }),
);
const peer: fc.Arbitrary<PolicyPeer> = fc.oneof(
  fc.record({ podSelector: selector }),
  fc.record(
    { namespaceSelector: selector, podSelector: selector },
    { requiredKeys: ["namespaceSelector"] },
  ),
  fc.record({
    ipBlock: fc.constantFrom<{ cidr: string; except?: string[] }>(
      { cidr: "192.0.2.0/24", except: ["192.0.2.128/25"] },
      { cidr: "192.0.2.128/26" },
      { cidr: "0.0.0.0/0", except: ["198.51.100.0/24", "192.0.2.0/24"] },
      { cidr: "fd00::/8" },
    ),
  }),
);
const port: fc.Arbitrary<PolicyPort> = fc.oneof(
  fc.record({
    protocol: fc.constantFrom("TCP" as const, "UDP" as const),
    port: fc.constantFrom(80, 443),
  }),
  fc.record({ port: fc.constant(80), endPort: fc.constantFrom(80, 500) }),
  fc.record({ port: fc.constant("http") }),
  fc.record({ protocol: fc.constant("UDP" as const) }),
);
const peers = fc.array(peer, { minLength: 1, maxLength: 2 });
const ports = fc.array(port, { minLength: 1, maxLength: 2 });
const policies: fc.Arbitrary<NetworkPolicy[]> = fc.array(
  fc.record({
    metadata: fc.record({ name: fc.constantFrom("p", "q"), namespace: fc.constantFrom("a", "b") }),
    spec: fc.record(
      {
        podSelector: selector,
        policyTypes: fc.constantFrom(
          ["Ingress" as const],
          ["Egress" as const],
          ["Ingress" as const, "Egress" as const],
        ),
        ingress: fc.array(fc.record({ from: peers, ports }, { requiredKeys: [] }), {
          maxLength: 2,
        }),
        egress: fc.array(fc.record({ to: peers, ports }, { requiredKeys: [] }), { maxLength: 2 }),
      },
      { requiredKeys: ["podSelector"] },
    ),
  }),
  { minLength: 1, maxLength: 3 },
);
const podsArb = fc.array(
  fc.record({
    ns: fc.nat(1),
    labels: fc.dictionary(fc.constantFrom(...KEYS), fc.constantFrom(...VALUES), { maxKeys: 2 }),
  }),
  { minLength: 2, maxLength: 4 },
);
const EXTERNAL = [
  "192.0.2.7",
  "192.0.2.130",
  "192.0.2.200",
  "198.51.100.9",
  "203.0.113.1",
  "fd00::5",
  "2001:db8::1",
];

describe("compiled policy (identities, CIDR LPM, per-endpoint entries) against policyVerdict", () => {
  it("decides every direction of every connection as the semantics do", () => {
    let compared = 0;
    fc.assert(
      fc.property(policies, podsArb, (ps, raw) => {
        // A pod's named ports follow its labels (pods sharing an identity agree on them).
        const pods: (Endpoint & { kind: "pod" })[] = raw.map((p, i) => {
          const ns = NAMESPACES[p.ns]!;
          return {
            kind: "pod",
            namespace: ns.name,
            labels: p.labels,
            namespaceLabels: { ...ns.labels, "kubernetes.io/metadata.name": ns.name },
            ip: `10.244.1.${10 + i}`,
            ...(p.labels.app === "web"
              ? { namedPorts: { http: { port: 80, protocol: "TCP" } } }
              : {}),
          };
        });
        const idOf = new Map<string, number>();
        const identities = new Map<number, IdentityLabels>();
        const podIdentity = (p: (typeof pods)[number]) => {
          const key = labelSetKey(identityLabels(p.namespace, p.labels, p.namespaceLabels));
          let id = idOf.get(key);
          if (id === undefined) {
            id = 256 + idOf.size;
            idOf.set(key, id);
            identities.set(id, {
              namespace: p.namespace,
              labels: p.labels,
              namespaceLabels: p.namespaceLabels,
            });
          }
          return id;
        };
        const ids = pods.map(podIdentity);
        const world = worldIdentities(ps, 1 << 24);
        const namedPortsOf = (id: number) => pods[ids.indexOf(id)]?.namedPorts ?? {};
        const compiled = pods.map((p) => compileEndpoint(ps, p, identities, world, namedPortsOf));
        const ends: Endpoint[] = [
          ...pods,
          ...EXTERNAL.map((ip): Endpoint => ({ kind: "external", ip })),
        ];
        const identityOf = (e: Endpoint) =>
          e.kind === "pod" ? ids[pods.indexOf(e)]! : worldIdentityOf(world, e.ip);
        for (const s of ends)
          for (const d of ends) {
            if (s === d || (s.kind === "external" && d.kind === "external")) continue;
            for (const [portNo, protocol] of [
              [80, "TCP"],
              [443, "TCP"],
              [80, "UDP"],
            ] as const) {
              const c: Connection = { source: s, destination: d, port: portNo, protocol };
              const want = policyVerdict(ps, c);
              const egress =
                s.kind === "pod"
                  ? allowedByEntries(
                      compiled[pods.indexOf(s)]!.egress,
                      identityOf(d),
                      protocol,
                      portNo,
                    )
                  : true;
              const ingress =
                d.kind === "pod"
                  ? allowedByEntries(
                      compiled[pods.indexOf(d)]!.ingress,
                      identityOf(s),
                      protocol,
                      portNo,
                    )
                  : true;
              const where = `${JSON.stringify(c)} under ${JSON.stringify(ps)}`;
              assert.equal(egress, want.egress.allowed, `egress: ${where}`);
              assert.equal(ingress, want.ingress.allowed, `ingress: ${where}`);
              compared++;
            }
          }
      }),
      { numRuns: 300, seed: 4242 },
    );
    assert.ok(compared > 10_000, `${compared} compared`);
  });

  it("gives addresses in the same ipBlocks one identity, and the longest prefix wins", () => {
    const ps: NetworkPolicy[] = [
      {
        metadata: { name: "p", namespace: "a" },
        spec: {
          podSelector: {},
          ingress: [{ from: [{ ipBlock: { cidr: "192.0.2.0/24", except: ["192.0.2.128/25"] } }] }],
        },
      },
    ];
    const w = worldIdentities(ps, 1000);
    const inBlock = worldIdentityOf(w, "192.0.2.7");
    assert.notEqual(inBlock, worldIdentityOf(w, "192.0.2.200"), "the except is outside the block");
    assert.equal(
      worldIdentityOf(w, "192.0.2.200"),
      worldIdentityOf(w, "203.0.113.1"),
      "both in no block",
    );
    assert.equal(w.prefixes.length, 4, "0.0.0.0/0, ::/0, the block and its except");
  });
});
