/**
 * NetworkPolicy on the real kernel, measured with real connections in the cluster-in-a-box:
 *   - the seeds' matrix (test/fixtures/scenarios/seeds.yaml), connection by connection, TCP and
 *     UDP, each verdict also checked against policyVerdict, each deny with its reason;
 *   - a pod restarted with a new address keeps its identity (no identity write) and its policy;
 *   - audit mode counts instead of dropping, then enforces; PolicyRealization read by kstatus;
 *   - a differential test: random policy sets from the generator the pure differential test
 *     uses, every probe run for real and compared with the cyclonus matcher.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { REPO_ROOT } from "../../src/api/fixtures.js";
import { REALIZATION_ANNOTATION } from "../../src/api/policyrealization.js";
import { POD_HELPER } from "../../src/box/probe.js";
import {
  expectedProbeVerdict,
  type ProbeLine,
  type ProbeSpec,
  readScenario,
  type Scenario,
  ScenarioBox,
  scenarioSchema,
} from "../../src/box/scenario.js";
import { BPF_OBJECT } from "../../src/datapath-driver/linux/driver.js";
import { kubeRequest } from "../../src/kube/raw.js";
import type { NetworkPolicy } from "../../src/policy/networkpolicy.js";
import { CYCLONUS_VERSION, cyclonusVerdicts, type OracleQuery } from "../support/cyclonus.js";
import { eventually } from "../support/eventually.js";
import { kstatus } from "../support/kstatus.js";
import { NAMESPACES, policies } from "../support/policy-generators.js";
import { skipWhen, unmet } from "../support/prerequisites.js";
import { controlPlaneMissing } from "./support.js";

const unavailable =
  unmet({
    root: "network namespaces and eBPF: run as root",
    files: [
      { path: POD_HELPER, hint: "the compiled pod helper: make build" },
      { path: BPF_OBJECT, hint: "the compiled eBPF object: make bpf" },
    ],
    tools: ["ip", "nsenter", "go"],
  }) ?? controlPlaneMissing();

const line = (lines: ProbeLine[], from: string, to: string, port: number, protocol = "TCP") => {
  const hit = lines.find(
    (l) =>
      l.from === from &&
      l.to === to &&
      l.port === port &&
      l.protocol === protocol &&
      !l.ip.includes(":"),
  );
  assert.ok(hit, `probe ${from} → ${to}:${port}/${protocol}`);
  return hit;
};

describe("NetworkPolicy in the cluster-in-a-box: the seeds' matrix, restarts, audit mode", {
  skip: skipWhen(unavailable),
}, () => {
  const sc = readScenario(join(REPO_ROOT, "test/fixtures/scenarios/seeds.yaml"));
  const seedPolicies = sc.cases[0]!.policies as unknown as NetworkPolicy[];
  let box: ScenarioBox;
  let lines: ProbeLine[];
  const get = async (path: string) =>
    (await kubeRequest(box.kc, "GET", path)).json<{
      metadata: {
        annotations?: Record<string, string>;
        generation?: number;
        resourceVersion?: string;
      };
      status?: { wouldDrop?: number; mode?: string };
      items?: { metadata: { name: string; resourceVersion: string } }[];
    }>();

  before(async () => {
    box = await ScenarioBox.up(sc, {
      dir: mkdtempSync(join(tmpdir(), "netloom-np-")),
      prefix: "nnp",
      underlayOctet: 67,
    });
    lines = await box.runCase(sc.cases[0]!, 0);
  });
  after(async () => {
    if (box) await box.down();
  });

  it("the seeds' rows: agent → openai-proxy ALLOW, agent → postgres DENY, monitor → postgres ALLOW, landing-page → redis DENY, landing-page → agent DENY, every pod → metadata DENY", () => {
    assert.equal(line(lines, "app/agent", "app/openai-proxy", 443).verdict, "allow");
    assert.equal(line(lines, "app/agent", "app/openai-proxy", 443, "UDP").verdict, "allow");
    assert.equal(line(lines, "app/agent", "app/postgres", 5432).verdict, "deny");
    assert.equal(line(lines, "observability/monitor", "app/postgres", 5432).verdict, "allow");
    assert.equal(line(lines, "app/landing-page", "app/redis", 6379).verdict, "deny");
    assert.equal(line(lines, "app/landing-page", "app/redis", 6379, "UDP").verdict, "deny");
    assert.equal(line(lines, "app/landing-page", "app/agent", 8080).verdict, "deny");
    for (const pod of sc.pods) {
      const l = line(lines, `${pod.namespace}/${pod.name}`, "169.254.169.254", 80);
      assert.equal(l.verdict, "deny", `${pod.name} → metadata`);
      assert.equal(l.reason, "egress_deny", `${pod.name} → metadata: ${JSON.stringify(l)}`);
    }
  });

  it("every probe (TCP, UDP, IPv4, IPv6) measures what policyVerdict says, and each policy deny names the identities", () => {
    for (const [i, l] of lines.entries()) {
      const spec = sc.cases[0]!.probes[i]!;
      assert.equal(l.verdict, expectedProbeVerdict(sc, seedPolicies, spec), JSON.stringify(l));
      if (l.verdict === "deny" && l.to !== "169.254.169.254") {
        assert.equal(l.reason, "policy_denied", JSON.stringify(l));
        assert.deepEqual(l.identities, [box.identityOf.get(l.from), box.identityOf.get(l.to)]);
      }
    }
  });

  it("each policy has a PolicyRealization kstatus reads as Current, and the summary annotation Argo CD reads", async () => {
    const objects = [];
    for (const p of seedPolicies) {
      const path = `/apis/netloom.io/v1alpha1/namespaces/app/policyrealizations/${p.metadata.name}`;
      objects.push(await get(path));
      const np = await get(
        `/apis/networking.k8s.io/v1/namespaces/app/networkpolicies/${p.metadata.name}`,
      );
      const summary = JSON.parse(np.metadata.annotations?.[REALIZATION_ANNOTATION] ?? "{}");
      assert.equal(summary.state, "Realized", JSON.stringify(summary));
      assert.equal(summary.generation, np.metadata.generation);
    }
    for (const r of await kstatus(objects)) assert.equal(r.status, "Current", JSON.stringify(r));
  });

  it("a pod restarted with a new address keeps its identity (no identity written) and its policy", async () => {
    const identities = async () =>
      (await get("/apis/netloom.io/v1alpha1/networkidentities")).items!.map(
        (i) => `${i.metadata.name}@${i.metadata.resourceVersion}`,
      );
    const before = await identities();
    const identity = box.identityOf.get("app/postgres");
    const oldIP = box.pods.get("app/postgres")!.ip;
    const pod = await box.replacePod("app/postgres");
    assert.notEqual(pod.ip, oldIP, "a new address");
    assert.equal(box.identityOf.get("app/postgres"), identity, "the same identity");
    assert.deepEqual(await identities(), before, "no identity created or written");
    const probes: ProbeSpec[] = [
      { from: "app/landing-page", to: "app/postgres", port: 5432, protocol: "TCP", ipFamily: 4 },
      { from: "app/agent", to: "app/postgres", port: 5432, protocol: "TCP", ipFamily: 4 },
      {
        from: "observability/monitor",
        to: "app/postgres",
        port: 5432,
        protocol: "TCP",
        ipFamily: 4,
      },
    ];
    const after = await box.measure("restart", probes);
    assert.deepEqual(
      after.map((l) => l.verdict),
      ["deny", "deny", "allow"],
      JSON.stringify(after),
    );
    assert.equal(after[0]!.ip, pod.ip);
  });

  it("audit mode: the policy drops nothing and counts would-drops in its status; enforced, it drops", async () => {
    const agentToRedis: ProbeSpec[] = [
      { from: "app/agent", to: "app/redis", port: 6379, protocol: "TCP", ipFamily: 4 },
    ];
    const audited = {
      metadata: {
        name: "agent-egress",
        namespace: "app",
        annotations: { "netloom.io/audit": "true" },
      },
      spec: {
        podSelector: { matchLabels: { app: "agent" } },
        policyTypes: ["Egress"],
        egress: [{ to: [{ podSelector: { matchLabels: { app: "openai-proxy" } } }] }],
      },
    };
    const inAudit = await box.runCase(
      scenarioSchema.shape.cases.element.parse({
        name: "audit",
        policies: [...seedPolicies, audited],
        probes: agentToRedis,
      }),
      1,
    );
    assert.equal(inAudit[0]!.verdict, "allow", "audit mode drops nothing");
    const path = "/apis/netloom.io/v1alpha1/namespaces/app/policyrealizations/agent-egress";
    const counted = await eventually(
      "the would-drop count in the PolicyRealization",
      async () => {
        const r = await get(path);
        return r.status?.mode === "Audit" && (r.status.wouldDrop ?? 0) >= 1 ? r.status : undefined;
      },
      30_000,
    );
    assert.ok((counted.wouldDrop ?? 0) >= 1);

    const np = "/apis/networking.k8s.io/v1/namespaces/app/networkpolicies/agent-egress";
    const patched = await kubeRequest(box.kc, "PATCH", np, {
      body: { metadata: { annotations: { "netloom.io/audit": "false" } } },
      contentType: "application/merge-patch+json",
    });
    assert.equal(patched.status, 200, patched.body);
    await eventually(
      "the policy realized in enforce mode",
      async () => {
        const s = JSON.parse(
          (await get(np)).metadata.annotations?.[REALIZATION_ANNOTATION] ?? "{}",
        );
        return s.mode === "Enforce" && s.state === "Realized";
      },
      60_000,
    );
    const enforced = await box.measure("enforce", agentToRedis);
    assert.equal(enforced[0]!.verdict, "deny", JSON.stringify(enforced[0]));
    assert.equal(enforced[0]!.reason, "policy_denied");
  });

  it("policyEnforcement: Never lets everything through and says so in the realization; Always isolates every pod", async () => {
    const nc = "/apis/netloom.io/v1alpha1/networkconfigs/default";
    const setMode = async (mode: string) => {
      const r = await kubeRequest(box.kc, "PATCH", nc, {
        body: { spec: { policyEnforcement: mode } },
        contentType: "application/merge-patch+json",
      });
      assert.equal(r.status, 200, r.body);
      const generation = r.json<{ metadata: { generation: number } }>().metadata.generation;
      await eventually(
        `every node applied NetworkConfig generation ${generation} (${mode})`,
        async () => {
          const states = (await get("/apis/netloom.io/v1alpha1/nodenetworkstates")) as unknown as {
            items: { status?: { sources?: { networkConfig?: { generation: number } } } }[];
          };
          return states.items.every(
            (i) => i.status?.sources?.networkConfig?.generation === generation,
          );
        },
        60_000,
      );
    };
    const probes: ProbeSpec[] = [
      { from: "app/landing-page", to: "app/redis", port: 6379, protocol: "TCP", ipFamily: 4 },
      {
        from: "observability/monitor",
        to: "app/landing-page",
        port: 80,
        protocol: "TCP",
        ipFamily: 4,
      },
    ];
    const verdicts = async (name: string) =>
      (await box.measure(name, probes)).map((l) => l.verdict);
    assert.deepEqual(await verdicts("default"), ["deny", "allow"], "Default: as the policies say");

    await setMode("Never");
    assert.deepEqual(await verdicts("never"), ["allow", "allow"], "Never: nothing enforced");
    const redis = await eventually(
      "the redis policy reported as not realizable",
      async () => {
        const np = await get("/apis/networking.k8s.io/v1/namespaces/app/networkpolicies/redis");
        const s = JSON.parse(np.metadata.annotations?.[REALIZATION_ANNOTATION] ?? "{}");
        return s.state === "Degraded" ? s : undefined;
      },
      30_000,
    );
    assert.match(redis.message, /policyEnforcement: Never/);

    await setMode("Always");
    assert.deepEqual(
      await verdicts("always"),
      ["deny", "deny"],
      "Always: monitor and landing-page, which no policy selects, are isolated too",
    );
    await setMode("Default");
    assert.deepEqual(await verdicts("default again"), ["deny", "allow"]);
  });
});

/** The differential scenario: pods in the generator's namespaces, random policy sets. */
function differentialScenario(seed: number, cases: number, probesPerCase: number): Scenario {
  const pods = [
    { namespace: "a", name: "web", labels: { app: "web" }, node: 1, http: true },
    { namespace: "a", name: "db", labels: { app: "db", tier: "db" }, node: 2, http: false },
    { namespace: "b", name: "web", labels: { app: "web", tier: "front" }, node: 2, http: true },
    { namespace: "b", name: "front", labels: { app: "front" }, node: 1, http: false },
    { namespace: "c", name: "db", labels: { app: "db" }, node: 1, http: true },
    { namespace: "c", name: "plain", labels: {}, node: 2, http: false },
  ];
  const conns = [
    [80, "TCP"],
    [443, "TCP"],
    [5432, "TCP"],
    [80, "UDP"],
  ] as const;
  const sets = fc.sample(policies, { seed, numRuns: cases });
  const picks = fc.sample(
    fc.array(
      fc.record({
        from: fc.nat(pods.length - 1),
        to: fc.nat(pods.length - 1),
        conn: fc.nat(conns.length - 1),
      }),
      { minLength: probesPerCase, maxLength: probesPerCase },
    ),
    { seed: seed + 1, numRuns: cases },
  );
  const key = (i: number) => `${pods[i]!.namespace}/${pods[i]!.name}`;
  return scenarioSchema.parse({
    nodes: 2,
    namespaces: NAMESPACES,
    pods: pods.map((p) => ({
      namespace: p.namespace,
      name: p.name,
      labels: p.labels,
      node: p.node,
      ports: p.http ? [{ name: "http", port: 80 }] : [],
    })),
    cases: sets.map((set, i) => ({
      name: `set-${i + 1}`,
      policies: set.map((p, j) => ({ ...p, metadata: { ...p.metadata, name: `p${j}` } })),
      probes: picks[i]!.filter((x) => x.from !== x.to).map((x) => ({
        from: key(x.from),
        to: key(x.to),
        port: conns[x.conn]![0],
        protocol: conns[x.conn]![1],
      })),
    })),
  });
}

