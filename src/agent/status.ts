import type { NodeNetworkStateStatus } from "../api/nodenetworkstate.js";
import { type Condition, formatTime, setCondition } from "../controllers/conditions.js";
import type { ApplyReport, Capabilities, DriftItem } from "../datapath-driver/driver.js";

export interface ApplyOutcome {
  generation: number;
  specHash: string | undefined;
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
        message: `applied generation ${outcome.generation}`,
      }
    : { type: "Ready", status: "False" as const, reason: "ApplyFailed", message: result.error };
  const degraded = result.ok
    ? {
        type: "Degraded",
        status: "False" as const,
        reason: "Applied",
        message: "datapath matches the desired state",
      }
    : { type: "Degraded", status: "True" as const, reason: "ApplyFailed", message: result.error };
  let conditions = setCondition(
    prev?.conditions as Condition[] | undefined,
    ready,
    outcome.generation,
    ctx.now,
  );
  conditions = setCondition(conditions, degraded, outcome.generation, ctx.now);
  return {
    ...prev,
    // Only a successful apply moves the applied generation: the operator reads it as "done".
    ...(result.ok
      ? {
          observedGeneration: outcome.generation,
          ...(outcome.specHash ? { appliedSpecHash: outcome.specHash } : {}),
          datapath: {
            attach: result.report.attach,
            bandwidth: result.report.bandwidth,
            driver: ctx.driver,
          },
          mapEntries: result.report.mapEntries,
          drift: { ...prev?.drift, drifted: false },
        }
      : {}),
    conditions,
    capabilities: ctx.capabilities,
    heartbeatTime: formatTime(ctx.now),
    ...(ctx.nodeIP ? { nodeIP: ctx.nodeIP } : {}),
  };
}

/** Pure: the agent's status after a drift check. */
export function statusAfterDriftCheck(
  prev: NodeNetworkStateStatus | undefined,
  drift: DriftOutcome,
  now: Date,
): NodeNetworkStateStatus {
  const found = drift.items.length > 0;
  const d = prev?.drift ?? {};
  return {
    ...prev,
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
export function statusPatch(status: NodeNetworkStateStatus): Record<string, unknown> {
  if (!status.wireguard) return { ...status, wireguard: null };
  // A rotation's announcement ends when the key is switched: a merge patch must delete it.
  return {
    ...status,
    wireguard: { nextPublicKey: null, nextKeySwitchTime: null, ...status.wireguard },
  };
}
