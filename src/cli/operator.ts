import { hostname } from "node:os";
import { pino } from "pino";
import { DEFAULT_LEASE_NAMESPACE } from "../agent/lease.js";
import { localIdentityProblem } from "../reconcilers/clustermeshpeer/mesh.js";
import { createOperator } from "../reconcilers/operator.js";
import { flags, loadKubeConfig } from "./args.js";

/** `netloom operator`: the reconcilers under one manager, leader-elected when asked. */
export async function runOperator(argv: string[]): Promise<number> {
  const f = flags("netloom operator", argv, {
    kubeconfig: { type: "string" },
    "metrics-port": { type: "string", default: "8080" },
    "leader-elect": { type: "boolean", default: false },
    "lease-namespace": { type: "string", default: "netloom-system" },
    "lease-name": { type: "string", default: "netloom-operator" },
    "agent-lease-namespace": { type: "string", default: DEFAULT_LEASE_NAMESPACE },
    "cluster-name": { type: "string" },
    "cluster-id": { type: "string" },
    "log-level": { type: "string", default: "info" },
  });
  const logger = pino({ level: f["log-level"] ?? "info" });
  const kubeconfig = loadKubeConfig(f.kubeconfig);
  const port = Number(f["metrics-port"]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(
      `netloom operator: --metrics-port must be a port number, got "${f["metrics-port"]}"`,
    );
  }
  const identityError = localIdentityProblem(f["cluster-name"], f["cluster-id"]);
  if (identityError) throw new Error(`netloom operator: ${identityError}`);
  const { manager } = createOperator({
    ...(f["cluster-name"] && f["cluster-id"]
      ? { clusterIdentity: { name: f["cluster-name"], id: Number(f["cluster-id"]) } }
      : {}),
    kubeconfig,
    logger,
    server: { port },
    leaseNamespace: f["agent-lease-namespace"] ?? DEFAULT_LEASE_NAMESPACE,
    ...(f["leader-elect"]
      ? {
          leaderElection: {
            namespace: f["lease-namespace"] ?? "netloom-system",
            name: f["lease-name"] ?? "netloom-operator",
            identity: `${hostname()}_${process.pid}`,
          },
        }
      : {}),
  });
  manager.installSignalHandlers();
  await manager.start();
  logger.info({ port: manager.port }, "operator started");
  await manager.wait();
  return 0;
}
