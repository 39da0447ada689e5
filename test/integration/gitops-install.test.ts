// The kustomize install (kustomization.yaml + config/) against a real kube-apiserver: it renders
// with the kubectl built for the tests, every object passes a server-side dry-run apply, the
// operator's pods meet the restricted Pod Security Standard, and the RBAC is least privilege:
// the agent writes only its own node's NodeNetworkState status (RBAC + a
// ValidatingAdmissionPolicy on the node-name extra of its token), the operator only the spec.
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import { agentLease, DEFAULT_LEASE_NAMESPACE } from "../../src/agent/lease.js";
import { WIREGUARD_GO_MODULE_VERSION } from "../../src/datapath-driver/wireguard/backend.js";
import { newKubeConfig } from "../../src/kube/kubeconfig.js";
import { kubeRequest, type RawResponse } from "../../src/kube/raw.js";
import { startTestCluster, type TestCluster } from "../support/cluster.js";

const execFileP = promisify(execFile);

interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    uid?: string;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
}

interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports?: { name?: string; containerPort: number }[];
  livenessProbe?: { httpGet?: { path: string; port: number | string } };
  readinessProbe?: { httpGet?: { path: string; port: number | string } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    runAsNonRoot?: boolean;
    runAsUser?: number;
    privileged?: boolean;
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { add?: string[]; drop?: string[] };
  };
  volumeMounts?: { name: string; mountPath: string }[];
}

interface PodSpec {
  serviceAccountName?: string;
  hostNetwork?: boolean;
  securityContext?: {
    runAsNonRoot?: boolean;
    runAsUser?: number;
    seccompProfile?: { type: string };
  };
  tolerations?: { key?: string; operator?: string; effect?: string }[];
  containers: Container[];
  volumes?: { name: string; hostPath?: { path: string; type?: string } }[];
}

interface Workload extends KubeObject {
  spec: {
    replicas?: number;
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
  };
}

const REPO = repoRoot();
const AGENT_USER = "system:serviceaccount:netloom-system:netloom-agent";
const OPERATOR_USER = "system:serviceaccount:netloom-system:netloom-operator";
const SA_GROUPS = [
  "system:serviceaccounts",
  "system:serviceaccounts:netloom-system",
  "system:authenticated",
];
const NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name";
const NNS = "/apis/netloom.io/v1alpha1/nodenetworkstates";
const PEERS = "/apis/netloom.io/v1alpha1/nodepeers";

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error("no package.json above this test");
    dir = parent;
  }
  return dir;
}

/** `kubectl kustomize DIR` with the test cluster's kubectl (kustomize is built in). */
async function kustomize(kubectl: string, dir: string): Promise<KubeObject[]> {
  const { stdout } = await execFileP(kubectl, ["kustomize", dir], { maxBuffer: 64 << 20 });
  return parseAllDocuments(stdout)
    .map((d) => d.toJS() as KubeObject | null)
    .filter((o): o is KubeObject => o !== null);
}

function find<T extends KubeObject = KubeObject>(
  objs: KubeObject[],
  kind: string,
  name: string,
): T {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `rendered output has no ${kind} ${name}`);
  return o as T;
}

interface ApiResource {
  name: string;
  namespaced: boolean;
  kind: string;
}

/** REST paths from discovery, so every kind the kustomization renders maps to its resource. */
class Discovery {
  /** Served group versions only: a 404 is asked again (a CRD may have been added since). */
  private readonly cache = new Map<string, ApiResource[]>();
  constructor(private readonly kc: KubeConfig) {}

  async resource(apiVersion: string, kind: string): Promise<ApiResource | undefined> {
    let resources = this.cache.get(apiVersion);
    if (!resources) {
      const path = apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
      const res = await kubeRequest(this.kc, "GET", path);
      if (res.status !== 200) return undefined;
      resources = res.json<{ resources: ApiResource[] }>().resources;
      this.cache.set(apiVersion, resources);
    }
    return resources.find((r) => r.kind === kind && !r.name.includes("/"));
  }

  async path(obj: KubeObject, withName = true): Promise<string | undefined> {
    const r = await this.resource(obj.apiVersion, obj.kind);
    if (!r) return undefined;
    const base = obj.apiVersion.includes("/")
      ? `/apis/${obj.apiVersion}`
      : `/api/${obj.apiVersion}`;
    const ns = r.namespaced ? `/namespaces/${obj.metadata.namespace ?? "default"}` : "";
    return `${base}${ns}/${r.name}${withName ? `/${obj.metadata.name}` : ""}`;
  }
}

/** Server-side apply; dry-run unless told otherwise. */
async function apply(
  kc: KubeConfig,
  disc: Discovery,
  obj: KubeObject,
  opts: { dryRun: boolean },
): Promise<RawResponse | undefined> {
  const path = await disc.path(obj);
  if (!path) return undefined;
  const q = `fieldManager=netloom-gitops-test&fieldValidation=Strict${opts.dryRun ? "&dryRun=All" : ""}`;
  return kubeRequest(kc, "PATCH", `${path}?${q}`, {
    body: JSON.stringify(obj),
    contentType: "application/apply-patch+yaml",
  });
}

/** Kinds a GitOps user installs only with the Prometheus Operator (not here). */
const OPTIONAL_GROUPS = ["monitoring.coreos.com"];

/** Dry-runs every object; kinds of OPTIONAL_GROUPS without CRDs are reported and skipped. */
async function dryRunAll(
  kc: KubeConfig,
  disc: Discovery,
  objs: KubeObject[],
  diagnostic: (msg: string) => void,
): Promise<number> {
  let accepted = 0;
  for (const o of objs) {
    const res = await apply(kc, disc, o, { dryRun: true });
    const what = `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ""}${o.metadata.name}`;
    if (!res) {
      const group = o.apiVersion.split("/")[0] ?? "";
      assert.ok(
        OPTIONAL_GROUPS.includes(group),
        `${what}: the API server does not serve ${o.apiVersion} ${o.kind}`,
      );
      diagnostic(`skipped ${what}: ${o.apiVersion} is not served (its CRD is not installed here)`);
      continue;
    }
    assert.ok(res.status === 200 || res.status === 201, `${what}: ${res.status} ${res.body}`);
    accepted++;
  }
  return accepted;
}

