import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { parseIP } from "../../api/cidr.js";
import {
  decodeFlowEvent,
  encodeFlowEvent,
  FLOW_EVENT_OFFSETS,
  FLOW_EVENT_SIZE,
  type FlowEvent,
  formatAddress,
  peekFlowEvent,
} from "./flow-events.js";

const bytes = (ip: string) => parseIP(ip).bytes;

const drop: FlowEvent = {
  monotonicNs: 123_456_789_012n,
  family: 4,
  source: "10.244.1.5",
  destination: "10.244.2.7",
  sourcePort: 40312,
  destinationPort: 9090,
  protocol: 6,
  kind: "drop",
  verdict: "DROPPED",
  reason: "policy_denied",
  direction: "ingress",
  l4Flags: 0x02,
  ifindex: 17,
  localIdentity: 2000,
  peerIdentity: 1000,
};

describe("flow event codec", () => {
  it("reads a record as the program writes it (offsets, network-order ports)", () => {
    const b = Buffer.alloc(FLOW_EVENT_SIZE);
    b.writeBigUInt64LE(5n, 0);
    b.set([10, 0, 0, 1], FLOW_EVENT_OFFSETS.saddr);
    b.set([10, 0, 0, 2], FLOW_EVENT_OFFSETS.daddr);
    b.writeUInt16BE(1234, FLOW_EVENT_OFFSETS.sport);
    b.writeUInt16BE(53, FLOW_EVENT_OFFSETS.dport);
    b[FLOW_EVENT_OFFSETS.protocol] = 17;
    b[FLOW_EVENT_OFFSETS.family] = 4;
    b[FLOW_EVENT_OFFSETS.kind] = 1;
    b[FLOW_EVENT_OFFSETS.verdict] = 2;
    b[FLOW_EVENT_OFFSETS.reason] = 2;
    b[FLOW_EVENT_OFFSETS.direction] = 1;
    b.writeUInt32LE(3, FLOW_EVENT_OFFSETS.ifindex);
    b.writeUInt32LE(1, FLOW_EVENT_OFFSETS.local_identity);
    b.writeUInt32LE(2, FLOW_EVENT_OFFSETS.peer_identity);
    assert.deepEqual(decodeFlowEvent(b), {
      ok: true,
      event: {
        monotonicNs: 5n,
        family: 4,
        source: "10.0.0.1",
        destination: "10.0.0.2",
        sourcePort: 1234,
        destinationPort: 53,
        protocol: 17,
        kind: "drop",
        verdict: "DROPPED",
        reason: "egress_denied",
        direction: "egress",
        l4Flags: 0,
        ifindex: 3,
        localIdentity: 1,
        peerIdentity: 2,
      },
    });
  });

  it("round-trips every event (IPv4 and IPv6, every kind, verdict and reason)", () => {
    const ip4 = fc
      .tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255))
      .map((p) => p.join("."));
    const ip6 = fc
      .array(fc.nat(0xffff), { minLength: 8, maxLength: 8 })
      .map((g) => formatAddress(Uint8Array.from(g.flatMap((x) => [x >> 8, x & 0xff]))));
    const event = fc.oneof(
      fc.record({ family: fc.constant<4>(4), source: ip4, destination: ip4 }),
      fc.record({ family: fc.constant<6>(6), source: ip6, destination: ip6 }),
    );
    fc.assert(
      fc.property(
        event,
        fc.record({
          monotonicNs: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
          sourcePort: fc.nat(65535),
          destinationPort: fc.nat(65535),
          protocol: fc.nat(255),
          kind: fc.constantFrom("drop", "new", "end" as const),
          verdict: fc.constantFrom("FORWARDED", "DROPPED", "AUDIT" as const),
          reason: fc.option(
            fc.constantFrom("policy_denied", "egress_denied", "unencrypted" as const),
            {
              nil: undefined,
            },
          ),
          direction: fc.constantFrom("ingress", "egress" as const),
          l4Flags: fc.nat(255),
          ifindex: fc.nat(0xffffffff),
          localIdentity: fc.nat(0xffffffff),
          peerIdentity: fc.nat(0xffffffff),
        }),
        (addrs, rest) => {
          const { reason, ...fields } = rest;
          const e: FlowEvent = { ...addrs, ...fields, ...(reason ? { reason } : {}) };
          assert.deepEqual(decodeFlowEvent(encodeFlowEvent(e, bytes)), { ok: true, event: e });
        },
      ),
    );
  });

  it("refuses what is not a record: another size, unknown enum values", () => {
    assert.match(
      (decodeFlowEvent(Buffer.alloc(72)) as { error: string }).error,
      /64 bytes, not 72/,
    );
    const bad = (offset: number, value: number) => {
      const b = encodeFlowEvent(drop, bytes);
      b[offset] = value;
      const d = peekFlowEvent(b);
      return d.ok ? "ok" : d.error;
    };
    assert.equal(bad(FLOW_EVENT_OFFSETS.family, 5), "family 5");
    assert.equal(bad(FLOW_EVENT_OFFSETS.kind, 9), "kind 9");
    assert.equal(bad(FLOW_EVENT_OFFSETS.verdict, 3), "verdict 3");
    assert.equal(bad(FLOW_EVENT_OFFSETS.reason, 7), "reason 7");
    assert.equal(bad(FLOW_EVENT_OFFSETS.direction, 2), "direction 2");
    assert.equal(bad(FLOW_EVENT_OFFSETS.pad, 0xff), "ok");
  });

  it("the head is what the full decode says", () => {
    const p = peekFlowEvent(encodeFlowEvent(drop, bytes));
    assert.deepEqual(p, {
      ok: true,
      head: {
        monotonicNs: drop.monotonicNs,
        kind: "drop",
        verdict: "DROPPED",
        reason: "policy_denied",
        direction: "ingress",
      },
    });
  });

  it("formats addresses canonically (RFC 5952: the longest zero run, lower case)", () => {
    assert.equal(formatAddress(bytes("10.0.0.1")), "10.0.0.1");
    assert.equal(formatAddress(bytes("fd00:67::1")), "fd00:67::1");
    assert.equal(formatAddress(bytes("2001:db8:0:0:1:0:0:1")), "2001:db8::1:0:0:1");
    assert.equal(formatAddress(bytes("2001:0:0:1:0:0:0:1")), "2001:0:0:1::1");
    assert.equal(formatAddress(bytes("::")), "::");
    assert.equal(formatAddress(bytes("::1")), "::1");
    assert.equal(formatAddress(bytes("fe80::")), "fe80::");
    assert.equal(formatAddress(bytes("2001:db8:1:2:3:4:0:6")), "2001:db8:1:2:3:4:0:6");
  });
});
