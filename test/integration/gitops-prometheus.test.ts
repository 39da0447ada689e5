// Alerts and dashboards: config/prometheus/rules.yaml checked and unit-tested with promtool
// (Debian package `prometheus`; `make deps` installs it as root), the
// PrometheusRule kept identical to it, and the Grafana dashboard config/grafana/netloom.json
// using only metrics the operator and the agent export. No API server is needed here: these are
// checks of files with the tools Prometheus and Grafana users run.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { parse as parseYaml } from "yaml";
import { skipOrFail, unmet } from "../support/prerequisites.js";

const execFileP = promisify(execFile);
const REPO = repoRoot();
const PROM = join(REPO, "config", "prometheus");

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error("no package.json above this test");
    dir = parent;
  }
  return dir;
}

/**
 * Metrics the operator and the agent export, read from the prom-client definitions in src/
 * (`new Counter|Gauge|Histogram({ name: "…" })`), so rules and panels cannot name a metric
 * the code does not have. Histograms also have _bucket, _sum and _count.
 */
function definedMetrics(): { plain: string[]; histograms: string[] } {
  const plain: string[] = [];
  const histograms: string[] = [];
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
    );
  for (const file of walk(join(REPO, "src"))) {
    if (!file.endsWith(".ts") || file.endsWith(".test.ts")) continue;
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/new (Counter|Gauge|Histogram)(?:<[^>]*>)?\(\{\s*name: "(\w+)"/g))
      (m[1] === "Histogram" ? histograms : plain).push(m[2]!);
  }
  return { plain: plain.sort(), histograms: histograms.sort() };
}
const { plain: COUNTERS_AND_GAUGES, histograms: HISTOGRAMS } = definedMetrics();
const EXPORTED = new Set([
  ...COUNTERS_AND_GAUGES,
  ...HISTOGRAMS.flatMap((h) => [`${h}_bucket`, `${h}_sum`, `${h}_count`]),
]);

const PROMQL_KEYWORDS = new Set([
  "and",
  "or",
  "unless",
  "bool",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "offset",
  "inf",
  "nan",
  "atan2",
]);

/**
 * The metric names a PromQL expression selects: identifiers outside strings, label matchers,
 * ranges and grouping lists that are not function calls or keywords.
 */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ")
    .replace(/\boffset\s+-?[0-9a-z]+/g, " ");
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:]|\s*\()/g)) {
    const id = m[1] ?? "";
    if (!PROMQL_KEYWORDS.has(id)) names.add(id);
  }
  return [...names].sort();
}

interface RuleGroup {
  name: string;
  rules: {
    alert?: string;
    record?: string;
    expr: string;
    for?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  }[];
}

function ruleGroups(): RuleGroup[] {
  return (parseYaml(readFileSync(join(PROM, "rules.yaml"), "utf8")) as { groups: RuleGroup[] })
    .groups;
}

function alerts(): Map<string, RuleGroup["rules"][number]> {
  return new Map(ruleGroups().flatMap((g) => g.rules.map((r) => [r.alert ?? "", r] as const)));
}

/** Why promtool cannot run here (make deps installs the Debian package prometheus as root). */
const noPromtool = unmet({ tools: ["promtool"] });

async function promtool(args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await execFileP("promtool", args, { cwd: REPO });
    return stdout + stderr;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    assert.fail(`promtool ${args.join(" ")} failed:\n${e.stdout ?? ""}${e.stderr ?? e.message}`);
  }
}