/** One request as another user (impersonation) or with a bearer token. */
function as(
  kc: KubeConfig,
  who: { user: string; groups?: string[]; extra?: Record<string, string[]> },
  method: string,
  path: string,
  body?: unknown,
  contentType = "application/merge-patch+json",
): Promise<RawResponse> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("kubeconfig has no current cluster");
  const headers: Record<string, string | string[]> = {
    accept: "application/json",
    "Impersonate-User": who.user,
  };
  if (who.groups?.length) headers["Impersonate-Group"] = who.groups;
  for (const [k, v] of Object.entries(who.extra ?? {})) {
    headers[`Impersonate-Extra-${encodeURIComponent(k)}`] = v;
  }
  if (body !== undefined) headers["content-type"] = contentType;
  const options: Parameters<typeof request>[1] = { method, headers };
  return kc.applyToHTTPSOptions(options).then(
    () =>
      new Promise<RawResponse>((resolve, reject) => {
        const req = request(new URL(path, cluster.server), options, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            resolve({
              status: res.statusCode ?? 0,
              body: text,
              json: <T>() => JSON.parse(text) as T,
            });
          });
          res.on("error", reject);
        });
        req.on("error", reject);
        if (body !== undefined) req.write(typeof body === "string" ? body : JSON.stringify(body));
        req.end();
      }),
  );
}

function tokenKubeConfig(kc: KubeConfig, token: string): KubeConfig {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("kubeconfig has no current cluster");
  const out = new KubeConfig();
  out.loadFromOptions({
    clusters: [cluster],
    users: [{ name: "token", token }],
    contexts: [{ name: "token", cluster: cluster.name, user: "token" }],
    currentContext: "token",
  });
  return out;
}

/** The message of a Status answer (the body is JSON; match on the text, not its escaping). */
function message(res: RawResponse): string {
  return res.json<{ message?: string }>().message ?? res.body;
}

const heartbeat = (node: string) => ({
  status: {
    heartbeatTime: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    nodeIP: `10.1.0.${node === "node-a" ? 1 : 2}`,
  },
});

