import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { egressDenyRule } from "../../api/networkconfig.js";
import {
  DENY_MAX_ENTRIES,
  decodeDenyKey,
  describeDenyEntries,
  describeEgressSkip,
  EGRESS_SKIP,
  egressDenyEntries,
  egressSkipBits,
  encodeDenyKey,
} from "./egress-deny.js";

const text = (rules: Parameters<typeof egressDenyEntries>[0]) =>
  describeDenyEntries(egressDenyEntries(rules));

describe("egressDenyEntries (rules → map entries)", () => {
  it("one entry per (network, protocol, port); a port without protocol is TCP and UDP; duplicates collapse", () => {
    assert.deepEqual(
      text([
        { cidr: "10.0.0.0/8" },
        { cidr: "10.0.0.0/8" },
        { cidr: "10.0.0.0/8", ports: [{ port: 22, protocol: "TCP" }] },
        { cidr: "192.0.2.0/24", ports: [{ port: 53 }, { port: 53, protocol: "UDP" }] },
      ]),
      ["10.0.0.0/8", "10.0.0.0/8 TCP/22", "192.0.2.0/24 TCP/53", "192.0.2.0/24 UDP/53"],
    );
  });

  it("needs no folding of covering prefixes: each (protocol, port) is its own trie space", () => {
    assert.deepEqual(
      text([
        { cidr: "198.51.100.0/24", ports: [{ port: 80, protocol: "TCP" }] },
        { cidr: "198.51.100.7/32", ports: [{ port: 443, protocol: "TCP" }] },
        { cidr: "fd00::/8" },
        { cidr: "fd00:ec2::254/128", ports: [{ port: 80, protocol: "TCP" }] },
      ]),
      ["198.51.100.0/24 TCP/80", "198.51.100.7/32 TCP/443", "fd00::/8", "fd00:ec2::254/128 TCP/80"],
    );
  });

  it("has no per-network port limit: the API's bound on one network fits the map", () => {
    // 1024 rules (the schema's maximum) for the same network, 16 ports each, both protocols.
    const rules = Array.from({ length: 1024 }, (_, r) => ({
      cidr: "10.0.0.0/8",
      ports: Array.from({ length: 16 }, (_, i) => ({ port: 1 + r * 16 + i })),
    }));
    for (const rule of rules.slice(0, 3)) assert.ok(egressDenyRule.safeParse(rule).success);
    const entries = egressDenyEntries(rules);
    assert.equal(entries.length, 1024 * 16 * 2);
    assert.ok(entries.length <= DENY_MAX_ENTRIES);
  });

  it("encodes and decodes keys without loss, both families", () => {
    const entries = egressDenyEntries([
      { cidr: "10.1.0.0/16", ports: [{ port: 22, protocol: "TCP" }, { port: 53 }] },
      { cidr: "fd00:ec2::254/128" },
      { cidr: "0.0.0.0/0", ports: [{ port: 65535, protocol: "UDP" }] },
    ]);
    for (const e of entries) assert.deepEqual(decodeDenyKey(encodeDenyKey(e)), e);
  });

  it("puts the (protocol, port) ahead of the address and counts it in the prefix length", () => {
    const [e] = egressDenyEntries([
      { cidr: "10.1.0.0/16", ports: [{ port: 443, protocol: "TCP" }] },
    ]);
    assert.ok(e);
    const key = encodeDenyKey(e);
    assert.equal(key.length, 12);
    assert.equal(key.readUInt32LE(0) === 48 || key.readUInt32BE(0) === 48, true);
    assert.deepEqual([...key.subarray(4)], [6, 0, 0x01, 0xbb, 10, 1, 0, 0]);
  });

  it("egress_skip: exactly the lookups whose kind has no entry are skipped", () => {
    const { deny4EveryPort, deny4Ports, deny6EveryPort, deny6Ports, strict, podClass } =
      EGRESS_SKIP;
    const all = deny4EveryPort | deny4Ports | deny6EveryPort | deny6Ports | strict | podClass;
    assert.equal(egressSkipBits([], [], 0), all);
    assert.equal(egressSkipBits([], [], 2), all & ~podClass);
    const cases: [Parameters<typeof egressDenyEntries>[0], string[], number][] = [
      [[{ cidr: "10.0.0.0/8" }], [], all & ~deny4EveryPort],
      [[{ cidr: "10.0.0.0/8", ports: [{ port: 22 }] }], [], all & ~deny4Ports],
      [[{ cidr: "fd00::/8" }], ["10.244.0.0/16"], all & ~deny6EveryPort & ~strict],
      [[{ cidr: "fd00::/8", ports: [{ port: 80, protocol: "TCP" }] }], [], all & ~deny6Ports],
    ];
    for (const [rules, strictCidrs, want] of cases)
      assert.equal(
        egressSkipBits(egressDenyEntries(rules), strictCidrs, 0),
        want,
        `${JSON.stringify(rules)} ${describeEgressSkip(want)}`,
      );
    assert.equal(describeEgressSkip(0), "none");
    assert.equal(describeEgressSkip(deny4Ports | strict), "per-port IPv4 deny, strict mode");
  });
});
