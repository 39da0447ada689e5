import { z } from "zod";
import {
  API_VERSION,
  cel,
  labelSelector,
  nodeCountsStatus,
  objectMeta,
  quantity,
} from "./common.js";

/**
 * The rates a datapath can hold: below 1k bits/s a rate rounds to nothing, above 100G it is no
 * limit on any NIC here and soon overflows what tc and JavaScript numbers hold exactly. The pod
 * annotation is held to the same bounds where the agent reads it.
 */
export const RATE_MIN = "1k";
export const RATE_MAX = "100G";

/** The annotation Cilium and the CNI bandwidth plugin read; honoured the same way here. */
export const EGRESS_BANDWIDTH_ANNOTATION = "kubernetes.io/egress-bandwidth";

export const rateLimit = z
  .object({
    rate: quantity("Bits per second, e.g. 50M or 1G (1k to 100G).", {
      min: RATE_MIN,
      max: RATE_MAX,
      message: `rate must be between ${RATE_MIN} and ${RATE_MAX} bits per second, e.g. 50M`,
      wholeMessage:
        "rate must be a whole number of bits per second, e.g. 1000 or 1.5M, not 1000.5 (a fraction of a bit cannot be shaped)",
    }),
    burst: quantity("Bytes that may pass above the rate at once; one MTU (1500) to 1Gi.", {
      min: "1500",
      max: "1Gi",
      message: "burst must be between one MTU (1500 bytes) and 1Gi, e.g. 64Ki",
      wholeMessage:
        "burst must be a whole number of bytes, e.g. 1500 or 1.5Mi, not 1500.5 (a fraction of a byte cannot be sent)",
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
