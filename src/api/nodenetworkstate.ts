import { z } from "zod";
import { API_VERSION, cidr, conditions, interfaceName, objectMeta, port } from "./common.js";
import { driftPolicy, egressDenyRule } from "./networkconfig.js";

/** An object (and the generation of it) that a node state was rendered from. */
export const sourceRef = z
  .object({
    name: z.string().max(317).meta({ description: "name, or namespace/name" }),
    generation: z.int().min(0),
    audit: z
      .boolean()
      .optional()
      .meta({ description: "A NetworkPolicy applied in audit mode (counting, not dropping)." }),
  })
  .strict();

/** One pod's egress limit as the node must enforce it (the most restrictive source wins). */
export const podBandwidth = z
  .object({
    pod: z.string().max(317).meta({ description: "namespace/name" }),
    ip: z.string().max(45),
    egressBitsPerSecond: z.int().min(1),
    burstBytes: z.int().min(1).optional(),
    source: z
      .string()
      .max(317)
      .meta({ description: "BandwidthPolicy namespace/name, or the pod annotation." }),
  })
  .strict();

export const nodeWireguard = z
  .object({
    profile: z.string().max(253),
    interfaceName: interfaceName(),
    listenPort: port(),
    persistentKeepaliveSeconds: z.int().min(0).optional(),
    keyRotationIntervalSeconds: z.int().min(0).optional(),
    strictCIDRs: z.array(cidr()).max(32).optional(),
    nodeEncryption: z.boolean().optional(),
  })
  .strict();

export const sources = z
  .object({
    networkConfig: sourceRef
      .optional()
      .meta({ description: "The NetworkConfig that owns the node." }),
    encryptionProfile: sourceRef
      .optional()
      .meta({ description: "The EncryptionProfile that owns the node." }),
    bandwidthPolicies: z
      .array(sourceRef)
      .max(1024)
      .optional()
      .meta({ description: "BandwidthPolicies that limit pods of the node." }),
    networkPolicies: z
      .array(sourceRef)
      .max(4096)
      .optional()
      .meta({ description: "NetworkPolicies (namespace/name) that select pods of the node." }),
  })
  .strict();

/**
 * The desired datapath of one node, as its agent renders it from the sources that select the
 * node (renderNodeState). Never stored: each agent computes its own.
 */
export const nodeDatapath = z
  .object({
    nodeName: z.string().max(253),
    podCIDRs: z.array(cidr()).max(4).optional(),
    mtu: z.int().min(1200).max(9216).optional(),
    devices: z.array(interfaceName()).max(16).optional(),
    egressDeny: z.array(egressDenyRule).max(1024).optional(),
    bandwidth: z.array(podBandwidth).max(4096).optional(),
    wireguard: nodeWireguard.optional(),
    drift: driftPolicy.optional(),
    policyEnforcement: z.enum(["Default", "Always", "Never"]).optional(),
    sources: sources.optional().meta({ description: "The objects this state was rendered from." }),
  })
  .strict();

/** What is known of a node before its agent renders anything; written by the operator. */
export const nodeNetworkStateSpec = z
  .object({
    nodeName: z.string().max(253).meta({ description: "The node this state belongs to." }),
  })
  .strict();

