import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { readManifests } from "../api/fixtures.js";
import {
  isAlive,
  readControlPlaneState,
  startControlPlane,
  stopControlPlane,
} from "../cluster/control-plane.js";
import { applyManifests } from "../kube/apply.js";
import { installCRDs } from "../kube/crds.js";

export interface DemoPaths {
  clusterDir: string;
  kubeconfigPath: string;
}

/**
 * The cluster-in-a-box demo. Today: a real control plane, the CRDs and the samples, shown
 * with kubectl. The operator, simulated nodes and the datapath join as they land.
 */
export async function demoUp(paths: DemoPaths, say: (line: string) => void): Promise<number> {
  const running = readControlPlaneState(paths.clusterDir);
  if (running && isAlive(running.apiServerPid)) {
    say(
      `a demo is already running (kube-apiserver pid ${running.apiServerPid}, ${running.apiServerURL});`,
    );
    say(
      "  use it with: kubectl --kubeconfig .netloom/kubeconfig get netloom -A   or stop it: make demo-down",
    );
    return 1;
  }
  const t0 = Date.now();
  const step = (what: string) => say(`[demo +${((Date.now() - t0) / 1000).toFixed(1)}s] ${what}`);
  step("starting etcd and kube-apiserver");
  const state = await startControlPlane({
    dir: paths.clusterDir,
    kubeconfigPath: paths.kubeconfigPath,
    progress: (l) => step(`  ${l}`),
  });
  const kc = new KubeConfig();
  kc.loadFromFile(state.kubeconfigPath);
  step("installing the Netloom CRDs");
  await installCRDs(kc);
  const samples = readManifests("config/samples");
  step(`applying ${samples.length} samples from config/samples`);
  await applyManifests(kc, samples, "netloom-demo");
  step("done");
  if (state.kubectl) {
    const out = execFileSync(
      state.kubectl,
      ["--kubeconfig", state.kubeconfigPath, "get", "netloom", "-A"],
      {
        encoding: "utf8",
      },
    );
    process.stdout.write(`\n$ kubectl get netloom -A\n${out}\n`);
  }
  const kubectl = state.kubectl ?? "kubectl";
  process.stdout.write(`Try next:
  export KUBECONFIG=${resolve(state.kubeconfigPath)}
  ${kubectl} get networkconfigs,encryptionprofiles,bandwidthpolicies,clustermeshpeers
  ${kubectl} apply -f test/fixtures/invalid/bandwidthpolicy-rate-fast.yaml    # refused, naming the field
  make demo-down                                                      # stop and remove everything

Not yet in this demo: the operator, simulated nodes and the eBPF/WireGuard datapath
(status columns stay empty until the operator lands).
`);
  return 0;
}

export async function demoDown(paths: DemoPaths, say: (line: string) => void): Promise<number> {
  const stopped = await stopControlPlane(paths.clusterDir);
  say(
    stopped
      ? "[demo down] control plane stopped; .netloom data removed"
      : "[demo down] no demo running",
  );
  return 0;
}
