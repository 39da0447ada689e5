/** Decides how long an item waits before its next retry (client-go's workqueue.RateLimiter). */
export interface RateLimiter<K> {
  /** Delay before the item may be processed again; each call counts one more failure. */
  when(item: K): number;
  /** The item succeeded: its failure history is dropped. */
  forget(item: K): void;
  numRequeues(item: K): number;
}

/** base·2^failures capped at max — the one formula behind every backoff in this package. */
export function exponentialBackoffMs(baseMs: number, maxMs: number, failures: number): number {
  // 2^failures overflows to Infinity long before it matters; Math.min keeps the cap exact.
  const delay = baseMs * 2 ** Math.max(0, failures);
  return Number.isFinite(delay) ? Math.min(delay, maxMs) : maxMs;
}

export const DEFAULT_BASE_DELAY_MS = 5;
export const DEFAULT_MAX_DELAY_MS = 1_000_000;

/** Per-item exponential backoff, 5 ms → 1000 s by default (controller-runtime's default). */
export class ItemExponentialFailureRateLimiter<K> implements RateLimiter<K> {
  private readonly failures = new Map<K, number>();

  constructor(
    private readonly baseDelayMs = DEFAULT_BASE_DELAY_MS,
    private readonly maxDelayMs = DEFAULT_MAX_DELAY_MS,
  ) {}

  when(item: K): number {
    const failures = this.failures.get(item) ?? 0;
    this.failures.set(item, failures + 1);
    return exponentialBackoffMs(this.baseDelayMs, this.maxDelayMs, failures);
  }

  forget(item: K): void {
    this.failures.delete(item);
  }

  numRequeues(item: K): number {
    return this.failures.get(item) ?? 0;
  }
}
