import type { KubeConfig } from "@kubernetes/client-node";
import { type Logger, pino } from "pino";
import { Reflector, type ReflectorStats } from "./reflector.js";
import {
  collectionPath,
  type KubeObject,
  keyOf,
  objectKey,
  type ResourceKind,
} from "./resource.js";
import { IndexedStore, type IndexFunc } from "./store.js";

export interface EventHandler<T> {
  add?(obj: T): void;
  /** Also called by the periodic resync, then with oldObj === newObj. */
  update?(oldObj: T, newObj: T): void;
  /** Called with the last state the cache knew. */
  delete?(obj: T): void;
}

/** Anything controllers can watch: an informer, or a fake in unit tests. */
export interface EventSource<T extends KubeObject = KubeObject> {
  /** Registers handlers; returns a function that removes them. */
  addEventHandler(handler: EventHandler<T>): () => void;
}

export interface InformerOptions<T extends KubeObject = KubeObject> {
  kubeconfig: KubeConfig;
  kind: ResourceKind;
  /** Watch one namespace only (namespaced kinds); all namespaces when unset. */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Redeliver every cached object as an update this often (default 10 h; 0 disables). */
  resyncPeriodMs?: number;
  /**
   * Trims each object before it is cached (client-go's SetTransform): keep only the fields
   * the code reads, so that a cache of every Pod in a large cluster stays small.
   */
  transform?: (obj: T) => T;
  /** Restart backoff after list/watch errors (default 1 s → 30 s). */
  backoff?: { initialMs: number; maxMs: number };
  logger?: Logger;
}

export const DEFAULT_RESYNC_PERIOD_MS = 10 * 60 * 60 * 1000;

/**
 * A shared informer for one kind (and optional namespace/selectors): a cache kept current by a
 * Reflector, secondary indices, add/update/delete handlers, periodic resync and a synced signal.
 */
export class Informer<T extends KubeObject = KubeObject> implements EventSource<T> {
  readonly kind: ResourceKind;
  private readonly store = new IndexedStore<T>();
  private readonly handlers = new Set<EventHandler<T>>();
  private readonly reflector: Reflector<T>;
  private readonly log: Logger;
  private readonly resyncPeriodMs: number;
  private resyncTimer: NodeJS.Timeout | undefined;
  private isSynced = false;
  private isStopped = false;
  private resolveSynced: () => void = () => {};
  private rejectSynced: (err: Error) => void = () => {};
  private readonly syncedPromise: Promise<void>;

  constructor(readonly opts: InformerOptions<T>) {
    this.kind = opts.kind;
    this.resyncPeriodMs = opts.resyncPeriodMs ?? DEFAULT_RESYNC_PERIOD_MS;
    this.log = (opts.logger ?? pino({ level: "silent" })).child({
      informer: opts.kind.kind,
      ...(opts.namespace ? { namespace: opts.namespace } : {}),
    });
    this.syncedPromise = new Promise<void>((resolve, reject) => {
      this.resolveSynced = resolve;
      this.rejectSynced = reject;
    });
    // Nobody may be waiting; a stop before sync must not become an unhandled rejection.
    this.syncedPromise.catch(() => {});
    this.reflector = new Reflector<T>(
      {
        kubeconfig: opts.kubeconfig,
        path: collectionPath(opts.kind, opts.namespace),
        labelSelector: opts.labelSelector,
        fieldSelector: opts.fieldSelector,
        backoff: opts.backoff,
        log: this.log,
      },
      {
        replace: (items) => this.onReplace(opts.transform ? items.map(opts.transform) : items),
        upsert: (obj) => this.onUpsert(opts.transform ? opts.transform(obj) : obj),
        remove: (obj) => this.onRemove(opts.transform ? opts.transform(obj) : obj),
      },
    );
  }

  start(): void {
    if (this.isStopped) throw new Error("an informer cannot be restarted after stop()");
    this.reflector.start();
    if (this.resyncPeriodMs > 0 && !this.resyncTimer) {
      this.resyncTimer = setInterval(() => this.resync(), this.resyncPeriodMs);
      this.resyncTimer.unref();
    }
  }

  async stop(): Promise<void> {
    this.isStopped = true;
    clearInterval(this.resyncTimer);
    this.resyncTimer = undefined;
    if (!this.isSynced)
      this.rejectSynced(new Error(`informer ${this.kind.kind} stopped before sync`));
    await this.reflector.stop();
  }

  /** Resolves once the first list has been cached and delivered to handlers. */
  synced(): Promise<void> {
    return this.syncedPromise;
  }

  hasSynced(): boolean {
    return this.isSynced;
  }

  /** Since when (epoch ms) the informer has been in touch with the API server (Reflector). */
  connectedSince(): number | undefined {
    return this.reflector.connectedSince;
  }

  get stats(): Readonly<ReflectorStats> {
    return this.reflector.stats;
  }

  /** Lookup by cache key ("namespace/name" or "name"). */
  get(key: string): T | undefined {
    return this.store.get(key);
  }

  getByName(name: string, namespace?: string): T | undefined {
    return this.store.get(keyOf(name, namespace));
  }

  list(namespace?: string): T[] {
    const all = this.store.list();
    return namespace === undefined ? all : all.filter((o) => o.metadata?.namespace === namespace);
  }

  addIndex(name: string, fn: IndexFunc<T>): void {
    // A throwing index function must not break the watch (client-node's Watch swallows errors
    // thrown from its callback, which would silently drop the event).
    this.store.addIndex(name, (obj) => {
      try {
        return fn(obj);
      } catch (err) {
        this.log.error({ err, index: name, key: objectKey(obj) }, "index function threw");
        return [];
      }
    });
  }

  byIndex(name: string, value: string): T[] {
    return this.store.byIndex(name, value);
  }

  /** Registers handlers; after sync the cached objects are replayed to them as adds. */
  addEventHandler(handler: EventHandler<T>): () => void {
    this.handlers.add(handler);
    if (this.isSynced) {
      for (const obj of this.store.list()) this.deliver("add", () => handler.add?.(obj));
    }
    return () => {
      this.handlers.delete(handler);
    };
  }

  private onReplace(items: T[]): void {
    const diff = this.store.replace(items);
    for (const obj of diff.deleted) this.emit("delete", (h) => h.delete?.(obj));
    for (const obj of diff.added) this.emit("add", (h) => h.add?.(obj));
    for (const [oldObj, newObj] of diff.updated) {
      this.emit("update", (h) => h.update?.(oldObj, newObj));
    }
    this.log.debug(
      { objects: this.store.size, added: diff.added.length, deleted: diff.deleted.length },
      "listed",
    );
    if (!this.isSynced) {
      this.isSynced = true;
      this.resolveSynced();
    }
  }

  private onUpsert(obj: T): void {
    const old = this.store.upsert(obj);
    if (old) this.emit("update", (h) => h.update?.(old, obj));
    else this.emit("add", (h) => h.add?.(obj));
  }

  private onRemove(obj: T): void {
    const old = this.store.delete(objectKey(obj));
    this.emit("delete", (h) => h.delete?.(old ?? obj));
  }

  private resync(): void {
    if (!this.isSynced) return;
    for (const obj of this.store.list()) this.emit("update", (h) => h.update?.(obj, obj));
  }

  private emit(event: string, call: (h: EventHandler<T>) => void): void {
    for (const handler of [...this.handlers]) this.deliver(event, () => call(handler));
  }

  /** A throwing handler must not stop delivery to the others or kill the watch loop. */
  private deliver(event: string, call: () => void): void {
    try {
      call();
    } catch (err) {
      this.log.error({ err, event }, "event handler threw");
    }
  }
}
