import type { KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { Manager, type ManagerOptions } from "../controllers/manager.js";
import { registerBandwidthPolicyController } from "./bandwidthpolicy/reconcile.js";
import { registerClusterMeshPeerController } from "./clustermeshpeer/reconcile.js";
import { OperatorContext, type OperatorOptions } from "./context.js";
import { registerEncryptionProfileController } from "./encryptionprofile/reconcile.js";
import { registerNetworkConfigController } from "./networkconfig/reconcile.js";
import { registerNetworkPolicyControllers } from "./networkpolicy/reconcile.js";
import { registerNodeStateController } from "./nodenetworkstate/reconcile.js";

export interface OperatorConfig extends OperatorOptions {
  kubeconfig: KubeConfig;
  logger: Logger;
  leaderElection?: ManagerOptions["leaderElection"];
  server?: ManagerOptions["server"];
}

/** The operator: one manager, the node-state controller and one status controller per kind. */
export function createOperator(config: OperatorConfig): {
  manager: Manager;
  context: OperatorContext;
} {
  const manager = new Manager({
    kubeconfig: config.kubeconfig,
    logger: config.logger,
    ...(config.leaderElection ? { leaderElection: config.leaderElection } : {}),
    ...(config.server !== undefined ? { server: config.server } : {}),
  });
  const context = new OperatorContext(manager, config.kubeconfig, config.logger, config);
  registerNodeStateController(context);
  registerNetworkConfigController(context);
  registerEncryptionProfileController(context);
  registerBandwidthPolicyController(context);
  registerClusterMeshPeerController(context);
  registerNetworkPolicyControllers(context);
  return { manager, context };
}
