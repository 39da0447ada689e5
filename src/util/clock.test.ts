import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeClock, RealClock } from "./clock.js";

describe("FakeClock", () => {
  it("fires due timers in time order as it advances, including ones they schedule", async () => {
    const c = new FakeClock("2026-11-29T12:00:00Z");
    const fired: string[] = [];
    c.schedule("b", new Date("2026-11-29T12:00:02Z"), () => fired.push("b"));
    c.schedule("a", new Date("2026-11-29T12:00:01Z"), () => {
      fired.push("a");
      c.schedule("c", new Date(c.now().getTime() + 500), () => fired.push("c"));
    });
    c.schedule("late", new Date("2026-11-29T12:00:09Z"), () => fired.push("late"));
    await c.advance(2000);
    assert.deepEqual(fired, ["a", "c", "b"]);
    assert.equal(c.now().toISOString(), "2026-11-29T12:00:02.000Z");
    assert.ok(c.scheduled("late"));
    c.schedule("late", new Date("2026-11-29T12:00:03Z"), () => fired.push("replaced"));
    await c.advance(10_000);
    assert.deepEqual(fired, ["a", "c", "b", "replaced"], "same name replaces the timer");
  });
});

describe("RealClock", () => {
  it("does not fire a timer beyond Node's 2^31-1 ms limit early (720h drift interval)", async () => {
    const c = new RealClock();
    let fired = false;
    c.schedule("far", new Date(Date.now() + 720 * 3_600_000), () => {
      fired = true;
    });
    // Node runs an overflowed timer after 1 ms; a 30 ms timer fires after it would have.
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(fired, false);
    assert.ok(c.scheduled("far"));
    c.cancel("far");
    assert.equal(c.scheduled("far"), undefined);
  });
});
