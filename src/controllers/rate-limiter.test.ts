import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { exponentialBackoffMs, ItemExponentialFailureRateLimiter } from "./rate-limiter.js";

describe("ItemExponentialFailureRateLimiter", () => {
  it("doubles from 5 ms per failure and caps at 1000 s", () => {
    const rl = new ItemExponentialFailureRateLimiter<string>();
    const delays = Array.from({ length: 6 }, () => rl.when("a"));
    assert.deepEqual(delays, [5, 10, 20, 40, 80, 160]);
    for (let i = 0; i < 100; i++) rl.when("a");
    assert.equal(rl.when("a"), 1_000_000);
    assert.equal(rl.numRequeues("a"), 107);
  });

  it("tracks items independently and forget resets one", () => {
    const rl = new ItemExponentialFailureRateLimiter<string>();
    rl.when("a");
    rl.when("a");
    assert.equal(rl.when("b"), 5);
    rl.forget("a");
    assert.equal(rl.numRequeues("a"), 0);
    assert.equal(rl.when("a"), 5);
    assert.equal(rl.numRequeues("b"), 1);
  });

  it("exponentialBackoffMs never overflows past the cap", () => {
    assert.equal(exponentialBackoffMs(1000, 30_000, 0), 1000);
    assert.equal(exponentialBackoffMs(1000, 30_000, 4), 16_000);
    assert.equal(exponentialBackoffMs(1000, 30_000, 5), 30_000);
    assert.equal(exponentialBackoffMs(5, 1_000_000, 5000), 1_000_000);
  });
});