describe("Prometheus alerts (config/prometheus)", () => {
  it("the PrometheusRule embeds exactly the groups of rules.yaml", () => {
    const pr = parseYaml(readFileSync(join(PROM, "prometheusrule.yaml"), "utf8")) as {
      apiVersion: string;
      kind: string;
      metadata: { name: string; namespace: string };
      spec: { groups: RuleGroup[] };
    };
    assert.equal(pr.apiVersion, "monitoring.coreos.com/v1");
    assert.equal(pr.kind, "PrometheusRule");
    assert.equal(pr.metadata.namespace, "netloom-system");
    assert.deepEqual(
      pr.spec.groups,
      ruleGroups(),
      "prometheusrule.yaml spec.groups must be rules.yaml's groups (indent rules.yaml by two spaces)",
    );
  });

  it("has the drift, convergence, handshake, drops and leader alerts, on the right expressions", () => {
    const a = alerts();
    const expr = (name: string) => {
      const r = a.get(name);
      assert.ok(r, `alert ${name}`);
      return r.expr.replace(/\s+/g, " ").trim();
    };
    assert.match(
      expr("NetloomDriftDetected"),
      /increase\(netloom_agent_drift_events_total\[10m\]\)\) > 0$/,
    );
    assert.equal(a.get("NetloomDriftDetected")?.for, undefined, "drift alerts at once");
    assert.match(expr("NetloomNodesNotConverged"), /netloom_resource_nodes\{state="desired"\}/);
    assert.match(expr("NetloomNodesNotConverged"), /netloom_resource_nodes\{state="ready"\}/);
    assert.equal(a.get("NetloomNodesNotConverged")?.for, "15m");
    assert.equal(
      expr("NetloomWireGuardPeersWithoutSession"),
      'max by (node) (netloom_agent_wireguard_peers{state="without_session"}) > 0',
    );
    assert.equal(a.get("NetloomWireGuardPeersWithoutSession")?.for, "5m");
    assert.match(
      expr("NetloomPolicyDropsSpiking"),
      /rate\(netloom_agent_drops_total\{reason="policy_denied"\}\[5m\]\)\) > \d+$/,
    );
    assert.match(
      expr("NetloomOperatorNoLeader"),
      /^max\(leader_election_master_status\{name="netloom-operator"\}\) < 1/,
    );
    assert.equal(a.get("NetloomOperatorNoLeader")?.for, "5m");
    for (const [name, r] of a) {
      assert.ok(["warning", "critical"].includes(r.labels?.severity ?? ""), `${name}: severity`);
      assert.ok(r.annotations?.summary && r.annotations.description, `${name}: annotations`);
    }
  });

  it("alerts select only metrics Netloom exports", () => {
    for (const [name, r] of alerts()) {
      for (const m of metricNames(r.expr)) {
        assert.ok(EXPORTED.has(m), `${name}: ${m} is not a Netloom metric`);
      }
    }
  });

  it("every alert has unit tests where it fires and where it stays silent", () => {
    const t = parseYaml(readFileSync(join(PROM, "rules.test.yaml"), "utf8")) as {
      rule_files: string[];
      tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
    };
    assert.deepEqual(t.rule_files, ["rules.yaml"]);
    const cases = t.tests.flatMap((x) => x.alert_rule_test ?? []);
    for (const name of alerts().keys()) {
      const mine = cases.filter((c) => c.alertname === name);
      assert.ok(
        mine.some((c) => (c.exp_alerts?.length ?? 0) > 0),
        `${name}: a firing case`,
      );
      assert.ok(
        mine.some((c) => (c.exp_alerts?.length ?? 0) === 0),
        `${name}: a silent case`,
      );
    }
  });

  it("promtool check rules: rules.yaml and the PrometheusRule's groups", async (t) => {
    if (noPromtool) return skipOrFail(t, noPromtool);
    t.diagnostic((await promtool(["--version"])).split("\n")[0] ?? "");
    const out = await promtool(["check", "rules", "config/prometheus/rules.yaml"]);
    assert.match(out, /SUCCESS: 7 rules found/);
    const dir = mkdtempSync(join(tmpdir(), "netloom-promrule-"));
    try {
      const pr = parseYaml(readFileSync(join(PROM, "prometheusrule.yaml"), "utf8")) as {
        spec: { groups: RuleGroup[] };
      };
      const file = join(dir, "prometheusrule-groups.json");
      writeFileSync(file, JSON.stringify({ groups: pr.spec.groups }));
      assert.match(await promtool(["check", "rules", file]), /SUCCESS: 7 rules found/);
      // promtool refuses a broken rule: the check itself can fail.
      const broken = join(dir, "broken.yaml");
      writeFileSync(
        broken,
        "groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: rate(x[5m]) >\n",
      );
      await assert.rejects(execFileP("promtool", ["check", "rules", broken]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("promtool test rules: config/prometheus/rules.test.yaml", async (t) => {
    if (noPromtool) return skipOrFail(t, noPromtool);
    const out = await promtool(["test", "rules", "config/prometheus/rules.test.yaml"]);
    assert.match(out, /SUCCESS/);
  });
});

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type: string; uid: string };
  targets?: { expr: string; refId: string }[];
  panels?: Panel[];
}

describe("Grafana dashboard (config/grafana/netloom.json)", () => {
  const dashboard = JSON.parse(
    readFileSync(join(REPO, "config", "grafana", "netloom.json"), "utf8"),
  ) as {
    uid: string;
    title: string;
    panels: Panel[];
    templating: { list: { name: string; type: string; query?: string | { query: string } }[] };
  };
  const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
  const queries = panels.filter((p) => p.type !== "row");

  it("is a dashboard: uid, title, unique panel ids, panels inside the 24-column grid", () => {
    assert.equal(dashboard.uid, "netloom-overview");
    assert.ok(dashboard.title);
    const ids = panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, "unique panel ids");
    for (const p of panels) {
      assert.ok(p.gridPos.x >= 0 && p.gridPos.x + p.gridPos.w <= 24, `${p.title}: inside the grid`);
    }
    assert.ok(queries.length >= 10);
    for (const p of queries) {
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax
      assert.deepEqual(p.datasource, { type: "prometheus", uid: "${datasource}" }, p.title);
      assert.ok(p.targets?.length, `${p.title}: has queries`);
    }
    assert.ok(
      dashboard.templating.list.some((v) => v.name === "datasource" && v.type === "datasource"),
    );
  });

  it("the metric list comes from the code and holds the operator's and the agent's metrics", () => {
    for (const m of [
      "controller_runtime_reconcile_total",
      "leader_election_master_status",
      "netloom_resource_nodes",
      "netloom_agent_drops_total",
      "netloom_agent_wireguard_peers",
      "netloom_agent_wireguard_latest_handshake_seconds",
    ])
      assert.ok(COUNTERS_AND_GAUGES.includes(m), `${m} among ${COUNTERS_AND_GAUGES.join(", ")}`);
    assert.ok(HISTOGRAMS.includes("controller_runtime_reconcile_time_seconds"));
    assert.ok(HISTOGRAMS.includes("netloom_agent_reconcile_duration_seconds"));
  });

  it("the metric-name check finds what it must", () => {
    assert.deepEqual(
      metricNames(
        'sum by (node, le) (rate(foo_seconds_bucket{a="b", c=~"$x"}[$__rate_interval])) / on (node) bar_total offset 5m > 0.99',
      ),
      ["bar_total", "foo_seconds_bucket"],
    );
    assert.deepEqual(metricNames("histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))"), [
      "x_bucket",
    ]);
    assert.deepEqual(metricNames('max(up{job="a"}) < 1 or absent(up)'), ["up"]);
  });

  it("every panel's expr (and the node variable) uses only metrics Netloom exports", () => {
    const used = new Set<string>();
    for (const p of queries) {
      for (const target of p.targets ?? []) {
        const names = metricNames(target.expr);
        assert.ok(names.length > 0, `${p.title} ${target.refId}: selects a metric`);
        for (const m of names) {
          assert.ok(EXPORTED.has(m), `${p.title} ${target.refId}: ${m} is not a Netloom metric`);
          used.add(m.replace(/_(bucket|sum|count)$/, ""));
        }
      }
    }
    for (const v of dashboard.templating.list.filter((x) => x.type === "query")) {
      const q = typeof v.query === "string" ? v.query : (v.query?.query ?? "");
      const inner = /^label_values\((.+),\s*\w+\)$/.exec(q)?.[1] ?? q;
      for (const m of metricNames(inner)) assert.ok(EXPORTED.has(m), `variable ${v.name}: ${m}`);
    }
    // And the dashboard shows every one of them.
    for (const m of [...COUNTERS_AND_GAUGES, ...HISTOGRAMS]) {
      assert.ok(used.has(m), `no panel shows ${m}`);
    }
  });
});
