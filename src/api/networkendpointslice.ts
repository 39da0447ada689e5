import { z } from "zod";
import { API_VERSION, ipAddress, objectMeta, port } from "./common.js";

/**
 * One pod as every agent needs it for policy: its addresses, its identity and its named ports,
 * nothing else (Cilium's slim CiliumEndpoint). Far smaller than a Pod, and it changes only
 * when one of these does.
 */
export const policyEndpoint = z
  .object({
    namespace: z.string().min(1).max(63).meta({ description: "The pod's namespace." }),
    name: z.string().min(1).max(253).meta({ description: "The pod's name." }),
    identity: z
      .int()
      .min(1)
      .max(0xffffff)
      .meta({ description: "The pod's NetworkIdentity (cluster ID in bits 16-23)." }),
    ips: z
      .array(ipAddress())
      .min(1)
      .max(2)
      .meta({ description: "The pod's addresses (status.podIPs), one per family." }),
    namedPorts: z
      .array(
        z
          .object({
            name: z.string().min(1).max(15).meta({ description: "The container port's name." }),
            port: port().meta({ description: "Its number." }),
            protocol: z.enum(["TCP", "UDP", "SCTP"]).meta({ description: "Its protocol." }),
          })
          .strict(),
      )
      .max(64)
      .optional()
      .meta({ description: "Named container ports, for policies that name a port." }),
  })
  .strict();

/**
 * The pods of one node, batched into one object (Cilium's CiliumEndpointSlice): a pod start is
 * one write to its node's slice, and agents watch slices instead of every Pod in the cluster.
 */
export const networkEndpointSliceSpec = z
  .object({
    nodeName: z.string().max(253).meta({ description: "The node these pods run on." }),
    endpoints: z
      .array(policyEndpoint)
      .max(1024)
      .meta({ description: "Every pod of the node that has an address and an identity." }),
  })
  .strict();

export const networkEndpointSliceStatus = z
  .object({
    observedGeneration: z
      .int()
      .min(0)
      .optional()
      .meta({ description: "Unused: a slice is the operator's, all of it in its spec." }),
  })
  .strict();

export const networkEndpointSlice = z
  .object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal("NetworkEndpointSlice"),
    metadata: objectMeta,
    spec: networkEndpointSliceSpec,
    status: networkEndpointSliceStatus.optional(),
  })
  .strict();

export type NetworkEndpointSlice = z.infer<typeof networkEndpointSlice>;
export type PolicyEndpoint = z.infer<typeof policyEndpoint>;
