import type { Controller } from "../../controllers/controller.js";
import { NodeKind } from "../../controllers/resource.js";
import { EncryptionProfileKind, NodeNetworkStateKind, type OperatorContext } from "../context.js";
import type { EncryptionProfile } from "../model.js";
import { pendingNodeCleanup } from "../shared/cleanup.js";
import { labelSignature, whenChanged } from "../shared/predicates.js";
import { registerStatusController, type UserObject } from "../shared/status-controller.js";
import { foldEncryptionProfile } from "./status.js";

type Obj = EncryptionProfile & UserObject;

export function registerEncryptionProfileController(ctx: OperatorContext): Controller {
  const all = () => ctx.encryptionProfiles.list().map((o) => o.metadata.name);
  return registerStatusController<Obj>(ctx, {
    name: "encryptionprofile",
    kind: EncryptionProfileKind,
    cache: ctx.encryptionProfiles,
    watch: (b) =>
      b
        .watches(NodeNetworkStateKind, (s) => {
          const ref = ctx.states.of(s)?.status?.sources?.encryptionProfile;
          return ref ? [ref.name] : [];
        })
        .watches(
          NodeKind,
          whenChanged((n) => ctx.nodes.getByName(n), all, labelSignature),
        ),
    fold: (ep) => {
      const f = foldEncryptionProfile(
        ep,
        ctx.encryptionProfiles.list(),
        ctx.nodeViews(),
        ctx.stateMap(),
        ctx.judging(),
      );
      const { conditions, ...fields } = f;
      return { decisions: conditions, fields, activeNodes: f.desiredNodes };
    },
    pendingCleanup: (ep) =>
      pendingNodeCleanup(ctx, ep.metadata.name, ep.spec.nodeSelector, (s) => s.encryptionProfile),
  });
}
