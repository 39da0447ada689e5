import type { LabelSelector } from "../../api/common.js";
import type { NodeNetworkState, SourceRef } from "../../api/nodenetworkstate.js";
import type { OperatorContext } from "../context.js";
import { nodeView } from "../model.js";
import { matchesSelector } from "./selector.js";

/**
 * Pure given the caches: nodes that still carry a deleted object's effect — their spec still
 * names it, or (for nodes it selected) their agent has not applied the spec without it.
 */
export function pendingNodeCleanup(
  ctx: OperatorContext,
  name: string,
  nodeSelector: LabelSelector | undefined,
  sourceOf: (s: NodeNetworkState) => SourceRef | SourceRef[] | undefined,
): string[] {
  const labels = new Map(ctx.nodes.list().map((n) => [n.metadata?.name ?? "", nodeView(n).labels]));
  return ctx.states
    .list()
    .filter((s) => {
      const refs = [sourceOf(s)].flat().filter((r): r is SourceRef => r !== undefined);
      if (refs.some((r) => r.name === name)) return true;
      const selected =
        nodeSelector === undefined || matchesSelector(nodeSelector, labels.get(s.metadata.name));
      const heard = s.status?.observedGeneration !== undefined;
      return selected && heard && s.status?.observedGeneration !== s.metadata.generation;
    })
    .map((s) => s.metadata.name)
    .sort();
}
