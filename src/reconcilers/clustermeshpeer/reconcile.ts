import type { ClusterMeshPeer } from "../../api/clustermeshpeer.js";
import type { Controller } from "../../controllers/controller.js";
import { ClusterMeshPeerKind, type OperatorContext } from "../context.js";
import { registerStatusController, type UserObject } from "../shared/status-controller.js";
import { clusterMeshPeerFold } from "./status.js";

type Obj = ClusterMeshPeer & UserObject;

/**
 * ClusterMeshPeer: validated and stored, and its status says plainly that peering is not
 * implemented yet, so GitOps tools show it as Stalled rather than silently Ready.
 */
export function registerClusterMeshPeerController(ctx: OperatorContext): Controller {
  return registerStatusController<Obj>(ctx, {
    name: "clustermeshpeer",
    kind: ClusterMeshPeerKind,
    cache: ctx.clusterMeshPeers,
    finalizer: false,
    watch: () => {},
    fold: (peer) => {
      const f = clusterMeshPeerFold(peer, ctx.clusterMeshPeers.list());
      const { conditions, ...fields } = f;
      return { decisions: conditions, fields, activeNodes: 0 };
    },
    pendingCleanup: () => [],
  });
}
