import {
  type KubernetesObject,
  type KubernetesObjectApi,
  PatchStrategy,
} from "@kubernetes/client-node";
import type { KubeObject } from "./resource.js";

export function hasFinalizer(obj: KubeObject, finalizer: string): boolean {
  return obj.metadata?.finalizers?.includes(finalizer) ?? false;
}

export function withFinalizer(list: readonly string[] | undefined, finalizer: string): string[] {
  const current = list ?? [];
  return current.includes(finalizer) ? [...current] : [...current, finalizer];
}

export function withoutFinalizer(list: readonly string[] | undefined, finalizer: string): string[] {
  return (list ?? []).filter((f) => f !== finalizer);
}

/**
 * A JSON merge patch that sets metadata.finalizers to `finalizers`, guarded by obj's
 * resourceVersion: if anyone changed the object since it was read, the API server answers
 * 409 Conflict instead of silently dropping their finalizer (merge patch replaces whole lists).
 */
export function finalizersPatch(obj: KubeObject, finalizers: string[]): KubernetesObject {
  const { apiVersion, kind, metadata } = obj;
  if (!apiVersion || !kind || !metadata?.name || !metadata.resourceVersion) {
    throw new Error(
      `finalizer patch needs apiVersion, kind, metadata.name and metadata.resourceVersion (got ${kind ?? "?"} ${metadata?.name ?? "?"})`,
    );
  }
  return {
    apiVersion,
    kind,
    metadata: {
      name: metadata.name,
      ...(metadata.namespace ? { namespace: metadata.namespace } : {}),
      resourceVersion: metadata.resourceVersion,
      finalizers,
    },
  };
}

/**
 * Adds finalizer; returns the updated object (as client-node deserializes it), or undefined when
 * it was already there. A 409 means the object changed since it was read: requeue.
 */
export async function addFinalizer(
  client: KubernetesObjectApi,
  obj: KubeObject,
  finalizer: string,
): Promise<KubernetesObject | undefined> {
  if (hasFinalizer(obj, finalizer)) return undefined;
  const patch = finalizersPatch(obj, withFinalizer(obj.metadata?.finalizers, finalizer));
  return client.patch(patch, undefined, undefined, undefined, undefined, PatchStrategy.MergePatch);
}

/** Removes finalizer; returns the updated object, or undefined when it was not there. */
export async function removeFinalizer(
  client: KubernetesObjectApi,
  obj: KubeObject,
  finalizer: string,
): Promise<KubernetesObject | undefined> {
  if (!hasFinalizer(obj, finalizer)) return undefined;
  const patch = finalizersPatch(obj, withoutFinalizer(obj.metadata?.finalizers, finalizer));
  return client.patch(patch, undefined, undefined, undefined, undefined, PatchStrategy.MergePatch);
}
