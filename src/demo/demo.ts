import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { SourceParser } from "../agent/sources.js";
import { REPO_ROOT, readManifests } from "../api/fixtures.js";
import type { NodeDatapath, NodeNetworkState } from "../api/nodenetworkstate.js";
import {
  type BoxState,
  boxDown,
  boxKubeConfig,
  boxSpawn,
  boxTcpServer,
  boxUp,
  METADATA_IP,
  readBoxState,
  wireguardInterfaceOf,
} from "../box/box.js";
import { canConnect, inNs, listNetns } from "../box/netns.js";
import { stopAllPodHelpers } from "../box/probe.js";
import { expectedProbeVerdict, readScenario, ScenarioBox } from "../box/scenario.js";
import { isAlive } from "../cluster/control-plane.js";
import { BPF_OBJECT } from "../datapath-driver/linux/driver.js";
import { parseHtbClasses } from "../datapath-driver/linux/htb.js";
import { uapiGet } from "../datapath-driver/wireguard/uapi.js";
import { applyManifests } from "../kube/apply.js";
import { kubeRequest } from "../kube/raw.js";
import type { NetworkPolicy } from "../policy/networkpolicy.js";
import { isRoot } from "../util/process.js";
import { installSystemTools, toolsRequirement } from "../util/system-tools.js";

export interface DemoOptions {
  /** Where the demo keeps its state (default .netloom/demo). */
  dir: string;
  prefix: string;
  underlayOctet: number;
}

export const DEFAULT_DEMO: DemoOptions = {
  dir: resolve(".netloom", "demo"),
  prefix: "nld",
  underlayOctet: 50,
};
const CLOUD_PORT = 8080;

/** What the real-kernel demo runs: the cluster-in-a-box, the agents, and the measurements. */
const DEMO_TOOLS = [
  ...["ip", "nsenter", "tc", "sysctl", "mountpoint", "sh", "rm"],
  ...["wireguard-go", "iperf3", "ping", "timeout", "bash"],
];

/**
 * Why the demo cannot use the real kernel here, saying what would make it real; undefined when
 * it can. Missing tools are not a reason as root: demoUp installs them first.
 */
export function realKernelUnavailable(): string | undefined {
  if (!isRoot()) return "not root: `sudo make demo` runs it on the real kernel";
  if (!existsSync("/sys/kernel/btf/vmlinux"))
    return "no kernel BTF at /sys/kernel/btf/vmlinux: needs a kernel built with CONFIG_DEBUG_INFO_BTF";
  if (!existsSync(BPF_OBJECT))
    return `no eBPF object ${BPF_OBJECT}: \`make demo\` (or \`make bpf\`) compiles it`;
  return undefined;
}

/** As root: installs the demo's missing tools (hack/install-deps.sh); throws if that fails. */
export function ensureDemoTools(say: (line: string) => void, extra: string[] = []): void {
  const tools = [...DEMO_TOOLS, ...extra];
  const missing = toolsRequirement(tools);
  if (!missing) return;
  say(`[demo] ${missing}; installing them (hack/install-deps.sh)`);
  installSystemTools();
  const still = toolsRequirement(tools);
  if (still) throw new Error(`netloom demo: hack/install-deps.sh ran, but it still ${still}`);
}

interface NodeRow {
  node: string;
  applied: boolean;
  egressDeny: string;
  bandwidth: string;
  wireguard: string;
  strict: string;
}

async function states(box: BoxState): Promise<NodeNetworkState[]> {
  const r = await kubeRequest(
    boxKubeConfig(box),
    "GET",
    "/apis/netloom.io/v1alpha1/nodenetworkstates",
  );
  return r.status === 200 ? r.json<{ items: NodeNetworkState[] }>().items : [];
}

const applied = (s: NodeNetworkState) =>
  s.status?.conditions?.find((c) => c.type === "Ready")?.status === "True";

async function listItems(box: BoxState, path: string): Promise<unknown[]> {
  const r = await kubeRequest(boxKubeConfig(box), "GET", path);
  return r.status === 200 ? r.json<{ items: unknown[] }>().items : [];
}

