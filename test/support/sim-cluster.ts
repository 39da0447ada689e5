import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { pino } from "pino";
import { DEFAULT_LEASE_NAMESPACE } from "../../src/agent/lease.js";
import { AgentSimulator } from "../../src/agent/simulator.js";
import { installCRDs } from "../../src/kube/crds.js";
import { ensureNamespace } from "../../src/kube/namespace.js";
import { kubeRequest } from "../../src/kube/raw.js";
import { createOperator } from "../../src/reconcilers/operator.js";
import { startTestCluster, type TestCluster } from "./cluster.js";
import { eventually } from "./eventually.js";

export interface SimCluster {
  cluster: TestCluster;
  kc: KubeConfig;
  core: CoreV1Api;
  sim: AgentSimulator;
  stopOperator(): Promise<void>;
  startOperator(): Promise<void>;
  stop(): Promise<void>;
}

export const nodeName = (i: number) => `node-${String(i).padStart(3, "0")}`;

/** A Node object as a kubelet would register it (no kubelet runs here). */
export async function createNode(core: CoreV1Api, i: number): Promise<void> {
  const name = nodeName(i);
  await core.createNode({
    body: {
      metadata: { name, labels: { "kubernetes.io/hostname": name, zone: i % 2 ? "b" : "a" } },
      spec: { podCIDR: `10.244.${i}.0/24`, podCIDRs: [`10.244.${i}.0/24`] },
    },
  });
}

/** A scheduled pod with an IP, set through /status as the kubelet would. */
export async function createPod(
  kc: KubeConfig,
  core: CoreV1Api,
  namespace: string,
  name: string,
  node: number,
  ip: string,
  labels: Record<string, string>,
  annotations: Record<string, string> = {},
): Promise<void> {
  await core.createNamespacedPod({
    namespace,
    body: {
      metadata: { name, namespace, labels, annotations },
      spec: {
        nodeName: nodeName(node),
        containers: [{ name: "app", image: "registry.invalid/app:1" }],
      },
    },
  });
  const res = await kubeRequest(
    kc,
    "PATCH",
    `/api/v1/namespaces/${namespace}/pods/${name}/status`,
    {
      body: { status: { podIP: ip, podIPs: [{ ip }], phase: "Running" } },
      contentType: "application/merge-patch+json",
    },
  );
  if (res.status !== 200) throw new Error(`pod ${name} status: ${res.status} ${res.body}`);
}

/**
 * The operator and `nodes` simulated agents on a real API server: the reconcilers' integration
 * environment. Nodes are created through the API; pod IPs through /status.
 */
export async function startSimCluster(
  nodes: number,
  opts: {
    auditLog?: boolean;
    staleAfterMs?: number;
    heartbeatMs?: number;
    leaseRenewMs?: number;
    identityGcGraceMs?: number;
  } = {},
): Promise<SimCluster> {
  const cluster = await startTestCluster({ auditLog: opts.auditLog ?? false });
  try {
    return await startOnCluster(cluster, nodes, opts);
  } catch (err) {
    // The caller gets no handle to stop it with: do not leave etcd and the API server running.
    await cluster.stop();
    throw err;
  }
}

async function startOnCluster(
  cluster: TestCluster,
  nodes: number,
  opts: {
    staleAfterMs?: number;
    heartbeatMs?: number;
    leaseRenewMs?: number;
    identityGcGraceMs?: number;
  },
): Promise<SimCluster> {
  const kc = cluster.kubeconfig;
  await installCRDs(kc);
  await ensureNamespace(kc, DEFAULT_LEASE_NAMESPACE);
  const core = kc.makeApiClient(CoreV1Api);
  for (let i = 0; i < nodes; i++) await createNode(core, i);
  const log = pino({ level: process.env.NETLOOM_TEST_LOG ?? "silent" });
  const sim = new AgentSimulator({
    kubeconfig: kc,
    nodes: Array.from({ length: nodes }, (_, i) => nodeName(i)),
    heartbeatMs: opts.heartbeatMs ?? 5_000,
    ...(opts.leaseRenewMs ? { leaseRenewMs: opts.leaseRenewMs } : {}),
    log,
  });
  await sim.start();
  let operator: ReturnType<typeof createOperator> | undefined;
  const startOperator = async () => {
    operator = createOperator({
      kubeconfig: kc,
      logger: log,
      server: false,
      staleAfterMs: opts.staleAfterMs ?? 45_000,
      statusResyncMs: 2_000,
      cleanupTimeoutMs: 20_000,
      ...(opts.identityGcGraceMs !== undefined
        ? { identityGcGraceMs: opts.identityGcGraceMs }
        : {}),
    });
    await operator.manager.start();
  };
  const stopOperator = async () => {
    await operator?.manager.stop();
    operator = undefined;
  };
  await startOperator();
  return {
    cluster,
    kc,
    core,
    sim,
    startOperator,
    stopOperator,
    stop: async () => {
      sim.stop();
      await stopOperator().catch(() => {});
      await cluster.stop();
    },
  };
}

export { eventually };
