import {
  type KubernetesObject,
  PatchStrategy,
  type V1Namespace,
  type V1Pod,
} from "@kubernetes/client-node";
import { API_VERSION } from "../../api/common.js";
import type { PolicyEndpoint } from "../../api/networkendpointslice.js";
import { LABEL_SET_LABEL } from "../../api/networkidentity.js";
import { parseApiObject } from "../../api/parse.js";
import {
  type PolicyRealizationStatus,
  REALIZATION_ANNOTATION,
} from "../../api/policyrealization.js";
import { applyObject, mergePatchStatus } from "../../controllers/apply.js";
import { statusCodeOf } from "../../controllers/errors.js";
import { NamespaceKind, NetworkPolicyKind, NodeKind, PodKind } from "../../controllers/resource.js";
import {
  allocateIdentity,
  identityGcDecision,
  identitySpecOf,
  type PodFacts,
  sliceEndpoints,
} from "../../policy/endpoints.js";
import { type NetworkPolicy, networkPolicy } from "../../policy/networkpolicy.js";
import { realizationOf, type SelectablePod } from "../../policy/realization.js";
import {
  NetworkEndpointSliceKind,
  NetworkIdentityKind,
  NodeNetworkStateKind,
  type OperatorContext,
  PolicyRealizationKind,
} from "../context.js";
import { stableStringify } from "../shared/hash.js";
import { nextStatus, readyTransition, sameStatus, type UserStatus } from "../shared/status.js";

const FIELD_MANAGER = "netloom-networkpolicy";

/** Pure: what the operator reads of a Pod (its slim cache keeps exactly this). */
export function podFacts(p: V1Pod): PodFacts {
  const ips = (p.status?.podIPs?.map((x) => x.ip) ?? (p.status?.podIP ? [p.status.podIP] : []))
    .filter((ip): ip is string => typeof ip === "string" && ip !== "")
    .slice(0, 2);
  return {
    namespace: p.metadata?.namespace ?? "",
    name: p.metadata?.name ?? "",
    labels: p.metadata?.labels ?? {},
    nodeName: p.spec?.nodeName,
    ips,
    namedPorts: (p.spec?.containers ?? []).flatMap((c) =>
      (c.ports ?? []).flatMap((port) =>
        port.name
          ? [
              {
                name: port.name,
                port: port.containerPort,
                protocol: (port.protocol ?? "TCP") as "TCP" | "UDP" | "SCTP",
              },
            ]
          : [],
      ),
    ),
    terminated: p.status?.phase === "Succeeded" || p.status?.phase === "Failed",
  };
}

/**
 * NetworkPolicy support in the operator, cluster-wide work only:
 *   - "endpointslices" (per node): an identity per new label set (one create, never per pod),
 *     and the node's NetworkEndpointSlice (one write when one of its pods changes what policy
 *     needs: address, identity, named ports);
 *   - "networkpolicy" (per policy): its PolicyRealization (nodes realized/desired, selected pods,
 *     would-drops) and the summary annotation on the policy for Argo CD.
 * Agents compile policies themselves from what they watch.
 */
/** A policy's realization is folded at most this often (the reports of many nodes into one). */
export const REALIZATION_FOLD_INTERVAL_MS = 500;

