/**
 * Flow visibility on the real kernel, end to end: the agents' authenticated flow endpoint,
 * `netloom observe` streaming a denied connection with its reason and both pods, the metrics
 * agreeing with the events, a 10,000 packets/s flood (the agent's CPU and lost events), and the
 * live service map rendered in headless Chromium (nodes and edges checked in the DOM).
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { REPO_ROOT, readManifests } from "../../src/api/fixtures.js";
import { POD_HELPER } from "../../src/box/probe.js";
import { type ProbeSpec, ScenarioBox, scenarioSchema } from "../../src/box/scenario.js";
import { BPF_OBJECT } from "../../src/datapath-driver/linux/driver.js";
import type { Flow, FlowLine } from "../../src/flows/flow.js";
import type { ServiceMap } from "../../src/flows/servicemap.js";
import { kubeRequest } from "../../src/kube/raw.js";
import { eventually } from "../support/eventually.js";
import { skipWhen, unmet } from "../support/prerequisites.js";
import { controlPlaneMissing } from "./support.js";

const NETLOOM = join(REPO_ROOT, "bin", "netloom.js");

const unavailable =
  unmet({
    root: "network namespaces and eBPF: run as root",
    btf: true,
    files: [
      { path: POD_HELPER, hint: "the compiled pod helper: make build" },
      { path: BPF_OBJECT, hint: "the compiled eBPF object: make bpf" },
    ],
    tools: ["ip", "nsenter", "chromium"],
  }) ?? controlPlaneMissing();

const scenario = scenarioSchema.parse({
  nodes: 2,
  namespaces: [{ name: "shop" }],
  networkConfig: { egressDeny: [{ cidr: "169.254.169.254/32" }] },
  pods: [
    { namespace: "shop", name: "web", node: 1, labels: { app: "web" } },
    { namespace: "shop", name: "intruder", node: 1, labels: { app: "intruder" } },
    {
      namespace: "shop",
      name: "db",
      node: 2,
      labels: { app: "db" },
      ports: [
        { name: "pg", port: 5432 },
        { port: 5433, protocol: "UDP" },
      ],
    },
  ],
  cases: [
    {
      name: "db",
      policies: [
        {
          metadata: { name: "db", namespace: "shop" },
          spec: {
            podSelector: { matchLabels: { app: "db" } },
            policyTypes: ["Ingress"],
            ingress: [
              { from: [{ podSelector: { matchLabels: { app: "web" } } }], ports: [{ port: "pg" }] },
            ],
          },
        },
      ],
      probes: [
        { from: "shop/web", to: "shop/db", port: 5432 },
        { from: "shop/intruder", to: "shop/db", port: 5432 },
        { from: "shop/web", to: "169.254.169.254", port: 80 },
      ],
    },
  ],
});

const denied: ProbeSpec = {
  from: "shop/intruder",
  to: "shop/db",
  port: 5432,
  protocol: "TCP",
  ipFamily: 4,
};
const allowed: ProbeSpec = {
  from: "shop/web",
  to: "shop/db",
  port: 5432,
  protocol: "TCP",
  ipFamily: 4,
};

/** A running `netloom observe`, its stdout lines as they arrive (with when they arrived). */
function observe(box: ScenarioBox, args: string[]) {
  const child = spawn(
    process.execPath,
    [
      NETLOOM,
      "observe",
      "--kubeconfig",
      box.s.kubeconfigPath,
      "--service-account",
      "netloom-system/observer",
      ...args,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const lines: { at: number; text: string }[] = [];
  const errors: string[] = [];
  createInterface({ input: child.stdout! }).on("line", (text) =>
    lines.push({ at: Date.now(), text }),
  );
  createInterface({ input: child.stderr! }).on("line", (text) => errors.push(text));
  return { child, lines, errors };
}

const stop = (c: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (c.exitCode !== null) return resolve();
    c.once("exit", () => resolve());
    c.kill("SIGTERM");
  });

describe("flow visibility in the cluster-in-a-box: the endpoint, netloom observe, metrics, the service map", {
  skip: skipWhen(unavailable),
}, () => {
  let box: ScenarioBox;
  const dir = mkdtempSync(join(tmpdir(), "netloom-flows-"));
  const flowsURL = (node: number) => `http://${box.s.nodes[node]!.ip}:9962/v1/flows`;
  const metric = async (node: number, name: string, match: string) => {
    const text = await (await fetch(`http://${box.s.nodes[node]!.ip}:9962/metrics`)).text();
    return text
      .split("\n")
      .filter((l) => l.startsWith(`${name}{`) && l.includes(match))
      .reduce((sum, l) => sum + Number(l.split(" ").at(-1)), 0);
  };
  const token = async (sa: string) => {
    const r = await kubeRequest(
      box.kc,
      "POST",
      `/api/v1/namespaces/netloom-system/serviceaccounts/${sa}/token`,
      {
        body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: {} },
      },
    );
    return r.json<{ status: { token: string } }>().status.token;
  };

  before(async () => {
    box = await ScenarioBox.up(scenario, { dir, prefix: "nfl", underlayOctet: 69 });
    await box.runCase(scenario.cases[0]!, 0);
    // Who may read flows: the shipped role, bound to one service account; another has nothing.
    const role = readManifests("config/rbac").find(
      (m) => m.object.kind === "ClusterRole" && m.object.metadata?.name === "netloom-flows-reader",
    );
    assert.ok(role, "config/rbac has the netloom-flows-reader ClusterRole");
    const created = await kubeRequest(
      box.kc,
      "POST",
      "/apis/rbac.authorization.k8s.io/v1/clusterroles",
      {
        body: role.object,
      },
    );
    assert.equal(created.status, 201, created.body);
    for (const sa of ["observer", "nobody"])
      await kubeRequest(box.kc, "POST", "/api/v1/namespaces/netloom-system/serviceaccounts", {
        body: {
          apiVersion: "v1",
          kind: "ServiceAccount",
          metadata: { name: sa, namespace: "netloom-system" },
        },
      });
    await kubeRequest(box.kc, "POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
      body: {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRoleBinding",
        metadata: { name: "observer-reads-flows" },
        roleRef: {
          apiGroup: "rbac.authorization.k8s.io",
          kind: "ClusterRole",
          name: "netloom-flows-reader",
        },
        subjects: [{ kind: "ServiceAccount", name: "observer", namespace: "netloom-system" }],
      },
    });
  });
  after(async () => {
    if (box) await box.down();
  });

  it("the flow endpoint refuses anonymous clients (401) and tokens without the role (403)", async () => {
    const anonymous = await fetch(flowsURL(1));
    assert.equal(anonymous.status, 401, await anonymous.text());
    const nobody = await fetch(flowsURL(1), {
      headers: { authorization: `Bearer ${await token("nobody")}` },
    });
    assert.equal(nobody.status, 403, await nobody.text());
    const observer = await fetch(`${flowsURL(1)}?limit=1`, {
      headers: { authorization: `Bearer ${await token("observer")}` },
    });
    assert.equal(observer.status, 200, await observer.text());
  });

  it("a denied connection shows in netloom observe --verdict DROPPED within 1 s, with its reason and both pods; the metrics agree", async () => {
    const o = observe(box, ["--follow", "--verdict", "DROPPED", "--output", "json"]);
    try {
      // The stream is up once a first request went through: wait for the CLI to connect.
      await eventually(
        "observe connected",
        () => o.errors.length === 0 && o.child.exitCode === null,
        5_000,
      );
      await new Promise((r) => setTimeout(r, 1000));
      const before = await metric(
        1,
        "netloom_agent_flows_total",
        'verdict="DROPPED",reason="policy_denied"',
      );
      const sentAt = Date.now();
      const [probe] = await box.measure("deny", [denied]);
      assert.equal(probe!.verdict, "deny");
      const hit = await eventually(
        "the drop in netloom observe",
        () =>
          o.lines.find(
            (l) => (JSON.parse(l.text) as { flow: Flow }).flow.destination.pod_name === "db",
          ),
        10_000,
      );
      const delay = hit.at - sentAt;
      const flow = (JSON.parse(hit.text) as Extract<FlowLine, { flow: Flow }>).flow;
      process.stderr.write(`[flows] denied connection seen by netloom observe after ${delay} ms\n`);
      assert.ok(delay <= 1000, `within 1 s: ${delay} ms`);
      assert.equal(flow.verdict, "DROPPED");
      assert.equal(flow.drop_reason_desc, "POLICY_DENIED");
      assert.equal(flow.source.pod_name, "intruder");
      assert.equal(flow.source.namespace, "shop");
      assert.equal(flow.destination.pod_name, "db");
      assert.equal(flow.traffic_direction, "INGRESS");
      assert.deepEqual(flow.ingress_denied_by, [
        { kind: "NetworkPolicy", namespace: "shop", name: "db" },
      ]);
      // The denied probe retried (SYNs retransmit): every drop is one event and one count. The
      // stream carries only what came after it connected, and nothing else was dropped since.
      await new Promise((r) => setTimeout(r, 1500));
      const seen = o.lines.filter((l) => {
        const f = (JSON.parse(l.text) as { flow: Flow }).flow;
        return f.destination.pod_name === "db";
      }).length;
      const after = await metric(
        1,
        "netloom_agent_flows_total",
        'verdict="DROPPED",reason="policy_denied"',
      );
      assert.equal(after - before, seen, `metric grew by ${after - before}, observe saw ${seen}`);
    } finally {
      await stop(o.child);
    }
  });

  it("an egress-deny drop names the NetworkConfig that denied it (netloom observe, not following)", async () => {
    const [probe] = await box.measure("metadata", [
      { from: "shop/web", to: "169.254.169.254", port: 80, protocol: "TCP", ipFamily: 4 },
    ]);
    assert.equal(probe!.verdict, "deny");
    const out = execFileSync(
      process.execPath,
      [
        NETLOOM,
        "observe",
        "--kubeconfig",
        box.s.kubeconfigPath,
        "--service-account",
        "netloom-system/observer",
        "--reason",
        "egress_denied",
        "--from-pod",
        "shop/web",
        "--since",
        "1m",
        "--output",
        "json",
      ],
      { encoding: "utf8" },
    );
    const flows = out
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { flow: Flow }).flow);
    assert.ok(flows.length > 0, "the drop is listed");
    for (const f of flows) {
      assert.equal(f.drop_reason_desc, "EGRESS_DENIED");
      assert.equal(f.IP.destination, "169.254.169.254");
      assert.equal(f.traffic_direction, "EGRESS");
      assert.deepEqual(f.egress_denied_by, [{ kind: "NetworkConfig", name: "default" }]);
    }
  });

  it("a 10,000 packets/s flood of denied packets: the agent's CPU is measured and lost events are counted, not hidden", async () => {
    const agentPid = box.s.pids.agents[box.s.nodes[1]!.name]!;
    const cpu = () => {
      const f = readFileSync(`/proc/${agentPid}/stat`, "utf8").split(") ")[1]!.split(" ");
      return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks
    };
    const ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    const db = box.pods.get("shop/db")!;
    const intruder = box.pods.get("shop/intruder")!;
    const before = {
      cpu: cpu(),
      events: await metric(1, "netloom_agent_flows_total", 'verdict="DROPPED"'),
      lost: await metric(1, "netloom_agent_flow_events_lost_total", ""),
    };
    const seconds = 3;
    const t0 = Date.now();
    // UDP to a port nobody may reach: every packet is a drop, so every packet is an event.
    const script = `const s=require("node:dgram").createSocket("udp4");const b=Buffer.alloc(64);let n=0;const end=Date.now()+${seconds * 1000};const tick=()=>{for(let i=0;i<120;i++){s.send(b,5433,"${db.ip}");n++}if(Date.now()<end)setTimeout(tick,10);else setTimeout(()=>{console.log(n);s.close()},100)};tick();`;
    const sent = Number(
      execFileSync(
        "nsenter",
        [`--net=/run/netns/${intruder.netns}`, process.execPath, "-e", script],
        { encoding: "utf8" },
      ).trim(),
    );
    const wall = (Date.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 1500)); // the last polls
    const after = {
      cpu: cpu(),
      events: await metric(1, "netloom_agent_flows_total", 'verdict="DROPPED"'),
      lost: await metric(1, "netloom_agent_flow_events_lost_total", ""),
    };
    const counted = after.events - before.events;
    const lost = after.lost - before.lost;
    const cpuPercent = ((after.cpu - before.cpu) / ticks / (wall + 1.5)) * 100;
    process.stderr.write(
      `[flows] flood: ${sent} packets in ${wall.toFixed(1)} s (${Math.round(sent / wall)}/s); agent counted ${counted} drops, ${lost} events lost; agent CPU ${cpuPercent.toFixed(1)} % of one core\n`,
    );
    assert.ok(sent / wall > 5000, `the flood ran (${Math.round(sent / wall)} packets/s)`);
    assert.ok(
      counted + lost >= sent * 0.95,
      `every packet is an event or a counted loss: ${counted} + ${lost} of ${sent}`,
    );
    assert.ok(cpuPercent < 100, `the agent's CPU stays bounded: ${cpuPercent.toFixed(1)} %`);
  });

  it("netloom observe --ui draws the service map (nodes and edges in the DOM, headless Chromium) and a screenshot", async () => {
    const o = spawn(
      process.execPath,
      [
        NETLOOM,
        "observe",
        "--kubeconfig",
        box.s.kubeconfigPath,
        "--service-account",
        "netloom-system/observer",
        "--ui",
        "--since",
        "10m",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    try {
      const stderr: string[] = [];
      createInterface({ input: o.stderr! }).on("line", (l) => stderr.push(l));
      const url = await eventually(
        "the page's address",
        () => stderr.join("\n").match(/open (http:\/\/\S+)/)?.[1],
        10_000,
      );
      await box.measure("map", [allowed, denied]);
      // The data first (the page's own API), then the page drawing it: a failure says which.
      const edge = (m: ServiceMap, from: string, verdict: "forwarded" | "dropped") =>
        m.edges.some((e) => e.from === from && e.to === "shop/db" && e[verdict] > 0);
      let seen = "";
      await eventually(
        "both connections in the map's data",
        async () => {
          const m = (await (await fetch(`${url}api/map`)).json()) as ServiceMap;
          seen = JSON.stringify(m.edges);
          return edge(m, "shop/intruder", "dropped") && edge(m, "shop/web", "forwarded");
        },
        15_000,
        200,
      ).catch((e: Error) => {
        throw new Error(`${e.message}; edges: ${seen}`);
      });
      const browse = (extra: string[]) =>
        execFileSync(
          "chromium",
          [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=4000",
            "--window-size=1400,700",
            ...extra,
            url,
          ],
          {
            encoding: "utf8",
            stdio: ["ignore", "pipe", "ignore"],
            timeout: 60_000,
          },
        );
      const dom = await eventually(
        "the map with both connections",
        () => {
          const html = browse(["--dump-dom"]);
          return /data-from="shop\/intruder" data-to="shop\/db" data-verdict="dropped"/.test(
            html,
          ) && /data-from="shop\/web" data-to="shop\/db" data-verdict="forwarded"/.test(html)
            ? html
            : undefined;
        },
        30_000,
        1000,
      );
      for (const node of ["shop/web", "shop/intruder", "shop/db"])
        assert.match(dom, new RegExp(`data-node="${node}"`));
      assert.match(dom, /POLICY_DENIED/, "the drop reason in the map's hover text or the table");
      const shot = join(dir, "flows-ui.png");
      browse([`--screenshot=${shot}`]);
      const png = readFileSync(shot);
      assert.ok(png.length > 10_000 && png.subarray(1, 4).toString() === "PNG", "a screenshot");
      if (process.env.NETLOOM_SCREENSHOT) copyFileSync(shot, process.env.NETLOOM_SCREENSHOT);
    } finally {
      await stop(o);
    }
  });
});