/** What each node was asked to hold: the agents' own rendering, run here on the same objects. */
async function desiredOf(box: BoxState): Promise<Map<string, NodeDatapath>> {
  const nl = "/apis/netloom.io/v1alpha1";
  const [nodes, pods, networkConfigs, encryptionProfiles, bandwidthPolicies] = await Promise.all(
    [
      "/api/v1/nodes",
      "/api/v1/pods",
      `${nl}/networkconfigs`,
      `${nl}/encryptionprofiles`,
      `${nl}/bandwidthpolicies`,
    ].map((p) => listItems(box, p)),
  );
  const parser = new SourceParser();
  const out = new Map<string, NodeDatapath>();
  for (const node of nodes as { metadata: { name: string } }[]) {
    const name = node.metadata.name;
    const r = parser.render({
      node,
      pods: (pods as { spec?: { nodeName?: string } }[]).filter((p) => p.spec?.nodeName === name),
      networkConfigs: networkConfigs!,
      encryptionProfiles: encryptionProfiles!,
      bandwidthPolicies: bandwidthPolicies!,
    });
    if (r.ok && r.spec) out.set(name, r.spec);
  }
  return out;
}

/** Waits until every node applied its state, printing one line per change (the live view). */
async function watchConvergence(
  box: BoxState,
  say: (l: string) => void,
  rendered: (s: NodeNetworkState) => boolean = () => true,
  timeoutMs = 120_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    const all = await states(box);
    const line = box.nodes
      .map((n) => {
        const s = all.find((x) => x.metadata.name === n.name);
        const wg = s?.status?.wireguard;
        const mark = s && applied(s) && rendered(s) ? "✓" : "…";
        const gen = s?.status?.sources?.networkConfig?.generation;
        return `${n.name} ${mark} config gen ${gen ?? "-"}${wg?.peersConfigured !== undefined ? ` peers ${wg.peersConfigured}/${wg.peers}` : ""}`;
      })
      .join("   ");
    if (line !== last) say(`  ${line}`);
    last = line;
    const done =
      all.length === box.nodes.length &&
      all.every(
        (s) =>
          applied(s) &&
          rendered(s) &&
          (box.simulated ||
            !s.status?.sources?.encryptionProfile ||
            (s.status?.wireguard?.peersConfigured ?? -1) === box.nodes.length - 1),
      );
    if (done) return;
    if (Date.now() > deadline)
      throw new Error(`nodes did not converge within ${timeoutMs / 1000}s: ${line}`);
    await sleep(500);
  }
}

/** The agent applied the samples (not just the defaults it renders before they exist). */
const samplesRendered = (s: NodeNetworkState) =>
  s.status?.sources?.networkConfig !== undefined &&
  s.status?.sources?.encryptionProfile !== undefined;

/** Real measurements per node: the summary's table is what the kernel did, not what was asked. */
async function measure(box: BoxState): Promise<NodeRow[]> {
  const all = await states(box);
  const desired = await desiredOf(box);
  // Pod-to-pod across every pair of nodes first: a connectivity check, and it gives every
  // WireGuard peer a handshake to report.
  for (const a of box.nodes) {
    for (const b of box.nodes) {
      if (a !== b) inNs(a.pods[0]!.netns, ["ping", "-c", "1", "-W", "2", b.pods[0]!.ip], true);
    }
  }
  const rows: NodeRow[] = [];
  for (const [i, n] of box.nodes.entries()) {
    const s = all.find((x) => x.metadata.name === n.name);
    const pod = n.pods[0]!;
    const denied = !canConnect(pod.netns, METADATA_IP, CLOUD_PORT, 2, 1);
    const other = box.nodes[(i + 1) % box.nodes.length]!;
    let bandwidth = "—";
    const want = desired.get(n.name);
    const limit = want?.bandwidth?.find((b) => b.ip === pod.ip);
    if (limit) {
      const out = inNs(
        pod.netns,
        ["iperf3", "-c", other.pods[1]!.ip, "-p", "5201", "-t", "3", "-O", "1", "-J"],
        true,
      );
      const mbps = out
        ? (JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } }).end
            .sum_received.bits_per_second / 1e6
        : 0;
      const want = limit.egressBitsPerSecond / 1e6;
      const ok = mbps > want * 0.9 && mbps < want * 1.05;
      bandwidth = `${ok ? "✓" : "✗"} ${want}M: ${mbps.toFixed(1)}`;
    }
    let wireguard = "—";
    const wgIf = wireguardInterfaceOf(box, n);
    if (want?.wireguard) {
      const dev = await uapiGet(`/var/run/wireguard/${wgIf}.sock`).catch(() => undefined);
      const ages = (dev?.peers ?? []).map((p) =>
        p.lastHandshakeSeconds ? Math.round(Date.now() / 1000 - p.lastHandshakeSeconds) : undefined,
      );
      const all = ages.length === box.nodes.length - 1 && ages.every((a) => a !== undefined);
      // Which wireguard-go the agent runs (the current build is ×3 Debian's: docs/benchmarks.md).
      const version = s?.status?.wireguard?.implementation?.match(/v[\d.]+/)?.[0];
      wireguard = all
        ? `✓ ${ages.length} peers, handshake ${Math.max(...(ages as number[]))}s ago${version ? `, wireguard-go ${version}` : ""}`
        : `✗ ${ages.filter((a) => a !== undefined).length}/${box.nodes.length - 1} peers up`;
    }
    const strictCidrs = want?.wireguard?.strictCIDRs ?? [];
    rows.push({
      node: n.name,
      applied: !!s && applied(s),
      egressDeny: denied ? `✓ ${METADATA_IP} blocked` : "✗ reachable",
      bandwidth,
      wireguard,
      strict: strictCidrs.length ? `✓ ${strictCidrs.join(",")}` : "—",
    });
  }
  return rows;
}

