import { CustomObjectsApi, type KubeConfig, type KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { pino } from "pino";
import type { NodeNetworkStateStatus } from "../api/nodenetworkstate.js";
import { mergePatchStatus } from "../controllers/apply.js";
import { Informer } from "../controllers/informer.js";
import { MemoryDriver } from "../datapath-driver/memory.js";
import { NodeNetworkStateKind } from "../reconcilers/context.js";
import { RealClock } from "../util/clock.js";
import { NodeAgent } from "./agent.js";
import { KeyStore } from "./keystore.js";
import { agentLeaseKeeper, type LeaseKeeper } from "./lease.js";
import { statusPatch } from "./status.js";

export interface SimulatorOptions {
  kubeconfig: KubeConfig;
  nodes: string[];
  heartbeatMs?: number;
  /** How often each agent renews its Lease (default AGENT_LEASE_RENEW_MS). */
  leaseRenewMs?: number;
  log?: Logger;
}

/**
 * Hundreds of agents in one process, each a NodeAgent over a MemoryDriver, sharing one
 * NodeNetworkState informer. They apply and report through the real API server exactly as
 * `netloom agent` does; only the kernel is simulated.
 */
export class AgentSimulator {
  readonly agents = new Map<
    string,
    { agent: NodeAgent; driver: MemoryDriver; lease: LeaseKeeper }
  >();
  private readonly informer: Informer<KubernetesObject>;
  private readonly api: CustomObjectsApi;
  private readonly clock = new RealClock();
  /** Status writes made, for scale tests. */
  statusWrites = 0;

  constructor(private readonly opts: SimulatorOptions) {
    this.api = opts.kubeconfig.makeApiClient(CustomObjectsApi);
    const log = opts.log ?? pino({ level: "silent" });
    this.informer = new Informer({
      kubeconfig: opts.kubeconfig,
      kind: NodeNetworkStateKind,
      logger: log,
    });
    for (const node of opts.nodes) this.addNode(node);
    const route = (obj: KubernetesObject, gone = false) => {
      const entry = this.agents.get(obj.metadata?.name ?? "");
      if (entry) void (gone ? entry.agent.observe(undefined) : entry.agent.observeObject(obj));
      // Peers learn each other from the shared cache, as real agents do from their watch.
      const all = this.informer.list();
      for (const { agent } of this.agents.values()) void agent.observePeerObjects(all);
    };
    this.informer.addEventHandler({
      add: (o) => route(o),
      update: (_old, o) => route(o),
      delete: (o) => route(o, true),
    });
  }

  addNode(node: string): NodeAgent {
    const driver = new MemoryDriver();
    const agent = new NodeAgent({
      node,
      driver,
      heartbeatMs: this.opts.heartbeatMs ?? 15_000,
      // Simulated nodes encrypt too: keys in memory, an endpoint from TEST-NET-1.
      keys: new KeyStore(undefined),
      nodeIP: `192.0.2.${(this.agents.size % 250) + 1}`,
      writeStatus: (status: NodeNetworkStateStatus) => {
        this.statusWrites++;
        const patch = statusPatch(status);
        return mergePatchStatus(this.api, { kind: NodeNetworkStateKind, name: node }, patch).then(
          () => {},
        );
      },
      ...(this.opts.log ? { log: this.opts.log } : {}),
    });
    const lease = agentLeaseKeeper(this.opts.kubeconfig, node, {
      clock: this.clock,
      ...(this.opts.leaseRenewMs ? { renewMs: this.opts.leaseRenewMs } : {}),
      ...(this.opts.log ? { log: this.opts.log } : {}),
    });
    this.agents.set(node, { agent, driver, lease });
    agent.start();
    lease.start();
    const current = this.informer?.getByName(node);
    if (current) void agent.observeObject(current);
    return agent;
  }

  removeNode(node: string): void {
    this.agents.get(node)?.agent.stop();
    this.agents.get(node)?.lease.stop();
    this.agents.delete(node);
  }

  driver(node: string): MemoryDriver {
    const e = this.agents.get(node);
    if (!e) throw new Error(`no simulated agent for ${node}`);
    return e.driver;
  }

  async start(): Promise<void> {
    this.informer.start();
    await this.informer.synced();
  }

  stop(): void {
    this.informer.stop();
    for (const { agent, lease } of this.agents.values()) {
      agent.stop();
      lease.stop();
    }
  }
}
