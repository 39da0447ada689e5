import type { ClusterMeshPeer } from "../../api/clustermeshpeer.js";
import type { ConditionDecision } from "../shared/fold.js";

/** Pure: a peer's status. Duplicate cluster IDs are refused here (CEL cannot see other objects). */
export function clusterMeshPeerFold(
  peer: ClusterMeshPeer,
  all: readonly ClusterMeshPeer[],
): {
  conditions: ConditionDecision[];
  remoteNodes: number;
  desiredNodes: number;
  readyNodes: number;
  driftedNodes: number;
  nodes: string;
} {
  const clash = all.filter(
    (p) => p.metadata.name !== peer.metadata.name && p.spec.clusterID === peer.spec.clusterID,
  );
  const [reason, message] = clash.length
    ? [
        "DuplicateClusterID",
        `clusterID ${peer.spec.clusterID} is also used by ${clash.map((p) => p.metadata.name).join(", ")}; cluster IDs must be unique`,
      ]
    : [
        "NotImplemented",
        "cluster mesh peering is not implemented in this release: the peer is validated and stored, no remote nodes are mirrored",
      ];
  return {
    conditions: [
      { type: "Ready", status: "False", reason, message },
      { type: "Reconciling", status: "False", reason, message },
      { type: "Stalled", status: "True", reason, message },
    ],
    remoteNodes: 0,
    desiredNodes: 0,
    readyNodes: 0,
    driftedNodes: 0,
    nodes: "0/0",
  };
}
