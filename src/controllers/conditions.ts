/** metav1.Condition as it appears in status.conditions. */
export interface Condition {
  type: string;
  status: ConditionStatus;
  observedGeneration?: number;
  /** RFC 3339, seconds precision (metav1.Time). */
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export type ConditionStatus = "True" | "False" | "Unknown";

export interface ConditionInput {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
}

/** metav1.Time's wire format: RFC 3339 in UTC without fractional seconds. */
export function formatTime(d: Date): string {
  return `${d.toISOString().slice(0, 19)}Z`;
}

/**
 * Returns conditions with `input` set by type (apimachinery's meta.SetStatusCondition):
 * lastTransitionTime moves only when status flips, observedGeneration is always stamped, order is
 * kept and new types are appended. Pure: the input array is not modified.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  input: ConditionInput,
  observedGeneration: number,
  now: Date,
): Condition[] {
  const list = conditions ?? [];
  const existing = list.find((c) => c.type === input.type);
  const next: Condition = {
    type: input.type,
    status: input.status,
    observedGeneration,
    lastTransitionTime:
      existing && existing.status === input.status ? existing.lastTransitionTime : formatTime(now),
    reason: input.reason,
    message: input.message,
  };
  if (!existing) return [...list, next];
  return list.map((c) => (c.type === input.type ? next : c));
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isConditionTrue(
  conditions: readonly Condition[] | undefined,
  type: string,
): boolean {
  return findCondition(conditions, type)?.status === "True";
}

export function removeCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type);
}

/** Semantic equality, so a reconcile can skip the status write when nothing changed. */
export function conditionsEqual(
  a: readonly Condition[] | undefined,
  b: readonly Condition[] | undefined,
): boolean {
  const x = a ?? [];
  const y = b ?? [];
  if (x.length !== y.length) return false;
  return x.every((c) => {
    const d = y.find((o) => o.type === c.type);
    return (
      d !== undefined &&
      d.status === c.status &&
      d.reason === c.reason &&
      d.message === c.message &&
      d.observedGeneration === c.observedGeneration &&
      d.lastTransitionTime === c.lastTransitionTime
    );
  });
}
