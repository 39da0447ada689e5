import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  DENY_MAX_PORTS,
  decodeDenyEntry,
  describeDenyEntries,
  egressDenyEntries,
  encodeDenyValue,
  encodeLpmKey,
} from "./egress-deny.js";

const text = (rules: Parameters<typeof egressDenyEntries>[0]) =>
  describeDenyEntries(egressDenyEntries(rules));

describe("egressDenyEntries (rules → map entries)", () => {
  it("merges rules for one network; an all-ports rule wins; host bits are the network's", () => {
    assert.deepEqual(
      text([
        { cidr: "10.0.0.0/8" },
        { cidr: "10.0.0.0/8", ports: [{ port: 22, protocol: "TCP" }] },
        { cidr: "192.0.2.1/24", ports: [{ port: 53 }] },
      ]),
      ["10.0.0.0/8", "192.0.2.0/24 TCP/53", "192.0.2.0/24 UDP/53"],
    );
  });

  it("folds what a covering prefix denies into the longer one (LPM answers only the longest)", () => {
    assert.deepEqual(
      text([
        { cidr: "198.51.100.0/24", ports: [{ port: 80, protocol: "TCP" }] },
        { cidr: "198.51.100.7/32", ports: [{ port: 443, protocol: "TCP" }] },
        { cidr: "fd00::/8" },
        { cidr: "fd00:ec2::254/128", ports: [{ port: 80, protocol: "TCP" }] },
      ]),
      [
        "198.51.100.0/24 TCP/80",
        "198.51.100.7/32 TCP/443",
        "198.51.100.7/32 TCP/80",
        "fd00::/8",
        "fd00:ec2::254/128",
      ],
    );
  });

  it("keeps families apart: an IPv4 rule never covers an IPv6 network", () => {
    assert.deepEqual(text([{ cidr: "0.0.0.0/0" }, { cidr: "::/0", ports: [{ port: 1 }] }]), [
      "0.0.0.0/0",
      "::/0 TCP/1",
      "::/0 UDP/1",
    ]);
  });

  it("refuses, naming the network, more port pairs than a map value holds", () => {
    const ports = Array.from({ length: DENY_MAX_PORTS / 2 + 1 }, (_, i) => ({ port: 1000 + i }));
    assert.throws(
      () => egressDenyEntries([{ cidr: "10.0.0.0/8", ports }]),
      /egress deny 10\.0\.0\.0\/8: 18 \(protocol, port\) pairs .* at most 16/,
    );
  });

  it("encodes and decodes entries without loss, both families", () => {
    for (const e of egressDenyEntries([
      { cidr: "10.1.0.0/16", ports: [{ port: 22, protocol: "TCP" }, { port: 53 }] },
      { cidr: "fd00:ec2::254/128" },
    ])) {
      assert.deepEqual(decodeDenyEntry(encodeLpmKey(e.cidr), encodeDenyValue(e)), e);
    }
  });
});
