import { z } from "zod";
import {
  API_VERSION,
  cel,
  dnsLabel,
  dnsSubdomain,
  nodeCountsStatus,
  objectMeta,
} from "./common.js";

/** A key of a Secret's (or ConfigMap's) data. */
const SECRET_KEY_PATTERN = "^[-._a-zA-Z0-9]+$";

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
        name: dnsSubdomain(
          "kubeconfigSecretRef.name must be a Secret's name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters (e.g. west-kubeconfig)",
        ),
        namespace: dnsLabel(
          "kubeconfigSecretRef.namespace must be a namespace's name: lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters (e.g. netloom-system)",
        ),
        key: cel(z.string().min(1).max(253), {
          // What Kubernetes allows as a key of a Secret's data (IsConfigMapKey).
          rule: `self.matches(r'${SECRET_KEY_PATTERN}') && self != '.' && !self.startsWith('..')`,
          message:
            "kubeconfigSecretRef.key must be a key of the Secret's data: letters, digits, '-', '_' and '.', not '.' and not starting with '..', at most 253 characters (e.g. kubeconfig)",
          check: (v) => new RegExp(SECRET_KEY_PATTERN).test(v) && v !== "." && !v.startsWith(".."),
        }).default("kubeconfig"),
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
    connected: z.boolean().optional().meta({
      description: "The operator is watching the remote cluster's NodePeers right now.",
    }),
    lastSyncTime: z.string().optional().meta({
      format: "date-time",
      description: "When the remote cluster's peer data last arrived (a list or a watch event).",
    }),
    localClusterName: z
      .string()
      .max(32)
      .optional()
      .meta({ description: "This cluster's name (operator --cluster-name)." }),
    localClusterID: z
      .int()
      .min(1)
      .max(255)
      .optional()
      .meta({ description: "This cluster's ID (operator --cluster-id)." }),
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