describe("the kustomize install on a real kube-apiserver", () => {
  let cluster: TestCluster;
  let kc: KubeConfig;
  let kubectl: string;
  let disc: Discovery;
  let rendered: KubeObject[];

  before(async () => {
    cluster = await startTestCluster();
    kc = cluster.kubeconfig;
    disc = new Discovery(kc);
    if (!cluster.state.kubectl) {
      throw new Error(
        "no kubectl next to kube-apiserver: build it with `make control-plane` (hack/build-control-plane.sh) or put kubectl in $KUBEBUILDER_ASSETS",
      );
    }
    kubectl = cluster.state.kubectl;
    rendered = await kustomize(kubectl, REPO);
    // The CRDs and the namespace for real (what dry-runs of the rest and the RBAC tests need).
    for (const o of rendered.filter(
      (x) => x.kind === "CustomResourceDefinition" || x.kind === "Namespace",
    )) {
      const res = await apply(kc, disc, o, { dryRun: false });
      assert.ok(
        res && res.status < 300,
        `${o.kind} ${o.metadata.name}: ${res?.status} ${res?.body}`,
      );
    }
    const deadline = Date.now() + 30_000;
    for (const crd of rendered.filter((x) => x.kind === "CustomResourceDefinition")) {
      for (;;) {
        const res = await kubeRequest(
          kc,
          "GET",
          `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`,
        );
        const conds =
          res.json<{ status?: { conditions?: { type: string; status: string }[] } }>().status
            ?.conditions ?? [];
        if (conds.some((c) => c.type === "Established" && c.status === "True")) break;
        assert.ok(Date.now() < deadline, `CRD ${crd.metadata.name} not Established`);
        await sleep(100);
      }
    }
  });
  after(async () => cluster?.stop());

  describe("rendering (kubectl kustomize .)", () => {
    it("has the CRDs, the namespace, RBAC, the operator, the agent and their Services", () => {
      const kinds = rendered.map((o) => `${o.kind}/${o.metadata.name}`).sort();
      for (const want of [
        "CustomResourceDefinition/networkconfigs.netloom.io",
        "CustomResourceDefinition/encryptionprofiles.netloom.io",
        "CustomResourceDefinition/bandwidthpolicies.netloom.io",
        "CustomResourceDefinition/clustermeshpeers.netloom.io",
        "CustomResourceDefinition/nodenetworkstates.netloom.io",
        "CustomResourceDefinition/nodepeers.netloom.io",
        "Namespace/netloom-system",
        "Namespace/netloom-node-leases",
        "ServiceAccount/netloom-operator",
        "ServiceAccount/netloom-agent",
        "ClusterRole/netloom-operator",
        "ClusterRole/netloom-agent",
        "ClusterRoleBinding/netloom-operator",
        "ClusterRoleBinding/netloom-agent",
        "Role/netloom-operator-leader-election",
        "Role/netloom-operator-clustermesh-secrets",
        "Role/netloom-operator-agent-leases",
        "ClusterRole/netloom-clustermesh-remote",
        "ClusterRole/netloom-flows-reader",
        "ValidatingAdmissionPolicy/netloom-agent-own-node",
        "ValidatingAdmissionPolicy/netloom-node-status-by-its-node",
        "ValidatingAdmissionPolicy/netloom-agent-own-lease",
        "ValidatingAdmissionPolicyBinding/netloom-agent-own-node",
        "Deployment/netloom-operator",
        "DaemonSet/netloom-agent",
        "Service/netloom-operator-metrics",
        "Service/netloom-agent-metrics",
      ]) {
        assert.ok(kinds.includes(want), `missing ${want}; rendered: ${kinds.join(", ")}`);
      }
      for (const o of rendered) {
        const clusterScoped = [
          "CustomResourceDefinition",
          "Namespace",
          "ClusterRole",
          "ClusterRoleBinding",
          "ValidatingAdmissionPolicy",
          "ValidatingAdmissionPolicyBinding",
        ].includes(o.kind);
        // The agents' Leases and the roles for them live in a namespace of their own.
        const leaseRoles = ["netloom-agent-lease", "netloom-operator-agent-leases"];
        assert.equal(
          o.metadata.namespace,
          clusterScoped
            ? undefined
            : leaseRoles.includes(o.metadata.name)
              ? DEFAULT_LEASE_NAMESPACE
              : "netloom-system",
          `${o.kind} ${o.metadata.name}`,
        );
      }
    });

    it("the operator: 2 replicas, leader election, probes, requests, non-root, read-only root, RuntimeDefault", () => {
      const d = find<Workload>(rendered, "Deployment", "netloom-operator");
      assert.equal(d.spec.replicas, 2);
      const pod = d.spec.template.spec;
      const c = pod.containers[0]!;
      assert.equal(pod.containers.length, 1);
      assert.equal(
        [...(c.command ?? []), ...(c.args ?? [])].join(" "),
        "netloom operator --leader-elect --lease-namespace netloom-system --lease-name netloom-operator --metrics-port 8080",
      );
      assert.equal(pod.serviceAccountName, "netloom-operator");
      assert.deepEqual(c.livenessProbe?.httpGet, { path: "/healthz", port: "metrics" });
      assert.deepEqual(c.readinessProbe?.httpGet, { path: "/readyz", port: "metrics" });
      assert.deepEqual(c.ports?.[0], { name: "metrics", containerPort: 8080, protocol: "TCP" });
      assert.ok(c.resources?.requests?.cpu && c.resources.requests.memory, "resource requests");
      assert.ok(c.resources?.limits?.memory, "memory limit");
      assert.equal(pod.securityContext?.runAsNonRoot, true);
      assert.equal(pod.securityContext?.runAsUser, 65532);
      assert.equal(pod.securityContext?.seccompProfile?.type, "RuntimeDefault");
      assert.equal(c.securityContext?.readOnlyRootFilesystem, true);
      assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
      assert.deepEqual(c.securityContext?.capabilities, { drop: ["ALL"] });
      assert.equal(pod.hostNetwork, undefined);
      const svc = find<KubeObject & { spec: { selector: Record<string, string> } }>(
        rendered,
        "Service",
        "netloom-operator-metrics",
      );
      for (const [k, v] of Object.entries(svc.spec.selector)) {
        assert.equal(d.spec.template.metadata.labels[k], v, `Service selector ${k}`);
      }
    });

    it("the agent: every node, host network, only BPF/NET_ADMIN, bpffs and state hostPaths", () => {
      const ds = find<Workload>(rendered, "DaemonSet", "netloom-agent");
      const pod = ds.spec.template.spec;
      const c = pod.containers[0]!;
      assert.equal(
        [...(c.command ?? []), ...(c.args ?? [])].join(" "),
        "netloom agent --node $(NODE_NAME) --state-dir /var/lib/netloom --bpffs /sys/fs/bpf --metrics-port 9962",
      );
      assert.deepEqual(
        c.env?.find((e) => e.name === "NODE_NAME")?.valueFrom?.fieldRef?.fieldPath,
        "spec.nodeName",
      );
      assert.equal(pod.hostNetwork, true);
      assert.equal(pod.serviceAccountName, "netloom-agent");
      assert.deepEqual(pod.tolerations, [{ operator: "Exists" }], "tolerates every taint");
      assert.deepEqual(c.securityContext?.capabilities, {
        drop: ["ALL"],
        add: ["BPF", "NET_ADMIN"],
      });
      assert.equal(c.securityContext?.privileged, false);
      assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
      assert.equal(c.securityContext?.readOnlyRootFilesystem, true);
      const hostPaths = Object.fromEntries(
        (pod.volumes ?? []).filter((v) => v.hostPath).map((v) => [v.hostPath!.path, v.name]),
      );
      for (const p of ["/sys/fs/bpf", "/var/lib/netloom", "/var/run/wireguard"]) {
        const vol = hostPaths[p];
        assert.ok(vol, `hostPath ${p}`);
        assert.ok(
          c.volumeMounts?.some((m) => m.name === vol && m.mountPath === p),
          `${p} mounted at the same path`,
        );
      }
      assert.ok(
        c.livenessProbe?.httpGet?.path === "/healthz" && c.livenessProbe.httpGet.port === 9962,
      );
    });

    it("RBAC has no wildcards and no rule on secrets cluster-wide", () => {
      for (const o of rendered.filter((x) => x.kind === "ClusterRole" || x.kind === "Role")) {
        const rules = (o as KubeObject & { rules: PolicyRule[] }).rules;
        for (const r of rules) {
          for (const field of [r.apiGroups, r.resources, r.verbs]) {
            assert.ok(
              !field?.includes("*"),
              `${o.kind} ${o.metadata.name}: wildcard in ${JSON.stringify(r)}`,
            );
          }
          if (o.kind === "ClusterRole") {
            assert.ok(
              !r.resources?.includes("secrets"),
              `${o.metadata.name} reads secrets cluster-wide`,
            );
          }
        }
      }
    });
  });

  describe("server-side dry-run", () => {
    it("accepts every object of the top-level kustomization", async (t) => {
      const n = await dryRunAll(kc, disc, rendered, (m) => t.diagnostic(m));
      assert.equal(n, rendered.length, "every object is served and accepted");
    });

    for (const overlay of [
      "config/default",
      "config/rbac",
      "config/manager",
      "config/agent",
      "config/samples",
    ]) {
      it(`accepts every object of ${overlay}`, async (t) => {
        const objs = await kustomize(kubectl, join(REPO, overlay));
        assert.ok(objs.length > 0);
        assert.equal(await dryRunAll(kc, disc, objs, (m) => t.diagnostic(m)), objs.length);
      });
    }

    it("config/prometheus renders; its kinds are skipped here (no Prometheus Operator CRDs)", async (t) => {
      const objs = await kustomize(kubectl, join(REPO, "config/prometheus"));
      assert.deepEqual(objs.map((o) => o.kind).sort(), [
        "PodMonitor",
        "PrometheusRule",
        "ServiceMonitor",
      ]);
      const accepted = await dryRunAll(kc, disc, objs, (m) => t.diagnostic(m));
      assert.equal(accepted, 0);
    });

    it("config/argocd merges into an existing argocd-cm, which the API server accepts", async () => {
      const dir = mkdtempSync(join(tmpdir(), "netloom-argocd-"));
      try {
        writeFileSync(
          join(dir, "kustomization.yaml"),
          `resources: [argocd-cm.yaml]\ncomponents: [${relative(dir, join(REPO, "config/argocd"))}]\n`,
        );
        writeFileSync(
          join(dir, "argocd-cm.yaml"),
          "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: argocd-cm, namespace: argocd}\ndata:\n  url: https://argocd.example.com\n",
        );
        const [cm, ...rest] = await kustomize(kubectl, dir);
        assert.equal(rest.length, 0);
        assert.ok(cm);
        const data = (cm as KubeObject & { data: Record<string, string> }).data;
        assert.equal(data.url, "https://argocd.example.com", "existing settings stay");
        assert.deepEqual(
          Object.keys(data)
            .filter((k) => k.startsWith("resource.customizations.health."))
            .sort(),
          [
            ...[
              "BandwidthPolicy",
              "ClusterMeshPeer",
              "EncryptionProfile",
              "NetworkConfig",
              "NetworkEndpointSlice",
              "NetworkIdentity",
              "NodeNetworkState",
              "NodePeer",
              "PolicyRealization",
              "RemoteNodePeer",
            ].map((k) => `netloom.io_${k}`),
            // Kubernetes' own kind, judged by the operator's netloom.io/realization annotation.
            "networking.k8s.io_NetworkPolicy",
          ].map((k) => `resource.customizations.health.${k}`),
        );
        const ns = await kubeRequest(kc, "POST", "/api/v1/namespaces", {
          body: { apiVersion: "v1", kind: "Namespace", metadata: { name: "argocd" } },
        });
        assert.equal(ns.status, 201, ns.body);
        const res = await apply(kc, disc, cm, { dryRun: true });
        assert.equal(res?.status, 201, res?.body);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it("the operator's pod meets the restricted Pod Security Standard; the agent's is refused there", async () => {
      const ns = await kubeRequest(kc, "POST", "/api/v1/namespaces", {
        body: {
          apiVersion: "v1",
          kind: "Namespace",
          metadata: {
            name: "pss-restricted",
            labels: { "pod-security.kubernetes.io/enforce": "restricted" },
          },
        },
      });
      assert.equal(ns.status, 201, ns.body);
      const podOf = (w: Workload, namespace: string) => ({
        apiVersion: "v1",
        kind: "Pod",
        metadata: {
          name: `${w.metadata.name}-dry-run`,
          namespace,
          labels: w.spec.template.metadata.labels,
        },
        spec: { ...w.spec.template.spec, nodeName: "node-a" },
      });
      const operator = find<Workload>(rendered, "Deployment", "netloom-operator");
      const agent = find<Workload>(rendered, "DaemonSet", "netloom-agent");
      const create = (pod: object, namespace: string) =>
        kubeRequest(
          kc,
          "POST",
          `/api/v1/namespaces/${namespace}/pods?dryRun=All&fieldValidation=Strict`,
          {
            body: pod,
          },
        );
      const op = await create(podOf(operator, "pss-restricted"), "pss-restricted");
      assert.equal(op.status, 201, op.body);
      const refused = await create(podOf(agent, "pss-restricted"), "pss-restricted");
      assert.equal(refused.status, 403, refused.body);
      for (const why of ["hostNetwork", "hostPath", "capabilities", "runAsNonRoot"]) {
        assert.match(refused.body, new RegExp(why), `restricted refuses the agent for ${why}`);
      }
      // netloom-system is labelled privileged: the agent's pod is admitted there.
      const ag = await create(podOf(agent, "netloom-system"), "netloom-system");
      assert.equal(ag.status, 201, ag.body);
    });
  });

  describe("RBAC and the agent's own-node admission policy", () => {
    const agentOn = (node?: string) => ({
      user: AGENT_USER,
      groups: SA_GROUPS,
      ...(node ? { extra: { [NODE_NAME_EXTRA]: [node] } } : {}),
    });
    const operator = { user: OPERATOR_USER, groups: SA_GROUPS };
    const nodeUID = new Map<string, string>();

    before(async () => {
      // RBAC and the policy for real; Nodes and their NodeNetworkStates as the operator would
      // create them.
      for (const o of rendered.filter((x) =>
        [
          "ServiceAccount",
          "ClusterRole",
          "ClusterRoleBinding",
          "Role",
          "RoleBinding",
          "ValidatingAdmissionPolicy",
          "ValidatingAdmissionPolicyBinding",
        ].includes(x.kind),
      )) {
        const res = await apply(kc, disc, o, { dryRun: false });
        assert.ok(
          res && res.status < 300,
          `${o.kind} ${o.metadata.name}: ${res?.status} ${res?.body}`,
        );
      }
      for (const node of ["node-a", "node-b"]) {
        const n = await kubeRequest(kc, "POST", "/api/v1/nodes", {
          body: { apiVersion: "v1", kind: "Node", metadata: { name: node } },
        });
        assert.equal(n.status, 201, n.body);
        const uid = n.json<KubeObject>().metadata.uid ?? "";
        nodeUID.set(node, uid);
        const s = await kubeRequest(kc, "POST", `${NNS}?fieldValidation=Strict`, {
          body: {
            apiVersion: "netloom.io/v1alpha1",
            kind: "NodeNetworkState",
            metadata: {
              name: node,
              ownerReferences: [
                { apiVersion: "v1", kind: "Node", name: node, uid, blockOwnerDeletion: false },
              ],
            },
            spec: { nodeName: node },
          },
        });
        assert.equal(s.status, 201, s.body);
        const p = await kubeRequest(kc, "POST", `${PEERS}?fieldValidation=Strict`, {
          body: {
            apiVersion: "netloom.io/v1alpha1",
            kind: "NodePeer",
            metadata: { name: node },
            spec: { nodeName: node, podCIDRs: [`10.244.${node === "node-a" ? 1 : 2}.0/24`] },
          },
        });
        assert.equal(p.status, 201, p.body);
      }
      // The policy is enforced once the API server has loaded it: wait for the first denial.
      const deadline = Date.now() + 20_000;
      for (;;) {
        const res = await as(
          kc,
          agentOn("node-a"),
          "PATCH",
          `${NNS}/node-b/status`,
          heartbeat("node-b"),
        );
        if (res.status === 403) break;
        assert.ok(
          Date.now() < deadline,
          `the admission policy never took effect: ${res.status} ${res.body}`,
        );
        await sleep(200);
      }
    });

    it("the agent renews its own node's Lease only; the operator may read the Leases", async () => {
      const leasePath = (node: string) =>
        `/apis/coordination.k8s.io/v1/namespaces/${DEFAULT_LEASE_NAMESPACE}/leases/${node}?fieldManager=netloom-agent&force=true`;
      const renew = (as_: string, node: string) =>
        as(
          kc,
          agentOn(as_),
          "PATCH",
          leasePath(node),
          agentLease(node, DEFAULT_LEASE_NAMESPACE, new Date()),
          "application/apply-patch+yaml",
        );
      const own = await renew("node-a", "node-a");
      assert.equal(own.status, 201, own.body);
      assert.equal((await renew("node-a", "node-a")).status, 200, "renewed");
      const other = await renew("node-a", "node-b");
      assert.equal(other.status, 403, other.body);
      assert.match(message(other), /ValidatingAdmissionPolicy 'netloom-agent-own-lease'/);
      assert.match(message(other), /may only renew the Lease of its own\s+node, not node-b/);
      const unbound = await as(
        kc,
        agentOn(),
        "PATCH",
        leasePath("node-a"),
        agentLease("node-a", DEFAULT_LEASE_NAMESPACE, new Date()),
        "application/apply-patch+yaml",
      );
      assert.equal(unbound.status, 403, "no node-bound token, no Lease");
      const list = await as(
        kc,
        operator,
        "GET",
        `/apis/coordination.k8s.io/v1/namespaces/${DEFAULT_LEASE_NAMESPACE}/leases`,
      );
      assert.equal(list.status, 200, list.body);
    });

    it("the agent (impersonated with its node-name extra) writes its own status only", async () => {
      const own = await as(
        kc,
        agentOn("node-a"),
        "PATCH",
        `${NNS}/node-a/status`,
        heartbeat("node-a"),
      );
      assert.equal(own.status, 200, own.body);
      assert.equal(own.json<{ status: { nodeIP: string } }>().status.nodeIP, "10.1.0.1");

      const other = await as(
        kc,
        agentOn("node-a"),
        "PATCH",
        `${NNS}/node-b/status`,
        heartbeat("node-b"),
      );
      assert.equal(other.status, 403, other.body);
      assert.match(message(other), /ValidatingAdmissionPolicy 'netloom-node-status-by-its-node'/);
      assert.match(
        message(other),
        /the status of node-b is written only by the agent of node node-b, .* this token is bound to node node-a/,
      );

      // Its peer data the same way: its own NodePeer's status only, never the pod CIDRs.
      const key = { status: { profile: "default", publicKey: `${"A".repeat(43)}=` } };
      const ownPeer = await as(kc, agentOn("node-a"), "PATCH", `${PEERS}/node-a/status`, key);
      assert.equal(ownPeer.status, 200, ownPeer.body);
      const otherPeer = await as(kc, agentOn("node-a"), "PATCH", `${PEERS}/node-b/status`, key);
      assert.equal(otherPeer.status, 403, otherPeer.body);
      assert.match(
        message(otherPeer),
        /the status of node-b is written only by the agent of node node-b/,
      );
      const cidrs = await as(kc, agentOn("node-a"), "PATCH", `${PEERS}/node-a`, {
        spec: { podCIDRs: ["10.244.2.0/24"] },
      });
      assert.equal(cidrs.status, 403, "an agent cannot claim another node's pod CIDRs");
      const badKey = await as(kc, agentOn("node-a"), "PATCH", `${PEERS}/node-a/status`, {
        status: { publicKey: "x\nendpoint=203.0.113.9:51871" },
      });
      assert.equal(badKey.status, 422, "a public key that is not one is refused by the schema");

      const spec = await as(kc, agentOn("node-a"), "PATCH", `${NNS}/node-a`, {
        spec: { mtu: 1300 },
      });
      assert.equal(spec.status, 403, spec.body);
      assert.match(
        message(spec),
        /cannot patch resource "nodenetworkstates" in API group "netloom.io"/,
        "RBAC refuses spec writes",
      );

      const update = await as(
        kc,
        agentOn("node-a"),
        "PUT",
        `${NNS}/node-a`,
        {
          apiVersion: "netloom.io/v1alpha1",
          kind: "NodeNetworkState",
          metadata: { name: "node-a" },
          spec: { nodeName: "node-a", mtu: 1300 },
        },
        "application/json",
      );
      assert.equal(update.status, 403, update.body);
      const del = await as(kc, agentOn("node-a"), "DELETE", `${NNS}/node-a`);
      assert.equal(del.status, 403, del.body);

      // It reads every NodePeer (peers' keys, endpoints, pod CIDRs).
      const list = await as(kc, agentOn("node-a"), "GET", PEERS);
      assert.equal(list.status, 200, list.body);
      assert.equal(list.json<{ items: unknown[] }>().items.length, 2);
      const secrets = await as(
        kc,
        agentOn("node-a"),
        "GET",
        "/api/v1/namespaces/netloom-system/secrets",
      );
      assert.equal(secrets.status, 403, secrets.body);
    });

    it("even with RBAC widened by mistake, the policy keeps the agent off the spec", async () => {
      const role = {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRole",
        metadata: { name: "test-too-broad-agent" },
        rules: [{ apiGroups: ["netloom.io"], resources: ["nodenetworkstates"], verbs: ["patch"] }],
      };
      const binding = {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRoleBinding",
        metadata: { name: "test-too-broad-agent" },
        roleRef: {
          apiGroup: "rbac.authorization.k8s.io",
          kind: "ClusterRole",
          name: role.metadata.name,
        },
        subjects: [{ kind: "ServiceAccount", name: "netloom-agent", namespace: "netloom-system" }],
      };
      for (const o of [role, binding]) {
        const res = await apply(kc, disc, o as KubeObject, { dryRun: false });
        assert.ok(res && res.status < 300, res?.body);
      }
      try {
        // RBAC now allows the patch (the authorizer's cache may take a moment); the policy refuses.
        const deadline = Date.now() + 10_000;
        let res: RawResponse;
        for (;;) {
          res = await as(kc, agentOn("node-a"), "PATCH", `${NNS}/node-a`, { spec: { mtu: 1300 } });
          if (res.status !== 403 || /ValidatingAdmissionPolicy/.test(message(res))) break;
          assert.ok(Date.now() < deadline, `RBAC never allowed the patch: ${res.body}`);
          await sleep(100);
        }
        assert.equal(res.status, 403, res.body);
        assert.match(message(res), /writes only the status subresource/);
      } finally {
        for (const path of [
          "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/test-too-broad-agent",
          "/apis/rbac.authorization.k8s.io/v1/clusterroles/test-too-broad-agent",
        ]) {
          await kubeRequest(kc, "DELETE", path);
        }
      }
    });

    it("the agent without a node association is refused (fail closed)", async () => {
      const res = await as(kc, agentOn(), "PATCH", `${NNS}/node-a/status`, heartbeat("node-a"));
      assert.equal(res.status, 403, res.body);
      assert.match(message(res), /bound to that node; this request carries no node name/);
    });

    it("an agent installed under another namespace and service account is held to its own node all the same", async () => {
      // As `kustomize edit set namespace tenant-x` plus a renamed service account would install
      // it: the same roles, bound to another user name.
      const user = "system:serviceaccount:tenant-x:renamed-agent";
      const subject = { kind: "ServiceAccount", name: "renamed-agent", namespace: "tenant-x" };
      const bindings = [
        {
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "ClusterRoleBinding",
          metadata: { name: "test-renamed-agent" },
          roleRef: {
            apiGroup: "rbac.authorization.k8s.io",
            kind: "ClusterRole",
            name: "netloom-agent",
          },
          subjects: [subject],
        },
        {
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "RoleBinding",
          metadata: { name: "test-renamed-agent", namespace: DEFAULT_LEASE_NAMESPACE },
          roleRef: {
            apiGroup: "rbac.authorization.k8s.io",
            kind: "Role",
            name: "netloom-agent-lease",
          },
          subjects: [subject],
        },
      ];
      for (const o of bindings) {
        const res = await apply(kc, disc, o as KubeObject, { dryRun: false });
        assert.ok(res && res.status < 300, res?.body);
      }
      const renamed = (node: string) => ({
        user,
        groups: [
          "system:serviceaccounts",
          "system:serviceaccounts:tenant-x",
          "system:authenticated",
        ],
        extra: { [NODE_NAME_EXTRA]: [node] },
      });
      try {
        // RBAC lets it write its own node's status (the authorizer's cache may take a moment).
        const deadline = Date.now() + 10_000;
        for (;;) {
          const own = await as(
            kc,
            renamed("node-a"),
            "PATCH",
            `${NNS}/node-a/status`,
            heartbeat("node-a"),
          );
          if (own.status === 200) break;
          assert.ok(Date.now() < deadline, `RBAC never allowed the renamed agent: ${own.body}`);
          await sleep(100);
        }
        const other = await as(
          kc,
          renamed("node-a"),
          "PATCH",
          `${NNS}/node-b/status`,
          heartbeat("node-b"),
        );
        assert.equal(other.status, 403, other.body);
        assert.match(message(other), /ValidatingAdmissionPolicy 'netloom-node-status-by-its-node'/);
        const peer = await as(kc, renamed("node-a"), "PATCH", `${PEERS}/node-b/status`, {
          status: { profile: "default", publicKey: `${"A".repeat(43)}=` },
        });
        assert.equal(peer.status, 403, peer.body);
        const lease = await as(
          kc,
          renamed("node-a"),
          "PATCH",
          `/apis/coordination.k8s.io/v1/namespaces/${DEFAULT_LEASE_NAMESPACE}/leases/node-b?fieldManager=netloom-agent&force=true`,
          agentLease("node-b", DEFAULT_LEASE_NAMESPACE, new Date()),
          "application/apply-patch+yaml",
        );
        assert.equal(lease.status, 403, lease.body);
        assert.match(message(lease), /ValidatingAdmissionPolicy 'netloom-agent-own-lease'/);
      } finally {
        await kubeRequest(
          kc,
          "DELETE",
          "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/test-renamed-agent",
        );
        await kubeRequest(
          kc,
          "DELETE",
          `/apis/rbac.authorization.k8s.io/v1/namespaces/${DEFAULT_LEASE_NAMESPACE}/rolebindings/test-renamed-agent`,
        );
      }
    });

    it("a real node-bound service-account token carries the node name, and the same rules hold", async (t) => {
      const tr = await kubeRequest(
        kc,
        "POST",
        "/api/v1/namespaces/netloom-system/serviceaccounts/netloom-agent/token",
        {
          body: {
            apiVersion: "authentication.k8s.io/v1",
            kind: "TokenRequest",
            spec: {
              expirationSeconds: 600,
              boundObjectRef: {
                apiVersion: "v1",
                kind: "Node",
                name: "node-a",
                uid: nodeUID.get("node-a"),
              },
            },
          },
        },
      );
      assert.equal(tr.status, 201, tr.body);
      const agentKC = tokenKubeConfig(kc, tr.json<{ status: { token: string } }>().status.token);

      const review = await kubeRequest(
        agentKC,
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {
          body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" },
        },
      );
      assert.equal(review.status, 201, review.body);
      const userInfo = review.json<{
        status: { userInfo: { username: string; extra?: Record<string, string[]> } };
      }>().status.userInfo;
      assert.equal(userInfo.username, AGENT_USER);
      assert.deepEqual(userInfo.extra?.[NODE_NAME_EXTRA], ["node-a"]);
      t.diagnostic(`token extras: ${JSON.stringify(userInfo.extra)}`);

      const patch = (name: string) =>
        kubeRequest(agentKC, "PATCH", `${NNS}/${name}/status`, {
          body: heartbeat(name),
          contentType: "application/merge-patch+json",
        });
      const own = await patch("node-a");
      assert.equal(own.status, 200, own.body);
      const other = await patch("node-b");
      assert.equal(other.status, 403, other.body);
      assert.match(
        message(other),
        /the status of node-b is written only by the agent of node node-b/,
      );
      const spec = await kubeRequest(agentKC, "PATCH", `${NNS}/node-a`, {
        body: { spec: { mtu: 1300 } },
        contentType: "application/merge-patch+json",
      });
      assert.equal(spec.status, 403, spec.body);

      // A token without a bound node (kubectl create token) is refused by the policy.
      const plain = await kubeRequest(
        kc,
        "POST",
        "/api/v1/namespaces/netloom-system/serviceaccounts/netloom-agent/token",
        {
          body: {
            apiVersion: "authentication.k8s.io/v1",
            kind: "TokenRequest",
            spec: { expirationSeconds: 600 },
          },
        },
      );
      assert.equal(plain.status, 201, plain.body);
      const unbound = await kubeRequest(
        tokenKubeConfig(kc, plain.json<{ status: { token: string } }>().status.token),
        "PATCH",
        `${NNS}/node-a/status`,
        { body: heartbeat("node-a"), contentType: "application/merge-patch+json" },
      );
      assert.equal(unbound.status, 403, unbound.body);
      assert.match(message(unbound), /carries no node name/);
    });

    it("netloom clustermesh kubeconfig mints a kubeconfig that may read NodePeers and nothing else", async () => {
      const r = spawnSync(
        process.execPath,
        [
          join(REPO, "bin", "netloom.js"),
          "clustermesh",
          "kubeconfig",
          "--kubeconfig",
          cluster.state.kubeconfigPath,
          "--cluster-name",
          "west",
          "--duration",
          "1h",
        ],
        { encoding: "utf8" },
      );
      assert.equal(r.status, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /"token"/, "the token goes to stdout only");
      const remote = newKubeConfig();
      remote.loadFromString(r.stdout);
      assert.equal(remote.getCurrentCluster()?.server, cluster.state.apiServerURL);
      const peers = await kubeRequest(remote, "GET", PEERS);
      assert.equal(peers.status, 200, peers.body);
      for (const path of [
        NNS,
        "/api/v1/namespaces/netloom-system/secrets",
        "/api/v1/nodes",
        `${PEERS}/node-a/status`,
      ]) {
        const denied = await kubeRequest(remote, path.endsWith("/status") ? "PATCH" : "GET", path, {
          ...(path.endsWith("/status")
            ? { body: {}, contentType: "application/merge-patch+json" }
            : {}),
        });
        assert.equal(denied.status, 403, `${path}: ${denied.body}`);
      }
    });

    it("the operator writes the NodeNetworkState spec (server-side apply), not its status, not secrets elsewhere", async () => {
      const ssa = (name: string, spec: object) =>
        as(
          kc,
          operator,
          "PATCH",
          `${NNS}/${name}?fieldManager=netloom-operator&fieldValidation=Strict`,
          JSON.stringify({
            apiVersion: "netloom.io/v1alpha1",
            kind: "NodeNetworkState",
            metadata: { name },
            spec,
          }),
          "application/apply-patch+yaml",
        );
      const upd = await ssa("node-a", { nodeName: "node-a" });
      assert.equal(upd.status, 200, upd.body);
      const created = await ssa("node-c", { nodeName: "node-c" });
      assert.equal(created.status, 201, created.body);
      const del = await as(kc, operator, "DELETE", `${NNS}/node-c`);
      assert.equal(del.status, 200, del.body);

      const status = await as(kc, operator, "PATCH", `${NNS}/node-a/status`, heartbeat("node-a"));
      assert.equal(status.status, 403, status.body);
      assert.match(message(status), /cannot patch resource "nodenetworkstates\/status"/);

      const secret = await kubeRequest(kc, "POST", "/api/v1/namespaces/netloom-system/secrets", {
        body: {
          apiVersion: "v1",
          kind: "Secret",
          metadata: { name: "clustermesh-west", namespace: "netloom-system" },
          stringData: { kubeconfig: "apiVersion: v1\nkind: Config\n" },
        },
      });
      assert.equal(secret.status, 201, secret.body);
      const get = await as(
        kc,
        operator,
        "GET",
        "/api/v1/namespaces/netloom-system/secrets/clustermesh-west",
      );
      assert.equal(
        get.status,
        200,
        "reads the ClusterMeshPeer kubeconfig Secret in netloom-system",
      );
      for (const path of [
        "/api/v1/namespaces/netloom-system/secrets",
        "/api/v1/namespaces/kube-system/secrets/anything",
        "/api/v1/namespaces/default/secrets/anything",
        "/api/v1/secrets",
      ]) {
        const res = await as(kc, operator, "GET", path);
        assert.equal(res.status, 403, `${path}: ${res.body}`);
      }
    });

    it("SubjectAccessReviews: the operator and the agent may do exactly what they need", async () => {
      type Attr = {
        verb: string;
        resource: string;
        group?: string;
        subresource?: string;
        namespace?: string;
        name?: string;
      };
      const can = async (user: string, a: Attr): Promise<boolean> => {
        const res = await kubeRequest(
          kc,
          "POST",
          "/apis/authorization.k8s.io/v1/subjectaccessreviews",
          {
            body: {
              apiVersion: "authorization.k8s.io/v1",
              kind: "SubjectAccessReview",
              spec: { user, groups: SA_GROUPS, resourceAttributes: { group: "", ...a } },
            },
          },
        );
        assert.equal(res.status, 201, res.body);
        return res.json<{ status: { allowed: boolean } }>().status.allowed;
      };
      const nl = "netloom.io";
      const matrix: [string, Attr, boolean][] = [
        // operator: reads the cluster, writes finalizers and status, owns NodeNetworkState.spec
        [OPERATOR_USER, { verb: "watch", resource: "nodes" }, true],
        [OPERATOR_USER, { verb: "list", resource: "pods" }, true],
        [OPERATOR_USER, { verb: "get", resource: "namespaces" }, true],
        [OPERATOR_USER, { verb: "patch", resource: "nodes" }, false],
        [OPERATOR_USER, { verb: "delete", resource: "pods", namespace: "default" }, false],
        [OPERATOR_USER, { verb: "create", resource: "pods", namespace: "default" }, false],
        [OPERATOR_USER, { verb: "get", resource: "configmaps", namespace: "default" }, false],
        [OPERATOR_USER, { verb: "watch", group: nl, resource: "networkconfigs" }, true],
        [
          OPERATOR_USER,
          { verb: "update", group: nl, resource: "bandwidthpolicies", namespace: "default" },
          true,
        ],
        [
          OPERATOR_USER,
          { verb: "patch", group: nl, resource: "clustermeshpeers", subresource: "status" },
          true,
        ],
        [
          OPERATOR_USER,
          { verb: "update", group: nl, resource: "encryptionprofiles", subresource: "status" },
          true,
        ],
        [OPERATOR_USER, { verb: "create", group: nl, resource: "networkconfigs" }, false],
        [OPERATOR_USER, { verb: "delete", group: nl, resource: "encryptionprofiles" }, false],
        [OPERATOR_USER, { verb: "create", group: nl, resource: "nodenetworkstates" }, true],
        [OPERATOR_USER, { verb: "patch", group: nl, resource: "nodenetworkstates" }, true],
        [OPERATOR_USER, { verb: "delete", group: nl, resource: "nodenetworkstates" }, true],
        [OPERATOR_USER, { verb: "create", group: nl, resource: "nodepeers" }, true],
        [OPERATOR_USER, { verb: "delete", group: nl, resource: "nodepeers" }, true],
        [
          OPERATOR_USER,
          { verb: "patch", group: nl, resource: "nodepeers", subresource: "status" },
          false,
        ],
        [
          OPERATOR_USER,
          { verb: "patch", group: nl, resource: "nodenetworkstates", subresource: "status" },
          false,
        ],
        [
          OPERATOR_USER,
          { verb: "update", group: nl, resource: "nodenetworkstates", subresource: "status" },
          false,
        ],
        [OPERATOR_USER, { verb: "create", resource: "events", namespace: "default" }, true],
        [
          OPERATOR_USER,
          { verb: "patch", group: "events.k8s.io", resource: "events", namespace: "default" },
          true,
        ],
        [OPERATOR_USER, { verb: "delete", resource: "events", namespace: "default" }, false],
        [
          OPERATOR_USER,
          {
            verb: "create",
            group: "coordination.k8s.io",
            resource: "leases",
            namespace: "netloom-system",
          },
          true,
        ],
        [
          OPERATOR_USER,
          {
            verb: "update",
            group: "coordination.k8s.io",
            resource: "leases",
            namespace: "netloom-system",
            name: "netloom-operator",
          },
          true,
        ],
        [
          OPERATOR_USER,
          {
            verb: "update",
            group: "coordination.k8s.io",
            resource: "leases",
            namespace: "netloom-system",
            name: "someone-else",
          },
          false,
        ],
        [
          OPERATOR_USER,
          {
            verb: "create",
            group: "coordination.k8s.io",
            resource: "leases",
            namespace: "kube-system",
          },
          false,
        ],
        [
          OPERATOR_USER,
          {
            verb: "get",
            resource: "secrets",
            namespace: "netloom-system",
            name: "clustermesh-west",
          },
          true,
        ],
        [OPERATOR_USER, { verb: "list", resource: "secrets", namespace: "netloom-system" }, false],
        [
          OPERATOR_USER,
          { verb: "get", resource: "secrets", namespace: "kube-system", name: "x" },
          false,
        ],
        // Only the Secrets a ClusterMeshPeer names (listed in the Role), not its neighbours.
        [
          OPERATOR_USER,
          { verb: "get", resource: "secrets", namespace: "netloom-system", name: "x" },
          false,
        ],
        [OPERATOR_USER, { verb: "create", group: nl, resource: "remotenodepeers" }, true],
        [OPERATOR_USER, { verb: "delete", group: nl, resource: "remotenodepeers" }, true],
        [AGENT_USER, { verb: "watch", group: nl, resource: "remotenodepeers" }, true],
        [AGENT_USER, { verb: "patch", group: nl, resource: "remotenodepeers" }, false],

        // agent: reads its sources, Nodes, Pods and NodePeers; writes only the status of its
        // NodeNetworkState and NodePeer
        [AGENT_USER, { verb: "watch", group: nl, resource: "nodenetworkstates" }, true],
        [AGENT_USER, { verb: "watch", group: nl, resource: "nodepeers" }, true],
        [
          AGENT_USER,
          { verb: "patch", group: nl, resource: "nodepeers", subresource: "status" },
          true,
        ],
        [AGENT_USER, { verb: "patch", group: nl, resource: "nodepeers" }, false],
        [AGENT_USER, { verb: "watch", group: nl, resource: "networkconfigs" }, true],
        [AGENT_USER, { verb: "watch", group: nl, resource: "encryptionprofiles" }, true],
        [AGENT_USER, { verb: "watch", group: nl, resource: "bandwidthpolicies" }, true],
        [AGENT_USER, { verb: "patch", group: nl, resource: "networkconfigs" }, false],
        [
          AGENT_USER,
          { verb: "patch", group: nl, resource: "networkconfigs", subresource: "status" },
          false,
        ],
        [
          AGENT_USER,
          { verb: "patch", group: nl, resource: "nodenetworkstates", subresource: "status" },
          true,
        ],
        [
          AGENT_USER,
          { verb: "update", group: nl, resource: "nodenetworkstates", subresource: "status" },
          true,
        ],
        [AGENT_USER, { verb: "patch", group: nl, resource: "nodenetworkstates" }, false],
        [AGENT_USER, { verb: "create", group: nl, resource: "nodenetworkstates" }, false],
        [AGENT_USER, { verb: "delete", group: nl, resource: "nodenetworkstates" }, false],
        [AGENT_USER, { verb: "get", resource: "nodes", name: "node-a" }, true],
        [AGENT_USER, { verb: "watch", resource: "nodes" }, true],
        [AGENT_USER, { verb: "patch", resource: "nodes", subresource: "status" }, false],
        [AGENT_USER, { verb: "create", resource: "events", namespace: "default" }, true],
        [
          AGENT_USER,
          { verb: "get", resource: "secrets", namespace: "netloom-system", name: "x" },
          false,
        ],
        [AGENT_USER, { verb: "watch", resource: "pods" }, true],
        [AGENT_USER, { verb: "create", resource: "pods", namespace: "default" }, false],
        // The flow endpoint reviews its clients' tokens and permissions (docs/flows.md)...
        [
          AGENT_USER,
          { verb: "create", group: "authentication.k8s.io", resource: "tokenreviews" },
          true,
        ],
        [
          AGENT_USER,
          { verb: "create", group: "authorization.k8s.io", resource: "subjectaccessreviews" },
          true,
        ],
        // ...but may not read flows itself: nobody is bound to netloom-flows-reader by default.
        [
          AGENT_USER,
          { verb: "get", group: nl, resource: "nodenetworkstates", subresource: "flows" },
          false,
        ],
        [
          OPERATOR_USER,
          { verb: "get", group: nl, resource: "nodenetworkstates", subresource: "flows" },
          false,
        ],
      ];
      const wrong: string[] = [];
      for (const [user, attr, want] of matrix) {
        if ((await can(user, attr)) !== want) {
          wrong.push(`${user.split(":").pop()} ${want ? "cannot" : "can"} ${JSON.stringify(attr)}`);
        }
      }
      assert.deepEqual(wrong, []);
    });
  });
});

describe("the image", () => {
  it("Dockerfile: node:24-slim build and runtime stages, runtime packages, non-root 65532", () => {
    const df = readFileSync(join(REPO, "Dockerfile"), "utf8");
    assert.match(df, /^ARG NODE_IMAGE=node:24-slim$/m);
    assert.equal((df.match(/^FROM \$\{NODE_IMAGE\}/gm) ?? []).length, 2, "two stages");
    assert.match(df, /npm ci/);
    assert.match(df, /tsc -p tsconfig\.json/);
    assert.match(df, /clang .*-target bpf/);
    // The Linux driver loads <repo root>/dist/bpf/netloom.bpf.o (src/datapath-driver/linux).
    assert.match(df, /^COPY --from=build \/src\/dist\/bpf \.\/dist\/bpf$/m);
    for (const pkg of ["libbpf1", "iproute2", "wireguard-tools"]) {
      assert.match(df, new RegExp(`install[^\\n]*\\b${pkg}\\b`), pkg);
    }
    // wireguard-go is built, not Debian's (which predates GSO/GRO): see the next test.
    assert.doesNotMatch(df, /install[^\n]*\bwireguard-go\b/, "Debian's wireguard-go");
    assert.match(df, /^USER 65532:65532$/m);
    const ignore = readFileSync(join(REPO, ".dockerignore"), "utf8").split("\n");
    for (const p of ["node_modules", "dist", ".git"])
      assert.ok(ignore.includes(p), `.dockerignore ${p}`);
    // Every file the build stage copies is kept by .dockerignore.
    for (const m of df.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const src of (m[1] ?? "").split(" ")) {
        assert.ok(existsSync(join(REPO, src)), `COPY ${src}: missing`);
        assert.ok(!ignore.includes(src), `COPY ${src} is excluded by .dockerignore`);
      }
    }
  });

  it("Dockerfile: a golang stage builds the wireguard-go hack/build-wireguard-go.sh pins, on the agent's PATH", () => {
    const df = readFileSync(join(REPO, "Dockerfile"), "utf8");
    const script = readFileSync(join(REPO, "hack", "build-wireguard-go.sh"), "utf8");
    const pinned = /WIREGUARD_GO_MODULE_VERSION:-(v[^}\s]+)\}/.exec(script)?.[1];
    assert.equal(pinned, WIREGUARD_GO_MODULE_VERSION, "the script builds what the agent looks for");
    assert.equal(
      /^ARG WIREGUARD_GO_MODULE_VERSION=(\S+)$/m.exec(df)?.[1],
      pinned,
      "the Dockerfile builds the version the script pins (and backend.ts looks for)",
    );
    assert.match(df, /^ARG GO_IMAGE=golang:\S+$/m);
    const stage = /^FROM \$\{GO_IMAGE\} AS wireguard-go\n([\s\S]*?)(?=^FROM )/m.exec(df)?.[1];
    assert.ok(stage, "a golang stage named wireguard-go, before the others");
    assert.match(stage, /^ARG WIREGUARD_GO_MODULE_VERSION$/m, "the pin is brought into the stage");
    // The script's build: the module's root package, static (the runtime image is slim).
    assert.match(
      stage,
      /CGO_ENABLED=0[\s\S]*go install -trimpath "golang\.zx2c4\.com\/wireguard@\$\{WIREGUARD_GO_MODULE_VERSION\}"/,
    );
    assert.match(
      script,
      /CGO_ENABLED=0 .*go install -trimpath "golang\.zx2c4\.com\/wireguard@\$VERSION"/,
    );
    // Where findWireguardGo looks when there is no cache: PATH, ahead of /usr/bin.
    const runtime = df.slice(df.lastIndexOf("FROM "));
    assert.match(
      runtime,
      /^COPY --from=wireguard-go \/out\/wireguard-go \/usr\/local\/bin\/wireguard-go$/m,
    );
  });
});
