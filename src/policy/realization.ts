/**
 * How far a NetworkPolicy is realized, pure: the nodes hosting the pods it selects, which of
 * them applied its current generation (their agents report the policies they rendered), and in
 * audit mode what it would have dropped. Folded into kstatus conditions like every other kind,
 * plus the short summary kept on the policy itself for Argo CD.
 */
import type { NodeNetworkState } from "../api/nodenetworkstate.js";
import type { ConditionDecision, Judging, NodeVerdict } from "../reconcilers/shared/fold.js";
import { foldVerdicts, judgeNode } from "../reconcilers/shared/fold.js";
import { matchesSelector } from "../reconcilers/shared/selector.js";
import type { NetworkPolicy } from "./networkpolicy.js";
import { isAuditPolicy, type PolicyEnforcement } from "./node.js";

export interface SelectablePod {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  nodeName?: string | undefined;
  /** Has an address (only such pods are enforced and counted). */
  hasIP: boolean;
}

/** The annotation's content: what Argo CD's health check reads on the NetworkPolicy. */
export interface RealizationSummary {
  generation: number;
  mode: "Enforce" | "Audit";
  state: "Realized" | "Progressing" | "Degraded";
  message: string;
}

export interface Realization {
  decisions: ConditionDecision[];
  fields: {
    desiredNodes: number;
    readyNodes: number;
    driftedNodes: number;
    nodes: string;
    selectedPods: number;
    pods: string;
    mode: "Enforce" | "Audit";
    wouldDrop?: number;
  };
  summary: RealizationSummary;
}

/** Pure: the pods a policy selects (same namespace, podSelector), with an address and a node. */
export function selectedPods(
  policy: NetworkPolicy,
  pods: readonly SelectablePod[],
): SelectablePod[] {
  return pods.filter(
    (p) =>
      p.namespace === policy.metadata.namespace &&
      p.hasIP &&
      p.nodeName !== undefined &&
      matchesSelector(policy.spec.podSelector, p.labels),
  );
}

/**
 * Pure. `enforcementOf(node)` is the policyEnforcement the node's agent reported (a node that
 * never enforces cannot realize the policy: Stalled, named).
 */
export function realizationOf(
  policy: NetworkPolicy,
  pods: readonly SelectablePod[],
  states: ReadonlyMap<string, NodeNetworkState>,
  judging: Judging,
): Realization {
  const name = `${policy.metadata.namespace}/${policy.metadata.name}`;
  const generation = policy.metadata.generation ?? 0;
  const selected = selectedPods(policy, pods);
  const audit = isAuditPolicy(policy);
  const nodes = [...new Set(selected.map((p) => p.nodeName!))].sort();
  const verdicts: NodeVerdict[] = nodes.map((node) => {
    const state = states.get(node);
    const enforcement: PolicyEnforcement | undefined = state?.status?.policy?.enforcement;
    if (enforcement === "Never")
      return { node, state: "failed", why: "its NetworkConfig sets policyEnforcement: Never" };
    const verdict = judgeNode(node, state, { name, generation }, (s) => s.networkPolicies, judging);
    // An annotation change (audit on or off) keeps the generation: the mode must match too.
    const ref = state?.status?.sources?.networkPolicies?.find((r) => r.name === name);
    if (verdict.state === "ready" && (ref?.audit === true) !== audit)
      return { node, state: "pending", why: `${audit ? "audit" : "enforce"} mode not applied yet` };
    return verdict;
  });
  const fold = foldVerdicts(generation, verdicts);
  let wouldDrop = 0;
  for (const node of nodes)
    for (const w of states.get(node)?.status?.policy?.wouldDrop ?? [])
      if (w.policy === name) wouldDrop += w.count;
  const stalled = fold.conditions.some((c) => c.type === "Stalled" && c.status === "True");
  const ready = fold.conditions.some((c) => c.type === "Ready" && c.status === "True");
  const stalledMessage = fold.conditions.find((c) => c.type === "Stalled")?.message ?? "";
  // Counts and progress stay in the PolicyRealization: the summary changes only with the
  // state, as every agent watches the NetworkPolicy it is written on (a would-drop count or a
  // node's progress in it would cost a watch event per node).
  const details = `PolicyRealization ${name} has the nodes, pods${audit ? " and would-drops" : ""}`;
  const summary: RealizationSummary = {
    generation,
    mode: audit ? "Audit" : "Enforce",
    state: stalled ? "Degraded" : ready ? "Realized" : "Progressing",
    message: stalled
      ? stalledMessage
      : nodes.length === 0
        ? "selects no running pod"
        : ready
          ? `realized on every node hosting a selected pod${audit ? " (audit mode)" : ""}; ${details}`
          : `nodes are applying generation ${generation}${audit ? " (audit mode)" : ""}; ${details}`,
  };
  return {
    decisions: fold.conditions,
    fields: {
      desiredNodes: fold.desiredNodes,
      readyNodes: fold.readyNodes,
      driftedNodes: fold.driftedNodes,
      nodes: fold.nodes,
      selectedPods: selected.length,
      pods: `${selected.length}`,
      mode: audit ? "Audit" : "Enforce",
      ...(audit ? { wouldDrop } : {}),
    },
    summary,
  };
}
