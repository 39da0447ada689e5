/**
 * The byte layouts the TypeScript codecs assume, checked against the BTF that clang wrote into
 * the compiled object: a change to a C struct that is not mirrored in src/datapath-driver/maps
 * fails here, not as garbage in a map. Needs bpftool and the object (make bpf).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";
import { skipWhen, unmet } from "../../../test/support/prerequisites.js";
import { BPF_OBJECT } from "../linux/driver.js";
import { DENY_KEY_SIZE, DENY_MAX_ENTRIES, LPM_V4_KEY_SIZE } from "./egress-deny.js";
import {
  FLOW_EVENT_OFFSETS,
  FLOW_EVENT_SIZE,
  FLOW_EVENTS_LOST_MAP,
  FLOW_EVENTS_MAP,
  FLOW_KIND,
  FLOW_REASON,
  FLOW_RING_BYTES,
  FLOW_VERDICT,
} from "./flow-events.js";
import {
  CT_KEY_SIZE,
  ENDPOINT_VALUE_SIZE,
  IPCACHE_KEY_SIZE,
  MAX_ENTRIES,
  POLICY_AUDIT_KEY_SIZE,
  POLICY_DROP_KEY_SIZE,
  POLICY_FULL_PREFIXLEN,
  POLICY_KEY_SIZE,
} from "./policy.js";

interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  nr_elems?: number;
  type_id?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
}

const reason = unmet({
  files: [{ path: BPF_OBJECT, hint: "the compiled eBPF object: make bpf" }],
  tools: ["bpftool"],
});

describe("map layouts against the object's BTF", { skip: skipWhen(reason) }, () => {
  const types = (): BtfType[] =>
    (
      JSON.parse(
        execFileSync("bpftool", ["-j", "btf", "dump", "file", BPF_OBJECT], { encoding: "utf8" }),
      ) as {
        types: BtfType[];
      }
    ).types;
  const struct = (name: string): BtfType => {
    const t = types().find((x) => x.kind === "STRUCT" && x.name === name);
    assert.ok(t, `struct ${name} in ${BPF_OBJECT}`);
    return t;
  };
  const member = (s: BtfType, name: string) => {
    const m = s.members?.find((x) => x.name === name);
    assert.ok(m, `${s.name}.${name}`);
    return m;
  };

  it("strict_cidrs key: prefixlen (u32) then the IPv4 address, 8 bytes", () => {
    const s = struct("lpm_v4_key");
    assert.equal(s.size, LPM_V4_KEY_SIZE);
    assert.equal(member(s, "prefixlen").bits_offset, 0);
    assert.equal(member(s, "addr").bits_offset, 32, "address right after prefixlen");
  });

  it("egress_deny keys: prefixlen, protocol, pad, port (network order), then the address", () => {
    for (const [name, size] of [
      ["deny_v4_key", DENY_KEY_SIZE[4]],
      ["deny_v6_key", DENY_KEY_SIZE[6]],
    ] as const) {
      const s = struct(name);
      assert.equal(s.size, size, `${name} size`);
      assert.equal(member(s, "prefixlen").bits_offset, 0);
      assert.equal(member(s, "protocol").bits_offset, 32);
      assert.equal(member(s, "port").bits_offset, 48);
      assert.equal(member(s, "addr").bits_offset, 64);
    }
  });

  /** A map's max_entries: __uint(max_entries, N) is a pointer to an array of N ints. */
  const maxEntriesOf = (name: string): number | undefined => {
    const v = types().find((t) => t.kind === "VAR" && t.name === name);
    assert.ok(v, `map ${name}`);
    const def = types().find((t) => t.id === v.type_id);
    const maxEntries = def?.members?.find((m) => m.name === "max_entries");
    assert.ok(maxEntries, `${name}.max_entries`);
    const ptr = types().find((t) => t.id === maxEntries.type_id);
    return types().find((t) => t.id === ptr?.type_id)?.nr_elems;
  };
  const offsets = (name: string): Record<string, number> =>
    Object.fromEntries((struct(name).members ?? []).map((m) => [m.name, m.bits_offset]));

  it("egress_deny maps hold DENY_MAX_ENTRIES (the API's bound)", () => {
    for (const name of ["egress_deny", "egress_deny6"])
      assert.equal(maxEntriesOf(name), DENY_MAX_ENTRIES, `${name} max_entries`);
  });

  it("endpoints value: identity, flags, revision; 12 bytes", () => {
    assert.equal(struct("endpoint_value").size, ENDPOINT_VALUE_SIZE);
    assert.deepEqual(offsets("endpoint_value"), { identity: 0, flags: 32, revision: 64 });
  });

  it("policy key: prefixlen, ifindex, identity, direction, protocol, port; 96 data bits", () => {
    assert.equal(struct("policy_key").size, POLICY_KEY_SIZE);
    assert.deepEqual(offsets("policy_key"), {
      prefixlen: 0,
      ifindex: 32,
      identity: 64,
      direction: 96,
      protocol: 104,
      port: 112,
    });
    assert.equal(POLICY_FULL_PREFIXLEN, (POLICY_KEY_SIZE - 4) * 8);
  });

  it("ipcache keys: prefixlen then the address", () => {
    for (const [name, size] of [
      ["ipcache4_key", IPCACHE_KEY_SIZE[4]],
      ["ipcache6_key", IPCACHE_KEY_SIZE[6]],
    ] as const) {
      assert.equal(struct(name).size, size, `${name} size`);
      assert.deepEqual(offsets(name), { prefixlen: 0, addr: 32 });
    }
  });

  it("conntrack and counter keys: no implicit padding (the whole key hashes)", () => {
    assert.equal(struct("ct_key").size, CT_KEY_SIZE);
    assert.deepEqual(offsets("ct_key"), {
      saddr: 0,
      daddr: 128,
      sport: 256,
      dport: 272,
      protocol: 288,
      family: 296,
      direction: 304,
      pad: 312,
    });
    assert.equal(struct("policy_audit_key").size, POLICY_AUDIT_KEY_SIZE);
    assert.deepEqual(offsets("policy_audit_key"), { ifindex: 0, direction: 32 });
    assert.equal(struct("policy_drop_key").size, POLICY_DROP_KEY_SIZE);
    assert.deepEqual(offsets("policy_drop_key"), {
      local_identity: 0,
      peer_identity: 32,
      direction: 64,
    });
  });

  it("the NetworkPolicy maps hold MAX_ENTRIES", () => {
    for (const [name, n] of Object.entries(MAX_ENTRIES))
      assert.equal(maxEntriesOf(name), n, `${name} max_entries`);
  });

  it("flow events: struct flow_event as the codec reads it, 64 bytes, no implicit padding", () => {
    const s = struct("flow_event");
    assert.equal(s.size, FLOW_EVENT_SIZE);
    assert.deepEqual(
      offsets("flow_event"),
      Object.fromEntries(Object.entries(FLOW_EVENT_OFFSETS).map(([k, v]) => [k, v * 8])),
    );
  });

  it("flow events: the ring buffer's size, the lost counter, and the enums' values", () => {
    assert.equal(maxEntriesOf(FLOW_EVENTS_MAP), FLOW_RING_BYTES, "flow_events max_entries");
    assert.equal(maxEntriesOf(FLOW_EVENTS_LOST_MAP), 1, "one per-CPU counter");
    const enumValues = (name: string): Record<string, number> => {
      const e = types().find((t) => t.kind === "ENUM" && t.name === name) as
        | (BtfType & { values?: { name: string; val: number }[] })
        | undefined;
      assert.ok(e, `enum ${name}`);
      return Object.fromEntries((e.values ?? []).map((v) => [v.name, v.val]));
    };
    assert.deepEqual(enumValues("flow_kind"), {
      FLOW_KIND_DROP: FLOW_KIND.drop,
      FLOW_KIND_NEW: FLOW_KIND.new,
      FLOW_KIND_END: FLOW_KIND.end,
    });
    assert.deepEqual(enumValues("flow_verdict"), {
      VERDICT_FORWARDED: FLOW_VERDICT.FORWARDED,
      VERDICT_DROPPED: FLOW_VERDICT.DROPPED,
      VERDICT_AUDIT: FLOW_VERDICT.AUDIT,
    });
    assert.deepEqual(enumValues("flow_reason"), {
      FLOW_REASON_NONE: 0,
      FLOW_REASON_POLICY_DENIED: FLOW_REASON.policy_denied,
      FLOW_REASON_EGRESS_DENIED: FLOW_REASON.egress_denied,
      FLOW_REASON_UNENCRYPTED: FLOW_REASON.unencrypted,
    });
  });
});
