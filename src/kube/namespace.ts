import type { KubeConfig } from "@kubernetes/client-node";
import { kubeRequest } from "./raw.js";

/** Creates the namespace unless it exists (the cluster-in-a-box, tests and benchmarks). */
export async function ensureNamespace(kc: KubeConfig, name: string): Promise<void> {
  const r = await kubeRequest(kc, "POST", "/api/v1/namespaces", {
    body: { apiVersion: "v1", kind: "Namespace", metadata: { name } },
  });
  if (r.status >= 300 && r.status !== 409)
    throw new Error(`namespace ${name}: ${r.status} ${r.body.slice(0, 300)}`);
}
