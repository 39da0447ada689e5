import type { NodeNetworkState } from "../../api/nodenetworkstate.js";
import type { BandwidthPolicy, PodView } from "../model.js";
import { podKey } from "../model.js";
import { decidePodBandwidth } from "../nodenetworkstate/desired.js";
import { foldVerdicts, type Judging, judgeNode, type NodeFold } from "../shared/fold.js";
import { matchesSelector } from "../shared/selector.js";

export interface BandwidthPolicyFold extends NodeFold {
  selectedPods: number;
  enforcedPods: number;
  overriddenPods: number;
  pods: string;
}

/** Pods a policy selects: same namespace, labels match, scheduled and with an IP. */
export function selectedPods(bp: BandwidthPolicy, pods: readonly PodView[]): PodView[] {
  return pods.filter(
    (p) =>
      p.namespace === bp.metadata.namespace &&
      p.nodeName !== undefined &&
      p.ip !== undefined &&
      matchesSelector(bp.spec.podSelector, p.labels),
  );
}

/**
 * Pure: a BandwidthPolicy's pod and node counts. A pod is enforced when its node applied this
 * policy's generation; its limit is this policy's rate or a more restrictive one, which wins —
 * decided by the same rule the agents render with (decidePodBandwidth over `policies`, the
 * namespace's BandwidthPolicies).
 */
export function foldBandwidthPolicy(
  bp: BandwidthPolicy,
  pods: readonly PodView[],
  policies: readonly BandwidthPolicy[],
  states: ReadonlyMap<string, NodeNetworkState>,
  judging: Judging,
): BandwidthPolicyFold {
  const generation = bp.metadata.generation ?? 0;
  const self = `${bp.metadata.namespace}/${bp.metadata.name}`;
  const selected = bp.spec.egress ? selectedPods(bp, pods) : [];
  const nodeNames = [...new Set(selected.map((p) => p.nodeName!))].sort();
  const wanted = { name: self, generation };
  const verdicts = nodeNames.map((n) =>
    judgeNode(n, states.get(n), wanted, (s) => s.bandwidthPolicies, judging),
  );
  const readyNodes = new Set(verdicts.filter((v) => v.state === "ready").map((v) => v.node));
  let enforced = 0;
  const overridden: string[] = [];
  for (const pod of selected) {
    const entry = decidePodBandwidth(pod, policies).entry;
    if (entry && entry.source !== self) overridden.push(`${podKey(pod)} (${entry.source})`);
    // A stricter limit in force keeps this policy's promise too.
    if (entry && readyNodes.has(pod.nodeName!)) enforced++;
  }
  const fold = foldVerdicts(generation, verdicts);
  const note = overridden.length
    ? `; ${overridden.length} pod(s) limited by a more restrictive source: ${overridden.slice(0, 5).join(", ")}`
    : "";
  return {
    ...fold,
    conditions: fold.conditions.map((c) =>
      c.type === "Ready" ? { ...c, message: c.message + note } : c,
    ),
    selectedPods: selected.length,
    enforcedPods: enforced,
    overriddenPods: overridden.length,
    pods: `${enforced}/${selected.length}`,
  };
}
