import { type KubeObject, objectKey } from "./resource.js";

/** Values an object is indexed under, e.g. pod → [spec.nodeName]. */
export type IndexFunc<T> = (obj: T) => string[];

/** What a relist changed, so the informer can tell handlers exactly that. */
export interface ReplaceDiff<T> {
  added: T[];
  updated: Array<[oldObj: T, newObj: T]>;
  deleted: T[];
}

/** Whether newObj is a different version of oldObj (resourceVersion differs or is unknown). */
export function objectChanged(oldObj: KubeObject, newObj: KubeObject): boolean {
  const a = oldObj.metadata?.resourceVersion;
  return a === undefined || a !== newObj.metadata?.resourceVersion;
}

/** The informer cache: objects by namespace/name key plus any number of secondary indices. */
export class IndexedStore<T extends KubeObject> {
  private readonly items = new Map<string, T>();
  private readonly indexers = new Map<string, IndexFunc<T>>();
  private readonly indices = new Map<string, Map<string, Set<string>>>();

  get(key: string): T | undefined {
    return this.items.get(key);
  }

  list(): T[] {
    return [...this.items.values()];
  }

  keys(): string[] {
    return [...this.items.keys()];
  }

  get size(): number {
    return this.items.size;
  }

  /** Adds an index and fills it from what is already cached. */
  addIndex(name: string, fn: IndexFunc<T>): void {
    if (this.indexers.has(name)) throw new Error(`index ${name} already exists`);
    this.indexers.set(name, fn);
    this.indices.set(name, new Map());
    for (const [key, obj] of this.items) this.indexInto(name, fn, key, obj);
  }

  byIndex(name: string, value: string): T[] {
    const index = this.indices.get(name);
    if (!index) throw new Error(`index ${name} does not exist`);
    const keys = index.get(value);
    if (!keys) return [];
    const out: T[] = [];
    for (const key of keys) {
      const obj = this.items.get(key);
      if (obj) out.push(obj);
    }
    return out;
  }

  /** Stores obj and returns what it replaced. */
  upsert(obj: T): T | undefined {
    const key = objectKey(obj);
    const old = this.items.get(key);
    if (old) this.unindex(key, old);
    this.items.set(key, obj);
    this.index(key, obj);
    return old;
  }

  delete(key: string): T | undefined {
    const old = this.items.get(key);
    if (!old) return undefined;
    this.unindex(key, old);
    this.items.delete(key);
    return old;
  }

  /** Makes the store hold exactly objs (a relist) and reports the difference. */
  replace(objs: T[]): ReplaceDiff<T> {
    const diff: ReplaceDiff<T> = { added: [], updated: [], deleted: [] };
    const seen = new Set<string>();
    for (const obj of objs) {
      const key = objectKey(obj);
      seen.add(key);
      const old = this.upsert(obj);
      if (!old) diff.added.push(obj);
      else if (objectChanged(old, obj)) diff.updated.push([old, obj]);
    }
    for (const key of this.keys()) {
      if (seen.has(key)) continue;
      const old = this.delete(key);
      if (old) diff.deleted.push(old);
    }
    return diff;
  }

  private index(key: string, obj: T): void {
    for (const [name, fn] of this.indexers) this.indexInto(name, fn, key, obj);
  }

  private indexInto(name: string, fn: IndexFunc<T>, key: string, obj: T): void {
    const index = this.indices.get(name);
    if (!index) return;
    for (const value of fn(obj)) {
      let keys = index.get(value);
      if (!keys) {
        keys = new Set();
        index.set(value, keys);
      }
      keys.add(key);
    }
  }

  private unindex(key: string, obj: T): void {
    for (const [name, fn] of this.indexers) {
      const index = this.indices.get(name);
      if (!index) continue;
      for (const value of fn(obj)) {
        const keys = index.get(value);
        keys?.delete(key);
        if (keys?.size === 0) index.delete(value);
      }
    }
  }
}
