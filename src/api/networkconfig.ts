import { z } from "zod";
import {
  API_VERSION,
  cel,
  cidr,
  duration,
  interfaceName,
  labelSelector,
  nodeCountsStatus,
  objectMeta,
  port,
  setOf,
} from "./common.js";

export const egressDenyRule = cel(
  z
    .object({
      cidr: cidr().meta({ description: "Destination network to deny, e.g. 169.254.169.254/32." }),
      ports: z
        .array(
          z
            .object({
              port: port(),
              protocol: z
                .enum(["TCP", "UDP"])
                .optional()
                .meta({ description: "TCP or UDP; both when omitted." }),
            })
            .strict(),
        )
        .max(16)
        .optional()
        .meta({ description: "Deny only these ports; every port when omitted." }),
      description: z.string().max(256).optional(),
    })
    .strict(),
  {
    rule: "!has(self.ports) || size(self.ports) > 0",
    message: "ports, when given, must list at least one port (omit it to deny every port)",
    check: (r) => r.ports === undefined || r.ports.length > 0,
  },
);

export const driftPolicy = z
  .object({
    checkInterval: duration(
      "1s",
      "24h",
      "How often each node re-reads its kernel state (1s to 24h).",
    ).default("30s"),
    mode: z
      .enum(["Heal", "Report"])
      .default("Heal")
      .meta({ description: "Heal restores the desired state; Report only counts and reports." }),
  })
  .strict();

export const networkConfigSpec = z
  .object({
    nodeSelector: labelSelector()
      .optional()
      .meta({ description: "Nodes this config applies to; every node when omitted." }),
    mtu: z
      .int()
      .min(1280)
      .max(9216)
      .optional()
      .meta({ description: "MTU of pod interfaces; the node's device MTU when omitted." }),
    devices: setOf(interfaceName(), 16).optional().meta({
      description: "Native devices to attach programs to; the default-route device when omitted.",
    }),
    egressDeny: z
      .array(egressDenyRule)
      .max(1024)
      .optional()
      .meta({ description: "Destinations pods on these nodes may never reach." }),
    drift: driftPolicy.optional(),
    policyEnforcement: z.enum(["Default", "Always", "Never"]).optional().meta({
      description:
        "NetworkPolicy on these nodes. Default: a pod is isolated for a direction when a policy selecting it has that policy type (the Kubernetes rule). Always: every pod is isolated both ways, so only what a policy allows passes. Never: NetworkPolicy is not enforced. Default when omitted.",
    }),
  })
  .strict();

export const networkConfigStatus = z
  .object({
    ...nodeCountsStatus,
    conflictingNodes: z
      .int()
      .min(0)
      .optional()
      .meta({ description: "Selected nodes owned by an older NetworkConfig." }),
  })
  .strict();

export const networkConfig = z
  .object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal("NetworkConfig"),
    metadata: objectMeta,
    spec: networkConfigSpec,
    status: networkConfigStatus.optional(),
  })
  .strict();

export type NetworkConfig = z.infer<typeof networkConfig>;
export type NetworkConfigSpec = z.infer<typeof networkConfigSpec>;
export type EgressDenyRule = z.infer<typeof egressDenyRule>;
