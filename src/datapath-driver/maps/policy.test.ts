import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { both, endpoint, isolated, open, tcp } from "../../../test/support/policy-tiers.js";
import { parseCidr } from "../../api/cidr.js";
import {
  allowedByEntries,
  type DirectionPolicy,
  type EndpointPolicy,
  type PolicyEntry,
} from "../../policy/compile.js";
import type { Protocol } from "../../policy/verdict.js";
import {
  DIRECTIONS,
  type Direction,
  decodeEndpointValue,
  decodeIpcacheEntry,
  decodePolicyEntry,
  describeEndpoint,
  describePolicyEntries,
  ENDPOINT_FLAG,
  encodeEndpointValue,
  encodeIpcacheKey,
  encodePolicyKey,
  endpointFlags,
  endpointMaps,
  IDENTITY_HOST,
  IP_PROTOCOL,
  ipcacheEntries,
  ipcacheEpoch,
  lookupModel,
  ownPolicyEntries,
  POLICY_ALLOW,
  POLICY_ALLOW_ENFORCED,
  type PolicyMapEntry,
  type PolicyTiers,
  policyMapEntries,
  policyRevision,
  portRangePrefixes,
  sumPerCpu,
  withCoveringFlags,
} from "./policy.js";

describe("portRangePrefixes", () => {
  it("covers well-known ranges with the fewest aligned prefixes", () => {
    assert.deepEqual(portRangePrefixes(0, 65535), [{ port: 0, bits: 0 }]);
    assert.deepEqual(portRangePrefixes(80, 80), [{ port: 80, bits: 16 }]);
    assert.deepEqual(portRangePrefixes(8080, 8095), [{ port: 8080, bits: 12 }]);
    assert.deepEqual(
      portRangePrefixes(1024, 65535).map((p) => p.bits),
      [6, 5, 4, 3, 2, 1],
    );
    assert.equal(portRangePrefixes(1, 65535).length, 16);
    assert.equal(portRangePrefixes(1, 65534).length, 30, "the worst case");
    assert.deepEqual(portRangePrefixes(5, 4), [], "an empty range");
    assert.throws(() => portRangePrefixes(0, 65536), /not in 0-65535/);
  });

  it("covers exactly the range, without overlap, and no two prefixes could merge", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 300 })),
        fc.oneof(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 300 })),
        (a, b) => {
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          const prefixes = portRangePrefixes(lo, hi);
          let next = lo;
          for (const p of prefixes) {
            const size = 2 ** (16 - p.bits);
            assert.equal(p.port, next, "contiguous, in order");
            assert.equal(p.port % size, 0, "aligned");
            next += size;
          }
          assert.equal(next, hi + 1, "ends at hi");
          for (let i = 1; i < prefixes.length; i++) {
            const [x, y] = [prefixes[i - 1]!, prefixes[i]!];
            const siblings = x.bits === y.bits && x.port % (2 * 2 ** (16 - x.bits)) === 0;
            assert.equal(siblings, false, `${JSON.stringify([x, y])} would merge`);
          }
        },
      ),
      { numRuns: 2000, seed: 19 },
    );
  });
});

