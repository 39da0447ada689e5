import { z } from "zod";
import { API_VERSION, cidr, objectMeta } from "./common.js";
import { nodePeerStatus } from "./nodepeer.js";

/** The label every mirror carries: the remote cluster it came from (its clusterName). */
export const MESH_CLUSTER_LABEL = "netloom.io/cluster";

/**
 * A node of a remote cluster, mirrored by the operator from that cluster's NodePeer so that
 * local agents peer with it exactly as with a local node. Everything is in the spec: it is
 * the operator's, written once per remote change, after the operator checked it again.
 */
export const remoteNodePeerSpec = z
  .object({
    clusterName: z
      .string()
      .min(1)
      .max(32)
      .meta({ description: "The remote cluster (its ClusterMeshPeer's clusterName)." }),
    clusterID: z.int().min(1).max(255).meta({ description: "The remote cluster's ID (1-255)." }),
    nodeName: z
      .string()
      .max(253)
      .meta({ description: "The node's name in its own cluster (unique only there)." }),
    podCIDRs: z
      .array(cidr())
      .min(1)
      .max(4)
      .meta({ description: "The remote node's pod CIDRs, as its cluster's NodePeer says." }),
    peer: nodePeerStatus.meta({
      description: "The remote node's key, endpoint and rotation announcements.",
    }),
  })
  .strict();

export const remoteNodePeerStatus = z
  .object({
    observedGeneration: z
      .int()
      .min(0)
      .optional()
      .meta({ description: "Unused: mirrors carry everything in their spec." }),
  })
  .strict();

export const remoteNodePeer = z
  .object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal("RemoteNodePeer"),
    metadata: objectMeta,
    spec: remoteNodePeerSpec,
    status: remoteNodePeerStatus.optional(),
  })
  .strict();

export type RemoteNodePeer = z.infer<typeof remoteNodePeer>;
export type RemoteNodePeerSpec = z.infer<typeof remoteNodePeerSpec>;
