// The control-plane half of `make bench`: the operator as its own `netloom operator` process and
// simulated agents in worker processes, each agent with its own watches (bench/agent-worker.ts),
// on a real kube-apiserver + etcd. Every figure is printed next to the floor the API server
// itself sets, measured in the same run: N server-side applies, N status patches, and one event
// reaching N watchers. Sizes: BENCH_CP_NODES (default "1000", the size the targets are set at;
// "100,1000" adds the small size), BENCH_PODS_PER_NODE (30). Prints each phase's wall time as it
// goes and reports them; stops everything it started on an error or SIGINT/SIGTERM.
// Writes docs/benchmarks.md's control-plane section (BENCH_CP_WRITE=0 only prints);
// BENCH_CP_OPERATOR_PROFILE=DIR has the operator write a CPU profile there.
import { type ChildProcess, execFileSync, fork, spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, freemem, totalmem } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { CoreV1Api, type KubeConfig, type KubernetesObject } from "@kubernetes/client-node";
import { DEFAULT_LEASE_NAMESPACE } from "../src/agent/lease.js";
import { REPO_ROOT } from "../src/api/fixtures.js";
import type { NetworkConfig } from "../src/api/networkconfig.js";
import type { NodeNetworkState } from "../src/api/nodenetworkstate.js";
import { REALIZATION_ANNOTATION } from "../src/api/policyrealization.js";
import { Informer } from "../src/controllers/informer.js";
import { installCRDs } from "../src/kube/crds.js";
import { ensureNamespace } from "../src/kube/namespace.js";
import { kubeRequest } from "../src/kube/raw.js";
import { NetworkConfigKind, NodeNetworkStateKind } from "../src/reconcilers/context.js";
import { startTestCluster, type TestCluster } from "../test/support/cluster.js";
import type { FromWorker, ToWorker } from "./agent-worker.js";
import { formatMarkdown } from "./markdown.js";

const SIZES = (process.env.BENCH_CP_NODES ?? "1000").split(",").map(Number);
const PODS_PER_NODE = Number(process.env.BENCH_PODS_PER_NODE ?? 30);
const WORKERS = Number(process.env.BENCH_CP_WORKERS ?? 8);
const IN_FLIGHT = 16;
/** Two Lease renewal periods (10 s): every agent renews exactly twice in it. */
const REST_WINDOW_MS = Number(process.env.BENCH_CP_REST_MS ?? 20_000);
const HEARTBEAT_MS = 15_000;
/** Below this much free memory the run stops (simulated agents would exhaust the machine). */
const MIN_AVAILABLE_BYTES = Number(process.env.BENCH_CP_MIN_FREE_MB ?? 1536) * 2 ** 20;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const began = performance.now();
const sinceStart = () => `${((performance.now() - began) / 1000).toFixed(0)} s`;
const say = (line: string) =>
  process.stderr.write(`[bench control-plane +${sinceStart()}] ${line}\n`);

/** Wall time per phase of one size: printed as each begins, reported with the figures. */
class Phases {
  readonly done: { name: string; ms: number }[] = [];
  private current: { name: string; t0: number } | undefined;

  begin(name: string, detail = name): void {
    this.end();
    this.current = { name, t0: performance.now() };
    say(detail);
  }

  end(): void {
    if (this.current)
      this.done.push({ name: this.current.name, ms: performance.now() - this.current.t0 });
    this.current = undefined;
  }
}

/** MemAvailable from /proc/meminfo (free memory where there is none). */
function availableBytes(): number {
  const kB = /MemAvailable:\s+(\d+)/.exec(readFileSync("/proc/meminfo", "utf8"))?.[1];
  return kB ? Number(kB) * 1024 : freemem();
}

/**
 * Awaits `work`, checking every 2 s that the machine keeps MIN_AVAILABLE_BYTES free (else
 * rejects, so that the run stops and cleans up instead of exhausting memory) and calling
 * `progress` every 30 s.
 */
async function watching<T>(work: Promise<T>, what: string, progress?: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const started = performance.now();
  let lastSaid = started;
  const guard = new Promise<never>((_, reject) => {
    timer = setInterval(() => {
      const free = availableBytes();
      if (free < MIN_AVAILABLE_BYTES)
        reject(
          new Error(
            `${what}: stopped with ${(free / 2 ** 30).toFixed(1)} GiB of memory left${progress ? ` (${progress()})` : ""}`,
          ),
        );
      else if (progress && performance.now() - lastSaid >= 30_000) {
        lastSaid = performance.now();
        say(`${what}: ${progress()}, ${(free / 2 ** 30).toFixed(1)} GiB free`);
      }
    }, 2000);
  });
  try {
    return await Promise.race([work, guard]);
  } finally {
    clearInterval(timer);
  }
}