describe(`NetworkPolicy in the kernel against the cyclonus matcher ${CYCLONUS_VERSION} (differential, real connections)`, {
  skip: skipWhen(unavailable),
}, () => {
  const seed = Number(process.env.NETLOOM_FC_SEED ?? 20261130);
  const cases = Number(process.env.NETLOOM_NP_CASES ?? 20);
  const sc = differentialScenario(seed, cases, Number(process.env.NETLOOM_NP_PROBES ?? 14));
  let box: ScenarioBox;
  before(async () => {
    box = await ScenarioBox.up(sc, {
      dir: mkdtempSync(join(tmpdir(), "netloom-npd-")),
      prefix: "nnd",
      underlayOctet: 68,
    });
  });
  after(async () => {
    if (box) await box.down();
  });

  it(`${cases} random policy sets, every probe measured and compared (seed ${seed})`, async () => {
    let probes = 0;
    const disagreements: string[] = [];
    for (const [i, c] of sc.cases.entries()) {
      const measured = await box.runCase(c, i);
      const queries: OracleQuery[] = c.probes.map((p) => {
        const peer = (key: string) => {
          const pod = sc.pods.find((x) => `${x.namespace}/${x.name}` === key)!;
          const ns = sc.namespaces.find((n) => n.name === pod.namespace);
          return {
            namespace: pod.namespace,
            podLabels: pod.labels,
            namespaceLabels: ns?.labels ?? {},
          };
        };
        const dst = sc.pods.find((x) => `${x.namespace}/${x.name}` === p.to)!;
        const named = dst.ports.find((x) => x.port === p.port && x.protocol === p.protocol)?.name;
        return {
          source: peer(p.from),
          destination: peer(p.to),
          port: p.port,
          ...(named ? { portName: named } : {}),
          protocol: p.protocol,
        };
      });
      const oracle = await cyclonusVerdicts({ policies: c.policies, queries });
      measured.forEach((l, j) => {
        const want = oracle[j]!.allowed ? "allow" : "deny";
        if (l.verdict !== want)
          disagreements.push(
            `${c.name}: ${l.from} → ${l.to}:${l.port}/${l.protocol} measured ${l.verdict}, cyclonus ${want}\n  policies: ${JSON.stringify(c.policies)}`,
          );
      });
      probes += measured.length;
    }
    process.stderr.write(
      `datapath vs cyclonus: ${probes} probes over ${sc.cases.length} policy sets\n`,
    );
    assert.deepEqual(disagreements, []);
    assert.ok(probes >= 200, `${probes} probes`);
  });
});
