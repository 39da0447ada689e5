import {
  type NodeNetworkStateStatus,
  nodeNetworkStateStatus,
  type Sources,
  sources as sources_,
} from "../api/nodenetworkstate.js";
import { type NodePeerStatus, nodePeerStatus } from "../api/nodepeer.js";
import { type Condition, formatTime, setCondition } from "../controllers/conditions.js";
import type { ApplyReport, Capabilities, DriftItem } from "../datapath-driver/driver.js";

export interface ApplyOutcome {
  /** The generation of this node's NodeNetworkState (for the conditions' observedGeneration). */
  generation: number;
  /** What the desired state was rendered from: reported whether the apply worked or not. */
  sources: Sources | undefined;
  specHash: string;
  /** The driver's report, or the error that stopped the apply. */
  result: { ok: true; report: ApplyReport } | { ok: false; error: string };
}

export interface DriftOutcome {
  items: DriftItem[];
  healed: boolean;
}

/** Pure: the agent's status after an apply attempt. */
export function statusAfterApply(
  prev: NodeNetworkStateStatus | undefined,
  outcome: ApplyOutcome,
  ctx: { now: Date; capabilities: Capabilities; driver: "linux" | "memory"; nodeIP?: string },
): NodeNetworkStateStatus {
  const { result } = outcome;
  const ready = result.ok
    ? {
        type: "Ready",
        status: "True" as const,
        reason: "Applied",
        message: `applied ${describeSources(outcome.sources)}`,
      }
    : { type: "Ready", status: "False" as const, reason: "ApplyFailed", message: result.error };
  const degraded = !result.ok
    ? { type: "Degraded", status: "True" as const, reason: "ApplyFailed", message: result.error }
    : result.report.notEnforced.length > 0
      ? notEnforcedCondition(result.report.notEnforced)
      : DATAPATH_MATCHES;
  let conditions = setCondition(
    prev?.conditions as Condition[] | undefined,
    ready,
    outcome.generation,
    ctx.now,
  );
  conditions = setCondition(conditions, degraded, outcome.generation, ctx.now);
  const { sources: _s, ...rest } = prev ?? {};
  return {
    ...rest,
    // The sources of this attempt, with Ready saying whether it applied: the operator reads
    // "Ready and the object's generation among the sources" as done.
    ...(outcome.sources ? { sources: outcome.sources } : {}),
    ...(result.ok
      ? {
          appliedSpecHash: outcome.specHash,
          datapath: {
            attach: result.report.attach,
            bandwidth: result.report.bandwidth,
            driver: ctx.driver,
            notEnforced: result.report.notEnforced.length,
          },
          mapEntries: result.report.mapEntries,
          // Counters start at 0 here, so the first quiet drift check changes nothing (no write).
          drift: {
            ...prev?.drift,
            drifted: false,
            detectedTotal: prev?.drift?.detectedTotal ?? 0,
            healedTotal: prev?.drift?.healedTotal ?? 0,
          },
        }
      : {}),
    conditions,
    capabilities: ctx.capabilities,
    heartbeatTime: formatTime(ctx.now),
    ...(ctx.nodeIP ? { nodeIP: ctx.nodeIP } : {}),
  };
}

/** Pure: "NetworkConfig default (generation 3), BandwidthPolicy ns/x (generation 1)". */
export function describeSources(sources: Sources | undefined): string {
  const refs = [
    ...(sources?.networkConfig ? [["NetworkConfig", sources.networkConfig] as const] : []),
    ...(sources?.encryptionProfile
      ? [["EncryptionProfile", sources.encryptionProfile] as const]
      : []),
    ...(sources?.bandwidthPolicies ?? []).map((r) => ["BandwidthPolicy", r] as const),
  ];
  if (refs.length === 0) return "the defaults (no source selects this node)";
  const named = refs
    .slice(0, NAMED)
    .map(([kind, r]) => `${kind} ${r.name} (generation ${r.generation})`);
  return named.join(", ") + (refs.length > NAMED ? ` and ${refs.length - NAMED} more` : "");
}

const DATAPATH_MATCHES = {
  type: "Degraded",
  status: "False" as const,
  reason: "Applied",
  message: "datapath matches the desired state",
};

/** At most this many items are named in a condition message. */
const NAMED = 5;