/** What stops the processes and the API server of the size being measured (on a signal too). */
const cleanups = new Set<() => Promise<void>>();
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.once(signal, () => {
    say(`${signal}: stopping what the bench started`);
    void Promise.allSettled([...cleanups].map((c) => c())).then(() =>
      process.exit(signal === "SIGINT" ? 130 : 143),
    );
  });

/** Runs fn over items with at most `limit` in flight; resolves with the elapsed ms. */
async function timedPool<T>(
  items: T[],
  limit: number,
  fn: (t: T) => Promise<void>,
): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
  return performance.now() - t0;
}

async function must(
  kc: KubeConfig,
  method: string,
  path: string,
  opts: { body?: unknown; contentType?: string } = {},
): Promise<void> {
  const r = await kubeRequest(kc, method, path, opts);
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${r.body.slice(0, 300)}`);
}

const apply = (kc: KubeConfig, path: string, body: unknown) =>
  must(kc, "PATCH", `${path}?fieldManager=netloom-bench&force=true`, {
    body,
    contentType: "application/apply-patch+yaml",
  });

// ---- API server metrics: writes by resource, watch events ---------------------------------------

interface ApiCounts {
  writes: Map<string, number>;
  watchEvents: number;
  /** Watch events by resource (apiserver_watch_events_total). */
  eventsByKind: Map<string, number>;
}

const WRITE_VERBS = new Set(["POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"]);

async function apiCounts(kc: KubeConfig): Promise<ApiCounts> {
  const r = await kubeRequest(kc, "GET", "/metrics");
  const writes = new Map<string, number>();
  let watchEvents = 0;
  const eventsByKind = new Map<string, number>();
  for (const line of r.body.split("\n")) {
    if (line.startsWith("apiserver_request_total{")) {
      const labels = Object.fromEntries(
        [...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]),
      );
      if (!WRITE_VERBS.has(labels.verb ?? "")) continue;
      const what = `${labels.resource}${labels.subresource ? `/${labels.subresource}` : ""}`;
      writes.set(what, (writes.get(what) ?? 0) + Number(line.split(" ").at(-1)));
    } else if (line.startsWith("apiserver_watch_events_total{")) {
      const n = Number(line.split(" ").at(-1));
      watchEvents += n;
      const kind = /resource="([^"]*)"/.exec(line)?.[1] ?? "?";
      eventsByKind.set(kind, (eventsByKind.get(kind) ?? 0) + n);
    }
  }
  return { writes, watchEvents, eventsByKind };
}

function diffCounts(
  a: ApiCounts,
  b: ApiCounts,
): { writes: Map<string, number>; events: number; eventsByKind: Map<string, number> } {
  const diff = (x: Map<string, number>, y: Map<string, number>) => {
    const out = new Map<string, number>();
    for (const [k, v] of y) {
      const d = v - (x.get(k) ?? 0);
      if (d > 0) out.set(k, d);
    }
    return out;
  };
  return {
    writes: diff(a.writes, b.writes),
    events: b.watchEvents - a.watchEvents,
    eventsByKind: diff(a.eventsByKind, b.eventsByKind),
  };
}

const total = (m: Map<string, number>) => [...m.values()].reduce((s, v) => s + v, 0);
const describeWrites = (m: Map<string, number>) =>
  [...m]
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");

// ---- processes ------------------------------------------------------------------------------------

interface Worker {
  child: ChildProcess;
  send(m: ToWorker): void;
  next(op: FromWorker["op"]): Promise<FromWorker>;
}

function startWorker(kubeconfigPath: string, onEvent: (m: FromWorker) => void): Worker {
  const child = fork(join(REPO_ROOT, "dist", "bench", "agent-worker.js"), [], {
    env: { ...process.env, BENCH_KUBECONFIG: kubeconfigPath },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const waiting: { op: string; resolve: (m: FromWorker) => void }[] = [];
  child.on("message", (m: FromWorker) => {
    onEvent(m);
    const i = waiting.findIndex((w) => w.op === m.op);
    if (i >= 0) waiting.splice(i, 1)[0]!.resolve(m);
  });
  return {
    child,
    send: (m) => child.send(m),
    next: (op) => new Promise((resolve) => waiting.push({ op, resolve })),
  };
}

/** Resident memory (MB) and CPU seconds used so far by a process, from /proc. */
function processUsage(pid: number): { rssMB: number; cpuS: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rssKB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
  return { rssMB: rssKB / 1024, cpuS: ticks / 100 };
}

// ---- the cluster ------------------------------------------------------------------------------------

const nodeName = (i: number) => `node-${String(i).padStart(5, "0")}`;
const podCIDR = (i: number) => `10.${64 + (i >> 8)}.${i & 255}.0/24`;
const podIP = (i: number, j: number) => `10.${64 + (i >> 8)}.${i & 255}.${j + 10}`;

async function createNodesAndPods(kc: KubeConfig, n: number, podsPerNode: number): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  await timedPool([...Array(n).keys()], IN_FLIGHT, async (i) => {
    await core.createNode({
      body: {
        metadata: { name: nodeName(i), labels: { zone: `z${i % 3}` } },
        spec: { podCIDR: podCIDR(i), podCIDRs: [podCIDR(i)] },
      },
    });
  });
  for (const ns of Array.from({ length: 10 }, (_, k) => `bench-${k}`)) {
    await core.createNamespace({ body: { metadata: { name: ns } } });
    // Every node then enforces policy for its api pods, and holds every pod in its ipcache.
    await must(kc, "POST", `/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies`, {
      body: {
        apiVersion: "networking.k8s.io/v1",
        kind: "NetworkPolicy",
        metadata: { name: "api-from-landing-page" },
        spec: {
          podSelector: { matchLabels: { app: "api" } },
          policyTypes: ["Ingress"],
          ingress: [
            {
              from: [{ podSelector: { matchLabels: { app: "landing-page" } } }],
              ports: [{ protocol: "TCP", port: 8080 }],
            },
          ],
        },
      },
    });
  }
  const pods = [...Array(n * podsPerNode).keys()].map((k) => ({
    i: Math.floor(k / podsPerNode),
    j: k % podsPerNode,
  }));
  await timedPool(pods, IN_FLIGHT, async ({ i, j }) => {
    const namespace = `bench-${j % 10}`;
    const name = `p-${i}-${j}`;
    await core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name, labels: { app: j % 3 === 0 ? "landing-page" : "api" } },
        spec: {
          nodeName: nodeName(i),
          containers: [{ name: "app", image: "registry.invalid/a:1" }],
        },
      },
    });
    await must(kc, "PATCH", `/api/v1/namespaces/${namespace}/pods/${name}/status`, {
      body: { status: { phase: "Running", podIP: podIP(i, j), podIPs: [{ ip: podIP(i, j) }] } },
      contentType: "application/merge-patch+json",
    });
  });
}

// ---- floors ------------------------------------------------------------------------------------------

async function applyFloor(kc: KubeConfig, n: number): Promise<number> {
  await must(kc, "POST", "/api/v1/namespaces", { body: { metadata: { name: "bench-floor" } } });
  return timedPool([...Array(n).keys()], IN_FLIGHT, (i) =>
    apply(kc, `/api/v1/namespaces/bench-floor/configmaps/floor-${i}`, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: `floor-${i}`, namespace: "bench-floor" },
      data: { egressDeny: "169.254.169.254/32", generation: "1" },
    }),
  );
}

async function statusFloor(kc: KubeConfig, n: number): Promise<number> {
  const base = "/apis/netloom.io/v1alpha1/nodenetworkstates";
  await timedPool([...Array(n).keys()], IN_FLIGHT, (i) =>
    apply(kc, `${base}/floor-${i}`, {
      apiVersion: "netloom.io/v1alpha1",
      kind: "NodeNetworkState",
      metadata: { name: `floor-${i}`, labels: { "netloom.io/bench": "floor" } },
      spec: { nodeName: `floor-${i}` },
    }),
  );
  const ms = await timedPool([...Array(n).keys()], IN_FLIGHT, (i) =>
    must(kc, "PATCH", `${base}/floor-${i}/status`, {
      body: { status: { observedGeneration: 1, heartbeatTime: new Date().toISOString() } },
      contentType: "application/merge-patch+json",
    }),
  );
  await must(kc, "DELETE", `${base}?labelSelector=netloom.io%2Fbench%3Dfloor`);
  return ms;
}

/** One ConfigMap write reaching n watches spread over the worker processes. */
async function fanoutFloor(
  kc: KubeConfig,
  workers: Worker[],
  n: number,
  events: number[],
): Promise<number> {
  await apply(kc, "/api/v1/namespaces/bench-floor/configmaps/fanout", {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "fanout", namespace: "bench-floor" },
    data: { v: "0" },
  });
  const share = (w: number) => Math.floor(n / workers.length) + (w < n % workers.length ? 1 : 0);
  const live = (
    await Promise.all(
      workers.map((w, k) => {
        const ready = w.next("fanout-ready");
        w.send({ op: "fanout-watch", count: share(k), namespace: "bench-floor", name: "fanout" });
        return ready;
      }),
    )
  ).reduce((sum, m) => sum + (m.op === "fanout-ready" ? m.live : 0), 0);
  if (live < n) say(`fan-out floor: ${live} of ${n} watches delivered their initial event`);
  events.length = 0;
  const t0 = Date.now();
  await apply(kc, "/api/v1/namespaces/bench-floor/configmaps/fanout", {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "fanout", namespace: "bench-floor" },
    data: { v: "1" },
  });
  const deadline = Date.now() + 60_000;
  while (events.length < live && Date.now() < deadline) await sleep(5);
  if (events.length < live)
    say(`fan-out floor: only ${events.length} of ${live} watches saw the write`);
  const floor = Math.max(...events) - t0;
  for (const w of workers) w.send({ op: "fanout-stop" });
  return floor;
}

// ---- one size ----------------------------------------------------------------------------------------

const isReady = (s: NodeNetworkState) =>
  s.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;

/**
 * Whether a node applied generation `generation` of NetworkConfig `name`, from its report: the
 * criterion the status controllers use too (that generation among the applied sources, Ready).
 */
function appliedNetworkConfig(s: NodeNetworkState, name: string, generation: number): boolean {
  const ref = s.status?.sources?.networkConfig;
  return ref?.name === name && ref.generation === generation && isReady(s);
}

interface ChangeFigures {
  p50: number;
  p99: number;
  max: number;
  readyMs: number;
  writes: Map<string, number>;
  events: number;
}

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;

async function measureChange(
  kc: KubeConfig,
  states: Informer<KubernetesObject>,
  nodes: string[],
  generation: number,
  write: () => Promise<void>,
): Promise<ChangeFigures> {
  const appliedAt = new Map<string, number>();
  const check = (o: KubernetesObject) => {
    const s = o as unknown as NodeNetworkState;
    const name = s.metadata.name ?? "";
    if (!appliedAt.has(name) && appliedNetworkConfig(s, "bench", generation))
      appliedAt.set(name, performance.now());
  };
  const handler = { add: check, update: (_: KubernetesObject, o: KubernetesObject) => check(o) };
  const unregister = states.addEventHandler(handler);
  const before = await apiCounts(kc);
  const t0 = performance.now();
  await write();
  let readyMs = Number.NaN;
  const deadline = Date.now() + 20 * 60_000;
  while (Date.now() < deadline) {
    for (const o of states.list()) check(o);
    if (Number.isNaN(readyMs)) {
      const nc = (
        await kubeRequest(kc, "GET", "/apis/netloom.io/v1alpha1/networkconfigs/bench")
      ).json<NetworkConfig>();
      const ready = nc.status?.conditions?.find((c) => c.type === "Ready");
      if (ready?.status === "True" && nc.status?.observedGeneration === generation)
        readyMs = performance.now() - t0;
    }
    if (appliedAt.size === nodes.length && !Number.isNaN(readyMs)) break;
    await sleep(100);
  }
  unregister();
  if (appliedAt.size < nodes.length || Number.isNaN(readyMs))
    say(
      `generation ${generation}: ${appliedAt.size} of ${nodes.length} nodes applied it, Ready ${Number.isNaN(readyMs) ? "not reached" : "reached"} within 20 min (figures over those)`,
    );
  await sleep(3000); // late reports and status writes of this change
  const { writes, events } = diffCounts(before, await apiCounts(kc));
  const lat = [...appliedAt.values()].map((t) => t - t0).sort((a, b) => a - b);
  return {
    p50: pct(lat, 50),
    p99: pct(lat, 99),
    max: lat.at(-1) ?? Number.NaN,
    readyMs,
    writes,
    events,
  };
}

/** Writes and events of one event (a node joining, a pod starting), Lease renewals left out. */
interface EventFigures {
  ms: number;
  writes: Map<string, number>;
  events: number;
}

/** Lease renewals go on at N/10 per second whatever happens: counted at rest, not per event. */
function withoutLeases(m: Map<string, number>): Map<string, number> {
  return new Map([...m].filter(([k]) => k !== "leases"));
}

/** A Node joins (as a kubelet registers it) and its agent starts: until it applied the config. */
async function measureJoin(
  kc: KubeConfig,
  worker: Worker,
  states: Informer<KubernetesObject>,
  i: number,
  generation: number,
): Promise<EventFigures> {
  const core = kc.makeApiClient(CoreV1Api);
  const name = nodeName(i);
  const before = await apiCounts(kc);
  const t0 = performance.now();
  await core.createNode({
    body: {
      metadata: { name, labels: { zone: `z${i % 3}` } },
      spec: { podCIDR: podCIDR(i), podCIDRs: [podCIDR(i)] },
    },
  });
  worker.send({ op: "agents", nodes: [name], heartbeatMs: HEARTBEAT_MS });
  const deadline = Date.now() + 5 * 60_000;
  for (;;) {
    const st = states.getByName(name) as unknown as NodeNetworkState | undefined;
    if (st && appliedNetworkConfig(st, "bench", generation)) break;
    if (Date.now() > deadline) throw new Error(`${name} did not apply within 5 min`);
    await sleep(50);
  }
  const ms = performance.now() - t0;
  await sleep(3000); // late status writes (the config's counts, Events)
  const d = diffCounts(before, await apiCounts(kc));
  return { ms, writes: withoutLeases(d.writes), events: d.events };
}

/** A Pod starts on a node (create, then its IP through /status as the kubelet does). */
async function measurePodStart(kc: KubeConfig, i: number): Promise<EventFigures> {
  const core = kc.makeApiClient(CoreV1Api);
  const before = await apiCounts(kc);
  const t0 = performance.now();
  const [namespace, name] = ["bench-0", `p-${i}-new`];
  await core.createNamespacedPod({
    namespace,
    body: {
      metadata: { name, labels: { app: "landing-page" } },
      spec: { nodeName: nodeName(i), containers: [{ name: "app", image: "registry.invalid/a:1" }] },
    },
  });
  const ip = podIP(i, PODS_PER_NODE);
  await must(kc, "PATCH", `/api/v1/namespaces/${namespace}/pods/${name}/status`, {
    body: { status: { phase: "Running", podIP: ip, podIPs: [{ ip }] } },
    contentType: "application/merge-patch+json",
  });
  const ms = performance.now() - t0;
  await sleep(3000);
  const d = diffCounts(before, await apiCounts(kc));
  return { ms, writes: withoutLeases(d.writes), events: d.events };
}

interface SizeFigures {
  nodes: number;
  pods: number;
  floors: { applyMs: number; statusMs: number; fanoutMs: number };
  create: ChangeFigures;
  change: ChangeFigures;
  join: EventFigures;
  podStart: EventFigures;
  rest: { eventsPerS: number; writesPerS: number; eventsByKind: Map<string, number> };
  operator: { rssMB: number; cpuS: number };
  phases: { name: string; ms: number }[];
}

async function measureSize(n: number): Promise<SizeFigures> {
  const phases = new Phases();
  phases.begin("API server", `${n} nodes × ${PODS_PER_NODE} pods: starting etcd + kube-apiserver`);
  const cluster: TestCluster = await startTestCluster();
  const kc = cluster.kubeconfig;
  const kcPath = cluster.state.kubeconfigPath;
  const procs: ChildProcess[] = [];
  let stopping: Promise<void> | undefined;
  const stopAll = () =>
    (stopping ??= (async () => {
      // SIGTERM first (the operator stops its controllers and writes a profile if asked), then
      // SIGKILL whatever is left after 5 s.
      const running = procs.filter((p) => p.exitCode === null && p.signalCode === null);
      const gone = running.map((p) => new Promise<void>((r) => p.once("exit", () => r())));
      for (const p of running) p.kill("SIGTERM");
      await Promise.race([Promise.all(gone), sleep(5000)]);
      for (const p of running) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
      await cluster.stop();
    })());
  cleanups.add(stopAll);
  try {
    await installCRDs(kc);
    await ensureNamespace(kc, DEFAULT_LEASE_NAMESPACE);
    let synced = 0;
    const fanoutEvents: number[] = [];
    const workers = Array.from({ length: Math.min(WORKERS, n) }, () =>
      startWorker(kcPath, (m) => {
        if (m.op === "fanout-event") fanoutEvents.push(m.at);
        if (m.op === "agent-synced") synced++;
      }),
    );
    procs.push(...workers.map((w) => w.child));
    phases.begin("floors");
    const floors = {
      applyMs: await applyFloor(kc, n),
      statusMs: await statusFloor(kc, n),
      fanoutMs: await fanoutFloor(kc, workers, n, fanoutEvents),
    };
    say(
      `floors: ${n} applies ${floors.applyMs.toFixed(0)} ms, ${n} status patches ${floors.statusMs.toFixed(0)} ms, one event to ${n} watchers ${floors.fanoutMs.toFixed(0)} ms`,
    );
    phases.begin("Nodes and Pods", `creating ${n} Nodes and ${n * PODS_PER_NODE} Pods`);
    await createNodesAndPods(kc, n, PODS_PER_NODE);
    phases.begin("operator sync", "the operator starts and syncs");
    const operator = spawn(
      process.execPath,
      [
        // BENCH_CP_OPERATOR_PROFILE=DIR: the operator writes a V8 CPU profile there on exit.
        ...(process.env.BENCH_CP_OPERATOR_PROFILE
          ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CP_OPERATOR_PROFILE}`]
          : []),
        join(REPO_ROOT, "bin", "netloom.js"),
        "operator",
        "--kubeconfig",
        kcPath,
        "--metrics-port",
        "0",
        "--log-level",
        "warn",
      ],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
    procs.push(operator);
    // The operator has synced its caches once it has given every Node its two objects: agents
    // start after that (a real operator runs long before a DaemonSet rolls out).
    for (const deadline = Date.now() + 10 * 60_000; ; ) {
      const r = await kubeRequest(kc, "GET", "/apis/netloom.io/v1alpha1/nodepeers");
      if (r.status === 200 && r.json<{ items: unknown[] }>().items.length >= n) break;
      if (operator.exitCode !== null) throw new Error(`the operator exited (${operator.exitCode})`);
      if (Date.now() > deadline) throw new Error("the operator did not create the NodePeers");
      await sleep(1000);
    }
    const nodes = Array.from({ length: n }, (_, i) => nodeName(i));
    phases.begin("agents start", `starting ${n} simulated agents in ${workers.length} processes`);
    const agentsStart = performance.now();
    const workersRSS = () =>
      workers.reduce((sum, w) => sum + (w.child.pid ? processUsage(w.child.pid).rssMB : 0), 0);
    const startDeadline = sleep(20 * 60_000).then(() => {
      throw new Error(`agents start: ${synced} of ${n} agents synced in 20 min`);
    });
    await watching(
      Promise.race([
        startDeadline,
        Promise.all(
          workers.map((w, k) => {
            const done = w.next("agents-synced");
            w.send({
              op: "agents",
              nodes: nodes.filter((_, i) => i % workers.length === k),
              heartbeatMs: HEARTBEAT_MS,
            });
            return done;
          }),
        ),
      ]),
      "agents start",
      () =>
        `${synced} of ${n} agents synced (${(synced / ((performance.now() - agentsStart) / 1000)).toFixed(1)}/s), their processes ${(workersRSS() / 1024).toFixed(1)} GiB (${(workersRSS() / Math.max(1, synced)).toFixed(0)} MB per agent)`,
    );
    phases.begin("settle", "every node reports Ready");
    const states = new Informer({ kubeconfig: kc, kind: NodeNetworkStateKind });
    states.start();
    await states.synced();
    // Settled: every node has a state its agent applied.
    const readyCount = () =>
      (states.list() as unknown as NodeNetworkState[]).filter(isReady).length;
    await watching(
      (async () => {
        for (const deadline = Date.now() + 20 * 60_000; readyCount() < n; await sleep(500))
          if (Date.now() > deadline)
            throw new Error(`${readyCount()} of ${n} nodes Ready in 20 min`);
      })(),
      "settle",
      () => `${readyCount()} of ${n} nodes Ready`,
    );
    // Settled means the operator too: every NetworkPolicy's summary says Realized.
    const unrealized = async () => {
      const r = await kubeRequest(kc, "GET", "/apis/networking.k8s.io/v1/networkpolicies");
      const items = r.json<{ items: KubernetesObject[] }>().items;
      return items.filter((p) => {
        const s = p.metadata?.annotations?.[REALIZATION_ANNOTATION];
        return !s || (JSON.parse(s) as { state?: string }).state !== "Realized";
      }).length;
    };
    await watching(
      (async () => {
        for (const deadline = Date.now() + 5 * 60_000; (await unrealized()) > 0; await sleep(500))
          if (Date.now() > deadline) throw new Error("NetworkPolicies not realized in 5 min");
      })(),
      "settle",
      () => "waiting for every NetworkPolicy to be realized",
    );
    phases.begin("at rest", `settled; at rest for ${REST_WINDOW_MS / 1000} s`);
    const restA = await apiCounts(kc);
    await sleep(REST_WINDOW_MS);
    const rest = diffCounts(restA, await apiCounts(kc));
    const nc = (generation: number) => ({
      apiVersion: "netloom.io/v1alpha1",
      kind: "NetworkConfig",
      metadata: { name: "bench" },
      spec: {
        egressDeny: [
          { cidr: "169.254.169.254/32" },
          ...(generation > 1 ? [{ cidr: "192.0.2.0/24", ports: [{ port: 22 }] }] : []),
        ],
      },
    });
    const ncPath = `/apis/${NetworkConfigKind.group}/${NetworkConfigKind.version}/networkconfigs/bench`;
    phases.begin("created", "a NetworkConfig created");
    const create = await measureChange(kc, states, nodes, 1, () => apply(kc, ncPath, nc(1)));
    phases.begin("changed", "the NetworkConfig changed");
    const change = await measureChange(kc, states, nodes, 2, () => apply(kc, ncPath, nc(2)));
    phases.begin("node join", "a node joins");
    const joined = await measureJoin(kc, workers[0]!, states, n, 2);
    phases.begin("pod start", "a pod starts");
    const podStart = await measurePodStart(kc, 0);
    const usage = processUsage(operator.pid!);
    phases.begin("stop", "stopping the agents and the API server");
    states.stop();
    await Promise.all(
      workers.map((w) => {
        const exited = new Promise<void>((r) => {
          w.child.once("exit", () => r());
          setTimeout(r, 10_000).unref();
        });
        w.send({ op: "stop" });
        return exited;
      }),
    );
    await stopAll();
    phases.end();
    return {
      nodes: n,
      pods: n * PODS_PER_NODE,
      floors,
      create,
      change,
      join: joined,
      podStart,
      rest: {
        eventsPerS: rest.events / (REST_WINDOW_MS / 1000),
        writesPerS: total(rest.writes) / (REST_WINDOW_MS / 1000),
        eventsByKind: rest.eventsByKind,
      },
      operator: usage,
      phases: phases.done,
    };
  } finally {
    cleanups.delete(stopAll);
    await stopAll();
  }
}

