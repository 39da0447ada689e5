import type { KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { Informer } from "../controllers/informer.js";
import { NodeNetworkStateKind } from "../reconcilers/context.js";
import type { NodeAgent } from "./agent.js";

/**
 * What a node agent watches, and how events reach it: the one place that decides an agent's
 * watch fan-out (`netloom agent` and the control-plane benchmark's simulated agents share it).
 */
export interface AgentWatches {
  start(): void;
  /** Resolves when every watch has listed once. */
  synced(): Promise<void>;
  stop(): void;
}

export function agentWatches(
  kubeconfig: KubeConfig,
  node: string,
  agent: NodeAgent,
  logger?: Logger,
): AgentWatches {
  // Only this node's state: the API server filters, so a node costs one watch, not O(nodes).
  const own = new Informer({
    kubeconfig,
    kind: NodeNetworkStateKind,
    fieldSelector: `metadata.name=${node}`,
    ...(logger ? { logger } : {}),
  });
  own.addEventHandler({
    add: (o) => void agent.observeObject(o),
    update: (_o, n) => void agent.observeObject(n),
    delete: () => void agent.observe(undefined),
  });
  // Every node's state, for WireGuard peers (their public keys, endpoints and pod CIDRs).
  const peers = new Informer({
    kubeconfig,
    kind: NodeNetworkStateKind,
    ...(logger ? { logger } : {}),
  });
  const allPeers = () => void agent.observePeerObjects(peers.list());
  peers.addEventHandler({ add: allPeers, update: allPeers, delete: allPeers });
  return {
    start: () => {
      own.start();
      peers.start();
    },
    synced: async () => {
      await Promise.all([own.synced(), peers.synced()]);
    },
    stop: () => {
      own.stop();
      peers.stop();
    },
  };
}
