import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { expectGolden } from "./golden.js";

describe("expectGolden", () => {
  const dir = mkdtempSync(join(tmpdir(), "netloom-golden-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("fails on a missing expected.yaml instead of writing it", () => {
    assert.throws(() => expectGolden(dir, { a: 1 }, false), /expected\.yaml is missing/);
    assert.equal(existsSync(join(dir, "expected.yaml")), false);
  });

  it("writes it only when asked (UPDATE_GOLDEN=1), then compares", () => {
    expectGolden(dir, { a: 1 }, true);
    assert.equal(readFileSync(join(dir, "expected.yaml"), "utf8"), "a: 1\n");
    const r = expectGolden(dir, { a: 2 }, false);
    assert.notEqual(r.actual, r.expected);
  });
});
