import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type V1ConfigMap,
} from "@kubernetes/client-node";
import { pino } from "pino";
import { compactEtcd, restartApiServer } from "../../src/cluster/control-plane.js";
import { ConfigMapKind, Informer } from "../../src/controllers/index.js";
import { startTestCluster, type TestCluster } from "../support/cluster.js";

let cluster: TestCluster;
let core: CoreV1Api;
const log = pino({ level: process.env.NETLOOM_TEST_LOG ?? "silent" });

async function until(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** API calls right after a restart may still fail for a moment; retry them briefly. */
async function retry<T>(fn: () => Promise<T>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > end) throw err;
      await sleep(200);
    }
  }
}

function recorder(informer: Informer<V1ConfigMap>) {
  const events: string[] = [];
  informer.addEventHandler({
    add: (o) => events.push(`add ${o.metadata?.name}`),
    update: (_o, n) => events.push(`update ${n.metadata?.name}`),
    delete: (o) => events.push(`delete ${o.metadata?.name}`),
  });
  return events;
}

async function createNamespace(name: string): Promise<void> {
  await core.createNamespace({ body: { metadata: { name } } });
}

const cm = (name: string, labels?: Record<string, string>): V1ConfigMap => ({
  metadata: { name, labels },
  data: { v: "1" },
});

describe("informer against a real API server", { timeout: 85_000 }, () => {
  before(async () => {
    cluster = await startTestCluster();
    core = cluster.kubeconfig.makeApiClient(CoreV1Api);
  });
  after(async () => {
    await cluster?.stop();
  });

  it("caches, indexes and filters by selector, resyncs, and delivers add/update/delete", async () => {
    await createNamespace("inf-basic");
    await core.createNamespacedConfigMap({
      namespace: "inf-basic",
      body: cm("pre", { team: "a" }),
    });
    await core.createNamespacedConfigMap({ namespace: "inf-basic", body: cm("skip") });
    const informer = new Informer<V1ConfigMap>({
      kubeconfig: cluster.kubeconfig,
      kind: ConfigMapKind,
      namespace: "inf-basic",
      labelSelector: "team",
      resyncPeriodMs: 300,
      logger: log,
    });
    informer.addIndex("team", (o) => (o.metadata?.labels?.team ? [o.metadata.labels.team] : []));
    const events = recorder(informer);
    informer.start();
    try {
      await informer.synced();
      assert.equal(informer.hasSynced(), true);
      assert.equal(informer.get("inf-basic/pre")?.data?.v, "1");
      assert.equal(informer.get("inf-basic/pre")?.kind, "ConfigMap", "list items get their kind");
      assert.equal(informer.get("inf-basic/skip"), undefined, "label selector applies");
      await core.createNamespacedConfigMap({
        namespace: "inf-basic",
        body: cm("b", { team: "b" }),
      });
      await until("add b", () => events.includes("add b"));
      assert.deepEqual(
        informer.byIndex("team", "b").map((o) => o.metadata?.name),
        ["b"],
      );
      await core.patchNamespacedConfigMap(
        { name: "b", namespace: "inf-basic", body: { metadata: { labels: { team: "a" } } } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
      await until("index follows update", () => informer.byIndex("team", "a").length === 2);
      assert.deepEqual(informer.byIndex("team", "b"), []);
      await core.deleteNamespacedConfigMap({ name: "pre", namespace: "inf-basic" });
      await until("delete pre", () => events.includes("delete pre"));
      const before = events.filter((e) => e === "update b").length;
      await until(
        "resync redelivers",
        () => events.filter((e) => e === "update b").length >= before + 2,
      );
    } finally {
      await informer.stop();
    }
  });

  it("keeps delivering events after the API server restarts", async (t) => {
    await createNamespace("inf-restart");
    const informer = new Informer<V1ConfigMap>({
      kubeconfig: cluster.kubeconfig,
      kind: ConfigMapKind,
      namespace: "inf-restart",
      backoff: { initialMs: 250, maxMs: 2000 },
      logger: log,
    });
    const events = recorder(informer);
    informer.start();
    try {
      await informer.synced();
      await core.createNamespacedConfigMap({ namespace: "inf-restart", body: cm("before") });
      await until("add before", () => events.includes("add before"));
      const t0 = Date.now();
      await restartApiServer(cluster.state);
      const restartMs = Date.now() - t0;
      await retry(() =>
        core.createNamespacedConfigMap({ namespace: "inf-restart", body: cm("after") }),
      );
      await until("add after", () => events.includes("add after"));
      await retry(() =>
        core.deleteNamespacedConfigMap({ name: "before", namespace: "inf-restart" }),
      );
      await until("delete before", () => events.includes("delete before"));
      assert.ok(informer.stats.watches >= 2, "the watch was re-established");
      t.diagnostic(
        `API server restart took ${restartMs} ms; informer stats ${JSON.stringify(informer.stats)}`,
      );
    } finally {
      await informer.stop();
    }
  });

  it("relists after etcd compaction makes its resourceVersion expire (410 Gone)", async (t) => {
    await createNamespace("inf-compact");
    const informer = new Informer<V1ConfigMap>({
      kubeconfig: cluster.kubeconfig,
      kind: ConfigMapKind,
      namespace: "inf-compact",
      // The selector keeps the informer's resourceVersion behind while others write.
      labelSelector: "app=watched",
      backoff: { initialMs: 250, maxMs: 2000 },
      logger: log,
    });
    const events = recorder(informer);
    informer.start();
    try {
      await informer.synced();
      await core.createNamespacedConfigMap({
        namespace: "inf-compact",
        body: cm("a", { app: "watched" }),
      });
      await until("add a", () => events.includes("add a"));
      const listsBefore = informer.stats.lists;
      for (let i = 0; i < 5; i++) {
        await core.createNamespacedConfigMap({ namespace: "inf-compact", body: cm(`noise-${i}`) });
      }
      const revision = await compactEtcd(cluster.state);
      // The open watch survives compaction; the reconnect after a restart asks for the
      // compacted revision and must be told 410 Gone.
      await restartApiServer(cluster.state);
      await until("a 410 and a relist", () => informer.stats.gone >= 1, 30_000);
      await until("relist", () => informer.stats.lists > listsBefore, 30_000);
      await retry(() =>
        core.createNamespacedConfigMap({
          namespace: "inf-compact",
          body: cm("b", { app: "watched" }),
        }),
      );
      await until("add b", () => events.includes("add b"));
      await retry(() => core.deleteNamespacedConfigMap({ name: "a", namespace: "inf-compact" }));
      await until("delete a", () => events.includes("delete a"));
      assert.equal(
        events.filter((e) => e === "add a").length,
        1,
        "relist does not re-add known objects",
      );
      t.diagnostic(
        `compacted etcd at revision ${revision}; informer stats ${JSON.stringify(informer.stats)}`,
      );
    } finally {
      await informer.stop();
    }
  });
});
