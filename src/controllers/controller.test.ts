import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { setImmediate as turn } from "node:timers/promises";
import { pino } from "pino";
import { FakeClock } from "../util/clock.js";
import {
  Controller,
  ControllerBuilder,
  classifyReconcile,
  ownerKeys,
  type ReconcileResult,
} from "./controller.js";
import type { EventHandler, EventSource } from "./informer.js";
import { RuntimeMetrics } from "./metrics.js";
import { ItemExponentialFailureRateLimiter } from "./rate-limiter.js";
import { ConfigMapKind, type KubeObject, NodeKind, type ResourceKind } from "./resource.js";

/** Like an informer: remembers objects and replays them to handlers registered later. */
class FakeSource implements EventSource {
  readonly handlers = new Set<EventHandler<KubeObject>>();
  private readonly objects = new Map<string, KubeObject>();
  addEventHandler(h: EventHandler<KubeObject>): () => void {
    this.handlers.add(h);
    for (const obj of this.objects.values()) h.add?.(obj);
    return () => this.handlers.delete(h);
  }
  add(obj: KubeObject): void {
    this.objects.set(`${obj.metadata?.namespace}/${obj.metadata?.name}`, obj);
    for (const h of this.handlers) h.add?.(obj);
  }
  update(oldObj: KubeObject, newObj: KubeObject): void {
    for (const h of this.handlers) h.update?.(oldObj, newObj);
  }
}

const cm = (name: string, namespace = "ns"): KubeObject => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: { name, namespace },
});

function captureLogs(): { lines: Array<Record<string, unknown>>; logger: pino.Logger } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { lines, logger: pino({ level: "debug" }, stream) };
}

/** Turns the event loop until cond holds: workers run on promises, delays on the test's clock. */
async function until(cond: () => boolean, turns = 10_000): Promise<void> {
  for (let i = 0; i < turns && !cond(); i++) await turn();
  if (!cond()) throw new Error(`condition not met after ${turns} turns of the event loop`);
}

