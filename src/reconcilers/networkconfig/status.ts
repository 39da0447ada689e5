import type { NodeNetworkState } from "../../api/nodenetworkstate.js";
import type { NetworkConfig, NodeView } from "../model.js";
import { foldVerdicts, type Judging, judgeNode, type NodeFold } from "../shared/fold.js";
import { nodesOf } from "../shared/ownership.js";

export interface NetworkConfigFold extends NodeFold {
  conflictingNodes: number;
}

/** Pure: a NetworkConfig's counts and conditions from the nodes it owns and their states. */
export function foldNetworkConfig(
  nc: NetworkConfig,
  all: readonly NetworkConfig[],
  nodes: readonly NodeView[],
  states: ReadonlyMap<string, NodeNetworkState>,
  judging: Judging,
): NetworkConfigFold {
  const generation = nc.metadata.generation ?? 0;
  const { owned, lost } = nodesOf(nc, all, nodes);
  const wanted = { name: nc.metadata.name ?? "", generation };
  const verdicts = owned.map((n) =>
    judgeNode(n, states.get(n), wanted, (s) => s.networkConfig, judging),
  );
  const fold = foldVerdicts(generation, verdicts, {
    kind: "NetworkConfig",
    nodes: lost.map((l) => l.node),
    winners: [...new Set(lost.map((l) => l.winner))],
  });
  return { ...fold, conflictingNodes: lost.length };
}
