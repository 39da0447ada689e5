import { randomUUID } from "node:crypto";
import { type Logger, pino } from "pino";
import type { Clock } from "../util/clock.js";
import { describeError } from "./errors.js";
import type { EventHandler, EventSource } from "./informer.js";
import { type ReconcileOutcome, RuntimeMetrics } from "./metrics.js";
import { ItemExponentialFailureRateLimiter, type RateLimiter } from "./rate-limiter.js";
import {
  groupOf,
  type KubeObject,
  keyOf,
  objectKey,
  type ResourceKind,
  splitKey,
} from "./resource.js";
import { WorkQueue } from "./workqueue.js";

export interface ReconcileResult {
  /** Run again after the rate limiter's backoff. */
  requeue?: boolean;
  /** Run again after this long (wins over requeue), e.g. to re-check drift. */
  requeueAfterMs?: number;
}

export interface ReconcileContext {
  key: string;
  namespace: string | undefined;
  name: string;
  /** Child logger carrying controller, key and reconcileID: use it for every line. */
  log: Logger;
  /** Aborted when the controller stops (lost leadership or shutdown deadline). */
  signal: AbortSignal;
  /** How many times this key has been retried in a row (0 on a fresh attempt). */
  retries: number;
}

export type Reconciler = (
  key: string,
  ctx: ReconcileContext,
  // biome-ignore lint/suspicious/noConfusingVoidType: lets `async () => {}` be a reconciler
) => Promise<ReconcileResult | void>;

/** One watched source and how its objects map to keys of the controller's primary kind. */
export interface WatchSpec<T extends KubeObject = KubeObject> {
  source: EventSource<T>;
  toKeys(obj: T): string[];
}

export interface ControllerOptions {
  name: string;
  reconcile: Reconciler;
  watches: WatchSpec[];
  /** Parallel workers (MaxConcurrentReconciles), default 1. */
  concurrency?: number;
  /** Fresh limiter per start (default per-item exponential 5 ms → 1000 s). */
  rateLimiter?: () => RateLimiter<string>;
  metrics?: RuntimeMetrics;
  logger?: Logger;
  /** The work queue's clock: backoff and requeue-after delays (tests pass a FakeClock). */
  clock?: Clock;
}

export type QueueAction =
  | { kind: "forget" }
  | { kind: "rateLimited" }
  | { kind: "after"; delayMs: number };

/** controller-runtime's rules for what a reconcile's outcome does to its key. */
export function classifyReconcile(
  result: ReconcileResult | undefined,
  failed: boolean,
): { outcome: ReconcileOutcome; action: QueueAction } {
  if (failed) return { outcome: "error", action: { kind: "rateLimited" } };
  const after = result?.requeueAfterMs ?? 0;
  if (after > 0) return { outcome: "requeue_after", action: { kind: "after", delayMs: after } };
  if (result?.requeue) return { outcome: "requeue", action: { kind: "rateLimited" } };
  return { outcome: "success", action: { kind: "forget" } };
}

/**
 * Keys of the owners of kind `owner` named in obj's ownerReferences (controller-runtime's
 * EnqueueRequestForOwner). Version is ignored: an owner is the same object in every version.
 */
export function ownerKeys(
  obj: KubeObject,
  owner: Pick<ResourceKind, "group" | "kind" | "namespaced">,
  onlyController = true,
): string[] {
  const refs = obj.metadata?.ownerReferences ?? [];
  return refs
    .filter((r) => r.kind === owner.kind && groupOf(r.apiVersion) === owner.group)
    .filter((r) => !onlyController || r.controller === true)
    .map((r) => keyOf(r.name, owner.namespaced ? obj.metadata?.namespace : undefined));
}

/**
 * A controller: watches sources, maps events to keys on a work queue and runs the reconciler
 * with `concurrency` workers. It can be started and stopped repeatedly (each leadership term
 * gets a fresh queue); it never runs one key in two workers at once.
 */
