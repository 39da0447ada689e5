// Flux (config/flux/kustomization.yaml): Kustomizations with wait: true, and proof that Flux
// would wait for Ready and fail on Stalled. Flux's kustomize-controller judges health with
// kstatus (sigs.k8s.io/cli-utils); here objects get their statuses through the real API
// server's /status subresource, are read back, and the same kstatus library computes the verdict.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { GROUP, KINDS, type KindDefinition, VERSION } from "../../src/api/kinds.js";
import { installCRDs } from "../../src/kube/crds.js";
import { kubeRequest, resourcePath } from "../../src/kube/raw.js";
import { startTestCluster, type TestCluster } from "../support/cluster.js";
import { kstatus } from "../support/kstatus.js";

const REPO = repoRoot();

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error("no package.json above this test");
    dir = parent;
  }
  return dir;
}

interface FluxKustomization {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string };
  spec: {
    interval: string;
    timeout?: string;
    path: string;
    prune: boolean;
    wait?: boolean;
    dependsOn?: { name: string }[];
    sourceRef: { kind: string; name: string };
  };
}

interface Obj {
  metadata: { name: string; namespace?: string; generation: number };
  spec: Record<string, unknown>;
  status?: { observedGeneration?: number; conditions?: unknown[] };
}

/** A valid spec per kind (the samples' intent) and a spec change that bumps the generation. */
const SPECS: Record<string, { spec: object; change: object }> = {
  NetworkConfig: {
    spec: { nodeSelector: {}, drift: { checkInterval: "10s", mode: "Heal" } },
    change: { mtu: 1400 },
  },
  EncryptionProfile: {
    spec: { nodeSelector: {}, wireguard: { listenPort: 51871, interfaceName: "netloom-wg0" } },
    change: { wireguard: { listenPort: 51872 } },
  },
  BandwidthPolicy: {
    spec: { podSelector: { matchLabels: { app: "web" } }, egress: { rate: "50M" } },
    change: { egress: { rate: "40M" } },
  },
  ClusterMeshPeer: {
    spec: {
      clusterName: "west",
      clusterID: 2,
      kubeconfigSecretRef: { name: "clustermesh-west", namespace: "netloom-system" },
    },
    change: { clusterID: 3 },
  },
  // Created by the operator, not committed: a Flux Kustomization waits for one by naming it in
  // spec.healthChecks (docs/gitops.md). Its generation follows spec.policyGeneration.
  PolicyRealization: {
    spec: { policyGeneration: 1 },
    change: { policyGeneration: 2 },
  },
};

const NOW = "2025-11-20T10:00:00Z";
const cond = (type: string, status: string, reason: string, message: string, gen: number) => ({
  type,
  status,
  reason,
  message,
  observedGeneration: gen,
  lastTransitionTime: NOW,
});

