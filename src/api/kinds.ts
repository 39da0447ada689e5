import type { z } from "zod";
import { bandwidthPolicy, bandwidthPolicySpec, bandwidthPolicyStatus } from "./bandwidthpolicy.js";
import { clusterMeshPeer, clusterMeshPeerSpec, clusterMeshPeerStatus } from "./clustermeshpeer.js";
import { GROUP, VERSION } from "./common.js";
import {
  encryptionProfile,
  encryptionProfileSpec,
  encryptionProfileStatus,
} from "./encryptionprofile.js";
import { networkConfig, networkConfigSpec, networkConfigStatus } from "./networkconfig.js";
import {
  networkEndpointSlice,
  networkEndpointSliceSpec,
  networkEndpointSliceStatus,
} from "./networkendpointslice.js";
import { networkIdentity, networkIdentitySpec, networkIdentityStatus } from "./networkidentity.js";
import {
  nodeNetworkState,
  nodeNetworkStateSpec,
  nodeNetworkStateStatus,
} from "./nodenetworkstate.js";
import { nodePeer, nodePeerSpec, nodePeerStatus } from "./nodepeer.js";
import {
  policyRealization,
  policyRealizationSpec,
  policyRealizationStatus,
} from "./policyrealization.js";
import { remoteNodePeer, remoteNodePeerSpec, remoteNodePeerStatus } from "./remotenodepeer.js";

export interface PrinterColumn {
  name: string;
  type: "string" | "integer" | "number" | "boolean" | "date";
  jsonPath: string;
  description?: string;
  priority?: number;
}

export interface KindDefinition {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  scope: "Cluster" | "Namespaced";
  description: string;
  spec: z.ZodType;
  status: z.ZodType;
  /** Validates a whole object (apiVersion, kind, metadata, spec, status). */
  object: z.ZodType;
  printerColumns: PrinterColumn[];
  /** Written by Netloom for itself (agents, operator), not by users: no samples, no conditions. */
  internal?: boolean;
  /** Created by the operator for users to read (a status of something else): no samples. */
  operatorCreated?: boolean;
}

