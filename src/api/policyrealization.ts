import { z } from "zod";
import { API_VERSION, nodeCountsStatus, objectMeta } from "./common.js";

/**
 * The annotation the operator keeps on every NetworkPolicy it enforces, for tools that read
 * only the policy itself (Argo CD's health check): JSON {generation, state, message}, state
 * Realized | Progressing | Degraded. Written only when one of them changes.
 */
export const REALIZATION_ANNOTATION = "netloom.io/realization";
/** On a NetworkPolicy: count the connections it would drop instead of dropping them. */
export const AUDIT_ANNOTATION = "netloom.io/audit";

/**
 * How far one NetworkPolicy is realized in the datapath (Kubernetes has no NetworkPolicy status
 * since 1.28; Antrea reports realized/desired nodes the same way). Same namespace and name as
 * the policy, owned by it, written by the operator only.
 */
export const policyRealizationSpec = z
  .object({
    policyGeneration: z
      .int()
      .min(0)
      .meta({ description: "The NetworkPolicy generation this status is about." }),
  })
  .strict();

export const policyRealizationStatus = z
  .object({
    ...nodeCountsStatus,
    mode: z
      .enum(["Enforce", "Audit"])
      .optional()
      .meta({
        description: `Audit when the policy has the ${AUDIT_ANNOTATION}: "true" annotation.`,
      }),
    selectedPods: z
      .int()
      .min(0)
      .optional()
      .meta({ description: "Pods the policy selects (with an address and an identity)." }),
    pods: z.string().max(32).optional().meta({ description: "Selected pods, for kubectl get." }),
    wouldDrop: z.int().min(0).optional().meta({
      description:
        "Audit mode: connections the policy would have dropped, summed over the nodes (since each agent started counting).",
    }),
  })
  .strict();

export const policyRealization = z
  .object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal("PolicyRealization"),
    metadata: objectMeta,
    spec: policyRealizationSpec,
    status: policyRealizationStatus.optional(),
  })
  .strict();

export type PolicyRealization = z.infer<typeof policyRealization>;
export type PolicyRealizationStatus = z.infer<typeof policyRealizationStatus>;
