// Argo CD health checks (config/argocd): every health_test.yaml case of every netloom.io kind,
// and of networking.k8s.io/NetworkPolicy (read from the netloom.io/realization annotation), runs
// through gopher-lua, the Lua engine Argo CD embeds, set up as Argo CD sets it up; the argocd-cm
// patch carries the same scripts; and every testdata object is one the real API server accepts
// (spec and status, at the generation the case names) with the same verdict.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";
import { renderCRD } from "../../src/api/crd.js";
import { GROUP, KINDS, type KindDefinition, kindByName, VERSION } from "../../src/api/kinds.js";
import { REALIZATION_ANNOTATION } from "../../src/api/policyrealization.js";
import { installCRDs } from "../../src/kube/crds.js";
import { kubeRequest, resourcePath } from "../../src/kube/raw.js";
import type { RealizationSummary } from "../../src/policy/realization.js";
import { startTestCluster, type TestCluster } from "../support/cluster.js";
import { gopherLuaVersion, type LuaHealthResult, luaHealth } from "../support/lua-health.js";

interface HealthTest {
  healthStatus: { status: string; message: string };
  inputPath: string;
}

interface TestObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    generation: number;
    [k: string]: unknown;
  };
  spec: Record<string, unknown>;
  status?: Record<string, unknown>;
}

const REPO = repoRoot();
const CUSTOMIZATIONS = join(REPO, "config", "argocd", "resource_customizations", GROUP);
/** The NetworkPolicy check: Kubernetes' own kind, judged by the operator's annotation. */
const NETWORK_POLICY = join(
  REPO,
  "config",
  "argocd",
  "resource_customizations",
  "networking.k8s.io",
  "NetworkPolicy",
);
const NETWORK_POLICY_KEY = "resource.customizations.health.networking.k8s.io_NetworkPolicy";
const HEALTH_CODES = ["Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"];

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error("no package.json above this test");
    dir = parent;
  }
  return dir;
}

/** A netloom.io kind's folder, or NETWORK_POLICY for the NetworkPolicy check. */
function folder(kind: string): string {
  return kind === "NetworkPolicy" ? NETWORK_POLICY : join(CUSTOMIZATIONS, kind);
}

function script(kind: string): string {
  return readFileSync(join(folder(kind), "health.lua"), "utf8");
}

function healthTests(kind: string): HealthTest[] {
  const doc = parseYaml(readFileSync(join(folder(kind), "health_test.yaml"), "utf8")) as {
    tests?: HealthTest[];
  };
  assert.ok(
    Array.isArray(doc.tests) && doc.tests.length > 0,
    `${kind}: health_test.yaml has tests`,
  );
  return doc.tests;
}

function input(kind: string, t: HealthTest): TestObject {
  return parseYaml(readFileSync(join(folder(kind), t.inputPath), "utf8")) as TestObject;
}

/** Every testdata file has a case and back; each case has a known status and a message. */
function checkLayout(kind: string, verdictsNeeded: string[]): HealthTest[] {
  const tests = healthTests(kind);
  const referenced = tests.map((x) => x.inputPath).sort();
  const files = readdirSync(join(folder(kind), "testdata"))
    .map((f) => `testdata/${f}`)
    .sort();
  assert.deepEqual(referenced, files, `${kind}: every testdata file has a case, and back`);
  const statuses = new Set(tests.map((x) => x.healthStatus.status));
  for (const s of verdictsNeeded) {
    assert.ok(statuses.has(s), `${kind}: a ${s} case`);
  }
  for (const x of tests) {
    assert.ok(HEALTH_CODES.includes(x.healthStatus.status), `${kind} ${x.inputPath}`);
    assert.ok(x.healthStatus.message.length > 0, `${kind} ${x.inputPath}: a message`);
    assert.equal(input(kind, x).kind, kind, `${x.inputPath}: kind`);
  }
  return tests;
}

/** RFC 7386 JSON merge patch, what the API server does with application/merge-patch+json. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== "object" || patch === null || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    typeof target === "object" && target !== null && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function verdict(r: LuaHealthResult | undefined): { status: string; message: string } {
  assert.ok(r, "a result per case");
  assert.ok(r.ok, `the script failed: ${r.ok ? "" : r.error}`);
  return { status: r.status, message: r.message };
}

/**
 * Kinds that carry data, no outcome: never Degraded. Peer data: a node's failures are in its
 * NodeNetworkState, a remote cluster's in its ClusterMeshPeer. Identities and endpoint slices:
 * a policy that cannot be realized shows on its NetworkPolicy and PolicyRealization.
 */
