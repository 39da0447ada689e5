// Benchmarks that print figures and a ratio against a baseline measured in the same run (this
// machine is noisy: compare ratios, not absolute times). Pure layers only here: the operator's
// rendering and status folding at cluster sizes the design promises.
import { performance } from "node:perf_hooks";
import type { NodeNetworkState } from "../src/api/nodenetworkstate.js";
import type {
  BandwidthPolicy,
  NetworkConfig,
  NodeView,
  PodView,
} from "../src/reconcilers/model.js";
import { foldNetworkConfig } from "../src/reconcilers/networkconfig/status.js";
import { renderNodeState } from "../src/reconcilers/nodenetworkstate/desired.js";
import { contentHash, stableStringify } from "../src/reconcilers/shared/hash.js";

const began = performance.now();
const NODES = Number(process.env.BENCH_NODES ?? 5000);
const PODS_PER_NODE = 30;

function time<T>(fn: () => T, runs = 5): { ms: number; result: T } {
  let best = Number.POSITIVE_INFINITY;
  let result!: T;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    result = fn();
    best = Math.min(best, performance.now() - t0);
  }
  return { ms: best, result };
}

const nodes: NodeView[] = Array.from({ length: NODES }, (_, i) => ({
  name: `node-${i}`,
  uid: `uid-${i}`,
  labels: { zone: `z${i % 3}` },
  podCIDRs: [`10.${(i >> 8) & 255}.${i & 255}.0/24`],
}));
const pods: PodView[] = nodes.flatMap((n, i) =>
  Array.from({ length: PODS_PER_NODE }, (_, j) => ({
    namespace: `ns-${j % 10}`,
    name: `p-${i}-${j}`,
    labels: { app: j % 3 === 0 ? "landing-page" : "api" },
    annotations: {},
    nodeName: n.name,
    ip: `10.${(i >> 8) & 255}.${i & 255}.${j + 10}`,
  })),
);
const nc: NetworkConfig = {
  apiVersion: "netloom.io/v1alpha1",
  kind: "NetworkConfig",
  metadata: { name: "default", generation: 3, creationTimestamp: "2026-11-01T00:00:00Z" },
  spec: {
    egressDeny: [{ cidr: "169.254.169.254/32" }],
    drift: { checkInterval: "10s", mode: "Heal" },
  },
};
const bps: BandwidthPolicy[] = Array.from({ length: 10 }, (_, k) => ({
  apiVersion: "netloom.io/v1alpha1",
  kind: "BandwidthPolicy",
  metadata: { name: "landing-page", namespace: `ns-${k}`, generation: 1 },
  spec: { podSelector: { matchLabels: { app: "landing-page" } }, egress: { rate: "50M" } },
}));
const podsByNode = new Map<string, PodView[]>();
for (const p of pods) podsByNode.set(p.nodeName!, [...(podsByNode.get(p.nodeName!) ?? []), p]);

const render = time(() =>
  nodes.map((node) =>
    renderNodeState({
      node,
      networkConfigs: [nc],
      encryptionProfiles: [],
      bandwidthPolicies: bps,
      pods: podsByNode.get(node.name) ?? [],
    }),
  ),
);
// Baseline: only serialising each node's inputs once (a floor for any per-node work).
const baseline = time(() =>
  nodes.map((node) => stableStringify({ node, pods: podsByNode.get(node.name) })),
);
const hashing = time(() => render.result.map((r) => contentHash(r.spec)));

const states = new Map<string, NodeNetworkState>(
  render.result.map((r) => [
    r.spec.nodeName,
    {
      apiVersion: "netloom.io/v1alpha1",
      kind: "NodeNetworkState",
      metadata: { name: r.spec.nodeName, generation: 1 },
      spec: r.spec,
      // Each node applied the NetworkConfig's generation: the fold judges every node through to
      // ready, not out at "not applied yet".
      status: {
        observedGeneration: 1,
        heartbeatTime: new Date().toISOString(),
        sources: { networkConfig: { name: "default", generation: 3 } },
        conditions: [
          {
            type: "Ready",
            status: "True",
            reason: "Applied",
            message: "",
            lastTransitionTime: new Date().toISOString(),
          },
        ],
      },
    },
  ]),
);
const fold = time(() => foldNetworkConfig(nc, [nc], nodes, states, { now: new Date() }));

const line = (what: string, ms: number, per: number) =>
  `${what.padEnd(44)} ${ms.toFixed(1).padStart(8)} ms  ${((ms * 1000) / per).toFixed(1).padStart(7)} µs/node  ×${(ms / baseline.ms).toFixed(2)} baseline`;
process.stdout.write(
  `netloom bench: ${NODES} nodes, ${PODS_PER_NODE} pods/node, 10 BandwidthPolicies (best of 5)\n`,
);
process.stdout.write(`${line("baseline: serialise each node's inputs", baseline.ms, NODES)}\n`);
process.stdout.write(`${line("renderNodeState for every node", render.ms, NODES)}\n`);
process.stdout.write(`${line("contentHash of every rendered spec", hashing.ms, NODES)}\n`);
process.stdout.write(`${line("foldNetworkConfig over every node", fold.ms, NODES)}\n`);
process.stdout.write(
  `fold result: ${fold.result.nodes} ready, conditions ${fold.result.conditions.map((c) => `${c.type}=${c.status}`).join(" ")}\n`,
);
process.stdout.write(`${((performance.now() - began) / 1000).toFixed(1)} s in all\n`);