describe("policyMapEntries (compiled tiers → policy map)", () => {
  it("one entry per (peer, protocol, port prefix); any protocol is one entry; open directions none", () => {
    const entries = policyMapEntries(
      7,
      both(
        endpoint({
          isolated: true,
          entries: [
            tcp(256, 8080),
            tcp("any", 8080, 8095),
            { peer: 300, protocol: "any", ports: [0, 65535] },
            { peer: 300, protocol: "UDP", ports: [0, 65535] },
          ],
        }),
      ),
    );
    assert.deepEqual(describePolicyEntries(entries), [
      "if7 ingress peer 256 TCP/8080 allow+enforced",
      "if7 ingress peer 300 UDP/* allow+enforced",
      "if7 ingress peer 300 any allow+enforced",
      "if7 ingress peer any TCP/8080-8095 allow+enforced",
    ]);
  });

  it("ORs the covering entries' flags into the longer ones (the longest match carries the union)", () => {
    const tiers: PolicyTiers = {
      full: endpoint({ isolated: true, entries: [tcp(256, 0, 65535)] }),
      enforced: endpoint({ isolated: true, entries: [tcp(256, 8080)] }),
    };
    assert.deepEqual(describePolicyEntries(ownPolicyEntries(7, tiers)), [
      "if7 ingress peer 256 TCP/* allow",
      "if7 ingress peer 256 TCP/8080 enforced",
    ]);
    assert.deepEqual(describePolicyEntries(policyMapEntries(7, tiers)), [
      "if7 ingress peer 256 TCP/* allow",
      "if7 ingress peer 256 TCP/8080 allow+enforced",
    ]);
  });

  it("endpoint flags: isolation per tier and direction, and the host exception", () => {
    const tiers: PolicyTiers = {
      full: endpoint({ isolated: true, entries: [] }, { isolated: true, entries: [] }),
      enforced: endpoint({ isolated: true, entries: [] }),
    };
    const flags = endpointFlags(tiers, { allowHost: true });
    assert.equal(
      describeEndpoint(9, { identity: 256, flags, revision: 0xabc }),
      "if9 identity 256 ingress-isolated,ingress-isolated-enforced,egress-isolated,allow-host revision 00000abc",
    );
    assert.equal(endpointFlags(both(endpoint(open)), { allowHost: false }), 0);
  });

  it("refuses what the map cannot hold", () => {
    const bad = (e: PolicyEntry) => () =>
      policyMapEntries(1, both(endpoint({ isolated: true, entries: [e] })));
    assert.throws(bad({ peer: 0, protocol: "TCP", ports: [1, 1] }), /not a positive integer/);
    assert.throws(bad({ peer: "any", protocol: "any", ports: [80, 80] }), /every port/);
    assert.throws(bad(tcp(2 ** 32, 80)), /not a u32/);
  });
});

describe("codecs", () => {
  it("policy keys: prefixlen, ifindex, identity, direction, protocol, port (network order)", () => {
    const e: PolicyMapEntry = {
      ifindex: 7,
      identity: 256,
      direction: "egress",
      protocol: IP_PROTOCOL.TCP,
      port: 8080,
      portBits: 12,
      flags: POLICY_ALLOW | POLICY_ALLOW_ENFORCED,
    };
    const key = encodePolicyKey(e);
    assert.equal(key.length, 16);
    assert.equal(key.readUInt32LE(0) === 92 || key.readUInt32BE(0) === 92, true, "80 + 12");
    assert.deepEqual([...key.subarray(12)], [1, 6, 0x1f, 0x90]);
    const value = Buffer.alloc(4);
    value.writeUInt32LE(3);
    assert.deepEqual(decodePolicyEntry(key, value), e);
    const any: PolicyMapEntry = { ...e, protocol: "any", port: 0, portBits: 0, flags: 1 };
    const anyKey = encodePolicyKey(any);
    assert.equal(anyKey.readUInt32LE(0) === 72 || anyKey.readUInt32BE(0) === 72, true);
    value.writeUInt32LE(1);
    assert.deepEqual(decodePolicyEntry(anyKey, value), any);
    // Bits past the prefix are cleared.
    assert.equal(encodePolicyKey({ ...e, port: 8085 }).readUInt16BE(14), 8080);
  });

  it("policyRevision and ipcacheEpoch: the same content in any order gives the same number; any change another", () => {
    const tiers = both(endpoint(isolated(tcp(7, 80), tcp(8, 443)), isolated(tcp("any", 53))));
    const opts = { allowHost: true };
    const base = endpointMaps(9, 256, tiers, opts);
    const v = { identity: base.value.identity, flags: base.value.flags };
    assert.equal(policyRevision(v, [...base.entries].reverse()), base.value.revision);
    const others = [
      endpointMaps(9, 256, both(endpoint(isolated(tcp(7, 80)), isolated(tcp("any", 53)))), opts),
      endpointMaps(9, 256, tiers, { allowHost: false }),
      endpointMaps(9, 257, tiers, opts),
    ];
    for (const o of others) assert.notEqual(o.value.revision, base.value.revision);
    // The ipcache's epoch: any order the same, any change another.
    const ipcache = ipcacheEntries({ "10.0.0.7": 7, "10.0.0.8": 8, "fd00::7": 7 });
    assert.equal(ipcacheEpoch(new Map([...ipcache].reverse())), ipcacheEpoch(ipcache));
    const changed: Record<string, number>[] = [
      { "10.0.0.7": 7, "10.0.0.8": 9, "fd00::7": 7 }, // another identity
      { "10.0.0.7": 7, "10.0.0.9": 8, "fd00::7": 7 }, // another address
      { "10.0.0.7": 8, "10.0.0.8": 7, "fd00::7": 7 }, // two identities swapped
      { "10.0.0.7": 7, "10.0.0.8": 8 }, // one entry fewer
      { "10.0.0.7": 7, "10.0.0.8": 8, "fd00::7": 7, "10.0.0.0/8": 7 }, // one more
    ];
    for (const c of changed)
      assert.notEqual(ipcacheEpoch(ipcacheEntries(c)), ipcacheEpoch(ipcache), JSON.stringify(c));
  });

  it("endpoint values, ipcache keys (both families), per-CPU sums", () => {
    const v = { identity: 0x010100, flags: ENDPOINT_FLAG.allowHost, revision: 0xfedcba98 };
    assert.deepEqual(decodeEndpointValue(encodeEndpointValue(v)), v);
    const entries = ipcacheEntries({
      "10.244.1.5": 256,
      "10.244.1.5/32": 256,
      "fd00::/8": 16777216,
      "0.0.0.0/0": 16777217,
    });
    assert.deepEqual(
      entries,
      new Map([
        ["10.244.1.5/32", 256],
        ["fd00::/8", 16777216],
        ["0.0.0.0/0", 16777217],
      ]),
    );
    for (const [prefix, identity] of entries) {
      const cidr = parseCidr(prefix);
      const key = encodeIpcacheKey(cidr);
      assert.equal(key.length, cidr.family === 4 ? 8 : 20);
      const value = Buffer.alloc(4);
      value.writeUInt32LE(identity);
      assert.deepEqual(decodeIpcacheEntry(key, value), [prefix, identity]);
    }
    assert.throws(
      () =>
        ipcacheEntries(
          new Map([
            ["10.0.0.1", 5],
            ["10.0.0.1/32", 6],
          ]),
        ),
      /disagree/,
    );
    assert.deepEqual(ipcacheEntries({ "fd00:0::1": 3 }), new Map([["fd00::1/128", 3]]));
    const percpu = Buffer.alloc(24);
    percpu.writeBigUInt64LE(5n, 0);
    percpu.writeBigUInt64LE(7n, 16);
    assert.equal(sumPerCpu(percpu), 12);
  });
});