// ---- report ------------------------------------------------------------------------------------------

const s = (ms: number) => (ms / 1000).toFixed(1);
const x = (a: number, b: number) => (a / b).toFixed(1);

function report(all: SizeFigures[], commit: string): string {
  const rows = all.flatMap((f) =>
    (
      [
        ["created", f.create],
        ["changed", f.change],
      ] as const
    ).map(
      ([what, c]) =>
        `| ${f.nodes} | ${what} | ${s(c.p50)} / ${s(c.p99)} / ${s(c.max)} | ${x(c.p99, f.floors.fanoutMs)}× | ${s(c.readyMs)} | ${x(c.readyMs, f.floors.statusMs)}× | ${total(c.writes)} (${(total(c.writes) / f.nodes).toFixed(1)}/node) | ${c.events} (${(c.events / f.nodes).toFixed(0)}/node) |`,
    ),
  );
  const floorRows = all.map(
    (f) =>
      `| ${f.nodes} | ${f.pods} | ${s(f.floors.applyMs)} | ${s(f.floors.statusMs)} | ${f.floors.fanoutMs.toFixed(0)} ms | ${f.rest.eventsPerS.toFixed(0)} (target ≤ ${f.nodes / 10}) | ${f.rest.writesPerS.toFixed(1)} | ${f.operator.rssMB.toFixed(0)} MB | ${f.operator.cpuS.toFixed(1)} s |`,
  );
  const writeDetail = all.flatMap((f) => [
    `- ${f.nodes} nodes, NetworkConfig changed: ${describeWrites(f.change.writes)}`,
    `- ${f.nodes} nodes, a node joined (its agent applied the config in ${s(f.join.ms)} s), Lease renewals left out: ${describeWrites(f.join.writes)}`,
    `- ${f.nodes} nodes, a pod started, Lease renewals left out: ${describeWrites(f.podStart.writes) || "none"}`,
  ]);
  const minutes = (ms: number) => (ms / 60_000).toFixed(1);
  const phaseLines = all.map(
    (f) =>
      `- ${f.nodes} nodes, ${minutes(f.phases.reduce((sum, p) => sum + p.ms, 0))} minutes: ${f.phases.map((p) => `${p.name} ${s(p.ms)} s`).join(", ")}`,
  );
  const eventRows = all.map(
    (f) =>
      `| ${f.nodes} | ${total(f.join.writes)} | ${f.join.events} | ${total(f.podStart.writes)} | ${f.podStart.events} |`,
  );
  return [
    `Measured ${new Date().toISOString().slice(0, 10)} on commit ${commit}, ${cpus().length} CPUs, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, kube-apiserver 1.37.2 + etcd on loopback. ${minutes(performance.now() - began)} minutes; reproduce with \`BENCH_CP_NODES=${all.map((f) => f.nodes).join(",")} node dist/bench/control-plane.js\` (part of \`make bench\`).`,
    "",
    "A source write → every node applied it (p50 / p99 / max, from the write to each node's report), and → the resource's Ready; each against its floor measured in the same run (p99 against one event reaching N watchers, Ready against N status patches).",
    "",
    "| nodes | NetworkConfig | applied p50 / p99 / max (s) | p99 ÷ fan-out floor | Ready (s) | Ready ÷ N-status floor | API writes | watch events |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ...rows,
    "",
    `| nodes | pods | N applies (s) | N status patches (s) | one event → N watchers | watch events/s at rest (${REST_WINDOW_MS / 1000} s) | writes/s at rest | operator RSS | operator CPU |`,
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ...floorRows,
    "",
    "A node joining and a pod starting (API writes without the Lease renewals that go on meanwhile, which the at-rest figures count; watch events with them):",
    "",
    "| nodes | node join: API writes | node join: watch events | pod start: API writes | pod start: watch events |",
    "| --- | --- | --- | --- | --- |",
    ...eventRows,
    "",
    "Writes by resource:",
    ...writeDetail,
    "",
    `Watch events at rest (${REST_WINDOW_MS / 1000} s), by resource:`,
    ...all.map((f) => `- ${f.nodes} nodes: ${describeWrites(f.rest.eventsByKind)}`),
    "",
    "Where the time went (wall time per phase):",
    ...phaseLines,
  ].join("\n");
}

