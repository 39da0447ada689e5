// One node agent's own cost at cluster scale (part of `make bench`, a few seconds): the agent
// code (NodeAgent over the in-memory driver) fed 1,000 nodes' endpoint slices of 30 pods each,
// 10 NetworkPolicies selecting its pods. Each event's cost is printed against the baseline of
// the same run: a fresh agent rendering the same sources from scratch (what every event cost
// before the agent kept its ipcache). BENCH_AGENT_NODES sets the cluster size.
import { performance } from "node:perf_hooks";
import { NodeAgent } from "../src/agent/agent.js";
import { KeyStore } from "../src/agent/keystore.js";
import { type RawSources, SourceParser } from "../src/agent/sources.js";
import { MemoryDriver } from "../src/datapath-driver/memory.js";

const NODES = Number(process.env.BENCH_AGENT_NODES ?? 1000);
const PODS_PER_NODE = 30;
const EVENTS = 10;

const nodeName = (i: number) => `node-${String(i).padStart(5, "0")}`;
const podIP = (i: number, j: number) => `10.${64 + (i >> 8)}.${i & 255}.${j + 10}`;
const app = (j: number) => (j % 3 === 0 ? "landing-page" : "api");

const identityOf = new Map<string, number>();
const identities = Array.from({ length: 10 }, (_, k) =>
  ["landing-page", "api"].map((a) => {
    const id = 256 + identityOf.size;
    identityOf.set(`bench-${k}/${a}`, id);
    return {
      apiVersion: "netloom.io/v1alpha1",
      kind: "NetworkIdentity",
      metadata: { name: String(id) },
      spec: {
        namespace: `bench-${k}`,
        podLabels: { app: a },
        namespaceLabels: { "kubernetes.io/metadata.name": `bench-${k}` },
      },
    };
  }),
).flat();
const slice = (i: number, version = 1, pods = PODS_PER_NODE) => ({
  apiVersion: "netloom.io/v1alpha1",
  kind: "NetworkEndpointSlice",
  metadata: { name: nodeName(i), generation: version },
  spec: {
    nodeName: nodeName(i),
    endpoints: Array.from({ length: pods }, (_, j) => ({
      namespace: `bench-${j % 10}`,
      name: `p-${i}-${j}`,
      identity: identityOf.get(`bench-${j % 10}/${app(j)}`)!,
      ips: [podIP(i, j)],
    })),
  },
});
const policies = Array.from({ length: 10 }, (_, k) => ({
  apiVersion: "networking.k8s.io/v1",
  kind: "NetworkPolicy",
  metadata: { name: "api-from-landing-page", namespace: `bench-${k}`, generation: 1 },
  spec: {
    podSelector: { matchLabels: { app: "api" } },
    policyTypes: ["Ingress"],
    ingress: [
      {
        from: [{ podSelector: { matchLabels: { app: "landing-page" } } }],
        ports: [{ port: 8080, protocol: "TCP" }],
      },
    ],
  },
}));
const networkConfig = (generation: number) => ({
  apiVersion: "netloom.io/v1alpha1",
  kind: "NetworkConfig",
  metadata: { name: "bench", generation },
  spec: { egressDeny: [{ cidr: `169.254.169.${generation % 250}/32` }] },
});
const node = {
  metadata: { name: nodeName(0), labels: {} },
  spec: { podCIDR: "10.64.0.0/24" },
  status: { addresses: [{ type: "InternalIP", address: "192.0.2.1" }] },
};
const pods = Array.from({ length: PODS_PER_NODE }, (_, j) => ({
  metadata: { namespace: `bench-${j % 10}`, name: `p-0-${j}`, labels: { app: app(j) } },
  spec: { nodeName: nodeName(0) },
  status: { phase: "Running", podIP: podIP(0, j), podIPs: [{ ip: podIP(0, j) }] },
}));
const sources = (endpointSlices: unknown[], generation = 1): RawSources => ({
  node,
  pods,
  networkConfigs: [networkConfig(generation)],
  encryptionProfiles: [],
  bandwidthPolicies: [],
  networkPolicies: policies,
  identities,
  endpointSlices,
});

const newAgent = () =>
  new NodeAgent({
    node: nodeName(0),
    driver: new MemoryDriver(),
    keys: new KeyStore(undefined),
    nodeIP: "192.0.2.1",
    writeStatus: async () => {},
    parser: new SourceParser(),
  });

async function ms(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const slices = Array.from({ length: NODES }, (_, i) => slice(i));
// Baseline: a fresh agent (and parser) rendering and applying everything, as every event did
// when the agent rebuilt its ipcache; the median of a few.
const scratch: number[] = [];
for (let r = 0; r < 3; r++)
  scratch.push(await ms(() => newAgent().observeSources(sources(slices))));
const baseline = median(scratch);

// Run with --expose-gc (make bench does) for a heap figure without garbage in it.
const gc = (globalThis as { gc?: () => void }).gc;
gc?.();
const heapBefore = process.memoryUsage().heapUsed;
const agent = newAgent();
await agent.observeSources(sources(slices));
gc?.();
const heap = process.memoryUsage().heapUsed - heapBefore;

const podStart: number[] = [];
let current = slices;
for (let r = 1; r <= EVENTS; r++) {
  // A pod starts on another node: its node's slice is replaced (one more pod).
  current = current.slice();
  current[r] = slice(r, 2, PODS_PER_NODE + 1);
  const next = current;
  podStart.push(await ms(() => agent.observeSources(sources(next))));
}
const configChange: number[] = [];
for (let r = 1; r <= EVENTS; r++)
  configChange.push(await ms(() => agent.observeSources(sources(current, 1 + r))));
const drift: number[] = [];
for (let r = 1; r <= EVENTS; r++) drift.push(await ms(() => agent.checkDrift()));

const line = (what: string, v: number) =>
  `${what.padEnd(52)} ${v.toFixed(1).padStart(8)} ms  ×${(v / baseline).toFixed(3)} baseline`;
const out = [
  `netloom agent bench: ${NODES} nodes × ${PODS_PER_NODE} pods in the ipcache, 10 NetworkPolicies, ${PODS_PER_NODE} local pods (medians)`,
  line("baseline: a fresh agent renders and applies it all", baseline),
  line("a pod starts on another node (one slice replaced)", median(podStart)),
  line("the NetworkConfig changes", median(configChange)),
  line("a drift check", median(drift)),
  `one agent's heap after its first render: ${(heap / 2 ** 20).toFixed(1)} MB (parsed sources, ipcache, directory, applied state${gc ? "" : "; without --expose-gc, garbage too"})`,
];
process.stdout.write(`${out.join("\n")}\n`);