function table(rows: NodeRow[]): string {
  const head = [
    "NODE",
    "APPLIED",
    "EGRESS DENY",
    "BANDWIDTH (Mbit/s goodput)",
    "WIREGUARD",
    "STRICT MODE",
  ];
  const data = rows.map((r) => [
    r.node,
    r.applied ? "✓" : "✗",
    r.egressDeny,
    r.bandwidth,
    r.wireguard,
    r.strict,
  ]);
  const widths = head.map((h, c) => Math.max(h.length, ...data.map((d) => [...d[c]!].length)));
  const fmt = (cells: string[]) =>
    cells.map((x, c) => x + " ".repeat(widths[c]! - [...x].length)).join("  ");
  return [fmt(head), ...data.map(fmt)].join("\n");
}

/**
 * `netloom demo up`: the cluster-in-a-box with the samples applied, then a summary of real
 * measurements. Needs root for the kernel parts; says so and stops otherwise.
 */
export async function demoUp(opts: DemoOptions, say: (line: string) => void): Promise<number> {
  const existing = readBoxState(opts.dir);
  const running =
    existing &&
    (listNetns(`${opts.prefix}-`).length > 0 ||
      (existing.pids.operator !== undefined && isAlive(existing.pids.operator)));
  if (running) {
    say(
      `a demo is already running (state in ${opts.dir}); use it, or stop it with: make demo-down`,
    );
    return 1;
  }
  const why = realKernelUnavailable();
  if (!why) ensureDemoTools(say);
  else {
    say(`NOTICE: no real kernel datapath here (${why}): the agents run with the in-memory driver.`);
    say(
      "        Everything else is real (etcd, kube-apiserver, operator, agents, status); nothing is measured.",
    );
  }
  const t0 = Date.now();
  const step = (what: string) => say(`[demo +${((Date.now() - t0) / 1000).toFixed(1)}s] ${what}`);
  await boxDown(opts.dir, opts.prefix); // leftovers of a demo that was killed
  const box = await boxUp({
    dir: opts.dir,
    prefix: opts.prefix,
    underlayOctet: opts.underlayOctet,
    nodes: 3,
    pods: [{ app: "landing-page" }, { app: "api" }],
    simulated: why !== undefined,
    progress: (l) => step(l),
  });
  if (box.simulated) return simulatedSummary(box, step, say);
  boxTcpServer(box, box.cloudNetns, "cloud-server", CLOUD_PORT, "ok");
  for (const n of box.nodes)
    boxSpawn(box, n.pods[1]!.netns, `iperf3-${n.name}`, ["iperf3", "-s", "-p", "5201"]);
  step("waiting for the agents' first report");
  await watchConvergence(box, say);
  const samples = readManifests("config/samples").filter(
    (m) => m.object.kind !== "ClusterMeshPeer",
  );
  step(
    `applying ${samples.map((m) => m.object.kind).join(", ")} from config/samples (a ClusterMeshPeer needs a second cluster: make demo-mesh)`,
  );
  await applyManifests(boxKubeConfig(box), samples, "netloom-demo");
  step("nodes converging:");
  await watchConvergence(box, say, samplesRendered);
  step("measuring on every node (egress deny, iperf3 through the limit, WireGuard handshakes)");
  const rows = await measure(box);
  step(
    "NetworkPolicy: the seeds' pods and policies (test/fixtures/scenarios/seeds.yaml), real connections",
  );
  const matrix = await policyMatrix(box, step);
  step("flows: netloom observe --ui (the service map of what the demo just did)");
  const flowsURL = await startFlowPage(box);
  step("done");
  const kubectl = (await import("../cluster/binaries.js")).locateBinaries()?.kubectl ?? "kubectl";
  const get = execFileSync(kubectl, ["--kubeconfig", box.kubeconfigPath, "get", "netloom", "-A"], {
    encoding: "utf8",
  });
  process.stdout.write(
    `\n$ kubectl get netloom -A\n${get}\n${table(rows)}\n\n${matrix.text}\n\nFlows, live: ${flowsURL}  (netloom observe --ui; the service map and the flow table)\n`,
  );
  const rel = (p: string) => p.replace(`${process.cwd()}/`, "");
  process.stdout.write(`
Try next:
  export KUBECONFIG=${rel(box.kubeconfigPath)}
  ${kubectl} get nlns -o wide                      # each node's applied generation, datapath, WireGuard
  ${kubectl} describe networkconfig default        # conditions and events
  ${kubectl} get nlpr -A                           # each NetworkPolicy realized on its nodes
  node bin/netloom.js observe --kubeconfig ${rel(box.kubeconfigPath)} --service-account netloom-system/observer --verdict DROPPED --last 10
  sudo node bin/netloom.js box probe --scenario test/fixtures/scenarios/seeds.yaml   # any scenario, in a box of its own
  node bin/netloom.js demo drift                   # delete a node's HTB class by hand and watch it heal
  curl -s http://${box.nodes[0]!.ip}:9962/metrics | grep netloom_agent   # an agent's metrics
  make demo-down                                   # remove every namespace, process, pin and file
`);
  const allOk =
    matrix.ok &&
    rows.every(
      (r) => r.applied && !Object.values(r).some((v) => typeof v === "string" && v.startsWith("✗")),
    );
  return allOk ? 0 : 1;
}

