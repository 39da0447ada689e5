import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { CoordinationV1Api, CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { pino } from "pino";
import { ConfigMapKind, Manager } from "../../src/controllers/index.js";
import { startTestCluster, type TestCluster } from "../support/cluster.js";

const NS = "leader-election";
const LEASE_DURATION_MS = 15_000;
const RETRY_PERIOD_MS = 2_000;
const log = pino({ level: process.env.NETLOOM_TEST_LOG ?? "silent" });

/** A manager whose controller records which replica reconciled what. */
function replica(
  kubeconfig: KubeConfig,
  identity: string,
  lease: string,
  reconciled: Array<{ identity: string; key: string }>,
  onStoppedLeading?: () => void,
): Manager {
  const mgr = new Manager({
    kubeconfig,
    logger: log,
    server: { port: 0, host: "127.0.0.1" },
    leaderElection: { namespace: NS, name: lease, identity },
    gracefulShutdownTimeoutMs: 10_000,
    onStoppedLeading,
  });
  mgr
    .controller("configmaps")
    .for(ConfigMapKind, { namespace: NS })
    .complete(async (key) => {
      reconciled.push({ identity, key });
    });
  return mgr;
}

async function until(what: string, cond: () => boolean, ms: number): Promise<number> {
  const start = performance.now();
  while (!cond()) {
    if (performance.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
  return performance.now() - start;
}

async function scrape(mgr: Manager): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${mgr.port}/metrics`);
  return res.text();
}

// Child mode: a replica in its own process, so the test can SIGKILL it like a crashed pod.
if (process.env.NETLOOM_LE_CHILD) {
  const kubeconfig = new KubeConfig();
  kubeconfig.loadFromFile(process.env.NETLOOM_LE_KUBECONFIG ?? "");
  const mgr = new Manager({
    kubeconfig,
    logger: log,
    server: false,
    leaderElection: { namespace: NS, name: process.env.NETLOOM_LE_CHILD, identity: "child" },
    onStartedLeading: () => process.stdout.write("LEADING\n"),
  });
  mgr.installSignalHandlers();
  await mgr.start();
  await mgr.wait();
  process.exit(0);
} else {
  let cluster: TestCluster;

  /** A replica in a child process; resolves once it leads. */
  const startChild = async (lease: string) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
      env: {
        ...process.env,
        NETLOOM_LE_CHILD: lease,
        NETLOOM_LE_KUBECONFIG: cluster.state.kubeconfigPath,
      },
      stdio: ["ignore", "pipe", "inherit"],
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    const leading = new Promise<void>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout });
      lines.on("line", (l) => l === "LEADING" && resolve());
      void exited.then((code) => reject(new Error(`child exited early (${code})`)));
    });
    return { child, exited, leading };
  };

  describe("leader election between managers", { timeout: 88_000 }, () => {
    before(async () => {
      cluster = await startTestCluster();
      const core = cluster.kubeconfig.makeApiClient(CoreV1Api);
      await core.createNamespace({ body: { metadata: { name: NS } } });
      await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: "work" } } });
    });
    after(async () => {
      await cluster?.stop();
    });

    it("two managers compete for one Lease, exactly one reconciles; a graceful stop hands over fast", async (t) => {
      const reconciled: Array<{ identity: string; key: string }> = [];
      const a = replica(cluster.kubeconfig, "replica-a", "compete", reconciled);
      const b = replica(cluster.kubeconfig, "replica-b", "compete", reconciled);
      try {
        await Promise.all([a.start(), b.start()]);
        await until("a leader", () => a.isLeader() || b.isLeader(), 20_000);
        // Give the other one several retry periods to (wrongly) take over as well.
        await sleep(2.5 * RETRY_PERIOD_MS);
        assert.equal(Number(a.isLeader()) + Number(b.isLeader()), 1, "exactly one leader");
        const [leader, follower] = a.isLeader() ? [a, b] : [b, a];
        const leaderId = leader === a ? "replica-a" : "replica-b";
        const followerId = leader === a ? "replica-b" : "replica-a";
        await until("the leader reconciles", () => reconciled.length > 0, 10_000);
        assert.deepEqual(new Set(reconciled.map((r) => r.identity)), new Set([leaderId]));
        assert.ok(reconciled.some((r) => r.key === `${NS}/work`));
        assert.match(await scrape(leader), /leader_election_master_status\{name="compete"\} 1/);
        assert.match(await scrape(follower), /leader_election_master_status\{name="compete"\} 0/);

        // Graceful stop: the leader releases the lease, the follower takes over at its next retry.
        reconciled.length = 0;
        const t0 = performance.now();
        await leader.stop();
        const releasedMs = performance.now() - t0;
        const handoverMs = await until(
          "follower leads",
          () => follower.isLeader(),
          LEASE_DURATION_MS,
        );
        const totalMs = releasedMs + handoverMs;
        t.diagnostic(
          `graceful handover: ${Math.round(totalMs)} ms from stop() (stop took ${Math.round(releasedMs)} ms; lease duration ${LEASE_DURATION_MS} ms)`,
        );
        assert.ok(totalMs < LEASE_DURATION_MS / 2, `handover ${totalMs} ms well within the lease`);
        await until("the new leader reconciles", () => reconciled.length > 0, 10_000);
        assert.deepEqual(new Set(reconciled.map((r) => r.identity)), new Set([followerId]));
        const lease = await cluster.kubeconfig
          .makeApiClient(CoordinationV1Api)
          .readNamespacedLease({ name: "compete", namespace: NS });
        assert.equal(lease.spec?.holderIdentity, followerId);
        assert.equal(lease.spec?.leaseTransitions, 1);
      } finally {
        await Promise.all([a.stop(), b.stop()]);
      }
    });

    it("a leader that sees another holder stops its controllers at once", async (t) => {
      const lease = "usurped";
      const reconciled: Array<{ identity: string; key: string }> = [];
      let stoppedLeading = 0;
      const mgr = replica(cluster.kubeconfig, "victim", lease, reconciled, () => stoppedLeading++);
      try {
        await mgr.start();
        await until("leads", () => mgr.isLeader(), 10_000);
        await until("reconciles", () => reconciled.length > 0, 10_000);
        // Someone else writes the lease (as a replica that believed it expired would).
        const coordination = cluster.kubeconfig.makeApiClient(CoordinationV1Api);
        const current = await coordination.readNamespacedLease({ name: lease, namespace: NS });
        await coordination.replaceNamespacedLease({
          name: lease,
          namespace: NS,
          body: {
            ...current,
            spec: { ...current.spec, holderIdentity: "usurper", leaseDurationSeconds: 15 },
          },
        });
        const t0 = performance.now();
        await until("steps down", () => !mgr.isLeader(), 10_000);
        t.diagnostic(
          `stepped down ${Math.round(performance.now() - t0)} ms after the lease changed hands`,
        );
        assert.equal(stoppedLeading, 1);
        reconciled.length = 0;
        const core = cluster.kubeconfig.makeApiClient(CoreV1Api);
        await core.createNamespacedConfigMap({
          namespace: NS,
          body: { metadata: { name: "after-usurp" } },
        });
        await sleep(1000);
        assert.deepEqual(reconciled, [], "no reconciles without the lease");
        assert.match(await scrape(mgr), /leader_election_master_status\{name="usurped"\} 0/);
      } finally {
        await mgr.stop();
      }
    });

    it("a leader that crashes (SIGKILL) is replaced only after the lease expires", async (t) => {
      const lease = "crash";
      const { child, exited, leading } = await startChild(lease);
      const reconciled: Array<{ identity: string; key: string }> = [];
      const survivor = replica(cluster.kubeconfig, "survivor", lease, reconciled);
      try {
        await leading;
        await survivor.start();
        await sleep(2 * RETRY_PERIOD_MS);
        assert.equal(survivor.isLeader(), false, "the child holds and renews the lease");

        child.kill("SIGKILL");
        const t0 = performance.now();
        await exited;
        await until("survivor leads", () => survivor.isLeader(), 3 * LEASE_DURATION_MS);
        const handoverMs = performance.now() - t0;
        t.diagnostic(
          `hard-kill handover: ${Math.round(handoverMs)} ms after SIGKILL (lease duration ${LEASE_DURATION_MS} ms, retry period ${RETRY_PERIOD_MS} ms)`,
        );
        // The last renewal was at most ~one retry period before the kill; nobody may take
        // over before leaseDuration has passed since then.
        assert.ok(
          handoverMs >= LEASE_DURATION_MS - 1.2 * RETRY_PERIOD_MS - 500,
          `took over after ${handoverMs} ms, before the lease expired`,
        );
        assert.ok(
          handoverMs <= LEASE_DURATION_MS + 3 * RETRY_PERIOD_MS,
          `handover ${handoverMs} ms`,
        );
        await until("the survivor reconciles", () => reconciled.length > 0, 10_000);
      } finally {
        if (child.exitCode === null) child.kill("SIGKILL");
        await survivor.stop();
      }
    });

    it("SIGTERM makes a leader process drain, release the lease and exit", async (t) => {
      const lease = "sigterm";
      const { child, exited, leading } = await startChild(lease);
      const reconciled: Array<{ identity: string; key: string }> = [];
      const survivor = replica(cluster.kubeconfig, "survivor", lease, reconciled);
      try {
        await leading;
        await survivor.start();
        await sleep(RETRY_PERIOD_MS);
        assert.equal(survivor.isLeader(), false);
        child.kill("SIGTERM");
        const t0 = performance.now();
        assert.equal(await exited, 0, "clean exit");
        await until("survivor leads", () => survivor.isLeader(), LEASE_DURATION_MS);
        const handoverMs = performance.now() - t0;
        t.diagnostic(`SIGTERM handover: ${Math.round(handoverMs)} ms after the signal`);
        assert.ok(handoverMs < LEASE_DURATION_MS / 2, `handover ${handoverMs} ms`);
      } finally {
        if (child.exitCode === null) child.kill("SIGKILL");
        await survivor.stop();
      }
    });
  });
}
