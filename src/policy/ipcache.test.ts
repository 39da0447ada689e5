import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { PolicyEndpoint } from "../api/networkendpointslice.js";
import { canonicalPrefix, ipcacheEpoch } from "../datapath-driver/maps/policy.js";
import { RESERVED } from "./identity.js";
import {
  type IpcacheInput,
  IpcacheTable,
  renderIpcache,
  type SlicePods,
  slicePods,
  slicesOf,
} from "./ipcache.js";

/** mulberry32: a seeded generator, so a failure names the seed that reproduces it. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const pod = (name: string, identity: number, ips: string[]): PolicyEndpoint => ({
  namespace: "shop",
  name,
  identity,
  ips,
});

describe("IpcacheTable", () => {
  it("holds what renderIpcache renders from scratch, through random slice, world and host changes", () => {
    for (let seed = 1; seed <= 40; seed++) {
      const rnd = random(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
      // A small pool of addresses, so that slices (and pods of one slice) claim the same ones.
      const pool = [
        ...Array.from({ length: 12 }, (_, i) => `10.0.0.${i}`),
        "fd00::1",
        "fd00:0::2",
        "192.168.0.1",
      ];
      const nodes = ["n1", "n2", "n3", "n4"];
      const worlds = [
        [],
        [{ cidr: "0.0.0.0/0", identity: 1 << 24 }],
        [{ cidr: "10.0.0.3/32", identity: (1 << 24) + 1 }],
      ];
      const table = new IpcacheTable();
      let input: IpcacheInput = { slices: new Map(), world: [], nodeIPs: [] };
      for (let step = 0; step < 60; step++) {
        const slices = new Map(input.slices);
        const node = pick(nodes);
        const op = rnd();
        if (op < 0.2) slices.delete(node);
        else if (op < 0.8) {
          const endpoints = Array.from({ length: Math.floor(rnd() * 5) }, (_, i) =>
            pod(`${node}-p${i}`, 256 + Math.floor(rnd() * 4), [pick(pool)]),
          );
          slices.set(node, slicePods(node, endpoints));
        }
        input = {
          slices,
          world: op > 0.9 ? pick(worlds) : input.world,
          nodeIPs: op > 0.85 && op < 0.95 ? (rnd() < 0.5 ? [] : [pick(pool)]) : input.nodeIPs,
        };
        const got = table.update(input);
        const want = renderIpcache(input);
        assert.deepEqual(new Map(got.entries), want, `seed ${seed} step ${step}`);
        assert.equal(got.epoch, ipcacheEpoch(want), `seed ${seed} step ${step}: epoch`);
        for (const address of pool) {
          const prefix = canonicalPrefix(address);
          const owner = [...slices.keys()]
            .sort()
            .flatMap((n) => slices.get(n)!.addresses)
            .find((x) => x.prefix === prefix);
          assert.equal(
            table.podAt(address),
            owner?.pod,
            `seed ${seed} step ${step}: the pod at ${address}`,
          );
        }
      }
    }
  });

  it("a node address is the host, over a pod and an ipBlock prefix; a pod over an ipBlock prefix", () => {
    const slices = slicesOf(new Map([["n2", [pod("a", 300, ["10.0.0.5", "10.0.0.6"])]]]));
    const entries = new IpcacheTable().update({
      slices,
      world: [
        { cidr: "10.0.0.5/32", identity: 1 << 24 },
        { cidr: "10.0.0.7/32", identity: 1 << 24 },
      ],
      nodeIPs: ["10.0.0.6"],
    }).entries;
    assert.equal(entries.get("10.0.0.5/32"), 300);
    assert.equal(entries.get("10.0.0.6/32"), RESERVED.host);
    assert.equal(entries.get("10.0.0.7/32"), 1 << 24);
  });

  it("two slices claiming one address: the first node by name holds it, the other when it lets go", () => {
    const table = new IpcacheTable();
    const b = slicePods("n-b", [pod("stale", 301, ["10.0.0.5"])]);
    const a = slicePods("n-a", [pod("new", 302, ["10.0.0.5"])]);
    const update = (...s: SlicePods[]) =>
      table.update({ slices: new Map(s.map((x) => [x.node, x])), world: [], nodeIPs: [] });
    assert.equal(update(b).entries.get("10.0.0.5/32"), 301);
    assert.equal(update(b, a).entries.get("10.0.0.5/32"), 302);
    assert.equal(table.podAt("10.0.0.5")?.name, "new");
    assert.equal(update(b).entries.get("10.0.0.5/32"), 301, "n-a let go");
    assert.equal(update().entries.size, 0);
  });

  it("looks again only at the slices that are another object than last time", () => {
    let reads = 0;
    const counted = (s: SlicePods): SlicePods => ({
      ...s,
      get addresses() {
        reads++;
        return s.addresses;
      },
    });
    const n1 = counted(slicePods("n1", [pod("a", 300, ["10.0.0.5"])]));
    const n2 = counted(slicePods("n2", [pod("b", 301, ["10.0.0.6"])]));
    const table = new IpcacheTable();
    table.update({
      slices: new Map([
        ["n1", n1],
        ["n2", n2],
      ]),
      world: [],
      nodeIPs: [],
    });
    assert.equal(reads, 2);
    const n2b = counted(slicePods("n2", [pod("b", 301, ["10.0.0.7"])]));
    const r = table.update({
      slices: new Map([
        ["n1", n1],
        ["n2", n2b],
      ]),
      world: [],
      nodeIPs: [],
    });
    assert.equal(reads, 4, "n2's old and new claims only");
    assert.deepEqual(
      new Map(r.entries),
      new Map([
        ["10.0.0.5/32", 300],
        ["10.0.0.7/32", 301],
      ]),
    );
  });

  it("slicePods: canonical prefixes, each address once (the first pod), memoized per array", () => {
    const endpoints = [pod("a", 300, ["10.0.0.5", "fd00:0::5"]), pod("b", 301, ["10.0.0.5"])];
    const s = slicePods("n1", endpoints);
    assert.deepEqual(
      s.addresses.map((a) => [a.prefix, a.pod.name]),
      [
        ["10.0.0.5/32", "a"],
        ["fd00::5/128", "a"],
      ],
    );
    assert.equal(slicePods("n1", endpoints), s);
  });
});
