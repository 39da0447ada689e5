import { type Clock, RealClock } from "../util/clock.js";
import type { RuntimeMetrics } from "./metrics.js";
import { ItemExponentialFailureRateLimiter, type RateLimiter } from "./rate-limiter.js";

export interface WorkQueueOptions<K> {
  /** Label value of the workqueue_* metrics (the controller name). */
  name: string;
  rateLimiter?: RateLimiter<K>;
  metrics?: RuntimeMetrics;
  /** Delays and drain deadlines run on it (tests move a FakeClock instead of sleeping). */
  clock?: Clock;
}

interface Delayed {
  readyAt: number;
  timer: string;
}

/**
 * A rate-limited, delaying work queue with client-go semantics:
 * - an item added while it already waits is not added twice (dirty set);
 * - an item is handed to one worker at a time: added again while it is processed, it waits until
 *   done() and is then queued once more (processing set);
 * - addRateLimited/forget give per-item exponential backoff, addAfter a requeue-after.
 * Shutting down stops handing out and accepting items; shutDownWithDrain also waits for the
 * items in flight.
 */
export class WorkQueue<K = string> {
  readonly name: string;
  private readonly rateLimiter: RateLimiter<K>;
  private readonly metrics: RuntimeMetrics | undefined;
  private readonly queue: K[] = [];
  private readonly dirty = new Set<K>();
  private readonly processing = new Set<K>();
  private readonly delayed = new Map<K, Delayed>();
  private readonly getters: Array<(item: K | undefined) => void> = [];
  private readonly idleWaiters: Array<() => void> = [];
  private shuttingDown = false;
  private readonly clock: Clock;
  private timers = 0;

  constructor(opts: WorkQueueOptions<K>) {
    this.name = opts.name;
    this.rateLimiter = opts.rateLimiter ?? new ItemExponentialFailureRateLimiter<K>();
    this.metrics = opts.metrics;
    this.metrics?.initQueue(this.name);
    this.clock = opts.clock ?? new RealClock({ keepAlive: true });
  }

  /** A timer name of its own on a clock that other queues may share. */
  private timerName(): string {
    return `workqueue/${this.name}/${this.timers++}`;
  }

  add(item: K): void {
    if (this.shuttingDown || this.dirty.has(item)) return;
    this.dirty.add(item);
    this.metrics?.workqueueAdds.inc({ name: this.name });
    // Processing now: done() re-queues it, so no two workers ever hold the same item.
    if (this.processing.has(item)) return;
    this.queue.push(item);
    this.dispatch();
  }

  /** Adds the item after delayMs; of several pending delays for one item the earliest wins. */
  addAfter(item: K, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(item);
      return;
    }
    const readyAt = this.clock.now().getTime() + delayMs;
    const pending = this.delayed.get(item);
    if (pending && pending.readyAt <= readyAt) return;
    if (pending) this.clock.cancel(pending.timer);
    const timer = this.timerName();
    this.clock.schedule(timer, new Date(readyAt), () => {
      this.delayed.delete(item);
      this.add(item);
    });
    this.delayed.set(item, { readyAt, timer });
  }

  /** Re-adds the item after its rate limiter's backoff (one more failure counted). */
  addRateLimited(item: K): void {
    if (this.shuttingDown) return;
    this.metrics?.workqueueRetries.inc({ name: this.name });
    this.addAfter(item, this.rateLimiter.when(item));
  }

  forget(item: K): void {
    this.rateLimiter.forget(item);
  }

  numRequeues(item: K): number {
    return this.rateLimiter.numRequeues(item);
  }

  /**
   * The next item to process, or undefined once the queue shuts down or signal aborts the wait.
   * Pair every item with done().
   */
  get(signal?: AbortSignal): Promise<K | undefined> {
    if (this.shuttingDown || signal?.aborted) return Promise.resolve(undefined);
    const item = this.take();
    if (item !== undefined) return Promise.resolve(item.value);
    return new Promise((resolve) => {
      // An abandoned getter must leave the list, or it would swallow the next item.
      const onAbort = () => {
        const i = this.getters.indexOf(getter);
        if (i >= 0) this.getters.splice(i, 1);
        resolve(undefined);
      };
      const getter = (value: K | undefined) => {
        signal?.removeEventListener("abort", onAbort);
        resolve(value);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.getters.push(getter);
    });
  }

  /** Marks the item processed; if it was added meanwhile it is queued again now. */
  done(item: K): void {
    if (!this.processing.delete(item)) return;
    if (this.dirty.has(item) && !this.shuttingDown) {
      this.queue.push(item);
      this.dispatch();
    }
    if (this.processing.size === 0) {
      for (const wake of this.idleWaiters.splice(0)) wake();
    }
  }

  len(): number {
    return this.queue.length;
  }

  inFlight(): number {
    return this.processing.size;
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /** Stops accepting and handing out items; workers blocked in get() receive undefined. */
  shutDown(): void {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    for (const { timer } of this.delayed.values()) this.clock.cancel(timer);
    this.delayed.clear();
    this.queue.length = 0;
    this.dirty.clear();
    this.updateDepth();
    for (const getter of this.getters.splice(0)) getter(undefined);
  }

  /**
   * shutDown, then wait until every item handed out is done() or the deadline passes.
   * Resolves true when the queue drained in time.
   */
  async shutDownWithDrain(timeoutMs: number): Promise<boolean> {
    this.shutDown();
    if (this.processing.size === 0) return true;
    const timer = this.timerName();
    const drained = new Promise<boolean>((resolve) => this.idleWaiters.push(() => resolve(true)));
    const expired = new Promise<boolean>((resolve) => {
      this.clock.schedule(timer, new Date(this.clock.now().getTime() + timeoutMs), () =>
        resolve(false),
      );
    });
    try {
      return await Promise.race([drained, expired]);
    } finally {
      this.clock.cancel(timer);
    }
  }

  private take(): { value: K } | undefined {
    if (this.queue.length === 0) return undefined;
    const item = this.queue.shift() as K;
    this.dirty.delete(item);
    this.processing.add(item);
    this.updateDepth();
    return { value: item };
  }

  private dispatch(): void {
    while (this.getters.length > 0) {
      const item = this.take();
      if (item === undefined) break;
      this.getters.shift()?.(item.value);
    }
    this.updateDepth();
  }

  private updateDepth(): void {
    this.metrics?.workqueueDepth.set({ name: this.name }, this.queue.length);
  }
}
