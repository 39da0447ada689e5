import type { NodeNetworkState } from "../../api/nodenetworkstate.js";
import type { EncryptionProfile, NodeView } from "../model.js";
import { foldVerdicts, judgeNode, type NodeFold } from "../shared/fold.js";
import { nodesOf } from "../shared/ownership.js";

export interface EncryptionProfileFold extends NodeFold {
  conflictingNodes: number;
  keyedNodes: number;
  lastRotationTime?: string;
}

/** Pure: an EncryptionProfile's counts and conditions from the nodes it owns and their states. */
export function foldEncryptionProfile(
  ep: EncryptionProfile,
  all: readonly EncryptionProfile[],
  nodes: readonly NodeView[],
  states: ReadonlyMap<string, NodeNetworkState>,
  now: Date,
): EncryptionProfileFold {
  const generation = ep.metadata.generation ?? 0;
  const { owned, lost } = nodesOf(ep, all, nodes);
  const wanted = { name: ep.metadata.name ?? "", generation };
  const verdicts = owned.map((n) =>
    judgeNode(n, states.get(n), wanted, (s) => s.spec.sources?.encryptionProfile, now),
  );
  const fold = foldVerdicts(generation, verdicts, {
    kind: "EncryptionProfile",
    nodes: lost.map((l) => l.node),
    winners: [...new Set(lost.map((l) => l.winner))],
  });
  const wg = owned.map((n) => states.get(n)?.status?.wireguard);
  const rotations = wg
    .map((w) => w?.lastRotationTime)
    .filter((t): t is string => !!t)
    .sort();
  const last = rotations.at(-1);
  return {
    ...fold,
    conflictingNodes: lost.length,
    keyedNodes: wg.filter((w) => !!w?.publicKey).length,
    ...(last ? { lastRotationTime: last } : {}),
  };
}
