import { createHash } from "node:crypto";
import { Agent, type AgentOptions } from "node:https";
import { KubeConfig } from "@kubernetes/client-node";

type Cluster = ReturnType<KubeConfig["getCurrentCluster"]>;
type CreateAgent = (cluster: Cluster, options: AgentOptions) => unknown;

/**
 * A KubeConfig whose API calls share keep-alive connections. @kubernetes/client-node 1.4 makes
 * a new https.Agent for every request (KubeConfig.createAgent), so each status write, Lease
 * renewal and watch opened a TLS connection of its own: a handshake on both ends per call,
 * which at a thousand agents costs the API server more than the writes. Here every request
 * with the same server and credentials goes through one Agent (keepAlive), as client-go's
 * shared transport does.
 */
export function newKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  const target = kc as unknown as { createAgent: CreateAgent };
  const original = target.createAgent.bind(kc);
  const agents = new Map<string, Agent>();
  target.createAgent = (cluster, options) => {
    // Proxies and plain HTTP keep the library's own agents.
    if (cluster?.proxyUrl || cluster?.server.startsWith("http:")) return original(cluster, options);
    const key = createHash("sha256")
      .update(
        JSON.stringify([
          cluster?.server,
          options.ca?.toString(),
          options.cert?.toString(),
          options.key?.toString(),
          options.rejectUnauthorized,
          options.servername,
        ]),
      )
      .digest("hex");
    let agent = agents.get(key);
    if (!agent) {
      agent = new Agent({ ...options, keepAlive: true });
      agents.set(key, agent);
    }
    return agent;
  };
  return kc;
}
