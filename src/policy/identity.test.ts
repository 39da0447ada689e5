import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  FIRST_ALLOCATED,
  freeIdentity,
  identityLabels,
  labelSetKey,
  numericIdentity,
  RESERVED,
} from "./identity.js";

describe("security identities", () => {
  it("a pod's identity labels: its own and its namespace's, kept apart, without per-instance labels", () => {
    assert.deepEqual(
      identityLabels(
        "shop",
        { app: "api", "pod-template-hash": "7f8b9", team: "a" },
        { team: "platform", "kubernetes.io/metadata.name": "shop" },
      ),
      {
        "ns:kubernetes.io/metadata.name": "shop",
        "ns:team": "platform",
        "pod:app": "api",
        "pod:team": "a",
      },
    );
  });

  it("two replicas of one Deployment share a label set, so one identity; another namespace does not", () => {
    const a = identityLabels("shop", { app: "api", "pod-template-hash": "1" }, {});
    const b = identityLabels("shop", { app: "api", "pod-template-hash": "2" }, {});
    const c = identityLabels("other", { app: "api" }, {});
    assert.equal(labelSetKey(a), labelSetKey(b));
    assert.notEqual(labelSetKey(a), labelSetKey(c));
    assert.equal(labelSetKey({ x: "1", y: "2" }), labelSetKey({ y: "2", x: "1" }), "order-free");
  });

  it("numbers: reserved ones below 256, the cluster ID in bits 16-23", () => {
    assert.ok(Object.values(RESERVED).every((n) => n < FIRST_ALLOCATED));
    assert.equal(numericIdentity(2, 300), 0x2012c);
    assert.throws(() => numericIdentity(256, 300), /cluster ID 256/);
    assert.throws(() => numericIdentity(1, 0x10000), /not in 1-65535/);
    assert.equal(freeIdentity([256, 257, 259]), 258);
    assert.equal(freeIdentity([]), FIRST_ALLOCATED);
  });
});
