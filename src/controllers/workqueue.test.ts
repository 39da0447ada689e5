import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { RuntimeMetrics } from "./metrics.js";
import { ItemExponentialFailureRateLimiter } from "./rate-limiter.js";
import { WorkQueue } from "./workqueue.js";

/** get() with a bound: "timeout" if nothing arrives within ms (the getter is withdrawn). */
async function tryGet<K>(q: WorkQueue<K>, ms: number): Promise<K | "timeout" | undefined> {
  // Not AbortSignal.timeout: its timer is unref'd and would let the test process exit early.
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), ms);
  const item = await q.get(abort.signal);
  clearTimeout(timer);
  return item === undefined && abort.signal.aborted ? "timeout" : item;
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
    assert.equal(await tryGet(q, 20), "timeout");
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
    assert.equal(await tryGet(q, 30), "timeout", "a second worker must not get a while it runs");
    q.done("a");
    assert.equal(q.len(), 1);
    assert.equal(await q.get(), "a");
    q.done("a");
    assert.equal(await tryGet(q, 30), "timeout", "ran exactly once more");
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
        await sleep(5);
        running.delete(key);
        q.done(key);
      }
    };
    const workers = Array.from({ length: 4 }, worker);
    for (let i = 0; i < 30; i++) {
      q.add(`k${i % 3}`);
      await sleep(1);
    }
    while (q.len() > 0 || q.inFlight() > 0) await sleep(5);
    q.shutDown();
    await Promise.all(workers);
    assert.equal(overlap, false);
    for (const k of ["k0", "k1", "k2"]) assert.ok((runs.get(k) ?? 0) >= 1);
  });

  it("addRateLimited backs off per item and forget resets it", async () => {
    const limiter = new ItemExponentialFailureRateLimiter<string>(20, 1_000_000);
    const q = new WorkQueue<string>({ name: "t", rateLimiter: limiter });
    q.addRateLimited("a"); // 20 ms
    assert.equal(q.numRequeues("a"), 1);
    assert.equal(q.len(), 0, "not queued before its delay");
    assert.equal(await tryGet(q, 2000), "a");
    q.done("a");
    q.addRateLimited("a"); // 40 ms
    q.addRateLimited("a"); // 80 ms: the earlier (40 ms) delay wins
    assert.equal(q.numRequeues("a"), 3);
    assert.equal(await tryGet(q, 2000), "a");
    q.done("a");
    q.forget("a");
    assert.equal(q.numRequeues("a"), 0);
    q.shutDown();
  });

  it("addAfter delivers after the delay, keeps the earliest of several, and ignores <=0 delay", async () => {
    const q = new WorkQueue<string>({ name: "t" });
    const t0 = Date.now();
    q.addAfter("a", 60);
    q.addAfter("a", 5000); // later: ignored
    assert.equal(q.len(), 0);
    assert.equal(await tryGet(q, 5), "timeout");
    assert.equal(await tryGet(q, 3000), "a");
    assert.ok(Date.now() - t0 >= 55, "not before its delay");
    q.done("a");
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
    await sleep(10);
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
    assert.equal(await tryGet(q, 1000), "a");
    q.shutDown();
  });

  it("shutDownWithDrain gives up at its deadline", async () => {
    const q = new WorkQueue<string>({ name: "t" });
    q.add("stuck");
    await q.get();
    const t0 = Date.now();
    assert.equal(await q.shutDownWithDrain(50), false);
    assert.ok(Date.now() - t0 < 3000);
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