/** What the node's agent applied; written only by that agent. No private key, ever. */
export const nodeNetworkStateStatus = z
  .object({
    sources: sources.optional().meta({
      description:
        "The source objects (and generations) of the desired state the agent applied last, or is failing to apply (Ready says which).",
    }),
    appliedSpecHash: z
      .string()
      .max(128)
      .optional()
      .meta({ description: "Hash of the rendered desired datapath the agent applied." }),
    conditions: conditions(),
    heartbeatTime: z.string().meta({ format: "date-time" }).optional(),
    nodeIP: z.string().max(45).optional(),
    datapath: z
      .object({
        attach: z.enum(["tcx", "clsact", "none"]).optional(),
        bandwidth: z.enum(["EDT", "HTB", "none"]).optional(),
        driver: z.enum(["linux", "memory"]).optional(),
        notEnforced: z.int().min(0).optional().meta({
          description:
            "Desired items this datapath cannot enforce (named in the Degraded condition).",
        }),
      })
      .strict()
      .optional(),
    capabilities: z
      .object({
        tcx: z.boolean().optional(),
        fq: z.boolean().optional(),
        wireguardKernel: z.boolean().optional(),
      })
      .strict()
      .optional(),
    mapEntries: z.record(z.string().max(64), z.int().min(0)).optional(),
    policy: z
      .object({
        enforcement: z
          .enum(["Default", "Always", "Never"])
          .optional()
          .meta({ description: "The NetworkConfig's policyEnforcement on this node." }),
        endpoints: z
          .int()
          .min(0)
          .optional()
          .meta({ description: "Local pods with a policy program (an address and an identity)." }),
        wouldDrop: z
          .array(
            z
              .object({
                policy: z.string().max(317).meta({ description: "namespace/name" }),
                count: z.int().min(0).meta({
                  description:
                    "Connections (first packets) this audit-mode policy would have dropped on this node.",
                }),
              })
              .strict(),
          )
          .max(4096)
          .optional()
          .meta({ description: "Audit-mode NetworkPolicies with would-drop counts on this node." }),
      })
      .strict()
      .optional()
      .meta({ description: "NetworkPolicy enforcement on this node." }),
    drift: z
      .object({
        drifted: z.boolean().optional(),
        detectedTotal: z.int().min(0).optional(),
        healedTotal: z.int().min(0).optional(),
        lastDriftTime: z.string().meta({ format: "date-time" }).optional(),
        lastDriftReason: z.string().max(1024).optional(),
      })
      .strict()
      .optional(),
    wireguard: z
      .object({
        backend: z.enum(["kernel", "userspace"]).optional(),
        implementation: z.string().max(256).optional().meta({
          description:
            "What runs the tunnel: the wireguard-go version and binary (the current build from the Go module proxy, else Debian's).",
        }),
        publicKey: z.string().max(64).optional(),
        endpoint: z.string().max(64).optional(),
        nextPublicKey: z.string().max(64).optional(),
        nextKeySwitchTime: z.string().meta({ format: "date-time" }).optional(),
        lastRotationTime: z.string().meta({ format: "date-time" }).optional(),
        peers: z.int().min(0).optional(),
        peersConfigured: z.int().min(0).optional(),
        peersHandshaken: z.int().min(0).optional().meta({
          description:
            "Configured peers with a working session (a handshake; recent, with keepalives).",
        }),
        peersWithoutSession: z.int().min(0).optional().meta({
          description: "Peers past their first-handshake grace with no or a stale handshake.",
        }),
        peerProblems: z
          .array(z.string().max(256))
          .max(5)
          .optional()
          .meta({ description: 'Up to 5 of them, e.g. "no handshake with node-3".' }),
      })
      .strict()
      .optional(),
  })
  .strict();

export const nodeNetworkState = z
  .object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal("NodeNetworkState"),
    metadata: objectMeta,
    spec: nodeNetworkStateSpec,
    status: nodeNetworkStateStatus.optional(),
  })
  .strict();

export type NodeNetworkState = z.infer<typeof nodeNetworkState>;
export type NodeNetworkStateSpec = z.infer<typeof nodeNetworkStateSpec>;
export type NodeDatapath = z.infer<typeof nodeDatapath>;
export type Sources = z.infer<typeof sources>;
export type NodeNetworkStateStatus = z.infer<typeof nodeNetworkStateStatus>;
export type SourceRef = z.infer<typeof sourceRef>;
export type PodBandwidth = z.infer<typeof podBandwidth>;
export type NodeWireguard = z.infer<typeof nodeWireguard>;
