import { API_VERSION } from "../../api/common.js";
import { applyObject } from "../../controllers/apply.js";
import type { Controller } from "../../controllers/controller.js";
import { NodeKind } from "../../controllers/resource.js";
import { NodeNetworkStateKind, NodePeerKind, type OperatorContext } from "../context.js";
import { type NodeView, nodeView } from "../model.js";
import { contentHash } from "../shared/hash.js";
import { OPERATOR_FIELD_MANAGER } from "./names.js";

export const CONTROLLER_NAME = "nodenetworkstate";

/** Pure: the operator's part of a node's two objects (the agent writes their status). */
export function nodeObjects(node: NodeView) {
  const owner = {
    apiVersion: "v1",
    kind: "Node",
    name: node.name,
    uid: node.uid,
    blockOwnerDeletion: false,
  };
  const meta = { name: node.name, ownerReferences: [owner] };
  return {
    state: {
      apiVersion: API_VERSION,
      kind: "NodeNetworkState",
      metadata: meta,
      spec: { nodeName: node.name },
    },
    peer: {
      apiVersion: API_VERSION,
      kind: "NodePeer",
      metadata: meta,
      spec: {
        nodeName: node.name,
        ...(node.podCIDRs.length ? { podCIDRs: [...node.podCIDRs] } : {}),
      },
    },
  };
}

const specHash = (o: { spec?: unknown } | undefined) => (o ? contentHash(o.spec ?? null) : null);

/**
 * Whether `want` must be applied, given the cached object and what this operator wrote last
 * (the cache may not have seen our own write yet: a write whose "before" the cache still
 * shows is not repeated; once the cache shows it, the record goes).
 */
function needsWrite(
  written: Map<string, { hash: string; before: string | null }>,
  key: string,
  cached: { spec?: unknown } | undefined,
  want: { spec: unknown },
): boolean {
  const hash = contentHash(want.spec);
  const current = specHash(cached);
  if (current === hash) {
    written.delete(key);
    return false;
  }
  const last = written.get(key);
  return !(last?.hash === hash && last.before === current);
}

/** Records a successful write of `want` over what the cache showed (see needsWrite). */
function noteWrite(
  written: Map<string, { hash: string; before: string | null }>,
  key: string,
  cached: { spec?: unknown } | undefined,
  want: { spec: unknown },
): void {
  written.set(key, { hash: contentHash(want.spec), before: specHash(cached) });
}

/**
 * Per Node, the two objects its agent reports into: a NodeNetworkState (what it applied) and a
 * NodePeer (what its WireGuard peers need; the pod CIDRs come from the Node, here, so that an
 * agent cannot claim another node's addresses). Written when a node joins or its pod CIDRs
 * change, never for a change of a NetworkConfig, EncryptionProfile or BandwidthPolicy: each
 * agent watches those and renders its own datapath.
 */
export function registerNodeStateController(ctx: OperatorContext): Controller {
  const written = new Map<string, { hash: string; before: string | null }>();
  return ctx.manager
    .controller(CONTROLLER_NAME)
    .for(NodeKind)
    .watches(NodeNetworkStateKind, (s) => [s.metadata?.name ?? ""])
    .watches(NodePeerKind, (s) => [s.metadata?.name ?? ""])
    .withConcurrency(4)
    .complete(async (key, { log }) => {
      const node = ctx.nodes.getByName(key);
      const state = ctx.states.informer.getByName(key) as { spec?: unknown } | undefined;
      const peer = ctx.peers.getByName(key) as { spec?: unknown } | undefined;
      if (!node) {
        written.delete(`state/${key}`);
        written.delete(`peer/${key}`);
        // The garbage collector would do this through the owner references; do not rely on it.
        for (const [kind, existing] of [
          ["NodeNetworkState", state],
          ["NodePeer", peer],
        ] as const) {
          if (!existing) continue;
          await ctx.objects.delete({ apiVersion: API_VERSION, kind, metadata: { name: key } });
          log.info({ kind }, "node gone: deleted its object");
        }
        return;
      }
      const want = nodeObjects(nodeView(node));
      if (needsWrite(written, `state/${key}`, state, want.state)) {
        await applyObject(ctx.objects, want.state, OPERATOR_FIELD_MANAGER);
        noteWrite(written, `state/${key}`, state, want.state);
        log.info("applied NodeNetworkState");
      }
      if (needsWrite(written, `peer/${key}`, peer, want.peer)) {
        await applyObject(ctx.objects, want.peer, OPERATOR_FIELD_MANAGER);
        noteWrite(written, `peer/${key}`, peer, want.peer);
        log.info({ podCIDRs: want.peer.spec.podCIDRs }, "applied NodePeer");
      }
    });
}
