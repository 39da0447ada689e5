import {
  type CustomObjectsApi,
  type KubernetesObject,
  type KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
} from "@kubernetes/client-node";
import { apiVersionOf, type KubeObject, type ResourceKind } from "./resource.js";

export interface ApplyOptions {
  /** Take over fields other managers own (controllers own their fields; default true). */
  force?: boolean;
  dryRun?: boolean;
}

/**
 * Server-side apply of `obj` as `fieldManager` (use the controller name): the API server merges
 * only the fields obj sets and records this manager as their owner. Pass just the fields the
 * controller owns — no resourceVersion, status or managedFields.
 */
export function applyObject<T extends KubeObject>(
  client: KubernetesObjectApi,
  obj: T,
  fieldManager: string,
  opts: ApplyOptions = {},
): Promise<KubernetesObject> {
  return client.patch(
    // Raw-JSON shape (string timestamps) vs client-node's generated Date-typed metadata.
    obj as KubernetesObject,
    undefined,
    opts.dryRun ? "All" : undefined,
    fieldManager,
    opts.force ?? true,
    PatchStrategy.ServerSideApply,
  );
}

export interface StatusTarget {
  kind: ResourceKind;
  name: string;
  /** Required for namespaced kinds. */
  namespace?: string;
}

function statusCall(
  api: CustomObjectsApi,
  target: StatusTarget,
  body: object,
  strategy: PatchStrategy,
  fieldManager: string | undefined,
  force: boolean | undefined,
): Promise<unknown> {
  const { kind, name, namespace } = target;
  // The generated client would send application/json-patch+json; the header middleware wins.
  const options = setHeaderOptions("Content-Type", strategy);
  const common = { group: kind.group, version: kind.version, plural: kind.plural, name, body };
  if (kind.namespaced) {
    if (!namespace) throw new Error(`${kind.kind} ${name}: namespace required for status patch`);
    return api.patchNamespacedCustomObjectStatus(
      { ...common, namespace, fieldManager, force },
      options,
    );
  }
  return api.patchClusterCustomObjectStatus({ ...common, fieldManager, force }, options);
}

/**
 * Server-side apply to the /status subresource of a custom resource: writes only the status
 * fields given, owned by fieldManager, and never touches spec (status has its own endpoint).
 */
export function applyStatus(
  api: CustomObjectsApi,
  target: StatusTarget,
  status: unknown,
  fieldManager: string,
): Promise<unknown> {
  const body = {
    apiVersion: apiVersionOf(target.kind),
    kind: target.kind.kind,
    metadata: { name: target.name, ...(target.namespace ? { namespace: target.namespace } : {}) },
    status,
  };
  return statusCall(api, target, body, PatchStrategy.ServerSideApply, fieldManager, true);
}

/**
 * JSON merge patch of the /status subresource; with resourceVersion the write fails with 409 if
 * the object changed since it was read.
 */
export function mergePatchStatus(
  api: CustomObjectsApi,
  target: StatusTarget,
  status: unknown,
  resourceVersion?: string,
): Promise<unknown> {
  const body = { ...(resourceVersion ? { metadata: { resourceVersion } } : {}), status };
  return statusCall(api, target, body, PatchStrategy.MergePatch, undefined, undefined);
}
