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
import { DENY_MAX_PORTS, DENY_VALUE_SIZE, LPM_KEY_SIZE } from "./egress-deny.js";

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

  it("LPM keys: prefixlen (u32) then the address, 8 and 20 bytes", () => {
    for (const [name, size] of [
      ["lpm_v4_key", LPM_KEY_SIZE[4]],
      ["lpm_v6_key", LPM_KEY_SIZE[6]],
    ] as const) {
      const s = struct(name);
      assert.equal(s.size, size, `${name} size`);
      assert.equal(member(s, "prefixlen").bits_offset, 0);
      assert.equal(member(s, "addr").bits_offset, 32, "address right after prefixlen");
    }
  });

  it("deny_value: flags, count, then DENY_MAX_PORTS (protocol, pad, port) slots", () => {
    const v = struct("deny_value");
    assert.equal(v.size, DENY_VALUE_SIZE);
    assert.equal(member(v, "all_ports").bits_offset, 0);
    assert.equal(member(v, "nports").bits_offset, 8);
    const ports = member(v, "ports");
    assert.equal(ports.bits_offset, 32);
    const array = types().find((t) => t.id === ports.type_id);
    assert.equal(array?.nr_elems, DENY_MAX_PORTS);
    const p = struct("deny_port");
    assert.equal(p.size, 4);
    assert.equal(member(p, "protocol").bits_offset, 0);
    assert.equal(member(p, "port").bits_offset, 16, "port (network order) at byte 2");
  });
});
