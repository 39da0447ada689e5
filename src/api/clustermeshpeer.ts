import { z } from "zod";
import { API_VERSION, nodeCountsStatus, objectMeta } from "./common.js";

export const clusterMeshPeerSpec = z
  .object({
    clusterName: z
      .string()
      .min(1)
      .max(32)
      .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/)
      .meta({ description: "Name of the remote cluster (a DNS label)." }),
    clusterID: z
      .int()
      .min(1)
      .max(255)
      .meta({ description: "Unique 1-255 across the mesh; identifies the cluster's traffic." }),
    kubeconfigSecretRef: z
      .object({
        name: z.string().min(1).max(253),
        namespace: z.string().min(1).max(63),
        key: z.string().min(1).max(253).default("kubeconfig"),
      })
      .strict()
      .meta({
        description: "Secret with a kubeconfig that may read the remote cluster's NodePeers.",
      }),
  })
  .strict();

export const clusterMeshPeerStatus = z
  .object({
    ...nodeCountsStatus,
    remoteNodes: z
      .int()
      .min(0)
      .optional()
      .meta({ description: "Remote nodes mirrored into this cluster." }),
  })
  .strict();

export const clusterMeshPeer = z
  .object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal("ClusterMeshPeer"),
    metadata: objectMeta,
    spec: clusterMeshPeerSpec,
    status: clusterMeshPeerStatus.optional(),
  })
  .strict();

export type ClusterMeshPeer = z.infer<typeof clusterMeshPeer>;
