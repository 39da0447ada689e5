import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type Condition,
  conditionsEqual,
  findCondition,
  formatTime,
  isConditionTrue,
  removeCondition,
  setCondition,
} from "./conditions.js";

const t1 = new Date("2025-01-01T10:00:00.123Z");
const t2 = new Date("2025-01-01T11:00:00.999Z");
const ready = {
  type: "Ready",
  status: "True",
  reason: "Applied",
  message: "all nodes ready",
} as const;

describe("setCondition", () => {
  it("adds a new condition with observedGeneration and a seconds-precision transition time", () => {
    const out = setCondition(undefined, ready, 3, t1);
    assert.deepEqual(out, [
      { ...ready, observedGeneration: 3, lastTransitionTime: "2025-01-01T10:00:00Z" },
    ]);
  });

  it("keeps lastTransitionTime when status is unchanged but updates reason, message, generation", () => {
    const before = setCondition(undefined, ready, 3, t1);
    const after = setCondition(before, { ...ready, reason: "Still", message: "m" }, 4, t2);
    assert.equal(after[0]?.lastTransitionTime, "2025-01-01T10:00:00Z");
    assert.equal(after[0]?.reason, "Still");
    assert.equal(after[0]?.message, "m");
    assert.equal(after[0]?.observedGeneration, 4);
  });

  it("moves lastTransitionTime when status flips", () => {
    const before = setCondition(undefined, ready, 3, t1);
    const after = setCondition(before, { ...ready, status: "False", reason: "Drift" }, 3, t2);
    assert.equal(after[0]?.lastTransitionTime, formatTime(t2));
    assert.equal(after[0]?.status, "False");
  });

  it("sets by type, keeps order and other conditions, and does not mutate its input", () => {
    const base: Condition[] = setCondition(
      setCondition(undefined, ready, 1, t1),
      { type: "Stalled", status: "False", reason: "Ok", message: "" },
      1,
      t1,
    );
    const frozen = structuredClone(base);
    const out = setCondition(
      base,
      { type: "Reconciling", status: "True", reason: "R", message: "" },
      2,
      t2,
    );
    assert.deepEqual(base, frozen);
    assert.deepEqual(
      out.map((c) => c.type),
      ["Ready", "Stalled", "Reconciling"],
    );
    const out2 = setCondition(
      out,
      { type: "Stalled", status: "True", reason: "X", message: "y" },
      2,
      t2,
    );
    assert.deepEqual(
      out2.map((c) => c.type),
      ["Ready", "Stalled", "Reconciling"],
    );
    assert.equal(out2[0], out[0], "untouched conditions are shared, not rebuilt");
    assert.notEqual(out2, out);
  });

  it("helpers find, test, remove and compare", () => {
    const list = setCondition(undefined, ready, 1, t1);
    assert.equal(findCondition(list, "Ready")?.reason, "Applied");
    assert.equal(isConditionTrue(list, "Ready"), true);
    assert.equal(isConditionTrue(list, "Stalled"), false);
    assert.deepEqual(removeCondition(list, "Ready"), []);
    assert.equal(conditionsEqual(list, setCondition(list, ready, 1, t2)), true);
    assert.equal(conditionsEqual(list, setCondition(list, ready, 2, t2)), false);
  });
});
