import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { CoreV1Api } from "@kubernetes/client-node";
import { pino } from "pino";
import { ConfigMapKind, Manager, type ResourceKind } from "../../src/controllers/index.js";
import { startTestCluster, type TestCluster } from "../support/cluster.js";

let cluster: TestCluster;
const NS = "reconcile";

async function until(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}

/** The value of one sample line of a Prometheus text exposition, or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function jsonLines(): { lines: Array<Record<string, unknown>>; stream: Writable } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { lines, stream };
}

describe("controller against a real API server", { timeout: 85_000 }, () => {
  before(async () => {
    cluster = await startTestCluster();
    const core = cluster.kubeconfig.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: NS } } });
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: "fine" } } });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("retries a throwing reconcile with growing delays, visible in /metrics", async (t) => {
    const { lines, stream } = jsonLines();
    const mgr = new Manager({
      kubeconfig: cluster.kubeconfig,
      logger: pino({ level: "debug" }, stream),
      server: { port: 0, host: "127.0.0.1" },
    });
    const FAILURES = 6;
    const attempts: number[] = [];
    mgr
      .controller("flaky")
      .for(ConfigMapKind, { namespace: NS })
      .complete(async (key, ctx) => {
        if (key !== `${NS}/boom`) return;
        attempts.push(performance.now());
        ctx.log.info({ attempt: attempts.length }, "trying");
        if (attempts.length <= FAILURES) throw new Error(`attempt ${attempts.length} failed`);
      });
    try {
      await mgr.start();
      assert.equal((await get(mgr.port, "/healthz")).status, 200);
      assert.equal((await get(mgr.port, "/readyz")).status, 200);
      const core = cluster.kubeconfig.makeApiClient(CoreV1Api);
      await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: "boom" } } });
      await until("success after the failures", () => attempts.length === FAILURES + 1);
      await sleep(200);
      assert.equal(attempts.length, FAILURES + 1, "no retries after success");

      const gaps = attempts.slice(1).map((a, i) => a - (attempts[i] ?? a));
      t.diagnostic(`retry gaps (ms): ${gaps.map((g) => g.toFixed(1)).join(", ")}`);
      // Default backoff 5 ms · 2^n: a retry never comes before its delay (timers never fire early).
      for (const [i, gap] of gaps.entries()) {
        assert.ok(
          gap >= 5 * 2 ** i - 1,
          `retry ${i + 1} after ${gap} ms, expected >= ${5 * 2 ** i}`,
        );
      }
      assert.ok((gaps.at(-1) ?? 0) > (gaps[0] ?? 0) * 4, "delays grow");

      const metrics = (await get(mgr.port, "/metrics")).body;
      assert.equal(
        sample(metrics, 'controller_runtime_reconcile_errors_total{controller="flaky"}'),
        FAILURES,
      );
      assert.equal(
        sample(metrics, 'controller_runtime_reconcile_total{controller="flaky",result="error"}'),
        FAILURES,
      );
      assert.ok(
        (sample(
          metrics,
          'controller_runtime_reconcile_total{controller="flaky",result="success"}',
        ) ?? 0) >= 2,
      );
      assert.ok((sample(metrics, 'workqueue_retries_total{name="flaky"}') ?? 0) >= FAILURES);
      assert.ok((sample(metrics, 'workqueue_adds_total{name="flaky"}') ?? 0) >= FAILURES + 2);
      assert.equal(sample(metrics, 'workqueue_depth{name="flaky"}'), 0);
      assert.ok(
        (sample(metrics, 'controller_runtime_reconcile_time_seconds_count{controller="flaky"}') ??
          0) >=
          FAILURES + 2,
      );

      const reconcileLines = lines.filter((l) => l.reconcileID !== undefined);
      assert.ok(reconcileLines.some((l) => l.msg === "Reconciler error" && l.key === `${NS}/boom`));
      for (const l of reconcileLines) {
        assert.equal(l.controller, "flaky");
        assert.ok(
          l.key === `${NS}/boom` || l.key === `${NS}/fine`,
          `line without key: ${JSON.stringify(l)}`,
        );
      }
    } finally {
      await mgr.stop();
    }
  });

  it("/readyz stays 503 until caches sync (here: never, the kind does not exist)", async () => {
    const missing: ResourceKind = {
      group: "example.com",
      version: "v1",
      kind: "Missing",
      plural: "missings",
      namespaced: false,
    };
    const mgr = new Manager({
      kubeconfig: cluster.kubeconfig,
      logger: pino({ level: "silent" }),
      server: { port: 0, host: "127.0.0.1" },
      informerBackoff: { initialMs: 100, maxMs: 500 },
    });
    mgr
      .controller("missing")
      .for(missing)
      .complete(async () => {});
    const started = mgr.start();
    try {
      await until("server bound", () => mgr.port !== 0);
      assert.equal((await get(mgr.port, "/healthz")).status, 200);
      await sleep(500);
      assert.equal((await get(mgr.port, "/readyz")).status, 503);
      assert.equal(mgr.isReady(), false);
    } finally {
      await mgr.stop();
      await started;
    }
  });
});