describe("Flux: wait for Ready, fail on Stalled (kstatus on a real API server)", () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startTestCluster();
    await installCRDs(cluster.kubeconfig);
  });
  after(async () => cluster?.stop());

  const path = (k: KindDefinition, name?: string) =>
    resourcePath(GROUP, VERSION, k.plural, k.scope === "Namespaced" ? "default" : undefined, name);

  async function create(k: KindDefinition, name: string): Promise<Obj> {
    const def = SPECS[k.kind];
    assert.ok(def, `a spec for ${k.kind}`);
    const res = await kubeRequest(kc(), "POST", `${path(k)}?fieldValidation=Strict`, {
      body: { apiVersion: `${GROUP}/${VERSION}`, kind: k.kind, metadata: { name }, spec: def.spec },
    });
    assert.equal(res.status, 201, res.body);
    return res.json<Obj>();
  }

  async function setStatus(k: KindDefinition, name: string, status: object): Promise<Obj> {
    const res = await kubeRequest(kc(), "PATCH", `${path(k, name)}/status?fieldValidation=Strict`, {
      body: { status },
      contentType: "application/merge-patch+json",
    });
    assert.equal(res.status, 200, res.body);
    return read(k, name);
  }

  async function read(k: KindDefinition, name: string): Promise<Obj> {
    const res = await kubeRequest(kc(), "GET", path(k, name));
    assert.equal(res.status, 200, res.body);
    return res.json<Obj>();
  }

  const kc = () => cluster.kubeconfig;

  it("config/flux/kustomization.yaml: Flux Kustomizations that wait, with timeouts, in order", () => {
    const docs = parseAllDocuments(
      readFileSync(join(REPO, "config", "flux", "kustomization.yaml"), "utf8"),
    ).map((d) => d.toJS() as FluxKustomization);
    assert.deepEqual(
      docs.map((d) => d.metadata.name),
      ["netloom", "netloom-network"],
    );
    for (const d of docs) {
      assert.equal(d.apiVersion, "kustomize.toolkit.fluxcd.io/v1");
      assert.equal(d.kind, "Kustomization");
      assert.equal(d.spec.wait, true, `${d.metadata.name}: wait`);
      assert.match(d.spec.timeout ?? "", /^\d+(s|m|h)$/, `${d.metadata.name}: timeout`);
      assert.match(d.spec.interval, /^\d+(s|m|h)$/);
      assert.equal(d.spec.prune, true);
      assert.ok(d.spec.sourceRef.kind && d.spec.sourceRef.name);
    }
    assert.deepEqual(docs[1]?.spec.dependsOn, [{ name: "netloom" }]);
    // The install Kustomization points at this repository's top-level kustomization.
    assert.equal(docs[0]?.spec.path, "./");
    assert.match(readFileSync(join(REPO, "kustomization.yaml"), "utf8"), /- config\/default/);
  });

  for (const k of KINDS.filter((x) => x.kind in SPECS)) {
    it(`${k.kind}: InProgress until observed and Ready, Current when Ready, Failed when Stalled`, async () => {
      const name = `flux-${k.singular}`;
      const created = await create(k, name);
      // 1. Just created: the CRD defaults status.observedGeneration to 0.
      assert.equal(created.metadata.generation, 1);
      assert.deepEqual(created.status, { observedGeneration: 0 });
      let [r] = await kstatus([created]);
      assert.equal(r?.status, "InProgress", JSON.stringify(r));
      assert.equal(r?.message, `${k.kind} generation is 1, but latest observed generation is 0`);

      // 2. Observed, nodes still applying: Reconciling=True.
      const waiting = "1 of 3 nodes applied generation 1; waiting for node-b, node-c";
      let obj = await setStatus(k, name, {
        observedGeneration: 1,
        conditions: [
          cond("Ready", "False", "NodesNotReady", waiting, 1),
          cond("Reconciling", "True", "Progressing", waiting, 1),
          cond("Stalled", "False", "Progressing", waiting, 1),
        ],
      });
      [r] = await kstatus([obj]);
      assert.deepEqual([r?.status, r?.message], ["InProgress", waiting]);

      // 3. Ready=True at the current generation: Current, Flux's wait is over.
      const ready = "3 of 3 nodes applied generation 1";
      obj = await setStatus(k, name, {
        observedGeneration: 1,
        conditions: [
          cond("Ready", "True", "NodesReady", ready, 1),
          cond("Reconciling", "False", "Converged", ready, 1),
          cond("Stalled", "False", "Converged", ready, 1),
        ],
      });
      [r] = await kstatus([obj]);
      assert.equal(r?.status, "Current", JSON.stringify(r));

      // 4. A new commit changes the spec: generation 2, the old Ready no longer counts.
      const def = SPECS[k.kind]!;
      const patched = await kubeRequest(kc(), "PATCH", `${path(k, name)}?fieldValidation=Strict`, {
        body: { spec: def.change },
        contentType: "application/merge-patch+json",
      });
      assert.equal(patched.status, 200, patched.body);
      obj = await read(k, name);
      assert.equal(obj.metadata.generation, 2);
      assert.equal(obj.status?.observedGeneration, 1, "status is untouched by a spec change");
      [r] = await kstatus([obj]);
      assert.equal(r?.status, "InProgress", JSON.stringify(r));
      assert.equal(r?.message, `${k.kind} generation is 2, but latest observed generation is 1`);

      // 5. A node cannot apply generation 2: Stalled=True, Flux fails the Kustomization.
      const failed =
        "1 of 3 nodes have not applied generation 2: node-c (attaching tc program to eth0: no such device)";
      obj = await setStatus(k, name, {
        observedGeneration: 2,
        conditions: [
          cond("Ready", "False", "NodesNotReady", failed, 2),
          cond("Reconciling", "False", "NodesFailed", failed, 2),
          cond("Stalled", "True", "NodesFailed", failed, 2),
        ],
      });
      [r] = await kstatus([obj]);
      assert.deepEqual([r?.status, r?.message], ["Failed", failed]);

      // 6. Fixed: Ready=True at generation 2 is Current again.
      const fixed = "3 of 3 nodes applied generation 2";
      obj = await setStatus(k, name, {
        observedGeneration: 2,
        conditions: [
          cond("Ready", "True", "NodesReady", fixed, 2),
          cond("Reconciling", "False", "Converged", fixed, 2),
          cond("Stalled", "False", "Converged", fixed, 2),
        ],
      });
      [r] = await kstatus([obj]);
      assert.equal(r?.status, "Current", JSON.stringify(r));
    });
  }

  it("a NetworkPolicy has no status: kstatus finds it Current at once, whatever Netloom did", async () => {
    const res = await kubeRequest(
      kc(),
      "POST",
      "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies?fieldValidation=Strict",
      {
        body: {
          apiVersion: "networking.k8s.io/v1",
          kind: "NetworkPolicy",
          metadata: {
            name: "flux-policy",
            annotations: {
              "netloom.io/realization": JSON.stringify({
                generation: 1,
                state: "Degraded",
                message: "1 of 1 nodes have not applied generation 1: node-a (x)",
              }),
            },
          },
          spec: { podSelector: {}, policyTypes: ["Ingress"] },
        },
      },
    );
    assert.equal(res.status, 201, res.body);
    const [r] = await kstatus([res.json<object>()]);
    assert.equal(r?.status, "Current", JSON.stringify(r));
  });

  it("kstatus judges a whole Flux batch at once: one Stalled object fails it", async () => {
    const nc = KINDS.find((k) => k.kind === "NetworkConfig")!;
    const bp = KINDS.find((k) => k.kind === "BandwidthPolicy")!;
    await create(nc, "batch-ready");
    await create(bp, "batch-stalled");
    const ok = "2 of 2 nodes applied generation 1";
    const bad = "1 of 2 nodes have not applied generation 1: node-b (no report for 120s)";
    const objs = [
      await setStatus(nc, "batch-ready", {
        observedGeneration: 1,
        conditions: [cond("Ready", "True", "NodesReady", ok, 1)],
      }),
      await setStatus(bp, "batch-stalled", {
        observedGeneration: 1,
        conditions: [
          cond("Ready", "False", "NodesNotReady", bad, 1),
          cond("Stalled", "True", "NodesFailed", bad, 1),
        ],
      }),
    ];
    const results = await kstatus(objs);
    assert.deepEqual(
      results.map((r) => [r.kind, r.name, r.namespace, r.status]),
      [
        ["NetworkConfig", "batch-ready", undefined, "Current"],
        ["BandwidthPolicy", "batch-stalled", "default", "Failed"],
      ],
    );
  });
});
