import { CustomObjectsApi, type KubeConfig, type KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { pino } from "pino";
import type { NodeNetworkStateStatus } from "../api/nodenetworkstate.js";
import { mergePatchStatus } from "../controllers/apply.js";
import { Informer } from "../controllers/informer.js";
import { NodeKind, PodKind, type ResourceKind } from "../controllers/resource.js";
import { MemoryDriver } from "../datapath-driver/memory.js";
import {
  BandwidthPolicyKind,
  EncryptionProfileKind,
  NetworkConfigKind,
  NodeNetworkStateKind,
  NodePeerKind,
} from "../reconcilers/context.js";
import { RealClock } from "../util/clock.js";
import { NodeAgent } from "./agent.js";
import { KeyStore } from "./keystore.js";
import { agentLeaseKeeper, type LeaseKeeper } from "./lease.js";
import { SourceParser } from "./sources.js";
import { peerStatusPatch, statusPatch } from "./status.js";

export interface SimulatorOptions {
  kubeconfig: KubeConfig;
  nodes: string[];
  heartbeatMs?: number;
  /** How often each agent renews its Lease (default AGENT_LEASE_RENEW_MS). */
  leaseRenewMs?: number;
  log?: Logger;
}

/**
 * Hundreds of agents in one process, each a NodeAgent over a MemoryDriver. They render, apply
 * and report through the real API server exactly as `netloom agent` does, from shared informers
 * (one list+watch per kind for the whole process, routed per node); only the kernel is
 * simulated. The control-plane benchmark gives each simulated agent its own watches instead.
 */
export class AgentSimulator {
  readonly agents = new Map<
    string,
    { agent: NodeAgent; driver: MemoryDriver; lease: LeaseKeeper }
  >();
  private readonly informers: Record<
    | "nodes"
    | "pods"
    | "networkConfigs"
    | "encryptionProfiles"
    | "bandwidthPolicies"
    | "peers"
    | "states",
    Informer<KubernetesObject>
  >;
  private readonly api: CustomObjectsApi;
  private readonly clock = new RealClock();
  private readonly parser = new SourceParser();
  private ready = false;
  /** Status writes made, for scale tests. */
  statusWrites = 0;

  constructor(private readonly opts: SimulatorOptions) {
    this.api = opts.kubeconfig.makeApiClient(CustomObjectsApi);
    const log = opts.log ?? pino({ level: "silent" });
    const informer = (kind: ResourceKind) =>
      new Informer<KubernetesObject>({ kubeconfig: opts.kubeconfig, kind, logger: log });
    this.informers = {
      nodes: informer(NodeKind),
      pods: informer(PodKind),
      networkConfigs: informer(NetworkConfigKind),
      encryptionProfiles: informer(EncryptionProfileKind),
      bandwidthPolicies: informer(BandwidthPolicyKind),
      peers: informer(NodePeerKind),
      states: informer(NodeNetworkStateKind),
    };
    this.informers.pods.addIndex("node", (p) => {
      const n = (p as { spec?: { nodeName?: string } }).spec?.nodeName;
      return n ? [n] : [];
    });
    for (const node of opts.nodes) this.addNode(node);
    const on = (inf: Informer<KubernetesObject>, fn: (o: KubernetesObject) => void) =>
      inf.addEventHandler({ add: fn, update: (_o, n) => fn(n), delete: fn });
    const everyone = () => {
      for (const node of this.agents.keys()) this.render(node);
    };
    on(this.informers.nodes, (o) => this.render(o.metadata?.name ?? ""));
    on(this.informers.pods, (o) =>
      this.render((o as { spec?: { nodeName?: string } }).spec?.nodeName ?? ""),
    );
    on(this.informers.networkConfigs, everyone);
    on(this.informers.encryptionProfiles, everyone);
    on(this.informers.bandwidthPolicies, everyone);
    on(this.informers.peers, () => {
      if (!this.ready) return;
      const all = this.informers.peers.list();
      for (const { agent } of this.agents.values()) void agent.observePeerObjects(all);
    });
  }

  /** One agent renders again from the shared caches. */
  private render(node: string): void {
    const entry = this.agents.get(node);
    if (!entry || !this.ready) return;
    const i = this.informers;
    void entry.agent.observeSources({
      node: i.nodes.getByName(node),
      pods: i.pods.byIndex("node", node),
      networkConfigs: i.networkConfigs.list(),
      encryptionProfiles: i.encryptionProfiles.list(),
      bandwidthPolicies: i.bandwidthPolicies.list(),
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
      writePeer: (status) =>
        mergePatchStatus(
          this.api,
          { kind: NodePeerKind, name: node },
          peerStatusPatch(status),
        ).then(() => {}),
      parser: this.parser,
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
    if (this.ready) {
      const own = this.informers.states.getByName(node);
      if (own) agent.observeOwnState(own);
      void agent.observePeerObjects(this.informers.peers.list());
      this.render(node);
    }
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
    const all = Object.values(this.informers);
    for (const i of all) i.start();
    await Promise.all(all.map((i) => i.synced()));
    this.ready = true;
    const peers = this.informers.peers.list();
    for (const [node, { agent }] of this.agents) {
      const own = this.informers.states.getByName(node);
      if (own) agent.observeOwnState(own);
      void agent.observePeerObjects(peers);
      this.render(node);
    }
  }

  stop(): void {
    for (const i of Object.values(this.informers)) i.stop();
    for (const { agent, lease } of this.agents.values()) {
      agent.stop();
      lease.stop();
    }
  }
}