// ---------------------------------------------------------------------------------------------
// The model of the program's lookup against the compiled semantics.

const PEERS = [256, 257, 300, 0x10100];
/** Ports near the boundaries entries are drawn from, so ranges overlap and nest. */
const portArb = fc.oneof(
  fc.integer({ min: 0, max: 70 }),
  fc.integer({ min: 65500, max: 65535 }),
  fc.constantFrom(1024, 8080, 8095, 32768),
);
const entryArb: fc.Arbitrary<PolicyEntry> = fc.oneof(
  fc.record({
    peer: fc.oneof(fc.constant<"any">("any"), fc.constantFrom(...PEERS)),
    protocol: fc.constant<"any">("any"),
    ports: fc.constant<[number, number]>([0, 65535]),
  }),
  fc.record({
    peer: fc.oneof(fc.constant<"any">("any"), fc.constantFrom(...PEERS)),
    protocol: fc.constantFrom<Protocol>("TCP", "UDP", "SCTP"),
    ports: fc.oneof(
      fc.constant<[number, number]>([0, 65535]),
      portArb.map((p): [number, number] => [p, p]),
      fc.tuple(portArb, portArb).map(([a, b]): [number, number] => (a <= b ? [a, b] : [b, a])),
    ),
  }),
);
const directionArb: fc.Arbitrary<DirectionPolicy> = fc.record({
  isolated: fc.boolean(),
  entries: fc.array(entryArb, { maxLength: 6 }),
});
const endpointArb: fc.Arbitrary<EndpointPolicy> = fc.record({
  ingress: directionArb,
  egress: directionArb,
});
const tiersArb: fc.Arbitrary<PolicyTiers> = fc.record({ full: endpointArb, enforced: endpointArb });
const protocolArb = fc.constantFrom<Protocol | "ICMP" | "GRE">("TCP", "UDP", "SCTP", "ICMP", "GRE");
const PROTOCOL_NUMBER = { ...IP_PROTOCOL, GRE: 47 };

