/**
 * Flow visibility on one node, assembled for `netloom agent`: the reader of the pinned ring
 * (linux driver only; with the memory driver the buffer stays empty), the buffer, the metrics
 * and the authenticated /v1/flows handler. The names come from what the agent rendered last,
 * rebuilt only when that changes (and then the metrics forget workloads with no pod left).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { NodeDatapath } from "../api/nodenetworkstate.js";
import { PinnedFlowEvents } from "../datapath-driver/linux/flow-events.js";
import { ifIndexToName } from "../datapath-driver/linux/libbpf.js";
import type { NodePolicy } from "../policy/node.js";
import type { Clock } from "../util/clock.js";
import { kubeFlowAuthorizer } from "./auth.js";
import { FlowBuffer } from "./buffer.js";
import {
  EMPTY_DIRECTORY,
  type EndpointDirectory,
  endpointsOf,
  type FlowContext,
  interfacePods,
} from "./context.js";
import { workloadOf } from "./flow.js";
import { FlowMetrics } from "./metrics.js";
import { type FlowEventSource, FlowObserver } from "./observer.js";
import { flowsEndpoint } from "./server.js";

/** What the agent rendered and applied last (read on each poll that has events). */
export interface FlowInputs {
  policy(): NodePolicy | undefined;
  directory(): EndpointDirectory | undefined;
  desired(): NodeDatapath | undefined;
  /** ifindex → namespace/name of the pods with the NetworkPolicy programs. */
  interfaces(): ReadonlyMap<number, string>;
}

/**
 * Pure but for the interface names: a FlowContext rebuilt only when one of its inputs is
 * another object than last time. `changed` says when it was rebuilt.
 */
export class FlowContextCache {
  private last: { inputs: unknown[]; ctx: FlowContext } | undefined;

  constructor(
    private readonly node: string,
    private readonly inputs: FlowInputs,
    private readonly ifname: (ifindex: number) => string | undefined = () => undefined,
  ) {}

  current(): { ctx: FlowContext; changed: boolean } {
    const policy = this.inputs.policy();
    const directory = this.inputs.directory() ?? EMPTY_DIRECTORY;
    const desired = this.inputs.desired();
    const interfaces = this.inputs.interfaces();
    const now = [policy, directory, desired, interfaces];
    if (this.last && now.every((x, i) => x === this.last!.inputs[i]))
      return { ctx: this.last.ctx, changed: false };
    // Names per context: an ifindex may be reused by another device later.
    const names = new Map<number, string | undefined>();
    const ctx: FlowContext = {
      node: this.node,
      directory,
      endpoints: endpointsOf(policy),
      interfaces: interfacePods(interfaces),
      interfaceName: (i) => {
        if (!names.has(i)) names.set(i, this.ifname(i));
        return names.get(i);
      },
      sources: {
        ...(desired?.sources?.networkConfig
          ? { networkConfig: desired.sources.networkConfig.name }
          : {}),
        ...(desired?.sources?.encryptionProfile
          ? { encryptionProfile: desired.sources.encryptionProfile.name }
          : {}),
      },
    };
    this.last = { inputs: now, ctx };
    return { ctx, changed: true };
  }
}

/** Pure: the workloads that still have a pod somewhere ("namespace/workload"). */
export function presentWorkloads(directory: EndpointDirectory): Set<string> {
  const out = new Set<string>();
  for (const p of directory.pods()) out.add(`${p.namespace}/${workloadOf(p.name)}`);
  return out;
}

export interface NodeFlowsOptions {
  node: string;
  inputs: FlowInputs;
  /** The node's pin directory: flow events are read there (undefined: no eBPF datapath). */
  pinDir?: string;
  /** A source instead of the pinned ring (tests). */
  source?: FlowEventSource;
  registry: Registry;
  kubeconfig: KubeConfig;
  clock: Clock;
  bufferSize?: number;
  topWorkloads?: number;
  maxEventsPerSecond?: number;
  log?: Logger;
}

export interface NodeFlows {
  buffer: FlowBuffer;
  observer: FlowObserver | undefined;
  /** Takes GET /v1/flows; false for other paths. */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  start(): void;
  stop(): void;
}

export function nodeFlows(opts: NodeFlowsOptions): NodeFlows {
  const buffer = new FlowBuffer(opts.bufferSize);
  const contexts = new FlowContextCache(opts.node, opts.inputs, (i) => {
    try {
      return ifIndexToName(i);
    } catch {
      return undefined; // no libc binding here: names stay out
    }
  });
  const source = opts.source ?? (opts.pinDir ? new PinnedFlowEvents(opts.pinDir) : undefined);
  let observer: FlowObserver | undefined;
  const metrics = new FlowMetrics(
    opts.registry,
    () => observer?.flowCounts() ?? { read: 0, lostInRing: 0, undecodable: 0, lostToClients: 0 },
    opts.topWorkloads,
  );
  if (source)
    observer = new FlowObserver({
      source,
      buffer,
      metrics,
      clock: opts.clock,
      context: () => {
        const { ctx, changed } = contexts.current();
        if (changed) {
          const present = presentWorkloads(ctx.directory);
          metrics.retain((w) => present.has(w));
        }
        return ctx;
      },
      ...(opts.maxEventsPerSecond !== undefined
        ? { maxEventsPerSecond: opts.maxEventsPerSecond }
        : {}),
      ...(opts.log ? { log: opts.log } : {}),
    });
  const handle = flowsEndpoint({
    node: opts.node,
    buffer,
    clock: opts.clock,
    authorizer: kubeFlowAuthorizer({
      kubeconfig: opts.kubeconfig,
      node: opts.node,
      clock: opts.clock,
    }),
    onClientLost: (n) => observer?.noteLostToClient(n),
    ...(opts.log ? { log: opts.log } : {}),
  });
  return {
    buffer,
    observer,
    handle,
    start: () => observer?.start(),
    stop: () => observer?.stop(),
  };
}