/**
 * The seeds' matrix in the demo's box: pods added beside the demo's own, the policies applied
 * and realized, every connection measured; each verdict compared with policyVerdict.
 */
async function policyMatrix(
  box: BoxState,
  step: (l: string) => void,
): Promise<{ text: string; ok: boolean }> {
  const sc = readScenario(join(REPO_ROOT, "test/fixtures/scenarios/seeds.yaml"));
  const np = await ScenarioBox.within(box, sc, { progress: (l) => step(`  ${l}`) });
  const c = sc.cases[0]!;
  const lines = await np.runCase(c, 0);
  await stopAllPodHelpers(); // the pods stay for a person to look at; the probers go
  const policies = c.policies as unknown as NetworkPolicy[];
  let ok = true;
  const out = [
    "NetworkPolicy, the seeds' matrix (test/fixtures/scenarios/seeds.yaml), measured:",
    `  ${"FROM".padEnd(24)}${"TO".padEnd(26)}${"PORT".padEnd(11)}${"VERDICT".padEnd(9)}WHY`,
  ];
  for (const [i, l] of lines.entries()) {
    const want = expectedProbeVerdict(sc, policies, c.probes[i]!);
    const mark = l.verdict === want ? "" : `  ✗ expected ${want}`;
    if (mark) ok = false;
    const to = l.ip.includes(":") ? `${l.to} (IPv6)` : l.to;
    const why =
      l.reason === "policy_denied"
        ? `NetworkPolicy (identities ${l.identities?.join(" → ")})`
        : l.reason === "egress_deny"
          ? "NetworkConfig egressDeny"
          : "";
    out.push(
      `  ${l.from.padEnd(24)}${to.padEnd(26)}${`${l.port}/${l.protocol}`.padEnd(11)}${l.verdict.toUpperCase().padEnd(9)}${why}${mark}`,
    );
  }
  return { text: out.join("\n"), ok };
}

/** The port the demo's flow page listens on (127.0.0.1 only). */
const FLOW_PAGE_PORT = 9970;

/**
 * The flow page of `netloom observe --ui`, run by the demo for as long as the demo is up: a
 * ServiceAccount bound to the shipped netloom-flows-reader role, as a person would bind theirs.
 */
async function startFlowPage(box: BoxState): Promise<string> {
  const kc = boxKubeConfig(box);
  const role = readManifests("config/rbac").find(
    (m) => m.object.kind === "ClusterRole" && m.object.metadata?.name === "netloom-flows-reader",
  );
  const posts: [string, unknown][] = [
    ["/apis/rbac.authorization.k8s.io/v1/clusterroles", role?.object],
    [
      "/api/v1/namespaces/netloom-system/serviceaccounts",
      { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "observer" } },
    ],
    [
      "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRoleBinding",
        metadata: { name: "netloom-demo-observer" },
        roleRef: {
          apiGroup: "rbac.authorization.k8s.io",
          kind: "ClusterRole",
          name: "netloom-flows-reader",
        },
        subjects: [{ kind: "ServiceAccount", name: "observer", namespace: "netloom-system" }],
      },
    ],
  ];
  for (const [path, body] of posts) {
    const r = await kubeRequest(kc, "POST", path, { body });
    if (r.status !== 201 && r.status !== 409) throw new Error(`${path}: ${r.status} ${r.body}`);
  }
  boxSpawn(box, undefined, "flow-page", [
    process.execPath,
    join(REPO_ROOT, "bin", "netloom.js"),
    "observe",
    "--kubeconfig",
    box.kubeconfigPath,
    "--service-account",
    "netloom-system/observer",
    "--ui",
    "--since",
    "10m",
    "--listen",
    `127.0.0.1:${FLOW_PAGE_PORT}`,
  ]);
  const url = `http://127.0.0.1:${FLOW_PAGE_PORT}/`;
  for (let i = 0; i < 50; i++) {
    if (
      await fetch(url).then(
        (r) => r.ok,
        () => false,
      )
    )
      return url;
    await sleep(200);
  }
  return `${url} (not answering yet: see ${join(box.dir, "flow-page.log")})`;
}

