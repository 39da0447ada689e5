import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { KubeConfig } from "@kubernetes/client-node";
import {
  type ControlPlaneState,
  startControlPlane,
  stopControlPlane,
} from "../../src/cluster/control-plane.js";
import { newKubeConfig } from "../../src/kube/kubeconfig.js";

export interface TestCluster {
  state: ControlPlaneState;
  kubeconfig: KubeConfig;
  stop(): Promise<void>;
}

/**
 * A real etcd + kube-apiserver for one test file (envtest's model: one per suite).
 * Call stop() in an after() hook; it removes every process and file it started.
 */
export async function startTestCluster(opts: { auditLog?: boolean } = {}): Promise<TestCluster> {
  const dir = mkdtempSync(join(tmpdir(), "netloom-test-"));
  const state = await startControlPlane({
    dir,
    auditLog: opts.auditLog ?? false,
    progress: (line) => process.stderr.write(`${line}\n`),
  });
  const kubeconfig = newKubeConfig();
  kubeconfig.loadFromFile(state.kubeconfigPath);
  return { state, kubeconfig, stop: async () => void (await stopControlPlane(dir)) };
}
