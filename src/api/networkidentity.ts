import { z } from "zod";
import { API_VERSION, objectMeta } from "./common.js";

/** The label every identity carries: labelSetKey of its labels, what the operator looks up by. */
export const LABEL_SET_LABEL = "netloom.io/label-set";

// Keys are label keys (≤ 317 characters with their prefix); values label values (≤ 63).
const labelMap = (description: string) =>
  z.record(z.string().max(317), z.string().max(63)).meta({ maxProperties: 256, description });

/**
 * A security identity: the number policies and maps use for every pod with one set of
 * policy-relevant labels (a pod's own and its namespace's). Named by its number; allocated once
 * per label set by the operator, never per pod, and watched by every agent.
 */
export const networkIdentitySpec = z
  .object({
    namespace: z
      .string()
      .min(1)
      .max(63)
      .meta({ description: "The namespace of the pods with this identity." }),
    podLabels: labelMap(
      "The pods' labels that policies may select on (per-instance labels such as pod-template-hash left out).",
    ),
    namespaceLabels: labelMap("The namespace's labels (namespaceSelector matches them)."),
  })
  .strict();

export const networkIdentityStatus = z
  .object({
    observedGeneration: z
      .int()
      .min(0)
      .optional()
      .meta({ description: "Unused: an identity is the operator's, all of it in its spec." }),
  })
  .strict();

export const networkIdentity = z
  .object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal("NetworkIdentity"),
    metadata: objectMeta,
    spec: networkIdentitySpec,
    status: networkIdentityStatus.optional(),
  })
  .strict();

export type NetworkIdentity = z.infer<typeof networkIdentity>;
export type NetworkIdentitySpec = z.infer<typeof networkIdentitySpec>;
