import { z } from "zod";
import { API_VERSION, cel, cidr, ipAddress, objectMeta, port, wireguardKey } from "./common.js";

/**
 * What other nodes need to reach one node through WireGuard. Its own object, apart from the
 * NodeNetworkState report: it changes only when a key, an endpoint or the node's pod CIDRs do,
 * so the watch every agent holds on it is quiet at rest (a heartbeat never touches it).
 */
export const nodePeerSpec = z
  .object({
    nodeName: z.string().max(253).meta({ description: "The node this peer entry describes." }),
    podCIDRs: z.array(cidr()).max(4).optional().meta({
      description:
        "The node's pod CIDRs, copied by the operator from the Node (a node's agent cannot claim other addresses).",
    }),
  })
  .strict();

/** Written only by the node's own agent; every field is checked again where a peer reads it. */
export const nodePeerStatus = cel(
  z
    .object({
      profile: z
        .string()
        .max(253)
        .optional()
        .meta({ description: "The EncryptionProfile the node applies; peers share a profile." }),
      publicKey: wireguardKey("The node's current WireGuard public key.").optional(),
      nodeIP: ipAddress().optional().meta({ description: "The node's underlay address." }),
      listenPort: port().optional().meta({ description: "The node's WireGuard UDP port." }),
      nodeEncryption: z
        .boolean()
        .optional()
        .meta({ description: "The node encrypts host-to-host traffic too." }),
      nextPublicKey: wireguardKey(
        "A key rotation's announced next public key (until the node switches to it).",
      ).optional(),
      nextKeySwitchTime: z
        .string()
        .meta({ format: "date-time", description: "When the node switches to nextPublicKey." })
        .optional(),
      lastRotationTime: z
        .string()
        .meta({ format: "date-time", description: "When the node last switched keys." })
        .optional(),
    })
    .strict(),
  {
    rule: "has(self.nextPublicKey) == has(self.nextKeySwitchTime)",
    message: "nextPublicKey and nextKeySwitchTime go together",
    check: (s) => (s.nextPublicKey === undefined) === (s.nextKeySwitchTime === undefined),
  },
);

export const nodePeer = z
  .object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal("NodePeer"),
    metadata: objectMeta,
    spec: nodePeerSpec,
    status: nodePeerStatus.optional(),
  })
  .strict();

export type NodePeer = z.infer<typeof nodePeer>;
export type NodePeerStatus = z.infer<typeof nodePeerStatus>;
