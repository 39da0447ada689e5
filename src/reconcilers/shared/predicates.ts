import type { KubeObject } from "../../controllers/resource.js";

/**
 * controller-runtime's GenerationChangedPredicate for mapped watches: map(obj) runs only when
 * the object's signature (default: generation and deletion) changed or the object is gone, so
 * status writes and heartbeats do not fan out to every node. Reads the cache, which the
 * informer updates before it calls handlers.
 */
export function whenChanged<T extends KubeObject>(
  current: (name: string, namespace?: string) => T | undefined,
  map: (obj: T) => string[],
  signature: (obj: T) => string = (o) =>
    `${o.metadata?.generation ?? ""}|${(o.metadata as { deletionTimestamp?: unknown } | undefined)?.deletionTimestamp ?? ""}`,
): (obj: T) => string[] {
  const seen = new Map<string, string>();
  return (obj) => {
    const key = `${obj.metadata?.namespace ?? ""}/${obj.metadata?.name ?? ""}`;
    const now = current(obj.metadata?.name ?? "", obj.metadata?.namespace);
    if (!now) {
      seen.delete(key);
      return map(obj);
    }
    const sig = signature(now);
    if (seen.get(key) === sig) return [];
    seen.set(key, sig);
    // obj may be the old version of an update: keys it mapped to must hear of the change too.
    return obj === now ? map(now) : [...new Set([...map(obj), ...map(now)])];
  };
}

/** Signature of a Node for ownership: its labels (status updates do not matter). */
export const labelSignature = (o: KubeObject) => JSON.stringify(o.metadata?.labels ?? {});