async function simulatedSummary(
  box: BoxState,
  step: (l: string) => void,
  say: (l: string) => void,
): Promise<number> {
  step("waiting for the agents' first report");
  await watchConvergence(box, say);
  const samples = readManifests("config/samples").filter(
    (m) => m.object.kind !== "ClusterMeshPeer",
  );
  step(`applying ${samples.map((m) => m.object.kind).join(", ")} from config/samples`);
  await applyManifests(boxKubeConfig(box), samples, "netloom-demo");
  await watchConvergence(box, say, samplesRendered);
  const kubectl = (await import("../cluster/binaries.js")).locateBinaries()?.kubectl ?? "kubectl";
  const get = execFileSync(kubectl, ["--kubeconfig", box.kubeconfigPath, "get", "netloom", "-A"], {
    encoding: "utf8",
  });
  process.stdout.write(`\n$ kubectl get netloom -A\n${get}
SIMULATED: the agents applied every state to an in-memory datapath (run as root for eBPF and
WireGuard on the real kernel). Stop it with: make demo-down
`);
  return 0;
}

/** `netloom demo drift`: an out-of-band change on one node, watched until the agent heals it. */
export async function demoDrift(opts: DemoOptions, say: (line: string) => void): Promise<number> {
  const box = readBoxState(opts.dir);
  if (!box) {
    say("no demo running: make demo");
    return 1;
  }
  const node = box.nodes[0]!;
  const kc = boxKubeConfig(box);
  const nns = async () =>
    (
      await kubeRequest(kc, "GET", `/apis/netloom.io/v1alpha1/nodenetworkstates/${node.name}`)
    ).json<NodeNetworkState>();
  const before = (await nns()).status?.drift ?? {};
  const classes = parseHtbClasses(inNs(node.netns, ["tc", "-s", "class", "show", "dev", "eth0"]));
  const minor = [...classes.keys()][0];
  if (minor === undefined) {
    say(`${node.name} has no HTB class to delete (is the BandwidthPolicy sample applied?)`);
    return 1;
  }
  const t0 = Date.now();
  say(
    `$ tc class del dev eth0 classid 1:${minor.toString(16)}   (in ${node.netns}: the landing-page pod's 50M limit)`,
  );
  inNs(node.netns, ["tc", "class", "del", "dev", "eth0", "classid", `1:${minor.toString(16)}`]);
  for (;;) {
    await sleep(500);
    const d = (await nns()).status?.drift ?? {};
    const back = parseHtbClasses(
      inNs(node.netns, ["tc", "-s", "class", "show", "dev", "eth0"]),
    ).has(minor);
    say(
      `  +${((Date.now() - t0) / 1000).toFixed(1)}s class present: ${back ? "yes" : "no "}  detected ${d.detectedTotal ?? 0}  healed ${d.healedTotal ?? 0}${d.lastDriftReason ? `  (${d.lastDriftReason})` : ""}`,
    );
    if (back && (d.healedTotal ?? 0) > (before.healedTotal ?? 0)) break;
    if (Date.now() - t0 > 30_000) {
      say("not healed within 30s");
      return 1;
    }
  }
  say(
    `healed; see: kubectl --kubeconfig ${join(box.dir, "kubeconfig")} get events -n default --field-selector reason=DriftHealed`,
  );
  return 0;
}

export async function demoDown(opts: DemoOptions, say: (line: string) => void): Promise<number> {
  const had = readBoxState(opts.dir) !== undefined || listNetns(`${opts.prefix}-`).length > 0;
  await boxDown(opts.dir, opts.prefix);
  say(
    had
      ? "[demo down] every namespace, process, pin, socket and file of the demo removed"
      : "[demo down] no demo running",
  );
  return 0;
}
