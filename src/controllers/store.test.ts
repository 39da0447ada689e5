import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import { IndexedStore } from "./store.js";

function pod(name: string, node: string, rv: string, namespace = "ns"): V1Pod {
  return {
    metadata: { name, namespace, resourceVersion: rv },
    spec: { containers: [], nodeName: node },
  };
}
const byNode = (p: V1Pod) => (p.spec?.nodeName ? [p.spec.nodeName] : []);

describe("IndexedStore", () => {
  it("looks objects up by namespace/name key", () => {
    const s = new IndexedStore<V1Pod>();
    s.upsert(pod("a", "n1", "1"));
    assert.equal(s.get("ns/a")?.spec?.nodeName, "n1");
    assert.equal(s.get("a"), undefined);
  });

  it("keeps an index current through add, update, delete, and builds it for existing objects", () => {
    const s = new IndexedStore<V1Pod>();
    s.upsert(pod("a", "n1", "1"));
    s.addIndex("node", byNode);
    s.upsert(pod("b", "n1", "2"));
    assert.deepEqual(
      s
        .byIndex("node", "n1")
        .map((p) => p.metadata?.name)
        .sort(),
      ["a", "b"],
    );
    s.upsert(pod("a", "n2", "3")); // moved
    assert.deepEqual(
      s.byIndex("node", "n1").map((p) => p.metadata?.name),
      ["b"],
    );
    assert.deepEqual(
      s.byIndex("node", "n2").map((p) => p.metadata?.name),
      ["a"],
    );
    s.delete("ns/b");
    assert.deepEqual(s.byIndex("node", "n1"), []);
    assert.throws(() => s.byIndex("nope", "x"), /does not exist/);
    assert.throws(() => s.addIndex("node", byNode), /already exists/);
  });

  it("replace reports what a relist added, changed and removed", () => {
    const s = new IndexedStore<V1Pod>();
    s.addIndex("node", byNode);
    s.replace([pod("a", "n1", "1"), pod("b", "n1", "1"), pod("c", "n1", "1")]);
    const diff = s.replace([pod("a", "n1", "1"), pod("b", "n2", "5"), pod("d", "n1", "6")]);
    assert.deepEqual(
      diff.added.map((p) => p.metadata?.name),
      ["d"],
    );
    assert.deepEqual(
      diff.updated.map(([o, n]) => [o.spec?.nodeName, n.spec?.nodeName]),
      [["n1", "n2"]],
    );
    assert.deepEqual(
      diff.deleted.map((p) => p.metadata?.name),
      ["c"],
    );
    assert.deepEqual(s.keys().sort(), ["ns/a", "ns/b", "ns/d"]);
    assert.deepEqual(
      s
        .byIndex("node", "n1")
        .map((p) => p.metadata?.name)
        .sort(),
      ["a", "d"],
    );
  });
});