/** A promise and the function that settles it: a test step waits on an event, not on time. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe("classifyReconcile", () => {
  it("follows controller-runtime: error and requeue back off, requeueAfter wins, else forget", () => {
    assert.deepEqual(classifyReconcile(undefined, true), {
      outcome: "error",
      action: { kind: "rateLimited" },
    });
    assert.deepEqual(classifyReconcile({ requeue: true }, false), {
      outcome: "requeue",
      action: { kind: "rateLimited" },
    });
    assert.deepEqual(classifyReconcile({ requeue: true, requeueAfterMs: 50 }, false), {
      outcome: "requeue_after",
      action: { kind: "after", delayMs: 50 },
    });
    assert.deepEqual(classifyReconcile(undefined, false), {
      outcome: "success",
      action: { kind: "forget" },
    });
    assert.deepEqual(classifyReconcile({}, false).outcome, "success");
  });
});

describe("ownerKeys", () => {
  const owner: ResourceKind = {
    group: "netloom.io",
    version: "v1alpha1",
    kind: "NetworkConfig",
    plural: "networkconfigs",
    namespaced: false,
  };
  const ref = (kind: string, apiVersion: string, name: string, controller?: boolean) => ({
    kind,
    apiVersion,
    name,
    uid: name,
    controller,
  });
  it("maps controller ownerReferences of the owner kind to keys, ignoring version", () => {
    const obj: KubeObject = {
      metadata: {
        name: "x",
        namespace: "ns",
        ownerReferences: [
          ref("NetworkConfig", "netloom.io/v1", "default", true),
          ref("NetworkConfig", "netloom.io/v1alpha1", "other", false),
          ref("NetworkConfig", "other.io/v1", "foreign", true),
          ref("Node", "v1", "n1", true),
        ],
      },
    };
    assert.deepEqual(ownerKeys(obj, owner), ["default"]);
    assert.deepEqual(ownerKeys(obj, owner, false), ["default", "other"]);
    assert.deepEqual(ownerKeys(obj, { ...owner, namespaced: true }), ["ns/default"]);
  });
});

describe("Controller", () => {
  it("reconciles each key from events, logging the key on every line", async () => {
    const { lines, logger } = captureLogs();
    const src = new FakeSource();
    const seen: string[] = [];
    const c = new Controller({
      name: "cm",
      logger,
      watches: [{ source: src, toKeys: (o) => [`${o.metadata?.namespace}/${o.metadata?.name}`] }],
      reconcile: async (key, ctx) => {
        ctx.log.info("working");
        seen.push(key);
      },
    });
    c.start();
    src.add(cm("a"));
    src.add(cm("b"));
    await until(() => seen.length === 2);
    await c.stop({ timeoutMs: 1000 });
    assert.deepEqual(seen.sort(), ["ns/a", "ns/b"]);
    const reconcileLines = lines.filter((l) => l.reconcileID !== undefined);
    assert.ok(reconcileLines.length >= 4, "working + reconciled per key");
    for (const l of reconcileLines) {
      assert.equal(l.controller, "cm");
      assert.match(String(l.key), /^ns\/[ab]$/);
      assert.equal(l.namespace, "ns");
    }
    assert.equal(src.handlers.size, 0, "stop() unregisters its handlers");
  });

  it("retries a failing key with growing delays and counts errors; success forgets", async () => {
    const metrics = new RuntimeMetrics();
    const src = new FakeSource();
    const clock = new FakeClock();
    const times: number[] = [];
    const retries: number[] = [];
    const c = new Controller({
      name: "flaky",
      metrics,
      clock,
      rateLimiter: () => new ItemExponentialFailureRateLimiter<string>(20, 10_000),
      watches: [{ source: src, toKeys: () => ["k"] }],
      reconcile: async (_key, ctx) => {
        times.push(clock.now().getTime());
        retries.push(ctx.retries);
        if (times.length <= 4) throw new Error("boom");
      },
    });
    c.start();
    src.add(cm("x"));
    // Backoff 20, 40, 80, 160 ms: not a millisecond early, and then at once.
    for (const [i, backoff] of [20, 40, 80, 160].entries()) {
      await until(() => times.length === i + 1);
      await clock.advance(backoff - 1);
      await turn();
      assert.equal(times.length, i + 1, `retry ${i + 1} waits its ${backoff} ms`);
      await clock.advance(1);
      await until(() => times.length === i + 2);
    }
    await clock.advance(60_000);
    await turn();
    await c.stop({ timeoutMs: 1000 });
    assert.equal(times.length, 5, "no more runs after success");
    assert.deepEqual(retries, [0, 1, 2, 3, 4]);
    assert.deepEqual(
      times.slice(1).map((t, i) => t - (times[i] ?? t)),
      [20, 40, 80, 160],
    );
    const text = await metrics.registry.metrics();
    assert.match(text, /controller_runtime_reconcile_errors_total\{controller="flaky"\} 4/);
    assert.match(text, /controller_runtime_reconcile_total\{controller="flaky",result="error"\} 4/);
    assert.match(
      text,
      /controller_runtime_reconcile_total\{controller="flaky",result="success"\} 1/,
    );
    assert.match(text, /controller_runtime_reconcile_time_seconds_count\{controller="flaky"\} 5/);
  });

  it("requeueAfterMs runs the key again later", async () => {
    const metrics = new RuntimeMetrics();
    const src = new FakeSource();
    const clock = new FakeClock();
    let runs = 0;
    const c = new Controller({
      name: "after",
      metrics,
      clock,
      watches: [{ source: src, toKeys: () => ["k"] }],
      reconcile: async (): Promise<ReconcileResult> => {
        runs++;
        return runs === 1 ? { requeueAfterMs: 30 } : {};
      },
    });
    c.start();
    src.add(cm("x"));
    await until(() => runs === 1);
    await clock.advance(29);
    await turn();
    assert.equal(runs, 1, "not before requeueAfterMs");
    await clock.advance(1);
    await until(() => runs === 2);
    await c.stop({ timeoutMs: 1000 });
    assert.match(await metrics.registry.metrics(), /result="requeue_after"\} 1/);
  });

  it("an update enqueues the keys of both the old and the new object", async () => {
    const src = new FakeSource();
    const seen = new Set<string>();
    const c = new Controller({
      name: "map",
      watches: [{ source: src, toKeys: (o) => [String(o.metadata?.labels?.config)] }],
      reconcile: async (key) => {
        seen.add(key);
      },
    });
    c.start();
    const before = { ...cm("n"), metadata: { name: "n", labels: { config: "old" } } };
    const after = { ...cm("n"), metadata: { name: "n", labels: { config: "new" } } };
    src.update(before, after);
    await until(() => seen.size === 2);
    await c.stop({ timeoutMs: 1000 });
    assert.deepEqual([...seen].sort(), ["new", "old"]);
  });

  it("stop waits for in-flight reconciles and aborts them when asked", async () => {
    const src = new FakeSource();
    let aborted = false;
    let finished = false;
    let started = deferred();
    let release = deferred();
    const c = new Controller({
      name: "slow",
      watches: [{ source: src, toKeys: () => ["k"] }],
      reconcile: async (_k, ctx) => {
        started.resolve();
        await new Promise<void>((resolve) => {
          void release.promise.then(resolve);
          ctx.signal.addEventListener("abort", () => {
            if (finished) return; // the signal also fires after a clean stop
            aborted = true;
            resolve();
          });
        });
        finished = true;
      },
    });
    c.start();
    src.add(cm("x"));
    await started.promise;
    const graceful = c.stop({ timeoutMs: 5000 });
    await turn();
    assert.equal(finished, false, "stop is waiting for the reconcile in flight");
    release.resolve();
    assert.equal(await graceful, true);
    assert.equal(finished, true);
    assert.equal(aborted, false, "a graceful stop lets it finish");

    finished = false;
    started = deferred();
    release = deferred();
    c.start();
    src.add(cm("x"));
    await started.promise;
    assert.equal(await c.stop({ timeoutMs: 5000, abortInFlight: true }), true);
    assert.equal(aborted, true);
  });

  it("a restart waits for the previous term's in-flight reconcile (one key, one worker)", async () => {
    const src = new FakeSource();
    let running = 0;
    let overlap = false;
    let runs = 0;
    const started = deferred();
    const release = deferred();
    const c = new Controller({
      name: "term",
      watches: [{ source: src, toKeys: () => ["k"] }],
      reconcile: async () => {
        runs++;
        if (running > 0) overlap = true;
        running++;
        started.resolve();
        await release.promise; // ignores the abort signal on purpose
        running--;
      },
    });
    c.start();
    src.add(cm("x"));
    await started.promise;
    const stopped = c.stop({ timeoutMs: 5000, abortInFlight: true });
    c.start(); // leadership regained at once; the source replays x once the new term runs
    await turn();
    assert.equal(runs, 1, "the new term waits for the old term's reconcile of the key");
    release.resolve();
    assert.equal(await stopped, true);
    await until(() => runs === 2);
    await c.stop({ timeoutMs: 1000 });
    assert.equal(overlap, false);
  });

  it("builder wires For, Owns and mapped watches to keys of the primary kind", async () => {
    const sources = new Map<string, FakeSource>();
    const provider = (kind: ResourceKind) => {
      let s = sources.get(kind.kind);
      if (!s) {
        s = new FakeSource();
        sources.set(kind.kind, s);
      }
      return s;
    };
    const owner: ResourceKind = {
      group: "netloom.io",
      version: "v1alpha1",
      kind: "NetworkConfig",
      plural: "networkconfigs",
      namespaced: false,
    };
    const registered: Controller[] = [];
    const seen = new Set<string>();
    const c = new ControllerBuilder("netcfg", provider, (x) => registered.push(x))
      .for(owner)
      .owns(ConfigMapKind)
      .watches(NodeKind, (node) => (node.metadata?.labels?.pool === "a" ? ["default"] : []))
      .complete(async (key) => {
        seen.add(key);
      });
    assert.equal(registered[0], c);
    c.start();
    sources.get("NetworkConfig")?.add({ metadata: { name: "primary" } });
    sources.get("ConfigMap")?.add({
      metadata: {
        name: "owned",
        namespace: "ns",
        ownerReferences: [
          {
            apiVersion: "netloom.io/v1alpha1",
            kind: "NetworkConfig",
            name: "owner",
            uid: "u",
            controller: true,
          },
        ],
      },
    });
    sources.get("Node")?.add({ metadata: { name: "n1", labels: { pool: "a" } } });
    sources.get("Node")?.add({ metadata: { name: "n2", labels: { pool: "b" } } });
    await until(() => seen.size === 3);
    await c.stop({ timeoutMs: 1000 });
    assert.deepEqual([...seen].sort(), ["default", "owner", "primary"]);
  });
});
