import type { NodeNetworkState, SourceRef, Sources } from "../../api/nodenetworkstate.js";
import { findCondition, isConditionTrue } from "../../controllers/conditions.js";

/** A condition as a reconciler decides it; stamping (time, generation) is the helper's job. */
export interface ConditionDecision {
  type: "Ready" | "Reconciling" | "Stalled";
  status: "True" | "False";
  reason: string;
  message: string;
}

export type NodeVerdict =
  | { node: string; state: "ready"; drifted: boolean }
  | { node: string; state: "pending"; why: string }
  | { node: string; state: "failed"; why: string };

/** How long an agent may stay silent before its node counts as failed. */
export const DEFAULT_STALE_AFTER_MS = 45_000;

/** What the node judgement looks at for one node and one object generation. */
export interface NodeFacts {
  node: string;
  state: NodeNetworkState | undefined;
  wanted: SourceRef;
  /** The object's references among the state's sources. */
  refs: SourceRef[];
  now: Date;
  staleAfterMs: number;
  /** When the node's agent last renewed its Lease (undefined: no Lease; its last report counts). */
  lastSeen?: Date | undefined;
}

/** One check of the judgement: a verdict when it decides, undefined to go on (cert-manager's policy chain). */
export type NodeCheck = (f: NodeFacts) => NodeVerdict | undefined;

export const noState: NodeCheck = ({ node, state }) =>
  state ? undefined : { node, state: "pending", why: "no NodeNetworkState yet" };

export const silent: NodeCheck = ({ node, state, now, staleAfterMs, lastSeen }) => {
  const hb = state?.status?.heartbeatTime;
  const seen = lastSeen?.getTime() ?? (hb ? new Date(hb).getTime() : undefined);
  const age = seen !== undefined ? now.getTime() - seen : undefined;
  return age !== undefined && age > staleAfterMs
    ? { node, state: "failed", why: `no report for ${Math.round(age / 1000)}s` }
    : undefined;
};

export const notReported: NodeCheck = ({ node, state }) =>
  findCondition(state?.status?.conditions, "Ready")
    ? undefined
    : { node, state: "pending", why: "agent has not reported" };

/** The agent could not apply (or cannot use) what it rendered last: whatever generation. */
export const applyFailed: NodeCheck = ({ node, state }) => {
  const ready = findCondition(state?.status?.conditions, "Ready");
  return ready?.status === "False" && ready.reason !== "Applying"
    ? { node, state: "failed", why: ready.message || ready.reason }
    : undefined;
};

/** The agent renders from its own watches: it reports the source generations it applied. */
export const notApplied: NodeCheck = ({ node, refs, wanted }) =>
  refs.some((r) => r.name === wanted.name && r.generation === wanted.generation)
    ? undefined
    : { node, state: "pending", why: `generation ${wanted.generation} not applied yet` };

export const applying: NodeCheck = ({ node, state }) =>
  isConditionTrue(state?.status?.conditions, "Ready")
    ? undefined
    : { node, state: "pending", why: "applying" };

export const NODE_CHECKS: readonly NodeCheck[] = [
  noState,
  silent,
  notReported,
  applyFailed,
  notApplied,
  applying,
];

/** How nodes are judged: now, the operator's stale window, and when each agent renewed its Lease. */
export interface Judging {
  now: Date;
  /** Default DEFAULT_STALE_AFTER_MS. */
  staleAfterMs?: number;
  /** Node → last Lease renewal (a node without one is judged by its last report). */
  lastSeen?: ReadonlyMap<string, Date>;
}

/** Which of a node's applied sources an object is (its entry in status.sources). */
export type SourceOf = (s: Sources) => SourceRef | SourceRef[] | undefined;

/** The references a node's agent reports for one kind of source. */
export function appliedRefs(state: NodeNetworkState | undefined, sourceOf: SourceOf): SourceRef[] {
  const sources = state?.status?.sources;
  return sources ? [sourceOf(sources)].flat().filter((r): r is SourceRef => r !== undefined) : [];
}

/**
 * Pure: whether a node applied generation `wanted.generation` of an object, from the report in
 * its NodeNetworkState. `sourceOf` picks the object's kind out of the applied sources.
 */
