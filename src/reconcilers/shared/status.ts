import { type Condition, setCondition } from "../../controllers/conditions.js";
import type { ConditionDecision } from "./fold.js";
import { stableStringify } from "./hash.js";

export interface UserStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  [field: string]: unknown;
}

/**
 * Pure: the next status of a user-facing object. Conditions keep their lastTransitionTime
 * unless their status flips; every condition and the status carry the generation folded.
 */
export function nextStatus(
  prev: UserStatus | undefined,
  generation: number,
  decisions: ConditionDecision[],
  fields: Record<string, unknown>,
  now: Date,
): UserStatus {
  let conditions = prev?.conditions ?? [];
  for (const d of decisions) conditions = setCondition(conditions, d, generation, now);
  return { ...fields, observedGeneration: generation, conditions };
}

/** Semantic equality: nothing is written when nothing changed. */
export function sameStatus(a: UserStatus | undefined, b: UserStatus): boolean {
  return stableStringify(a ?? {}) === stableStringify(b);
}

/** The Ready transition worth an Event, if any. */
export function readyTransition(
  prev: UserStatus | undefined,
  next: UserStatus,
): { type: "Normal" | "Warning"; reason: string; message: string } | undefined {
  const before = prev?.conditions?.find((c) => c.type === "Ready");
  const after = next.conditions?.find((c) => c.type === "Ready");
  if (!after || (before?.status === after.status && before.reason === after.reason))
    return undefined;
  // Warnings are for what needs a person (Stalled); nodes catching up is normal.
  const stalled = next.conditions?.find((c) => c.type === "Stalled")?.status === "True";
  return { type: stalled ? "Warning" : "Normal", reason: after.reason, message: after.message };
}

/** Count-only status changes of one object are written at most this often (coalesced). */
export const STATUS_COALESCE_MS = 1000;

/**
 * Pure: write the new status now, or hold it `holdMs` so that the reports of many nodes fold
 * into one write. What a reader acts on (a condition's status or reason, the generation) is
 * written at once; counts and messages alone wait until STATUS_COALESCE_MS after the last write.
 */
export function statusWriteDecision(
  prev: UserStatus | undefined,
  next: UserStatus,
  lastWriteMs: number | undefined,
  nowMs: number,
  coalesceMs = STATUS_COALESCE_MS,
): { write: true } | { write: false; holdMs: number } {
  const shape = (s: UserStatus | undefined) =>
    stableStringify({
      g: s?.observedGeneration,
      c: (s?.conditions ?? []).map((c) => [c.type, c.status, c.reason, c.observedGeneration]),
    });
  if (lastWriteMs === undefined || shape(prev) !== shape(next)) return { write: true };
  const wait = lastWriteMs + coalesceMs - nowMs;
  return wait > 0 ? { write: false, holdMs: wait } : { write: true };
}
