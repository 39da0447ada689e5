/**
 * The fields the runtime reads from any object. Informers deliver raw JSON as the API server
 * sends it (timestamps are strings), so this is deliberately looser than client-node's
 * KubernetesObject, whose generated V1ObjectMeta types timestamps as Date: both client-node
 * classes and zod-inferred custom resource types fit it.
 */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    finalizers?: string[];
    ownerReferences?: Array<{
      apiVersion: string;
      kind: string;
      name: string;
      uid: string;
      controller?: boolean;
      blockOwnerDeletion?: boolean;
    }>;
  };
}

/** What the runtime needs to know about a kind to list, watch and patch it without discovery. */
export interface ResourceKind {
  /** API group; "" for the core group. */
  group: string;
  version: string;
  kind: string;
  /** Lower-case plural resource name used in URLs. */
  plural: string;
  namespaced: boolean;
}

export const ConfigMapKind: ResourceKind = {
  group: "",
  version: "v1",
  kind: "ConfigMap",
  plural: "configmaps",
  namespaced: true,
};
export const NamespaceKind: ResourceKind = {
  group: "",
  version: "v1",
  kind: "Namespace",
  plural: "namespaces",
  namespaced: false,
};
export const NodeKind: ResourceKind = {
  group: "",
  version: "v1",
  kind: "Node",
  plural: "nodes",
  namespaced: false,
};
export const PodKind: ResourceKind = {
  group: "",
  version: "v1",
  kind: "Pod",
  plural: "pods",
  namespaced: true,
};
export const NetworkPolicyKind: ResourceKind = {
  group: "networking.k8s.io",
  version: "v1",
  kind: "NetworkPolicy",
  plural: "networkpolicies",
  namespaced: true,
};
export const LeaseKind: ResourceKind = {
  group: "coordination.k8s.io",
  version: "v1",
  kind: "Lease",
  plural: "leases",
  namespaced: true,
};

export function apiVersionOf(kind: ResourceKind): string {
  return kind.group === "" ? kind.version : `${kind.group}/${kind.version}`;
}

/** The group of an apiVersion string ("apps/v1" → "apps", "v1" → ""). */
export function groupOf(apiVersion: string | undefined): string {
  const slash = (apiVersion ?? "").indexOf("/");
  return slash < 0 ? "" : (apiVersion ?? "").slice(0, slash);
}

/** URL path of a kind's collection; all namespaces when namespace is undefined. */
export function collectionPath(kind: ResourceKind, namespace?: string): string {
  const root = kind.group === "" ? `/api/${kind.version}` : `/apis/${kind.group}/${kind.version}`;
  const ns = kind.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : "";
  return `${root}${ns}/${kind.plural}`;
}

/** client-go's cache key: "namespace/name", or "name" for cluster-scoped objects. */
export function keyOf(name: string, namespace?: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

export function objectKey(obj: KubeObject): string {
  return keyOf(obj.metadata?.name ?? "", obj.metadata?.namespace);
}

export function splitKey(key: string): { namespace: string | undefined; name: string } {
  const slash = key.indexOf("/");
  if (slash < 0) return { namespace: undefined, name: key };
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}
