import type { Controller } from "../../controllers/controller.js";
import { NodeKind } from "../../controllers/resource.js";
import { NetworkConfigKind, NodeNetworkStateKind, type OperatorContext } from "../context.js";
import type { NetworkConfig } from "../model.js";
import { pendingNodeCleanup } from "../shared/cleanup.js";
import { labelSignature, whenChanged } from "../shared/predicates.js";
import { registerStatusController, type UserObject } from "../shared/status-controller.js";
import { foldNetworkConfig } from "./status.js";

type Obj = NetworkConfig & UserObject;

export function registerNetworkConfigController(ctx: OperatorContext): Controller {
  const all = () => ctx.networkConfigs.list().map((o) => o.metadata.name);
  return registerStatusController<Obj>(ctx, {
    name: "networkconfig",
    kind: NetworkConfigKind,
    cache: ctx.networkConfigs,
    watch: (b) =>
      b
        .watches(NodeNetworkStateKind, (s) => {
          const ref = ctx.states.of(s)?.status?.sources?.networkConfig;
          return ref ? [ref.name] : [];
        })
        // Labels decide ownership: a node change may move it between configs.
        .watches(
          NodeKind,
          whenChanged((n) => ctx.nodes.getByName(n), all, labelSignature),
        ),
    fold: (nc) => {
      const f = foldNetworkConfig(
        nc,
        ctx.networkConfigs.list(),
        ctx.nodeViews(),
        ctx.stateMap(),
        ctx.judging(),
      );
      const { conditions, ...fields } = f;
      return { decisions: conditions, fields, activeNodes: f.desiredNodes };
    },
    pendingCleanup: (nc) =>
      pendingNodeCleanup(ctx, nc.metadata.name, nc.spec.nodeSelector, (s) => s.networkConfig),
  });
}
