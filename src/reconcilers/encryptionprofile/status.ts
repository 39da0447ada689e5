import type { NodeNetworkState } from "../../api/nodenetworkstate.js";
import type { EncryptionProfile, NodeView } from "../model.js";
import {
  type ConditionDecision,
  foldVerdicts,
  type Judging,
  judgeNode,
  type NodeFold,
  sampleList,
} from "../shared/fold.js";
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
  judging: Judging,
): EncryptionProfileFold {
  const generation = ep.metadata.generation ?? 0;
  const { owned, lost } = nodesOf(ep, all, nodes);
  const wanted = { name: ep.metadata.name ?? "", generation };
  const verdicts = owned.map((n) =>
    judgeNode(n, states.get(n), wanted, (s) => s.encryptionProfile, judging),
  );
  const fold = foldVerdicts(generation, verdicts, {
    kind: "EncryptionProfile",
    nodes: lost.map((l) => l.node),
    winners: [...new Set(lost.map((l) => l.winner))],
  });
  const wg = owned.map((n) => states.get(n)?.status?.wireguard);
  // A node that applied everything but cannot reach all its peers is not encrypting for them.
  const disconnected = verdicts
    .filter((v) => v.state === "ready")
    .map((v) => ({ node: v.node, why: tunnelProblem(states.get(v.node)) }))
    .filter((d): d is { node: string; why: string } => d.why !== undefined);
  const rotations = wg
    .map((w) => w?.lastRotationTime)
    .filter((t): t is string => !!t)
    .sort();
  const last = rotations.at(-1);
  const readyNodes = fold.readyNodes - disconnected.length;
  const ready = fold.conditions.find((c) => c.type === "Ready")?.status === "True";
  const conditions: ConditionDecision[] =
    ready && disconnected.length > 0
      ? notConnected(disconnected, fold.desiredNodes)
      : fold.conditions;
  return {
    ...fold,
    readyNodes,
    nodes: `${readyNodes}/${fold.desiredNodes}`,
    conditions,
    conflictingNodes: lost.length,
    keyedNodes: wg.filter((w) => !!w?.publicKey).length,
    ...(last ? { lastRotationTime: last } : {}),
  };
}

/** Pure: why a node's tunnel is not whole, from its status, or undefined when it is. */
export function tunnelProblem(state: NodeNetworkState | undefined): string | undefined {
  const wg = state?.status?.wireguard;
  if (!wg) return "no WireGuard status";
  if (!wg.publicKey) return "no public key published";
  // A peer without a key yet (a node joining) is that node's state, not this one's: missing
  // peers come from the agent, after the same grace as handshakes (peerProblems).
  if (wg.peersWithoutSession) {
    const sample = wg.peerProblems ?? [];
    const more =
      wg.peersWithoutSession > sample.length
        ? ` and ${wg.peersWithoutSession - sample.length} more peers`
        : "";
    return `${sample.join("; ")}${more}`;
  }
  return undefined;
}

/** Pure: conditions when every node applied the profile but some lack sessions with peers. */
function notConnected(
  nodes: { node: string; why: string }[],
  desired: number,
): ConditionDecision[] {
  const message = `${nodes.length} of ${desired} nodes are not connected to every peer: ${sampleList(
    nodes.map((d) => `${d.node} (${d.why})`),
  )}`;
  return [
    { type: "Ready", status: "False", reason: "PeersNotConnected", message },
    { type: "Reconciling", status: "False", reason: "PeersNotConnected", message },
    { type: "Stalled", status: "True", reason: "PeersNotConnected", message },
  ];
}