const DATA_KINDS = ["NodePeer", "RemoteNodePeer", "NetworkIdentity", "NetworkEndpointSlice"];

/** The verdicts each kind's script gives, each needing a case. */
function verdicts(kind: string): string[] {
  return DATA_KINDS.includes(kind)
    ? ["Healthy", "Progressing"]
    : ["Healthy", "Progressing", "Degraded"];
}

/**
 * The verdict on a present but empty status. Reconciled kinds: not observed yet. A NodePeer's
 * agent writes an empty status when its node is in no EncryptionProfile: nothing to wait for.
 */
const EMPTY_STATUS: Record<string, string> = { NodePeer: "Healthy" };

/** The status the API server gives an object created without one (the CRD's default). */
function statusDefault(k: KindDefinition): unknown {
  const versions = renderCRD(k).spec.versions as {
    schema: { openAPIV3Schema: { properties: { status: { default?: unknown } } } };
  }[];
  return versions[0]?.schema.openAPIV3Schema.properties.status.default;
}

/**
 * A spec field each kind can change without becoming invalid: the server bumps
 * metadata.generation on every spec change, so the test reaches a case's generation this way.
 * (NodeNetworkState and NodePeer cases stay at generation 1, as the operator writes them once;
 * a scratch field is there all the same.)
 */
const SCRATCH: Record<
  string,
  {
    read: (s: Record<string, unknown>) => unknown;
    patch: (v: unknown) => object;
    value: (i: number) => unknown;
  }
> = {
  NetworkConfig: { read: (s) => s.mtu, patch: (v) => ({ mtu: v }), value: (i) => 1300 + i },
  NodeNetworkState: {
    read: (s) => s.nodeName,
    patch: (v) => ({ nodeName: v }),
    value: (i) => `scratch-node-${i}`,
  },
  EncryptionProfile: {
    read: (s) => (s.wireguard as Record<string, unknown>).listenPort,
    patch: (v) => ({ wireguard: { listenPort: v } }),
    value: (i) => 52000 + i,
  },
  BandwidthPolicy: {
    read: (s) => (s.egress as Record<string, unknown>).rate,
    patch: (v) => ({ egress: { rate: v } }),
    value: (i) => `${60 + i}M`,
  },
  ClusterMeshPeer: {
    read: (s) => s.clusterName,
    patch: (v) => ({ clusterName: v }),
    value: (i) => `scratch-${i}`,
  },
  NodePeer: {
    read: (s) => s.podCIDRs,
    patch: (v) => ({ podCIDRs: v }),
    value: (i) => [`10.250.${i}.0/24`],
  },
  RemoteNodePeer: {
    read: (s) => s.podCIDRs,
    patch: (v) => ({ podCIDRs: v }),
    value: (i) => [`10.251.${i}.0/24`],
  },
  PolicyRealization: {
    read: (s) => s.policyGeneration,
    patch: (v) => ({ policyGeneration: v }),
    value: (i) => 100 + i,
  },
  NetworkIdentity: {
    read: (s) => s.namespace,
    patch: (v) => ({ namespace: v }),
    value: (i) => `scratch-${i}`,
  },
  NetworkEndpointSlice: {
    read: (s) => s.nodeName,
    patch: (v) => ({ nodeName: v }),
    value: (i) => `scratch-node-${i}`,
  },
};

/**
 * Kinds whose verdict reads metadata.name keep their cases' own names on the server (instead
 * of case-N), so each case needs a name of its own: a NetworkIdentity is named by its number.
 */
const KEEP_NAME = new Set(["NetworkIdentity"]);