export class Controller {
  readonly name: string;
  private readonly opts: ControllerOptions;
  private readonly metrics: RuntimeMetrics;
  private readonly log: Logger;
  private queue: WorkQueue<string> | undefined;
  private abort: AbortController | undefined;
  private unregister: Array<() => void> = [];
  private workers: Promise<void>[] = [];
  private wanted = false;
  private draining: Promise<void> | undefined;

  constructor(opts: ControllerOptions) {
    if (opts.watches.length === 0) throw new Error(`controller ${opts.name} watches nothing`);
    this.opts = opts;
    this.name = opts.name;
    this.metrics = opts.metrics ?? new RuntimeMetrics();
    this.log = (opts.logger ?? pino({ level: "silent" })).child({ controller: opts.name });
    this.metrics.initController(opts.name);
  }

  get running(): boolean {
    return this.queue !== undefined;
  }

  /** Queue a key by hand (e.g. from a timer or a webhook). Ignored while stopped. */
  enqueue(key: string): void {
    this.queue?.add(key);
  }

  start(): void {
    this.wanted = true;
    // A previous term still draining: start once it is done, so no key runs twice at once.
    if (this.queue || this.draining) return;
    this.startNow();
  }

  /**
   * Stops taking work. abortInFlight=true (lost leadership) aborts running reconciles at once;
   * otherwise they get timeoutMs to finish. Resolves true when nothing was left running.
   */
  async stop(opts: { timeoutMs: number; abortInFlight?: boolean }): Promise<boolean> {
    this.wanted = false;
    const { queue, abort } = this;
    if (!queue || !abort) return true;
    this.queue = undefined;
    this.abort = undefined;
    for (const off of this.unregister.splice(0)) off();
    if (opts.abortInFlight) abort.abort(new Error("controller stopped"));
    const workers = this.workers;
    const drain = queue.shutDownWithDrain(opts.timeoutMs);
    this.draining = drain.then(() => {
      this.draining = undefined;
      if (this.wanted) this.startNow();
    });
    const drained = await drain;
    abort.abort(new Error("controller stopped"));
    if (drained) await Promise.all(workers);
    this.log.info({ drained }, "controller stopped");
    return drained;
  }

  private startNow(): void {
    const queue = new WorkQueue<string>({
      name: this.name,
      metrics: this.metrics,
      rateLimiter: this.opts.rateLimiter?.() ?? new ItemExponentialFailureRateLimiter<string>(),
      ...(this.opts.clock ? { clock: this.opts.clock } : {}),
    });
    const abort = new AbortController();
    this.queue = queue;
    this.abort = abort;
    this.unregister = this.opts.watches.map((w) => w.source.addEventHandler(enqueuer(queue, w)));
    const concurrency = Math.max(1, this.opts.concurrency ?? 1);
    this.workers = Array.from({ length: concurrency }, () => this.work(queue, abort.signal));
    this.log.info({ concurrency }, "controller started");
  }

  private async work(queue: WorkQueue<string>, signal: AbortSignal): Promise<void> {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      try {
        await this.reconcileKey(queue, key, signal);
      } finally {
        queue.done(key);
      }
    }
  }

  private async reconcileKey(
    queue: WorkQueue<string>,
    key: string,
    signal: AbortSignal,
  ): Promise<void> {
    const { namespace, name } = splitKey(key);
    const log = this.log.child({ key, namespace, name, reconcileID: randomUUID() });
    const ctx: ReconcileContext = {
      key,
      namespace,
      name,
      log,
      signal,
      retries: queue.numRequeues(key),
    };
    const endTimer = this.metrics.reconcileTime.startTimer({ controller: this.name });
    let result: ReconcileResult | undefined;
    let failed = false;
    try {
      result = (await this.opts.reconcile(key, ctx)) as ReconcileResult | undefined;
    } catch (err) {
      failed = true;
      log.error({ err: describeError(err), retries: ctx.retries }, "Reconciler error");
    } finally {
      endTimer();
    }
    const { outcome, action } = classifyReconcile(result, failed);
    this.metrics.reconcileTotal.inc({ controller: this.name, result: outcome });
    if (failed) this.metrics.reconcileErrors.inc({ controller: this.name });
    switch (action.kind) {
      case "forget":
        queue.forget(key);
        break;
      case "rateLimited":
        queue.addRateLimited(key);
        break;
      case "after":
        queue.forget(key);
        queue.addAfter(key, action.delayMs);
        break;
    }
    log.debug({ result: outcome }, "reconciled");
  }
}

