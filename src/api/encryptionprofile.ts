import { z } from "zod";
import { isCidr, parseCidr } from "./cidr.js";
import {
  API_VERSION,
  cel,
  duration,
  interfaceName,
  ipv4Cidr,
  labelSelector,
  nodeCountsStatus,
  objectMeta,
  port,
  setOf,
} from "./common.js";

export const wireguardSettings = z
  .object({
    listenPort: port().default(51871),
    interfaceName: interfaceName().default("netloom-wg0"),
    persistentKeepalive: duration(
      "1s",
      // WireGuard keeps the interval in 16 bits of seconds.
      "65535s",
      "Keepalive interval for peers behind NAT (1s to 65535s, WireGuard's limit), in whole seconds.",
      {
        wholeSeconds:
          "persistentKeepalive must be whole seconds, e.g. 25s or 2m, not 1.5s: WireGuard keeps it in seconds",
      },
    ).optional(),
    keyRotationInterval: duration(
      "10s",
      "8760h",
      "Rotate every node's key pair this often (10s to 8760h, a year), in whole seconds; never when omitted.",
      {
        wholeSeconds:
          "keyRotationInterval must be whole seconds, e.g. 90s or 1.5h, not 90.5s: nodes keep it in seconds",
      },
    ).optional(),
  })
  .strict();

export const strictMode = cel(
  z
    .object({
      enabled: z.boolean().default(false),
      cidrs: setOf(
        cel(ipv4Cidr("must be an IPv4 CIDR: strict mode does not cover IPv6 pod networks yet"), {
          // A pod network, not the world: a /0–/7 covers node addresses and the API server,
          // and would drop the tunnel's own UDP with everything else unencrypted.
          rule: "!isCIDR(self) || cidr(self).prefixLength() >= 8",
          message:
            "is wider than a /8: strict mode covers pod networks (e.g. 10.244.0.0/16), not node addresses or the default route",
          check: (v) => !isCidr(v) || parseCidr(v).prefixLength >= 8,
        }),
        32,
      )
        .optional()
        .meta({
          description: "Pod traffic between nodes inside these CIDRs is dropped unless encrypted.",
        }),
    })
    .strict(),
  {
    rule: "!self.enabled || (has(self.cidrs) && size(self.cidrs) > 0)",
    message: "strictMode.cidrs must list at least one CIDR when strictMode.enabled is true",
    fieldPath: ".cidrs",
    reason: "FieldValueRequired",
    check: (s) => !s.enabled || (s.cidrs?.length ?? 0) > 0,
  },
);

export const encryptionProfileSpec = z
  .object({
    nodeSelector: labelSelector()
      .optional()
      .meta({ description: "Nodes to encrypt between; every node when omitted." }),
    wireguard: wireguardSettings.prefault({}),
    strictMode: strictMode.optional(),
    nodeEncryption: z.boolean().default(false).meta({
      description:
        "Also encrypt host-to-host traffic between the nodes. Control-plane nodes (label node-role.kubernetes.io/control-plane) are left out, so that agents reach the API server even while a tunnel is broken.",
    }),
  })
  .strict();

export const encryptionProfileStatus = z
  .object({
    ...nodeCountsStatus,
    keyedNodes: z
      .int()
      .min(0)
      .optional()
      .meta({ description: "Nodes that published a public key." }),
    lastRotationTime: z.string().meta({ format: "date-time" }).optional(),
    conflictingNodes: z.int().min(0).optional(),
  })
  .strict();

export const encryptionProfile = z
  .object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal("EncryptionProfile"),
    metadata: objectMeta,
    spec: encryptionProfileSpec,
    status: encryptionProfileStatus.optional(),
  })
  .strict();

export type EncryptionProfile = z.infer<typeof encryptionProfile>;
export type EncryptionProfileSpec = z.infer<typeof encryptionProfileSpec>;
