import { readFileSync } from "node:fs";
import { KubernetesObjectApi } from "@kubernetes/client-node";
import { parseDuration } from "../api/quantity.js";
import { applyObject } from "../controllers/apply.js";
import { kubeRequest } from "../kube/raw.js";
import { flags, loadKubeConfig } from "./args.js";

export const REMOTE_ROLE = "netloom-clustermesh-remote";
const MANAGER = "netloom-clustermesh";

/** Pure: a kubeconfig with one cluster and one token user, as YAML (JSON is YAML). */
export function tokenKubeconfig(opts: {
  clusterName: string;
  server: string;
  caData?: string;
  token: string;
}): string {
  const user = `${opts.clusterName}-clustermesh`;
  return `${JSON.stringify(
    {
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        {
          name: opts.clusterName,
          cluster: {
            server: opts.server,
            ...(opts.caData ? { "certificate-authority-data": opts.caData } : {}),
          },
        },
      ],
      users: [{ name: user, user: { token: opts.token } }],
      contexts: [{ name: user, context: { cluster: opts.clusterName, user } }],
      "current-context": user,
    },
    null,
    2,
  )}\n`;
}

/**
 * `netloom clustermesh kubeconfig`, run against the cluster to be peered with: a service account
 * bound to the read-only ClusterRole netloom-clustermesh-remote (NodePeers only), a token for
 * it, and the kubeconfig the other cluster keeps in its ClusterMeshPeer's Secret — on stdout
 * only (it holds a credential).
 */
export async function runClusterMesh(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== "kubeconfig")
    throw new Error(`unknown subcommand "${sub ?? ""}" (netloom clustermesh --help)`);
  const f = flags("netloom clustermesh kubeconfig", rest, {
    kubeconfig: { type: "string" },
    namespace: { type: "string", default: "netloom-system" },
    "service-account": { type: "string", default: "netloom-clustermesh" },
    duration: { type: "string", default: "8760h" },
    server: { type: "string" },
    "cluster-name": { type: "string", default: "remote" },
  });
  const kc = loadKubeConfig(f.kubeconfig);
  const ns = f.namespace ?? "netloom-system";
  const sa = f["service-account"] ?? "netloom-clustermesh";
  const seconds = Math.round(parseDuration(f.duration ?? "8760h") / 1000);
  if (!Number.isFinite(seconds) || seconds < 600)
    throw new Error(`--duration must be at least 10m, not "${f.duration}"`);
  const say = (l: string) => process.stderr.write(`[clustermesh] ${l}\n`);
  const objects = KubernetesObjectApi.makeApiClient(kc);
  const labels = {
    "app.kubernetes.io/part-of": "netloom",
    "app.kubernetes.io/component": "clustermesh",
  };
  await applyObject(
    objects,
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: sa, namespace: ns, labels } },
    MANAGER,
  );
  await applyObject(
    objects,
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: REMOTE_ROLE, labels },
      rules: [
        { apiGroups: ["netloom.io"], resources: ["nodepeers"], verbs: ["get", "list", "watch"] },
      ],
    },
    MANAGER,
  );
  const binding = `${REMOTE_ROLE}-${ns}-${sa}`.slice(0, 253);
  await applyObject(
    objects,
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: binding, labels },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: REMOTE_ROLE },
      subjects: [{ kind: "ServiceAccount", name: sa, namespace: ns }],
    },
    MANAGER,
  );
  say(`service account ${ns}/${sa} bound to ClusterRole ${REMOTE_ROLE} (read NodePeers only)`);
  const r = await kubeRequest(kc, "POST", `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, {
    body: {
      apiVersion: "authentication.k8s.io/v1",
      kind: "TokenRequest",
      spec: { expirationSeconds: seconds },
    },
  });
  if (r.status !== 201) throw new Error(`TokenRequest for ${ns}/${sa}: ${r.status} ${r.body}`);
  const { token, expirationTimestamp } = r.json<{
    status: { token: string; expirationTimestamp: string };
  }>().status;
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("the kubeconfig has no current cluster");
  const caData =
    cluster.caData ??
    (cluster.caFile ? readFileSync(cluster.caFile).toString("base64") : undefined);
  process.stdout.write(
    tokenKubeconfig({
      clusterName: f["cluster-name"] ?? "remote",
      server: f.server ?? cluster.server,
      ...(caData ? { caData } : {}),
      token,
    }),
  );
  say(`token valid until ${expirationTimestamp}; store it in the peering cluster's Secret, e.g.`);
  say(
    "  kubectl -n netloom-system create secret generic clustermesh-<name> --from-file=kubeconfig=<this output>",
  );
  return 0;
}