function notEnforcedCondition(items: string[]) {
  const more = items.length > NAMED ? ` and ${items.length - NAMED} more` : "";
  return {
    type: "Degraded",
    status: "True" as const,
    reason: "NotEnforced",
    message: `applied, except what this datapath cannot enforce: ${items.slice(0, NAMED).join("; ")}${more}`,
  };
}

/**
 * Pure: the agent's status after a drift check. A check that completes clears an earlier
 * DriftCheckFailed (other Degraded reasons belong to the apply and stay).
 */
export function statusAfterDriftCheck(
  prev: NodeNetworkStateStatus | undefined,
  drift: DriftOutcome,
  generation: number,
  now: Date,
): NodeNetworkStateStatus {
  const found = drift.items.length > 0;
  const d = prev?.drift ?? {};
  const degraded = prev?.conditions?.find((c) => c.type === "Degraded");
  const conditions =
    degraded?.reason === "DriftCheckFailed"
      ? setCondition(prev?.conditions as Condition[] | undefined, DATAPATH_MATCHES, generation, now)
      : prev?.conditions;
  return {
    ...prev,
    ...(conditions ? { conditions } : {}),
    drift: {
      ...d,
      drifted: found && !drift.healed,
      detectedTotal: (d.detectedTotal ?? 0) + (found ? 1 : 0),
      healedTotal: (d.healedTotal ?? 0) + (found && drift.healed ? 1 : 0),
      ...(found
        ? {
            lastDriftTime: formatTime(now),
            lastDriftReason: drift.items
              .map((i) => i.detail)
              .slice(0, 5)
              .join("; "),
          }
        : {}),
    },
    heartbeatTime: formatTime(now),
  };
}

/**
 * The merge patch that makes /status equal to `status`: what the agent no longer reports
 * (WireGuard after the profile went, a finished key announcement) is sent as null, which a
 * merge patch deletes.
 */
/** The fields of status.policy (cleared in a merge patch when absent). */
const policyShape = nodeNetworkStateStatus.shape.policy.unwrap().shape;

export function statusPatch(status: NodeNetworkStateStatus): Record<string, unknown> {
  // A source no longer applied (a NetworkConfig or NetworkPolicy deleted) must go: merge
  // patches merge objects, so every field the schema knows is cleared unless it is set.
  const cleared = (shape: object) => Object.fromEntries(Object.keys(shape).map((k) => [k, null]));
  const sources = status.sources ? { ...cleared(sources_.shape), ...status.sources } : null;
  const policy = status.policy ? { ...cleared(policyShape), ...status.policy } : null;
  if (!status.wireguard) return { ...status, sources, policy, wireguard: null };
  // A rotation's announcement ends when the key is switched: a merge patch must delete it.
  return {
    ...status,
    sources,
    policy,
    wireguard: { nextPublicKey: null, nextKeySwitchTime: null, ...status.wireguard },
  };
}

/** The merge patch that makes a NodePeer's /status equal to `status` (absent fields removed). */
export function peerStatusPatch(status: NodePeerStatus): Record<string, unknown> {
  const cleared = Object.fromEntries(
    Object.keys(nodePeerStatus.shape).map((k) => [k, null] as const),
  );
  return { ...cleared, ...status };
}

/**
 * Pure: the status after a drift check that could not finish (the kernel could not be read, or
 * the heal failed): Degraded with the error, and no claim that the datapath matches.
 */
export function statusAfterDriftCheckFailed(
  prev: NodeNetworkStateStatus | undefined,
  error: string,
  generation: number,
  now: Date,
): NodeNetworkStateStatus {
  return {
    ...prev,
    conditions: setCondition(
      prev?.conditions as Condition[] | undefined,
      { type: "Degraded", status: "True", reason: "DriftCheckFailed", message: error },
      generation,
      now,
    ),
    heartbeatTime: formatTime(now),
  };
}

/** Pure: the status when this node's NodeNetworkState cannot be used (nothing new applied). */
export function statusInvalidSpec(
  prev: NodeNetworkStateStatus | undefined,
  error: string,
  generation: number,
  now: Date,
): NodeNetworkStateStatus {
  let conditions = setCondition(
    prev?.conditions as Condition[] | undefined,
    { type: "Ready", status: "False", reason: "InvalidSpec", message: error },
    generation,
    now,
  );
  conditions = setCondition(
    conditions,
    { type: "Degraded", status: "True", reason: "InvalidSpec", message: error },
    generation,
    now,
  );
  return { ...prev, conditions, heartbeatTime: formatTime(now) };
}
