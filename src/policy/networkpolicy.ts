/**
 * networking.k8s.io/v1 NetworkPolicy, as Netloom reads it: parsed with zod where it enters the
 * code (the API server validated it already; unknown fields are dropped, not refused, so a
 * newer API server's additions do not make a policy unreadable).
 */
import { z } from "zod";

const selector = z.object({
  matchLabels: z.record(z.string(), z.string()).optional(),
  matchExpressions: z
    .array(
      z.object({
        key: z.string(),
        operator: z.enum(["In", "NotIn", "Exists", "DoesNotExist"]),
        values: z.array(z.string()).optional(),
      }),
    )
    .optional(),
});

const peer = z.object({
  podSelector: selector.optional(),
  namespaceSelector: selector.optional(),
  ipBlock: z.object({ cidr: z.string(), except: z.array(z.string()).optional() }).optional(),
});

const port = z.object({
  protocol: z.enum(["TCP", "UDP", "SCTP"]).optional(),
  port: z.union([z.int(), z.string()]).optional(),
  endPort: z.int().optional(),
});

export const networkPolicy = z.object({
  apiVersion: z.literal("networking.k8s.io/v1").optional(),
  kind: z.literal("NetworkPolicy").optional(),
  metadata: z.object({
    name: z.string(),
    namespace: z.string(),
    generation: z.int().optional(),
    annotations: z.record(z.string(), z.string()).optional(),
  }),
  spec: z.object({
    podSelector: selector,
    policyTypes: z.array(z.enum(["Ingress", "Egress"])).optional(),
    ingress: z
      .array(z.object({ from: z.array(peer).optional(), ports: z.array(port).optional() }))
      .optional(),
    egress: z
      .array(z.object({ to: z.array(peer).optional(), ports: z.array(port).optional() }))
      .optional(),
  }),
});

export type NetworkPolicy = z.infer<typeof networkPolicy>;
export type PolicyPeer = z.infer<typeof peer>;
export type PolicyPort = z.infer<typeof port>;
export type Selector = z.infer<typeof selector>;
