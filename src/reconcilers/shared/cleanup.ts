import type { LabelSelector } from "../../api/common.js";
import { findCondition } from "../../controllers/conditions.js";
import type { OperatorContext } from "../context.js";
import { nodeView } from "../model.js";
import { appliedRefs, type SourceOf } from "./fold.js";
import { matchesSelector } from "./selector.js";

/**
 * Pure given the caches: nodes that still carry a deleted object's effect — their agent still
 * reports it among the applied sources, or (for nodes it selected) has not yet applied a state
 * without it.
 */
export function pendingNodeCleanup(
  ctx: OperatorContext,
  name: string,
  nodeSelector: LabelSelector | undefined,
  sourceOf: SourceOf,
): string[] {
  const labels = new Map(ctx.nodes.list().map((n) => [n.metadata?.name ?? "", nodeView(n).labels]));
  return ctx.states
    .list()
    .filter((s) => {
      if (appliedRefs(s, sourceOf).some((r) => r.name === name)) return true;
      const selected =
        nodeSelector === undefined || matchesSelector(nodeSelector, labels.get(s.metadata.name));
      const ready = findCondition(s.status?.conditions, "Ready");
      return selected && ready !== undefined && ready.status !== "True";
    })
    .map((s) => s.metadata.name)
    .sort();
}
