// A child process of bench/control-plane.ts: simulated node agents, each with its own watches
// (agentWatches, exactly what `netloom agent` opens), so the API server's watch fan-out is real.
// Only the kernel is simulated (MemoryDriver). Also opens plain watches for the fan-out floor.
// Talks to the parent over IPC; exits when the parent is gone (killed, or crashed).
import { CustomObjectsApi, type KubernetesObject, Watch } from "@kubernetes/client-node";
import { pino } from "pino";
import { NodeAgent } from "../src/agent/agent.js";
import { KeyStore } from "../src/agent/keystore.js";
import { agentLeaseKeeper } from "../src/agent/lease.js";
import { SourceParser } from "../src/agent/sources.js";
import { peerStatusPatch, statusPatch } from "../src/agent/status.js";
import { agentWatches } from "../src/agent/watches.js";
import { mergePatchStatus } from "../src/controllers/apply.js";
import { MemoryDriver } from "../src/datapath-driver/memory.js";
import { newKubeConfig } from "../src/kube/kubeconfig.js";
import { NodeNetworkStateKind, NodePeerKind } from "../src/reconcilers/context.js";
import { RealClock } from "../src/util/clock.js";

export type ToWorker =
  | { op: "agents"; nodes: string[]; heartbeatMs: number }
  | { op: "fanout-watch"; count: number; namespace: string; name: string }
  | { op: "fanout-stop" }
  | { op: "stop" };

export type FromWorker =
  | { op: "agents-synced"; writes: number }
  | { op: "agent-synced" }
  | { op: "fanout-ready"; live: number }
  | { op: "fanout-event"; at: number }
  | { op: "stats"; writes: number };

const send = (m: FromWorker) => process.send?.(m);
const kc = newKubeConfig();
kc.loadFromFile(process.env.BENCH_KUBECONFIG ?? "");
const log = pino({ level: process.env.BENCH_LOG ?? "silent" });
const api = kc.makeApiClient(CustomObjectsApi);
const stops: (() => void)[] = [];
const clock = new RealClock();
let fanout: AbortController[] = [];
let writes = 0;
/** One parser for the process's agents: they see the same source objects. */
const parser = new SourceParser();

/**
 * The process's agents keep one copy of each object version: every agent still receives and
 * decodes its own watch events, but 125 agents in one process holding 125 copies of every
 * node's endpoint slice (30,000 pods) would measure this harness, not Netloom (a real agent is
 * alone on its node; its own footprint is measured in the datapath half). Sharing the object
 * also shares its parse (SourceParser memoizes per object) and its ipcache claims.
 */
const interned = new Map<string, WeakRef<KubernetesObject>>();
const forget = new FinalizationRegistry<string>((key) => {
  if (!interned.get(key)?.deref()) interned.delete(key);
});
function intern(obj: KubernetesObject): KubernetesObject {
  const m = obj.metadata;
  if (!m?.uid || !m.resourceVersion) return obj;
  const key = `${m.uid}@${m.resourceVersion}`;
  const have = interned.get(key)?.deref();
  if (have) return have;
  interned.set(key, new WeakRef(obj));
  forget.register(obj, key);
  return obj;
}

/** Agents of one process starting at once (each lists and watches its sources). */
const STARTING = 4;

/**
 * Starts the agents a few at a time, each once the one before it in its lane has synced, as
 * a DaemonSet rolls out: a thousand agents listing every NodePeer in the same second measures
 * the API server's start-up storm, not steady propagation.
 */
async function startAgents(nodes: string[], heartbeatMs: number): Promise<void> {
  const start = async (node: string, i: number) => {
    const agent = new NodeAgent({
      node,
      driver: new MemoryDriver(),
      heartbeatMs,
      keys: new KeyStore(undefined),
      nodeIP: `192.0.2.${(i % 250) + 1}`,
      writeStatus: async (status) => {
        writes++;
        await mergePatchStatus(
          api,
          { kind: NodeNetworkStateKind, name: node },
          statusPatch(status),
        );
      },
      writePeer: async (status) => {
        writes++;
        await mergePatchStatus(api, { kind: NodePeerKind, name: node }, peerStatusPatch(status));
      },
      parser,
      log,
    });
    const w = agentWatches(kc, node, agent, log, intern);
    const lease = agentLeaseKeeper(kc, node, { clock });
    w.start();
    agent.start();
    lease.start();
    stops.push(() => {
      agent.stop();
      lease.stop();
      w.stop();
    });
    await w.synced();
    send({ op: "agent-synced" });
  };
  let next = 0;
  const lane = async () => {
    while (next < nodes.length) {
      const i = next++;
      await start(nodes[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(STARTING, nodes.length) }, lane));
  send({ op: "agents-synced", writes });
}

/**
 * Opens `count` watches on one ConfigMap and says ready, with how many are live, once every
 * one has delivered its initial ADDED event (then it is live on the server and sees the write
 * that follows) or after 60 s. A watch that ends or fails before that is opened again (its
 * errors are counted and printed).
 */
async function openFanout(count: number, namespace: string, name: string): Promise<void> {
  const watch = new Watch(kc);
  let live = 0;
  const errors = new Map<string, number>();
  let settle: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    settle = resolve;
    setTimeout(resolve, 60_000);
  });
  let retrying = true;
  const open = () => {
    if (!retrying) return;
    let seen = false;
    watch
      .watch(
        `/api/v1/namespaces/${namespace}/configmaps`,
        // resourceVersion=0: served from the watch cache, with the object as an ADDED event. A
        // watch without one is served from etcd, and the API server closed hundreds of those
        // opened at once without an event (the "watches that never start" of earlier runs).
        {
          fieldSelector: `metadata.name=${name}`,
          resourceVersion: "0",
          allowWatchBookmarks: false,
        },
        (type) => {
          if (type === "ADDED" && !seen) {
            seen = true;
            if (++live === count) settle();
          }
          if (type === "MODIFIED") send({ op: "fanout-event", at: Date.now() });
        },
        (err: unknown) => {
          if (seen || !retrying) return;
          const why = err instanceof Error ? err.message : String(err ?? "closed");
          errors.set(why, (errors.get(why) ?? 0) + 1);
          setTimeout(open, 100 + Math.random() * 400);
        },
      )
      .then(
        (abort) => fanout.push(abort),
        () => setTimeout(open, 200),
      );
  };
  for (let i = 0; i < count; i++) open();
  await done;
  // The floor is measured over the watches live now; late ones would skew it.
  retrying = false;
  if (errors.size)
    process.stderr.write(
      `[agent-worker] fan-out watches that failed before their first event (opened again): ${[...errors].map(([m, n]) => `${n}× ${m}`).join("; ")}\n`,
    );
  send({ op: "fanout-ready", live });
}

process.on("disconnect", () => process.exit(0));
process.on("message", (m: ToWorker) => {
  if (m.op === "agents") void startAgents(m.nodes, m.heartbeatMs);
  if (m.op === "fanout-watch") void openFanout(m.count, m.namespace, m.name);
  if (m.op === "fanout-stop") {
    for (const a of fanout) a.abort();
    fanout = [];
  }
  if (m.op === "stop") {
    send({ op: "stats", writes });
    for (const s of stops) s();
    for (const a of fanout) a.abort();
    setImmediate(() => process.exit(0));
  }
});