async function main(): Promise<void> {
  if (!existsSync(join(REPO_ROOT, "dist", "bench", "agent-worker.js")))
    throw new Error("dist/bench/agent-worker.js is missing: make build");
  const all: SizeFigures[] = [];
  for (const n of SIZES) {
    all.push(await measureSize(n));
    say(`figures so far:\n${report(all, "(partial)")}`);
  }
  const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], {
    cwd: REPO_ROOT,
    encoding: "utf8",
  }).trim();
  const text = report(all, commit);
  process.stdout.write(`${text}\n`);
  if (process.env.BENCH_CP_WRITE !== "0") writeBenchmarksSection(text);
  say(`done in ${((performance.now() - began) / 60_000).toFixed(1)} minutes`);
}

/** Replaces the text between the markers of docs/benchmarks.md's section BENCH_CP_SECTION. */
function writeBenchmarksSection(text: string): void {
  const path = join(REPO_ROOT, "docs", "benchmarks.md");
  const section = process.env.BENCH_CP_SECTION ?? "control-plane";
  const begin = `<!-- ${section}:begin (written by bench/control-plane.ts`;
  const end = `<!-- ${section}:end -->`;
  const doc = existsSync(path) ? readFileSync(path, "utf8") : "";
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  if (i < 0 || j < i) throw new Error(`${path} has no ${begin} … ${end} block`);
  const open = doc.indexOf("-->", i) + 3;
  writeFileSync(path, `${doc.slice(0, open)}\n${formatMarkdown(text)}\n${doc.slice(j)}`);
}

await main();
process.exit(0);
