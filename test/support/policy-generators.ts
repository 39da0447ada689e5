/**
 * Random NetworkPolicies for differential tests (fast-check arbitraries): selectors with every
 * operator, peers of every shape, ipBlocks with except, port ranges, named ports, UDP. Shared by
 * the pure differential test (src/policy/differential.test.ts) and the real-kernel one
 * (test/e2e/networkpolicy.test.ts), so both explore the same space.
 */
import fc from "fast-check";
import type {
  NetworkPolicy,
  PolicyPeer,
  PolicyPort,
  Selector,
} from "../../src/policy/networkpolicy.js";

export const NAMESPACES: { name: string; labels: Record<string, string> }[] = [
  { name: "a", labels: { team: "x" } },
  { name: "b", labels: { team: "y" } },
  { name: "c", labels: {} },
];
export const KEYS = ["app", "tier"];
export const VALUES = ["web", "db", "front"];

export const selector: fc.Arbitrary<Selector> = fc.oneof(
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

export const policies: fc.Arbitrary<NetworkPolicy[]> = fc.array(
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
