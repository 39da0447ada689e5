import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setImmediate as turn } from "node:timers/promises";
import { FakeClock } from "../util/clock.js";
import { RuntimeMetrics } from "./metrics.js";
import { ItemExponentialFailureRateLimiter } from "./rate-limiter.js";
import { WorkQueue } from "./workqueue.js";

/**
 * get() that answers "nothing" when no item is ready: the queue hands items to waiting getters
 * synchronously on add, so one turn of the event loop settles it (no timeout needed).
 */
async function tryGet<K>(q: WorkQueue<K>): Promise<K | "nothing" | undefined> {
  const abort = new AbortController();
  const got = q.get(abort.signal);
  await turn();
  abort.abort();
  const item = await got;
  return item === undefined && abort.signal.aborted ? "nothing" : item;
}

describe("WorkQueue", () => {
  it("adding a key that is already waiting does nothing", async () => {
    const q = new WorkQueue<string>({ name: "t" });
    q.add("a");
    q.add("b");
    q.add("a");
    assert.equal(q.len(), 2);
    assert.equal(await q.get(), "a");
    assert.equal(await q.get(), "b");
    assert.equal(await tryGet(q), "nothing");
    q.shutDown();
  });

  it("never hands one key to two workers at once; a re-add while processing runs once more", async () => {
    const q = new WorkQueue<string>({ name: "t" });
    q.add("a");
    const first = await q.get();
    assert.equal(first, "a");
    q.add("a"); // during processing: must wait for done()
    q.add("a"); // and still only once
    assert.equal(q.len(), 0);
    assert.equal(await tryGet(q), "nothing", "a second worker must not get a while it runs");
    q.done("a");
    assert.equal(q.len(), 1);
    assert.equal(await q.get(), "a");
    q.done("a");
    assert.equal(await tryGet(q), "nothing", "ran exactly once more");
    q.shutDown();
  });

  it("with several workers, a key is never processed concurrently", async () => {
    const q = new WorkQueue<string>({ name: "t" });
    const running = new Set<string>();
    const runs = new Map<string, number>();
    let overlap = false;
    const worker = async () => {
      for (;;) {
        const key = await q.get();
        if (key === undefined) return;
        if (running.has(key)) overlap = true;
        running.add(key);
        runs.set(key, (runs.get(key) ?? 0) + 1);
        await turn(); // other workers run meanwhile
        running.delete(key);
        q.done(key);
      }
    };
    const workers = Array.from({ length: 4 }, worker);
    for (let i = 0; i < 30; i++) {
      q.add(`k${i % 3}`);
      await turn();
    }
    while (q.len() > 0 || q.inFlight() > 0) await turn();
    q.shutDown();
    await Promise.all(workers);
    assert.equal(overlap, false);
    for (const k of ["k0", "k1", "k2"]) assert.ok((runs.get(k) ?? 0) >= 1);
  });

  it("addRateLimited backs off per item and forget resets it", async () => {
    const limiter = new ItemExponentialFailureRateLimiter<string>(20, 1_000_000);
    const clock = new FakeClock();
    const q = new WorkQueue<string>({ name: "t", rateLimiter: limiter, clock });
    q.addRateLimited("a"); // 20 ms
    assert.equal(q.numRequeues("a"), 1);
    await clock.advance(19);
    assert.equal(q.len(), 0, "not queued before its delay");
    await clock.advance(1);
    assert.equal(await tryGet(q), "a");
    q.done("a");
    q.addRateLimited("a"); // 40 ms
    q.addRateLimited("a"); // 80 ms: the earlier (40 ms) delay wins
    assert.equal(q.numRequeues("a"), 3);
    await clock.advance(39);
    assert.equal(q.len(), 0);
    await clock.advance(1);
    assert.equal(await tryGet(q), "a");
    q.done("a");
    q.forget("a");
    assert.equal(q.numRequeues("a"), 0);
    q.shutDown();
  });

  it("addAfter delivers after the delay, keeps the earliest of several, and ignores <=0 delay", async () => {
    const clock = new FakeClock();
    const q = new WorkQueue<string>({ name: "t", clock });
    q.addAfter("a", 60);
    q.addAfter("a", 5000); // later: ignored
    await clock.advance(59);
    assert.equal(await tryGet(q), "nothing", "not before its delay");
    await clock.advance(1);
    assert.equal(await tryGet(q), "a");
    q.done("a");
    await clock.advance(5000);
    assert.equal(q.len(), 0, "the later delay was dropped, not kept");
    q.addAfter("b", 0);
    assert.equal(q.len(), 1);
    q.shutDown();
  });

  it("shutDownWithDrain stops accepting and waits for in-flight items", async () => {
    const q = new WorkQueue<string>({ name: "t" });
    q.add("a");
    q.add("b");
    const a = await q.get();
    assert.equal(a, "a");
    const waiting = q.get(); // gets b
    assert.equal(await waiting, "b");
    const idle = q.get(); // blocks: nothing left
    let finished = false;
    const drain = q.shutDownWithDrain(5000).then((ok) => {
      finished = true;
      return ok;
    });
    assert.equal(await idle, undefined, "blocked getters are released on shutdown");
    q.add("c");
    assert.equal(q.len(), 0, "no adds after shutdown");
    assert.equal(await q.get(), undefined);
    q.done("a");
    await turn();
    assert.equal(finished, false, "b is still in flight");
    q.done("b");
    assert.equal(await drain, true);
  });

  it("a withdrawn get() does not swallow the next item", async () => {
    const q = new WorkQueue<string>({ name: "t" });
    const abort = new AbortController();
    const abandoned = q.get(abort.signal);
    abort.abort();
    assert.equal(await abandoned, undefined);
    q.add("a");
    assert.equal(await tryGet(q), "a");
    q.shutDown();
  });

  it("shutDownWithDrain gives up at its deadline", async () => {
    const clock = new FakeClock();
    const q = new WorkQueue<string>({ name: "t", clock });
    q.add("stuck");
    await q.get();
    const drain = q.shutDownWithDrain(50);
    await clock.advance(50);
    assert.equal(await drain, false);
  });

  it("counts adds, retries and depth in metrics labelled with the queue name", async () => {
    const metrics = new RuntimeMetrics();
    const q = new WorkQueue<string>({
      name: "netcfg",
      metrics,
      rateLimiter: new ItemExponentialFailureRateLimiter<string>(1, 10),
    });
    q.add("a");
    q.add("a"); // deduplicated: not counted
    q.add("b");
    q.addRateLimited("c");
    const text = await metrics.registry.metrics();
    assert.match(text, /workqueue_adds_total\{name="netcfg"\} 2/);
    assert.match(text, /workqueue_depth\{name="netcfg"\} 2/);
    assert.match(text, /workqueue_retries_total\{name="netcfg"\} 1/);
    q.shutDown();
  });
});