const ready: PrinterColumn = {
  name: "Ready",
  type: "string",
  jsonPath: '.status.conditions[?(@.type=="Ready")].status',
};
const nodes: PrinterColumn = {
  name: "Nodes",
  type: "string",
  jsonPath: ".status.nodes",
  description: "Nodes ready/desired",
};
const drifted: PrinterColumn = {
  name: "Drifted",
  type: "integer",
  jsonPath: ".status.driftedNodes",
  description: "Nodes whose kernel state drifted",
};
const age: PrinterColumn = { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" };
const reason: PrinterColumn = {
  name: "Reason",
  type: "string",
  jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
  priority: 1,
};

export const KINDS: readonly KindDefinition[] = [
  {
    kind: "NetworkConfig",
    plural: "networkconfigs",
    singular: "networkconfig",
    shortNames: ["nlnc"],
    scope: "Cluster",
    description: "Node datapath settings, egress deny rules and drift handling for selected nodes.",
    spec: networkConfigSpec,
    status: networkConfigStatus,
    object: networkConfig,
    printerColumns: [
      ready,
      nodes,
      drifted,
      { name: "Drift-Mode", type: "string", jsonPath: ".spec.drift.mode", priority: 1 },
      reason,
      age,
    ],
  },
  {
    kind: "EncryptionProfile",
    plural: "encryptionprofiles",
    singular: "encryptionprofile",
    shortNames: ["nlep"],
    scope: "Cluster",
    description: "WireGuard node-to-node encryption, strict mode and scheduled key rotation.",
    spec: encryptionProfileSpec,
    status: encryptionProfileStatus,
    object: encryptionProfile,
    printerColumns: [
      ready,
      nodes,
      drifted,
      { name: "Strict", type: "boolean", jsonPath: ".spec.strictMode.enabled" },
      { name: "Last-Rotation", type: "date", jsonPath: ".status.lastRotationTime", priority: 1 },
      reason,
      age,
    ],
  },
  {
    kind: "BandwidthPolicy",
    plural: "bandwidthpolicies",
    singular: "bandwidthpolicy",
    shortNames: ["nlbw"],
    scope: "Namespaced",
    description: "Per-pod egress (and ingress) rate limits enforced in eBPF.",
    spec: bandwidthPolicySpec,
    status: bandwidthPolicyStatus,
    object: bandwidthPolicy,
    printerColumns: [
      ready,
      nodes,
      drifted,
      {
        name: "Pods",
        type: "string",
        jsonPath: ".status.pods",
        description: "Pods enforced/selected",
      },
      { name: "Egress", type: "string", jsonPath: ".spec.egress.rate" },
      reason,
      age,
    ],
  },
  {
    kind: "ClusterMeshPeer",
    plural: "clustermeshpeers",
    singular: "clustermeshpeer",
    shortNames: ["nlcmp"],
    scope: "Cluster",
    description: "A remote cluster whose nodes this cluster's nodes peer with.",
    spec: clusterMeshPeerSpec,
    status: clusterMeshPeerStatus,
    object: clusterMeshPeer,
    printerColumns: [
      ready,
      { name: "Cluster", type: "string", jsonPath: ".spec.clusterName" },
      { name: "ID", type: "integer", jsonPath: ".spec.clusterID" },
      { name: "Connected", type: "boolean", jsonPath: ".status.connected" },
      { name: "Remote-Nodes", type: "integer", jsonPath: ".status.remoteNodes" },
      { name: "Last-Sync", type: "date", jsonPath: ".status.lastSyncTime" },
      reason,
      age,
    ],
  },
  {
    kind: "NodeNetworkState",
    plural: "nodenetworkstates",
    singular: "nodenetworkstate",
    shortNames: ["nlns"],
    scope: "Cluster",
    internal: true,
    description:
      "Internal: what one node's agent applied, and from which source generations (status, written by that agent).",
    spec: nodeNetworkStateSpec,
    status: nodeNetworkStateStatus,
    object: nodeNetworkState,
    printerColumns: [
      ready,
      {
        name: "Config",
        type: "string",
        jsonPath: ".status.sources.networkConfig.name",
        description: "The NetworkConfig the agent applied",
      },
      {
        name: "Config-Gen",
        type: "integer",
        jsonPath: ".status.sources.networkConfig.generation",
        description: "Its generation",
      },
      {
        name: "Encryption",
        type: "string",
        jsonPath: ".status.sources.encryptionProfile.name",
        description: "The EncryptionProfile the agent applied",
      },
      {
        name: "Encryption-Gen",
        type: "integer",
        jsonPath: ".status.sources.encryptionProfile.generation",
        description: "Its generation",
      },
      { name: "Drifted", type: "boolean", jsonPath: ".status.drift.drifted" },
      { name: "Bandwidth", type: "string", jsonPath: ".status.datapath.bandwidth" },
      { name: "WireGuard", type: "string", jsonPath: ".status.wireguard.backend" },
      { name: "Heartbeat", type: "date", jsonPath: ".status.heartbeatTime", priority: 1 },
      reason,
      age,
    ],
  },
  {
    kind: "NodePeer",
    plural: "nodepeers",
    singular: "nodepeer",
    shortNames: ["nlpeer"],
    scope: "Cluster",
    internal: true,
    description:
      "Internal: what other nodes need to reach one node through WireGuard (pod CIDRs from the operator; key, endpoint and rotation announcements from the node's agent).",
    spec: nodePeerSpec,
    status: nodePeerStatus,
    object: nodePeer,
    printerColumns: [
      { name: "Profile", type: "string", jsonPath: ".status.profile" },
      { name: "Node-IP", type: "string", jsonPath: ".status.nodeIP" },
      { name: "Public-Key", type: "string", jsonPath: ".status.publicKey" },
      { name: "Pod-CIDRs", type: "string", jsonPath: ".spec.podCIDRs", priority: 1 },
      {
        name: "Next-Key-At",
        type: "date",
        jsonPath: ".status.nextKeySwitchTime",
        priority: 1,
      },
      age,
    ],
  },
  {
    kind: "RemoteNodePeer",
    plural: "remotenodepeers",
    singular: "remotenodepeer",
    shortNames: ["nlrpeer"],
    scope: "Cluster",
    internal: true,
    description:
      "Internal: a node of a remote cluster (ClusterMeshPeer), mirrored by the operator so that local agents peer with it.",
    spec: remoteNodePeerSpec,
    status: remoteNodePeerStatus,
    object: remoteNodePeer,
    printerColumns: [
      { name: "Cluster", type: "string", jsonPath: ".spec.clusterName" },
      { name: "Node", type: "string", jsonPath: ".spec.nodeName" },
      { name: "Node-IP", type: "string", jsonPath: ".spec.peer.nodeIP" },
      { name: "Public-Key", type: "string", jsonPath: ".spec.peer.publicKey", priority: 1 },
      { name: "Pod-CIDRs", type: "string", jsonPath: ".spec.podCIDRs", priority: 1 },
      age,
    ],
  },
  {
    kind: "PolicyRealization",
    plural: "policyrealizations",
    singular: "policyrealization",
    shortNames: ["nlpr"],
    scope: "Namespaced",
    operatorCreated: true,
    description:
      "How far the NetworkPolicy of the same name is realized in the datapath: nodes realized/desired, selected pods, audit-mode would-drop count. Created and written by the operator.",
    spec: policyRealizationSpec,
    status: policyRealizationStatus,
    object: policyRealization,
    printerColumns: [
      ready,
      nodes,
      drifted,
      { name: "Pods", type: "integer", jsonPath: ".status.selectedPods" },
      { name: "Mode", type: "string", jsonPath: ".status.mode" },
      { name: "Would-Drop", type: "integer", jsonPath: ".status.wouldDrop" },
      { name: "Policy-Gen", type: "integer", jsonPath: ".spec.policyGeneration", priority: 1 },
      reason,
      age,
    ],
  },
  {
    kind: "NetworkIdentity",
    plural: "networkidentities",
    singular: "networkidentity",
    shortNames: ["nlid"],
    scope: "Cluster",
    internal: true,
    description:
      "Internal: the security identity (its number is the name) of every pod with one set of policy-relevant labels; allocated by the operator.",
    spec: networkIdentitySpec,
    status: networkIdentityStatus,
    object: networkIdentity,
    printerColumns: [
      { name: "Namespace", type: "string", jsonPath: ".spec.namespace" },
      { name: "Pod-Labels", type: "string", jsonPath: ".spec.podLabels", priority: 1 },
      age,
    ],
  },
  {
    kind: "NetworkEndpointSlice",
    plural: "networkendpointslices",
    singular: "networkendpointslice",
    shortNames: ["nleps"],
    scope: "Cluster",
    internal: true,
    description:
      "Internal: the pods of one node as policy needs them (addresses, identity, named ports); written by the operator, watched by every agent instead of Pods.",
    spec: networkEndpointSliceSpec,
    status: networkEndpointSliceStatus,
    object: networkEndpointSlice,
    printerColumns: [{ name: "Node", type: "string", jsonPath: ".spec.nodeName" }, age],
  },
];

export const CATEGORY = "netloom";

export function kindByName(kind: string): KindDefinition {
  const k = KINDS.find((d) => d.kind === kind);
  if (!k) throw new Error(`unknown kind ${kind}`);
  return k;
}

export function crdName(k: KindDefinition): string {
  return `${k.plural}.${GROUP}`;
}

export { GROUP, VERSION };