function enqueuer<T extends KubeObject>(
  queue: WorkQueue<string>,
  w: WatchSpec<T>,
): EventHandler<T> {
  const push = (objs: T[]) => {
    for (const obj of objs) for (const key of w.toKeys(obj)) queue.add(key);
  };
  return {
    add: (obj) => push([obj]),
    // Old and new: an owner or selector change must reach the key the object left as well.
    update: (oldObj, newObj) => push(oldObj === newObj ? [newObj] : [oldObj, newObj]),
    delete: (obj) => push([obj]),
  };
}

/** Where a builder gets a (shared) informer for a kind. */
export type SourceProvider = (kind: ResourceKind, selector?: WatchSelector) => EventSource;

export interface WatchSelector {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

/**
 * controller-runtime's builder: For(kind) the primary kind, Owns(kind) objects it controls via
 * ownerReferences, Watches(kind, map) anything else mapped to primary keys.
 */
export class ControllerBuilder {
  private primary: { kind: ResourceKind; selector?: WatchSelector } | undefined;
  private readonly owned: Array<{ kind: ResourceKind; selector?: WatchSelector }> = [];
  private readonly mapped: WatchSpec[] = [];
  private concurrency = 1;
  private rateLimiter: (() => RateLimiter<string>) | undefined;

  constructor(
    private readonly name: string,
    private readonly sources: SourceProvider,
    private readonly register: (c: Controller) => void,
    private readonly defaults: { metrics?: RuntimeMetrics; logger?: Logger } = {},
  ) {}

  for(kind: ResourceKind, selector?: WatchSelector): this {
    this.primary = { kind, selector };
    return this;
  }

  owns(kind: ResourceKind, selector?: WatchSelector): this {
    this.owned.push({ kind, selector });
    return this;
  }

  /** Watch kind and enqueue the primary keys map(obj) returns (e.g. a Node → its configs). */
  watches<T extends KubeObject>(
    kind: ResourceKind,
    map: (obj: T) => string[],
    selector?: WatchSelector,
  ): this {
    const spec: WatchSpec<T> = { source: this.sources(kind, selector), toKeys: map };
    this.mapped.push(spec);
    return this;
  }

  withConcurrency(n: number): this {
    this.concurrency = n;
    return this;
  }

  withRateLimiter(factory: () => RateLimiter<string>): this {
    this.rateLimiter = factory;
    return this;
  }

  complete(reconcile: Reconciler): Controller {
    const primary = this.primary;
    if (!primary) throw new Error(`controller ${this.name}: call for(kind) before complete()`);
    const watches: WatchSpec[] = [
      { source: this.sources(primary.kind, primary.selector), toKeys: (o) => [objectKey(o)] },
      ...this.owned.map((o) => ({
        source: this.sources(o.kind, o.selector),
        toKeys: (obj: KubeObject) => ownerKeys(obj, primary.kind),
      })),
      ...this.mapped,
    ];
    const controller = new Controller({
      name: this.name,
      reconcile,
      watches,
      concurrency: this.concurrency,
      rateLimiter: this.rateLimiter,
      metrics: this.defaults.metrics,
      logger: this.defaults.logger,
    });
    this.register(controller);
    return controller;
  }
}
