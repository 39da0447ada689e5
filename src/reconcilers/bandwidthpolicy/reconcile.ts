import type { Controller } from "../../controllers/controller.js";
import { PodKind } from "../../controllers/resource.js";
import { BandwidthPolicyKind, NodeNetworkStateKind, type OperatorContext } from "../context.js";
import type { BandwidthPolicy } from "../model.js";
import { pendingNodeCleanup } from "../shared/cleanup.js";
import { registerStatusController, type UserObject } from "../shared/status-controller.js";
import { foldBandwidthPolicy } from "./status.js";

type Obj = BandwidthPolicy & UserObject;

export function registerBandwidthPolicyController(ctx: OperatorContext): Controller {
  const inNamespace = (ns: string | undefined) =>
    ctx.bandwidthPolicies.byIndex("namespace", ns ?? "").map((b) => `${ns}/${b.metadata.name}`);
  return registerStatusController<Obj>(ctx, {
    name: "bandwidthpolicy",
    kind: BandwidthPolicyKind,
    cache: ctx.bandwidthPolicies,
    watch: (b) =>
      b
        .watches(NodeNetworkStateKind, (s) =>
          (ctx.states.of(s)?.status?.sources?.bandwidthPolicies ?? []).map((r) => r.name),
        )
        .watches(PodKind, (p) => inNamespace(p.metadata?.namespace)),
    fold: (bp) => {
      const f = foldBandwidthPolicy(
        bp,
        ctx.podViews(bp.metadata.namespace),
        ctx.bandwidthPolicies.byIndex("namespace", bp.metadata.namespace ?? ""),
        ctx.stateMap(),
        ctx.judging(),
      );
      const { conditions, ...fields } = f;
      return { decisions: conditions, fields, activeNodes: f.desiredNodes };
    },
    pendingCleanup: (bp) =>
      pendingNodeCleanup(
        ctx,
        `${bp.metadata.namespace}/${bp.metadata.name}`,
        undefined,
        (s) => s.bandwidthPolicies,
      ),
  });
}
