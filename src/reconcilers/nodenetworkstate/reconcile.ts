import type { V1Pod } from "@kubernetes/client-node";
import { API_VERSION } from "../../api/common.js";
import { applyObject } from "../../controllers/apply.js";
import type { Controller } from "../../controllers/controller.js";
import { NodeKind, PodKind } from "../../controllers/resource.js";
import {
  BandwidthPolicyKind,
  EncryptionProfileKind,
  NetworkConfigKind,
  NodeNetworkStateKind,
  type OperatorContext,
} from "../context.js";
import { type BandwidthPolicy, nodeView, podView } from "../model.js";
import { contentHash } from "../shared/hash.js";
import { whenChanged } from "../shared/predicates.js";
import { matchesSelector } from "../shared/selector.js";
import { renderNodeState } from "./desired.js";
import { OPERATOR_FIELD_MANAGER, SPEC_HASH_ANNOTATION } from "./names.js";

export const CONTROLLER_NAME = "nodenetworkstate";

/** Nodes hosting pods a BandwidthPolicy selects: the only states a policy change may touch. */
function nodesOfPolicy(ctx: OperatorContext, bp: BandwidthPolicy): string[] {
  const nodes = new Set<string>();
  for (const pod of ctx.pods.byIndex("namespace", bp.metadata.namespace ?? "")) {
    const name = pod.spec?.nodeName;
    if (name && matchesSelector(bp.spec.podSelector, pod.metadata?.labels)) nodes.add(name);
  }
  return [...nodes];
}

/**
 * One NodeNetworkState per Node: render (pure), hash, and server-side apply the spec only when
 * the hash changed. A node joining writes its own state and nothing else; peers are learned by
 * the agents watching each other's status, never copied into every spec.
 */
export function registerNodeStateController(ctx: OperatorContext): Controller {
  const allNodes = () => ctx.nodes.list().map((n) => n.metadata?.name ?? "");
  // What this operator last wrote per node: the cache may not have seen its own write yet.
  const written = new Map<string, { hash: string; before: string | null }>();
  return ctx.manager
    .controller(CONTROLLER_NAME)
    .for(NodeKind)
    .watches(NodeNetworkStateKind, (s) => [s.metadata?.name ?? ""])
    .watches<V1Pod>(PodKind, (p) => (p.spec?.nodeName ? [p.spec.nodeName] : []))
    .watches(
      NetworkConfigKind,
      whenChanged((n) => ctx.networkConfigs.getByName(n), allNodes),
    )
    .watches(
      EncryptionProfileKind,
      whenChanged((n) => ctx.encryptionProfiles.getByName(n), allNodes),
    )
    .watches(
      BandwidthPolicyKind,
      whenChanged(
        (n, ns) => ctx.bandwidthPolicies.getByName(n, ns),
        (bp) => nodesOfPolicy(ctx, bp),
      ),
    )
    .withConcurrency(4)
    .complete(async (key, { log }) => {
      const node = ctx.nodes.getByName(key);
      const existing = ctx.states.getByName(key);
      if (!node) {
        // The garbage collector would do this through the owner reference; do not rely on it.
        if (existing) {
          await ctx.objects.delete({
            apiVersion: API_VERSION,
            kind: "NodeNetworkState",
            metadata: { name: key },
          });
          log.info("node gone: deleted its NodeNetworkState");
        }
        return;
      }
      const pods = ctx.pods.byIndex("node", key).map(podView);
      const namespaces = new Set(pods.map((p) => p.namespace));
      const rendered = renderNodeState({
        node: nodeView(node),
        networkConfigs: ctx.networkConfigs.list(),
        encryptionProfiles: ctx.encryptionProfiles.list(),
        bandwidthPolicies: [...namespaces].flatMap((ns) =>
          ctx.bandwidthPolicies.byIndex("namespace", ns),
        ),
        pods,
      });
      const hash = contentHash(rendered.spec);
      const current = existing?.metadata.annotations?.[SPEC_HASH_ANNOTATION];
      const last = written.get(key);
      // Skip when the cache shows this hash, or still shows what it showed before our own write.
      if (current === hash || (last?.hash === hash && (current ?? null) === last.before)) return;
      await applyObject(
        ctx.objects,
        {
          apiVersion: API_VERSION,
          kind: "NodeNetworkState",
          metadata: {
            name: key,
            annotations: { [SPEC_HASH_ANNOTATION]: hash },
            ownerReferences: [
              {
                apiVersion: "v1",
                kind: "Node",
                name: key,
                uid: node.metadata?.uid ?? "",
                blockOwnerDeletion: false,
              },
            ],
          },
          spec: rendered.spec,
        },
        OPERATOR_FIELD_MANAGER,
      );
      log.info(
        { hash, previous: existing?.metadata.annotations?.[SPEC_HASH_ANNOTATION] },
        "applied NodeNetworkState spec",
      );
    });
}
