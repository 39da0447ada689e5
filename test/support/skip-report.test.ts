import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { requireReal } from "./prerequisites.js";
import { skippedOf, skipSummary } from "./skip-report.js";

describe("skip report", () => {
  const suite = {
    type: "test:pass",
    data: {
      name: "WireGuard e2e",
      file: `${process.cwd()}/dist/test/e2e/wg.test.js`,
      skip: "needs wg",
      details: { type: "suite" },
    },
  };
  const test = { type: "test:pass", data: { name: "tcx", skip: "no tcx" } };

  it("counts skipped suites and tests separately, with their reasons", () => {
    const skipped = [skippedOf(suite)!, skippedOf(test)!];
    assert.equal(skippedOf({ type: "test:pass", data: { name: "ran" } }), undefined);
    assert.equal(skippedOf({ type: "test:diagnostic", data: { name: "x", skip: "y" } }), undefined);
    const text = skipSummary(skipped, false);
    assert.match(text, /skipped: 1 suite and 1 test\n/);
    assert.match(text, /suite "WireGuard e2e" \(dist\/test\/e2e\/wg\.test\.js\): needs wg/);
    assert.doesNotMatch(text, /FAIL/);
    assert.match(skipSummary(skipped, true), /FAIL: this run may not skip/);
    assert.equal(skipSummary([], true), "\nskipped: none\n");
  });

  it("requires real runs under CI or NETLOOM_REQUIRE_REAL", () => {
    assert.equal(requireReal({}), false);
    assert.equal(requireReal({ CI: "true" }), true);
    assert.equal(requireReal({ NETLOOM_REQUIRE_REAL: "1" }), true);
    assert.equal(requireReal({ NETLOOM_REQUIRE_REAL: "0", CI: "false" }), false);
  });
});