export function judgeNode(
  node: string,
  state: NodeNetworkState | undefined,
  wanted: SourceRef,
  sourceOf: SourceOf,
  judging: Judging,
): NodeVerdict {
  const refs = appliedRefs(state, sourceOf);
  const facts = {
    node,
    state,
    wanted,
    refs,
    now: judging.now,
    staleAfterMs: judging.staleAfterMs ?? DEFAULT_STALE_AFTER_MS,
    lastSeen: judging.lastSeen?.get(node),
  };
  for (const check of NODE_CHECKS) {
    const verdict = check(facts);
    if (verdict) return verdict;
  }
  return { node, state: "ready", drifted: state?.status?.drift?.drifted === true };
}

export interface NodeFold {
  desiredNodes: number;
  readyNodes: number;
  driftedNodes: number;
  nodes: string;
  conditions: ConditionDecision[];
}

/** At most this many nodes are named in a message: status never grows with the cluster. */
export const SAMPLE_SIZE = 5;

export function sampleList(items: string[], size = SAMPLE_SIZE): string {
  const shown = items.slice(0, size).join(", ");
  return items.length > size ? `${shown} and ${items.length - size} more` : shown;
}

/**
 * Pure: folds node verdicts (and any nodes lost to an older object) into counts and kstatus
 * conditions: Ready, Reconciling (abnormal-true while nodes lag) and Stalled (abnormal-true
 * when nodes failed or ownership conflicts need a person).
 */
export function foldVerdicts(
  generation: number,
  verdicts: NodeVerdict[],
  conflict?: { nodes: string[]; winners: string[]; kind: string },
): NodeFold {
  const ready = verdicts.filter((v) => v.state === "ready");
  const failed = verdicts.filter(
    (v): v is Extract<NodeVerdict, { state: "failed" }> => v.state === "failed",
  );
  const pending = verdicts.filter(
    (v): v is Extract<NodeVerdict, { state: "pending" }> => v.state === "pending",
  );
  const drifted = ready.filter((v) => v.state === "ready" && v.drifted).length;
  const desired = verdicts.length;
  const counts = {
    desiredNodes: desired,
    readyNodes: ready.length,
    driftedNodes: drifted,
    nodes: `${ready.length}/${desired}`,
  };
  const cond = (
    type: ConditionDecision["type"],
    on: boolean,
    reason: string,
    message: string,
  ): ConditionDecision => ({
    type,
    status: on ? "True" : "False",
    reason,
    message,
  });

  if (conflict && conflict.nodes.length > 0) {
    const message = `${conflict.nodes.length} selected node(s) belong to the older ${conflict.kind} ${sampleList(conflict.winners)}: ${sampleList(conflict.nodes)}; narrow the nodeSelector or delete one of them`;
    return {
      ...counts,
      conditions: [
        cond("Ready", false, "Conflict", message),
        cond("Reconciling", false, "Conflict", message),
        cond("Stalled", true, "Conflict", message),
      ],
    };
  }
  if (failed.length > 0) {
    const lagging = failed.length + pending.length;
    const message = `${lagging} of ${desired} nodes have not applied generation ${generation}: ${sampleList(
      [...failed, ...pending].map((v) => `${v.node} (${v.why})`),
    )}`;
    return {
      ...counts,
      conditions: [
        cond("Ready", false, "NodesNotReady", message),
        cond("Reconciling", false, "NodesFailed", message),
        cond("Stalled", true, "NodesFailed", message),
      ],
    };
  }
  if (pending.length > 0) {
    const message = `${ready.length} of ${desired} nodes applied generation ${generation}; waiting for ${sampleList(
      pending.map((v) => v.node),
    )}`;
    return {
      ...counts,
      conditions: [
        cond("Ready", false, "NodesNotReady", message),
        cond("Reconciling", true, "Progressing", message),
        cond("Stalled", false, "Progressing", message),
      ],
    };
  }
  const message =
    desired === 0
      ? "selects no nodes"
      : `${desired} of ${desired} nodes applied generation ${generation}${drifted ? `; ${drifted} drifted` : ""}`;
  return {
    ...counts,
    conditions: [
      cond("Ready", true, desired === 0 ? "NoNodesSelected" : "NodesReady", message),
      cond("Reconciling", false, "Converged", message),
      cond("Stalled", false, "Converged", message),
    ],
  };
}