describe("Argo CD health checks (config/argocd) in gopher-lua", () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startTestCluster();
    await installCRDs(cluster.kubeconfig);
  });
  after(async () => cluster?.stop());

  it("every netloom.io kind has health.lua, health_test.yaml and testdata, in Argo CD's layout", async (t) => {
    t.diagnostic(`gopher-lua ${await gopherLuaVersion()} (github.com/yuin/gopher-lua)`);
    assert.deepEqual(
      readdirSync(CUSTOMIZATIONS).sort(),
      KINDS.map((k) => k.kind).sort(),
      "one folder per kind, named by kind",
    );
    for (const k of KINDS) {
      const tests = checkLayout(k.kind, verdicts(k.kind));
      for (const x of tests) {
        // The object is a valid Netloom object by the schema the CRDs are generated from.
        const parsed = k.object.safeParse(input(k.kind, x));
        assert.ok(parsed.success, `${k.kind} ${x.inputPath}: ${parsed.error?.message}`);
      }
      if (KEEP_NAME.has(k.kind)) {
        const names = tests.map((x) => input(k.kind, x).metadata.name);
        assert.equal(new Set(names).size, names.length, `${k.kind}: a name per case`);
      }
    }
  });

  it("argocd-cm-patch.yaml carries exactly each kind's health.lua, and NetworkPolicy's", () => {
    const patch = parseYaml(
      readFileSync(join(REPO, "config", "argocd", "argocd-cm-patch.yaml"), "utf8"),
    ) as {
      kind: string;
      metadata: { name: string; namespace: string };
      data: Record<string, string>;
    };
    assert.equal(patch.kind, "ConfigMap");
    assert.equal(patch.metadata.name, "argocd-cm");
    // No resource.customizations.useOpenLibs.* key: the scripts need no standard library,
    // and the cases below run without one, as Argo CD runs argocd-cm scripts by default.
    assert.deepEqual(
      Object.keys(patch.data).sort(),
      [
        ...KINDS.map((k) => `resource.customizations.health.${GROUP}_${k.kind}`),
        NETWORK_POLICY_KEY,
      ].sort(),
    );
    for (const k of KINDS) {
      assert.equal(
        patch.data[`resource.customizations.health.${GROUP}_${k.kind}`],
        script(k.kind),
        `argocd-cm-patch.yaml differs from resource_customizations/${GROUP}/${k.kind}/health.lua: copy the file into the patch`,
      );
    }
    assert.equal(
      patch.data[NETWORK_POLICY_KEY],
      script("NetworkPolicy"),
      "argocd-cm-patch.yaml differs from resource_customizations/networking.k8s.io/NetworkPolicy/health.lua: copy the file into the patch",
    );
  });

  for (const k of KINDS) {
    it(`${k.kind}: every health_test.yaml case gives the expected status and message`, async () => {
      const tests = healthTests(k.kind);
      const results = await luaHealth(
        tests.map((x) => ({ script: script(k.kind), object: input(k.kind, x) })),
      );
      tests.forEach((x, i) => {
        assert.deepEqual(verdict(results[i]), x.healthStatus, `${k.kind} ${x.inputPath}`);
      });
    });
  }

  it("the engine is set up like Argo CD's: obj global, no string library, invalid status → Unknown", async () => {
    const object = { apiVersion: "v1", kind: "X", metadata: { name: "x", generation: 3 } };
    const [global, noString, invalid, notTable, error] = await luaHealth([
      {
        script: 'return { status = "Healthy", message = "generation " .. obj.metadata.generation }',
        object,
      },
      { script: 'return { status = "Healthy", message = string.format("%d", 1) }', object },
      { script: 'return { status = "Fine", message = "?" }', object },
      { script: 'return "Healthy"', object },
      { script: "error('boom')", object },
    ]);
    assert.deepEqual(verdict(global), { status: "Healthy", message: "generation 3" });
    assert.ok(noString && !noString.ok && /format/.test(noString.error), JSON.stringify(noString));
    assert.deepEqual(verdict(invalid), {
      status: "Unknown",
      message: "Lua returned an invalid health status",
    });
    assert.ok(notTable && !notTable.ok && /expect table output/.test(notTable.error));
    assert.ok(error && !error.ok && /boom/.test(error.error));
  });

  it("sparse objects (no generation, empty status, no conditions) are Progressing, not errors", async () => {
    // Except where an empty status has a meaning of its own (EMPTY_STATUS).
    for (const k of KINDS) {
      const sparse = [
        { apiVersion: `${GROUP}/${VERSION}`, kind: k.kind, metadata: { name: "x" } },
        {
          apiVersion: `${GROUP}/${VERSION}`,
          kind: k.kind,
          metadata: { name: "x", generation: 2 },
          status: {},
        },
        {
          apiVersion: `${GROUP}/${VERSION}`,
          kind: k.kind,
          metadata: { name: "x", generation: 1 },
          status: { observedGeneration: 1, conditions: [] },
        },
      ];
      const results = await luaHealth(sparse.map((object) => ({ script: script(k.kind), object })));
      results.forEach((r, i) => {
        const want = sparse[i]?.status ? (EMPTY_STATUS[k.kind] ?? "Progressing") : "Progressing";
        assert.equal(verdict(r).status, want, `${k.kind}: ${JSON.stringify(r)}`);
      });
    }
  });

  it("every testdata object is accepted by the real API server, and its copy gets the same verdict", async () => {
    const kc = cluster.kubeconfig;
    let n = 0;
    for (const k of KINDS) {
      const scratch = SCRATCH[k.kind];
      assert.ok(scratch, `a scratch field for ${k.kind}`);
      for (const x of healthTests(k.kind)) {
        const want = input(k.kind, x);
        const name = KEEP_NAME.has(k.kind) ? want.metadata.name : `case-${++n}`;
        const ns = k.scope === "Namespaced" ? (want.metadata.namespace ?? "default") : undefined;
        const path = resourcePath(GROUP, VERSION, k.plural, ns, name);
        const {
          uid: _u,
          resourceVersion: _r,
          creationTimestamp: _c,
          generation: _g,
          ...meta
        } = want.metadata;
        const generation = want.metadata.generation;
        const original = scratch.read(want.spec);
        // Reach the case's generation: create with a scratch value, change it generation-2
        // times, and end with the case's own spec.
        const first =
          generation > 1 ? mergePatch(want.spec, scratch.patch(scratch.value(0))) : want.spec;
        const created = await kubeRequest(
          kc,
          "POST",
          `${resourcePath(GROUP, VERSION, k.plural, ns)}?fieldValidation=Strict`,
          {
            body: {
              apiVersion: want.apiVersion,
              kind: want.kind,
              metadata: { ...meta, name },
              spec: first,
            },
          },
        );
        assert.equal(created.status, 201, `${x.inputPath}: ${created.body}`);
        for (let i = 1; i < generation; i++) {
          const v = i === generation - 1 ? (original ?? null) : scratch.value(i);
          const res = await kubeRequest(kc, "PATCH", `${path}?fieldValidation=Strict`, {
            body: { spec: scratch.patch(v) },
            contentType: "application/merge-patch+json",
          });
          assert.equal(res.status, 200, `${x.inputPath}: ${res.body}`);
        }
        if (want.status) {
          const res = await kubeRequest(kc, "PATCH", `${path}/status?fieldValidation=Strict`, {
            body: { status: want.status },
            contentType: "application/merge-patch+json",
          });
          assert.equal(res.status, 200, `${x.inputPath} status: ${res.body}`);
        }
        const got = (await kubeRequest(kc, "GET", path)).json<TestObject>();
        assert.equal(got.metadata.generation, generation, `${x.inputPath}: generation`);
        assert.deepEqual(
          got.spec,
          kindByName(k.kind).spec.parse(want.spec),
          `${x.inputPath}: spec`,
        );
        const [fromServer] = await luaHealth([{ script: script(k.kind), object: got }]);
        if (want.status) {
          assert.deepEqual(got.status, want.status, `${x.inputPath}: the server kept the status`);
          assert.deepEqual(verdict(fromServer), x.healthStatus, `${x.inputPath} (server copy)`);
        } else {
          // No status in the file: the server gives the CRD's status default, if any
          // (observedGeneration 0 for reconciled kinds; none for internal ones).
          const defaulted = statusDefault(k);
          assert.deepEqual(got.status, defaulted, `${x.inputPath}: defaulted`);
          if (defaulted === undefined) {
            assert.deepEqual(verdict(fromServer), x.healthStatus, `${x.inputPath} (server copy)`);
          } else {
            assert.equal(verdict(fromServer).status, x.healthStatus.status, x.inputPath);
          }
        }
      }
    }
  });

  describe("networking.k8s.io/NetworkPolicy, judged by the netloom.io/realization annotation", () => {
    const STATUS_OF: Record<RealizationSummary["state"], string> = {
      Realized: "Healthy",
      Progressing: "Progressing",
      Degraded: "Degraded",
    };
    const policy = (generation: number | undefined, annotation?: string): TestObject => ({
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: {
        name: "allow-frontend",
        namespace: "default",
        ...(generation === undefined ? {} : { generation }),
        ...(annotation === undefined
          ? {}
          : { annotations: { [REALIZATION_ANNOTATION]: annotation } }),
      } as TestObject["metadata"],
      spec: { podSelector: {}, policyTypes: ["Ingress"] },
    });
    const run = async (objects: TestObject[]) =>
      (await luaHealth(objects.map((object) => ({ script: script("NetworkPolicy"), object })))).map(
        verdict,
      );

    it("has health.lua, health_test.yaml and testdata in Argo CD's layout, for the operator's annotation", () => {
      checkLayout("NetworkPolicy", ["Healthy", "Progressing", "Degraded"]);
      assert.ok(
        script("NetworkPolicy").includes(`"${REALIZATION_ANNOTATION}"`),
        `health.lua reads ${REALIZATION_ANNOTATION}, the annotation the operator writes`,
      );
    });

    it("every health_test.yaml case gives the expected status and message", async () => {
      const tests = healthTests("NetworkPolicy");
      const results = await run(tests.map((x) => input("NetworkPolicy", x)));
      tests.forEach((x, i) => {
        assert.deepEqual(results[i], x.healthStatus, `NetworkPolicy ${x.inputPath}`);
      });
    });

    it("reads what the operator writes (JSON.stringify of its summary), whatever the message holds", async () => {
      const messages = [
        "realized on 3/3 nodes for 4 pod(s) (audit mode: 8 would-drop)",
        'quotes " and a backslash \\ and a tab \t and a newline \n',
        "unicode é — 日本 😀 and escaped controls \u0001\u001f",
        `a long one: ${"node-x (error), ".repeat(150)}`,
      ];
      const cases: { object: TestObject; want: { status: string; message: string } }[] = [];
      for (const state of ["Realized", "Progressing", "Degraded"] as const) {
        for (const [i, message] of messages.entries()) {
          const mode = i % 2 === 0 ? "Enforce" : "Audit";
          const summary: RealizationSummary = { generation: 5, mode, state, message };
          cases.push({
            object: policy(5, JSON.stringify(summary)),
            want: { status: STATUS_OF[state], message },
          });
        }
      }
      // The annotation describes another generation than the policy's: not a verdict on it.
      for (const generation of [4, 6]) {
        const summary: RealizationSummary = {
          generation,
          mode: "Enforce",
          state: "Realized",
          message: "m",
        };
        cases.push({
          object: policy(5, JSON.stringify(summary)),
          want: {
            status: "Progressing",
            message: `Waiting for Netloom to realize generation 5 (the ${REALIZATION_ANNOTATION} annotation describes generation ${generation})`,
          },
        });
      }
      const results = await run(cases.map((c) => c.object));
      cases.forEach((c, i) => {
        assert.deepEqual(results[i], c.want, JSON.stringify(c.object.metadata.annotations));
      });
    });

    it("anything else in the annotation is Progressing with the reason, never a script error", async () => {
      const bad = [
        ["", "not JSON: unexpected end at byte 1"],
        ["Realized", "not JSON: unexpected character at byte 1"],
        ['{"generation": 2, "state": "Realized"', "not JSON: expected , at byte 38"],
        [
          '{"generation": 2, "state": "Realized"} {}',
          "not JSON: unexpected character after the JSON value at byte 40",
        ],
        [
          '{"generation": 2, "state": "Realized", "message": "\\x"}',
          "not JSON: bad escape at byte 52",
        ],
        ['{"generation": 02, "state": "Realized"}', "not JSON: expected , at byte 17"],
        [
          '{"generation": 2, "state": "Realized", "message": "a\tb"}',
          "not JSON: control character in string at byte 53",
        ],
        [`${"[".repeat(30)}${"]".repeat(30)}`, "not JSON: nested too deeply at byte 21"],
        ["[2]", "not a JSON object"],
        ['{"generation": "2", "state": "Realized"}', "no generation"],
        ['{"generation": 1.5, "state": "Realized"}', "no generation"],
        ['{"generation": 2}', "no state"],
        ['{"generation": 2, "state": "Ready"}', "unknown state Ready"],
      ];
      const results = await run(bad.map(([annotation]) => policy(2, annotation)));
      bad.forEach(([annotation, why], i) => {
        assert.deepEqual(
          results[i],
          {
            status: "Progressing",
            message: `Waiting for Netloom to rewrite the ${REALIZATION_ANNOTATION} annotation, which cannot be read (${why})`,
          },
          annotation,
        );
      });
    });

    it("decodes annotations up to 4096 bytes within Argo CD's 1 s deadline; longer ones are Progressing", async () => {
      const empty = JSON.stringify({ generation: 2, state: "Degraded", message: "" });
      const message = (bytes: number) => "x".repeat(bytes - empty.length);
      const sized = (bytes: number) =>
        JSON.stringify({ generation: 2, state: "Degraded", message: message(bytes) });
      assert.equal(sized(4096).length, 4096);
      const started = Date.now();
      const [fits, tooLong] = await run([policy(2, sized(4096)), policy(2, sized(4097))]);
      assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
      assert.deepEqual(fits, { status: "Degraded", message: message(4096) });
      assert.deepEqual(tooLong, {
        status: "Progressing",
        message: `Waiting for Netloom to rewrite the ${REALIZATION_ANNOTATION} annotation, which cannot be read (longer than 4096 bytes)`,
      });
    });

    it("sparse objects (no generation, no annotations) are Progressing, not errors", async () => {
      const summary: RealizationSummary = {
        generation: 0,
        mode: "Enforce",
        state: "Realized",
        message: "m",
      };
      const [none, noGeneration] = await run([
        {
          apiVersion: "networking.k8s.io/v1",
          kind: "NetworkPolicy",
          metadata: { name: "x" },
        } as unknown as TestObject,
        policy(undefined, JSON.stringify(summary)),
      ]);
      assert.equal(none?.status, "Progressing");
      // The operator writes generation 0 for a policy without one; so does the script read it.
      assert.deepEqual(noGeneration, { status: "Healthy", message: "m" });
    });

    it("every testdata policy is accepted by the real API server, and its copy gets the same verdict", async () => {
      const kc = cluster.kubeconfig;
      const base = "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies";
      const scratch = "netloom.io/scratch";
      let n = 0;
      for (const x of healthTests("NetworkPolicy")) {
        const want = input("NetworkPolicy", x);
        assert.equal(want.metadata.namespace ?? "default", "default", x.inputPath);
        const name = `case-np-${++n}`;
        const {
          uid: _u,
          resourceVersion: _r,
          creationTimestamp: _c,
          generation,
          ...meta
        } = want.metadata;
        const spec = want.spec as { podSelector: { matchLabels?: Record<string, string> } };
        // Reach the case's generation: every spec change bumps it (annotations do not).
        const withScratch = (v: string | null) => ({
          podSelector: { matchLabels: { ...spec.podSelector.matchLabels, [scratch]: v } },
        });
        const first = generation > 1 ? mergePatch(want.spec, withScratch("scratch-0")) : want.spec;
        const created = await kubeRequest(kc, "POST", `${base}?fieldValidation=Strict`, {
          body: {
            apiVersion: want.apiVersion,
            kind: want.kind,
            metadata: { ...meta, name },
            spec: first,
          },
        });
        assert.equal(created.status, 201, `${x.inputPath}: ${created.body}`);
        for (let i = 1; i < generation; i++) {
          const res = await kubeRequest(kc, "PATCH", `${base}/${name}?fieldValidation=Strict`, {
            body: { spec: withScratch(i === generation - 1 ? null : `scratch-${i}`) },
            contentType: "application/merge-patch+json",
          });
          assert.equal(res.status, 200, `${x.inputPath}: ${res.body}`);
        }
        const got = (await kubeRequest(kc, "GET", `${base}/${name}`)).json<TestObject>();
        assert.equal(got.metadata.generation, generation, `${x.inputPath}: generation`);
        assert.deepEqual(got.spec, want.spec, `${x.inputPath}: spec`);
        assert.deepEqual(
          got.metadata.annotations,
          want.metadata.annotations,
          `${x.inputPath}: annotations`,
        );
        const [fromServer] = await run([got]);
        assert.deepEqual(fromServer, x.healthStatus, `${x.inputPath} (server copy)`);
      }
    });
  });
});