export function registerNetworkPolicyControllers(ctx: OperatorContext): void {
  const namespaces = ctx.manager.informer<V1Namespace>(NamespaceKind);
  const identities = ctx.manager.informer(NetworkIdentityKind);
  identities.addIndex("labelSet", (o) => {
    const key = o.metadata?.labels?.[LABEL_SET_LABEL];
    return key ? [key] : [];
  });
  const slices = ctx.manager.informer(NetworkEndpointSliceKind);
  const policies = ctx.manager.informer(NetworkPolicyKind);
  policies.addIndex("namespace", (p) => [p.metadata?.namespace ?? ""]);
  const realizations = ctx.manager.informer(PolicyRealizationKind);
  /** label-set key → number, for identities created but not yet seen by the watch. */
  const created = new Map<string, number>();

  const nsLabels = (ns: string) => namespaces.getByName(ns)?.metadata?.labels ?? {};
  const identityFor = (key: string): number | undefined => {
    const o = identities.byIndex("labelSet", key)[0];
    const n = o?.metadata?.name ? Number(o.metadata.name) : undefined;
    return n !== undefined && Number.isInteger(n) ? n : created.get(key);
  };

  const ensureIdentity = async (pod: PodFacts): Promise<number | undefined> => {
    const { key, spec } = identitySpecOf(pod, nsLabels(pod.namespace));
    const known = identityFor(key);
    if (known !== undefined) return known;
    const taken = new Set<number>([
      ...identities.list().map((o) => Number(o.metadata?.name)),
      ...created.values(),
    ]);
    // Another writer (a previous leader) may have taken a number the cache has not seen yet.
    for (let attempt = 0; attempt < 8; attempt++) {
      const n = allocateIdentity(taken);
      if (n === undefined) {
        ctx.log.error({ pod: `${pod.namespace}/${pod.name}` }, "no identity number left");
        return undefined;
      }
      try {
        await ctx.objects.create({
          apiVersion: API_VERSION,
          kind: "NetworkIdentity",
          metadata: { name: String(n), labels: { [LABEL_SET_LABEL]: key } },
          spec,
        } as KubernetesObject);
        created.set(key, n);
        ctx.log.info({ identity: n, namespace: pod.namespace }, "identity allocated");
        return n;
      } catch (e) {
        if (statusCodeOf(e) !== 409) throw e;
        taken.add(n);
      }
    }
    throw new Error(`could not allocate an identity for ${pod.namespace}/${pod.name}`);
  };

  const slicesController = ctx.manager
    .controller("endpointslices")
    .for(NodeKind)
    .watches<V1Pod>(PodKind, (p) => (p.spec?.nodeName ? [p.spec.nodeName] : []))
    .watches(NamespaceKind, (ns) => [
      ...new Set(
        ctx.pods
          .byIndex("namespace", ns.metadata?.name ?? "")
          .flatMap((p) => (p.spec?.nodeName ? [p.spec.nodeName] : [])),
      ),
    ])
    .watches(NetworkEndpointSliceKind, (s) => [s.metadata?.name ?? ""])
    // An identity created or collected: slices that could not name it (or named it) look again.
    .watches(NetworkIdentityKind, () => ctx.nodes.list().map((n) => n.metadata?.name ?? ""));
  slicesController.complete(async (node) => {
    const existing = slices.getByName(node);
    if (!ctx.nodes.getByName(node)) {
      if (existing)
        await ctx.objects
          .delete({
            apiVersion: API_VERSION,
            kind: "NetworkEndpointSlice",
            metadata: { name: node },
          })
          .catch((e: unknown) => {
            if (statusCodeOf(e) !== 404) throw e;
          });
      return;
    }
    const pods = ctx.pods.byIndex("node", node).map(podFacts);
    const ids = new Map<string, number>();
    for (const p of pods) {
      if (p.terminated || p.ips.length === 0) continue;
      const id = await ensureIdentity(p);
      if (id !== undefined) ids.set(`${p.namespace}/${p.name}`, id);
    }
    const endpoints: PolicyEndpoint[] = sliceEndpoints(pods, (p) =>
      ids.get(`${p.namespace}/${p.name}`),
    );
    const current = (existing as { spec?: unknown } | undefined)?.spec;
    // A node without pods needs no slice (none reads as empty): a node join writes nothing here.
    if (!existing && endpoints.length === 0) return;
    const spec = { nodeName: node, endpoints };
    if (current && stableStringify(current) === stableStringify(spec)) return;
    await applyObject(
      ctx.objects,
      {
        apiVersion: API_VERSION,
        kind: "NetworkEndpointSlice",
        metadata: { name: node },
        spec,
      },
      FIELD_MANAGER,
    );
  });

  // ------------------------------------------------------------------------------------------
  // Identity garbage collection: an identity no pod has used for IDENTITY_GC_GRACE_MS goes
  // (Cilium collects unused identities the same way), so label sets that came and went do not
  // use up the 65,280 numbers.

  const unusedSince = new Map<string, number>();
  let usedKeys: { at: number; keys: Set<string> } | undefined;
  const USED_CACHE_MS = 10_000;
  /** The label sets pods use, and how old that answer is (recomputed at most every 10 s). */
  const labelSetsInUse = (fresh = false): { keys: Set<string>; ageMs: number } => {
    const now = Date.now();
    if (!fresh && usedKeys && now - usedKeys.at < USED_CACHE_MS)
      return { keys: usedKeys.keys, ageMs: now - usedKeys.at };
    const keys = new Set(
      ctx.pods
        .list()
        .map(podFacts)
        .filter((p) => !p.terminated)
        .map((p) => identitySpecOf(p, nsLabels(p.namespace)).key),
    );
    usedKeys = { at: now, keys };
    return { keys, ageMs: 0 };
  };
  const identityOfPod = (p: V1Pod): string[] => {
    const f = podFacts(p);
    const { key } = identitySpecOf(f, nsLabels(f.namespace));
    return identities.byIndex("labelSet", key).map((o) => o.metadata?.name ?? "");
  };
  ctx.manager
    .controller("identity-gc")
    .for(NetworkIdentityKind)
    // A pod gone (or changed labels): its identity may be unused now.
    .watches<V1Pod>(PodKind, identityOfPod)
    .complete(async (name, { log }) => {
      const o = identities.getByName(name);
      const key = o?.metadata?.labels?.[LABEL_SET_LABEL];
      if (!o || !key) {
        unusedSince.delete(name);
        return;
      }
      const now = Date.now();
      const inUse = labelSetsInUse();
      const d = identityGcDecision(
        inUse.keys.has(key),
        unusedSince.get(name),
        now,
        ctx.identityGcGraceMs,
      );
      if (d.action === "keep") {
        unusedSince.delete(name);
        // A cached answer may still count a pod that just went: look once more when it expires.
        return inUse.ageMs > 0 ? { requeueAfterMs: USED_CACHE_MS - inUse.ageMs } : undefined;
      }
      if (!unusedSince.has(name)) unusedSince.set(name, now);
      if (d.action === "wait") return { requeueAfterMs: d.ms };
      // Looked at again right before the delete: a pod may have just appeared.
      if (labelSetsInUse(true).keys.has(key)) {
        unusedSince.delete(name);
        return;
      }
      await ctx.objects
        .delete({ apiVersion: API_VERSION, kind: "NetworkIdentity", metadata: { name } })
        .catch((e: unknown) => {
          if (statusCodeOf(e) !== 404) throw e;
        });
      created.delete(key);
      unusedSince.delete(name);
      log.info({ identity: name }, "unused identity collected");
    });

  // ------------------------------------------------------------------------------------------
  // Realization

  // A policy selects pods of its own namespace only: look at those, not every pod of the cluster.
  const selectable = (namespace: string): SelectablePod[] =>
    ctx.pods.byIndex("namespace", namespace).map((p) => {
      const f = podFacts(p);
      return {
        namespace: f.namespace,
        name: f.name,
        labels: f.labels,
        nodeName: f.nodeName,
        hasIP: f.ips.length > 0 && !f.terminated,
      };
    });
  /**
   * When each policy's realization was last folded. Every node hosting its pods reports to it,
   * and a fold reads the namespace's pods and those nodes: folded at most every
   * REALIZATION_FOLD_INTERVAL_MS, reports in between wait for the next fold.
   */
  const lastFold = new Map<string, number>();
  const policiesOfNamespace = (ns: string) =>
    policies.byIndex("namespace", ns).map((p) => `${ns}/${p.metadata?.name ?? ""}`);

  ctx.manager
    .controller("networkpolicy")
    .for(NetworkPolicyKind)
    .watches<V1Pod>(PodKind, (p) => policiesOfNamespace(p.metadata?.namespace ?? ""))
    .watches(NodeNetworkStateKind, (s) => {
      const sources = (s as { status?: { sources?: { networkPolicies?: { name: string }[] } } })
        .status?.sources?.networkPolicies;
      const audit = (s as { status?: { policy?: { wouldDrop?: { policy: string }[] } } }).status
        ?.policy?.wouldDrop;
      return [
        ...new Set([...(sources ?? []).map((r) => r.name), ...(audit ?? []).map((w) => w.policy)]),
      ];
    })
    .watches(PolicyRealizationKind, (r) => [
      `${r.metadata?.namespace ?? ""}/${r.metadata?.name ?? ""}`,
    ])
    .withConcurrency(2)
    .complete(async (key, { log }) => {
      const [namespace = "", name = ""] = key.split("/");
      const raw = policies.get(key);
      const nowMs = ctx.now().getTime();
      const hold =
        (lastFold.get(key) ?? Number.NEGATIVE_INFINITY) + REALIZATION_FOLD_INTERVAL_MS - nowMs;
      if (raw && hold > 0) return { requeueAfterMs: hold };
      if (raw) lastFold.set(key, nowMs);
      else lastFold.delete(key);
      const existing = realizations.get(key) as
        | (KubernetesObject & { spec?: { policyGeneration?: number }; status?: UserStatus })
        | undefined;
      if (!raw) {
        // The owner reference says the same, but the garbage collector may not run.
        if (existing)
          await ctx.objects
            .delete({
              apiVersion: API_VERSION,
              kind: "PolicyRealization",
              metadata: { name, namespace },
            })
            .catch((e: unknown) => {
              if (statusCodeOf(e) !== 404) throw e;
            });
        return;
      }
      const parsed = parseApiObject(networkPolicy, raw);
      if (!parsed.ok) {
        log.warn({ error: parsed.error }, "NetworkPolicy not usable");
        return;
      }
      const policy: NetworkPolicy = parsed.value;
      const r = realizationOf(policy, selectable(namespace), ctx.stateMap(), ctx.judging());
      const generation = policy.metadata.generation ?? 0;
      let obj = existing;
      if (!obj || obj.spec?.policyGeneration !== generation) {
        obj = (await applyObject(
          ctx.objects,
          {
            apiVersion: API_VERSION,
            kind: "PolicyRealization",
            metadata: {
              name,
              namespace,
              ownerReferences: [
                {
                  apiVersion: "networking.k8s.io/v1",
                  kind: "NetworkPolicy",
                  name,
                  uid: raw.metadata?.uid ?? "",
                  controller: true,
                },
              ],
            },
            spec: { policyGeneration: generation },
          },
          FIELD_MANAGER,
        )) as typeof existing;
      }
      const ownGeneration = obj?.metadata?.generation ?? 1;
      const next = nextStatus(obj?.status, ownGeneration, r.decisions, r.fields, ctx.now());
      if (!sameStatus(obj?.status, next)) {
        await mergePatchStatus(
          ctx.custom,
          { kind: PolicyRealizationKind, name, namespace },
          next satisfies UserStatus as PolicyRealizationStatus,
        );
        const t = readyTransition(obj?.status, next);
        if (t) await ctx.event(policyTarget(policy), t.type, t.reason, t.message);
      }
      const summary = JSON.stringify(r.summary);
      if (raw.metadata?.annotations?.[REALIZATION_ANNOTATION] !== summary) {
        await ctx.objects.patch(
          {
            apiVersion: "networking.k8s.io/v1",
            kind: "NetworkPolicy",
            metadata: { name, namespace, annotations: { [REALIZATION_ANNOTATION]: summary } },
          },
          undefined,
          undefined,
          undefined,
          undefined,
          PatchStrategy.MergePatch,
        );
      }
      // Silent agents only show up as time passes.
      return r.fields.desiredNodes > 0 ? { requeueAfterMs: ctx.statusResyncMs } : undefined;
    });
}

function policyTarget(p: NetworkPolicy) {
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name: p.metadata.name, namespace: p.metadata.namespace },
  };
}
