import { z } from "zod";
import {
  API_VERSION,
  cel,
  labelSelector,
  nodeCountsStatus,
  objectMeta,
  quantity,
} from "./common.js";

/** The annotation Cilium and the CNI bandwidth plugin read; honoured the same way here. */
export const EGRESS_BANDWIDTH_ANNOTATION = "kubernetes.io/egress-bandwidth";

export const rateLimit = z
  .object({
    rate: quantity("Bits per second, e.g. 50M or 1G.", {
      value: "0",
      message: "rate must be a positive quantity of bits per second, e.g. 50M",
    }),
    burst: quantity("Bytes that may pass above the rate at once; at least one MTU (1500).", {
      value: "1500",
      message: "burst must be at least one MTU (1500 bytes), e.g. 64Ki",
    }).optional(),
  })
  .strict();

export const bandwidthPolicySpec = cel(
  z
    .object({
      podSelector: labelSelector().meta({
        description: "Pods in this namespace to limit; {} selects every pod.",
      }),
      egress: rateLimit.optional(),
      ingress: rateLimit.optional(),
    })
    .strict(),
  {
    rule: "has(self.egress) || has(self.ingress)",
    message: "set egress or ingress (or both): a policy without a limit does nothing",
    check: (s) => s.egress !== undefined || s.ingress !== undefined,
  },
);

export const bandwidthPolicyStatus = z
  .object({
    ...nodeCountsStatus,
    selectedPods: z.int().min(0).optional(),
    enforcedPods: z
      .int()
      .min(0)
      .optional()
      .meta({ description: "Selected pods whose node enforces this policy's rate." }),
    overriddenPods: z
      .int()
      .min(0)
      .optional()
      .meta({ description: "Selected pods where a more restrictive limit wins." }),
    pods: z
      .string()
      .max(32)
      .optional()
      .meta({ description: "enforced/selected, for kubectl get." }),
  })
  .strict();

export const bandwidthPolicy = z
  .object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal("BandwidthPolicy"),
    metadata: objectMeta,
    spec: bandwidthPolicySpec,
    status: bandwidthPolicyStatus.optional(),
  })
  .strict();

export type BandwidthPolicy = z.infer<typeof bandwidthPolicy>;
export type BandwidthPolicySpec = z.infer<typeof bandwidthPolicySpec>;