/** allowedByEntries, extended to protocols without ports: only any-protocol entries allow them. */
function compiledAllows(
  d: DirectionPolicy,
  peer: number,
  protocol: Protocol | "ICMP" | "GRE",
  port: number,
): boolean {
  if (protocol === "ICMP" || protocol === "GRE")
    return (
      !d.isolated || d.entries.some((e) => e.protocol === "any" && [peer, "any"].includes(e.peer))
    );
  return allowedByEntries(d, peer, protocol, port);
}

/** Checks the model over map entries built by `build` against the compiled semantics. */
function checkModel(
  build: (ifindex: number, tiers: PolicyTiers) => PolicyMapEntry[],
  seed: number,
  numRuns: number,
) {
  return fc.check(
    fc.property(
      tiersArb,
      tiersArb,
      fc.array(
        fc.tuple(
          fc.constantFrom(...DIRECTIONS),
          fc.constantFrom(...PEERS, 999),
          protocolArb,
          portArb,
        ),
        { minLength: 20, maxLength: 40 },
      ),
      (tiers, neighbour, probes) => {
        // Another endpoint's entries share the trie: they must not leak into this one's.
        const entries = [...build(7, tiers), ...build(8, neighbour)];
        const flags = endpointFlags(tiers, { allowHost: false });
        for (const [direction, peer, protocol, port] of probes) {
          const d = lookupModel(
            entries,
            flags,
            7,
            direction,
            peer,
            PROTOCOL_NUMBER[protocol],
            port,
          );
          const full = compiledAllows(tiers.full[direction], peer, protocol, port);
          const enforced = compiledAllows(tiers.enforced[direction], peer, protocol, port);
          const where = `${direction} peer ${peer} ${protocol}/${port}`;
          assert.equal(d.full, full, `full: ${where}`);
          assert.equal(d.enforced, enforced, `enforced: ${where}`);
          assert.equal(d.verdict, !enforced ? "drop" : full ? "pass" : "audit", where);
        }
      },
    ),
    { numRuns, seed },
  );
}

describe("lookupModel (the kernel's longest-match lookups) against allowedByEntries", () => {
  it("agrees on both tiers for random compiled policies, peers, protocols and ports", () => {
    const r = checkModel(policyMapEntries, 1919, 1500);
    assert.equal(r.failed, false, fc.defaultReportMessage(r));
  });

  it("catches map entries without the covering flags (the union forgotten)", () => {
    const r = checkModel(ownPolicyEntries, 1919, 1500);
    assert.equal(r.failed, true, "a forgotten union must disagree somewhere");
    // The smallest case: an every-port entry of one tier under a one-port entry of the other.
    const tiers: PolicyTiers = {
      full: endpoint({ isolated: true, entries: [tcp(256, 0, 65535)] }),
      enforced: endpoint({ isolated: true, entries: [tcp(256, 8080)] }),
    };
    const flags = endpointFlags(tiers, { allowHost: false });
    const ask = (entries: PolicyMapEntry[]) =>
      lookupModel(entries, flags, 7, "ingress", 256, IP_PROTOCOL.TCP, 8080).full;
    assert.equal(ask(ownPolicyEntries(7, tiers)), false, "the 8080 entry hides TCP/*");
    assert.equal(ask(withCoveringFlags(ownPolicyEntries(7, tiers))), true);
  });

  it("passes ingress from the host with ALLOW_HOST only, and audits what only the full set drops", () => {
    const tiers: PolicyTiers = {
      full: endpoint({ isolated: true, entries: [tcp(256, 80)] }),
      enforced: endpoint(open),
    };
    const entries = policyMapEntries(7, tiers);
    const ask = (allowHost: boolean, peer: number, direction: Direction = "ingress") =>
      lookupModel(
        entries,
        endpointFlags(tiers, { allowHost }),
        7,
        direction,
        peer,
        IP_PROTOCOL.TCP,
        443,
      ).verdict;
    assert.equal(ask(true, IDENTITY_HOST), "pass");
    assert.equal(ask(false, IDENTITY_HOST), "audit");
    assert.equal(ask(true, 256), "audit");
    assert.equal(ask(true, IDENTITY_HOST, "egress"), "pass", "egress is not isolated");
  });
});
