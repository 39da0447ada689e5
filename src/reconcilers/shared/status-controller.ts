import { mergePatchStatus } from "../../controllers/apply.js";
import type { Controller } from "../../controllers/controller.js";
import { addFinalizer, hasFinalizer, removeFinalizer } from "../../controllers/finalizers.js";
import type { ResourceKind } from "../../controllers/resource.js";
import type { EventTarget } from "../../kube/events.js";
import type { Cache, OperatorContext } from "../context.js";
import { CLEANUP_FINALIZER } from "../nodenetworkstate/names.js";
import type { ConditionDecision } from "./fold.js";
import { sampleList } from "./fold.js";
import {
  nextStatus,
  readyTransition,
  sameStatus,
  statusWriteDecision,
  type UserStatus,
} from "./status.js";

/** What the status controller needs of a user-facing object (timestamps as the API's strings). */
export interface UserObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string | undefined;
    uid?: string | undefined;
    generation?: number | undefined;
    deletionTimestamp?: string | undefined;
    finalizers?: string[] | undefined;
  };
  status?: UserStatus | undefined;
}

export interface StatusControllerSpec<T extends UserObject> {
  name: string;
  kind: ResourceKind;
  /** Parsed objects of this kind; one that does not parse is reported, not folded. */
  cache: Cache<T>;
  /** Extra watches mapped to keys of this kind (node states, nodes, pods). */
  watch(builder: ReturnType<OperatorContext["manager"]["controller"]>): void;
  /** Pure fold of node reports into conditions and status fields. */
  fold(obj: T): {
    decisions: ConditionDecision[];
    fields: Record<string, unknown>;
    activeNodes: number;
  };
  /** Nodes that still carry (or have not confirmed removing) a deleted object's effect. */
  pendingCleanup(obj: T): string[];
  /** Objects that have no node effect to clean up skip the finalizer. */
  finalizer?: boolean;
}

/**
 * The status half of every user-facing kind: fold node reports into kstatus conditions and
 * counts, write /status only when it changed, emit an Event when Ready flips, and hold a
 * finalizer until every node confirmed the object's effect is gone (or a timeout reports it).
 */
export function registerStatusController<T extends UserObject>(
  ctx: OperatorContext,
  spec: StatusControllerSpec<T>,
): Controller {
  const builder = ctx.manager.controller(spec.name).for(spec.kind);
  /** When each object's status was last written: count-only changes are coalesced. */
  const lastWrite = new Map<string, number>();
  spec.watch(builder);
  return builder.withConcurrency(2).complete(async (key, { log }) => {
    const raw = spec.cache.informer.get(key);
    const name = raw?.metadata?.name;
    if (!raw || !name) {
      lastWrite.delete(key);
      return;
    }
    const obj = spec.cache.get(key);
    if (!obj) {
      // Nothing was rendered from an object the code cannot use: deleting it waits for nobody.
      if (raw.metadata?.deletionTimestamp) {
        await removeFinalizer(ctx.objects, raw, CLEANUP_FINALIZER);
        return;
      }
      const target = {
        apiVersion: `${spec.kind.group}/${spec.kind.version}`,
        kind: spec.kind.kind,
        metadata: { ...raw.metadata, name },
      };
      const status = (raw as { status?: UserStatus }).status;
      await reportInvalid(ctx, spec, target, status, spec.cache.invalid(key) ?? "not usable");
      return;
    }
    const useFinalizer = spec.finalizer ?? true;
    if (obj.metadata.deletionTimestamp) {
      if (!hasFinalizer(obj, CLEANUP_FINALIZER)) return;
      const pending = spec.pendingCleanup(obj);
      const waitedMs = ctx.now().getTime() - new Date(obj.metadata.deletionTimestamp).getTime();
      if (pending.length > 0 && waitedMs < ctx.cleanupTimeoutMs) return { requeueAfterMs: 1000 };
      if (pending.length > 0) {
        await ctx.event(
          obj,
          "Warning",
          "CleanupTimedOut",
          `${pending.length} node(s) did not confirm removal within ${ctx.cleanupTimeoutMs / 1000}s: ${sampleList(pending)}`,
        );
      }
      await removeFinalizer(ctx.objects, obj, CLEANUP_FINALIZER);
      for (const state of ["desired", "ready", "drifted"])
        ctx.resourceNodes.remove({ kind: obj.kind, name: key, state });
      lastWrite.delete(key);
      log.info({ pending: pending.length }, "finalizer removed");
      return;
    }
    if (useFinalizer && !hasFinalizer(obj, CLEANUP_FINALIZER)) {
      await addFinalizer(ctx.objects, obj, CLEANUP_FINALIZER);
    }
    const generation = obj.metadata.generation ?? 0;
    const { decisions, fields, activeNodes } = spec.fold(obj);
    for (const state of ["desired", "ready", "drifted"] as const) {
      const v = fields[`${state}Nodes`];
      if (typeof v === "number") ctx.resourceNodes.set({ kind: obj.kind, name: key, state }, v);
    }
    const next = nextStatus(obj.status, generation, decisions, fields, ctx.now());
    if (!sameStatus(obj.status, next)) {
      const nowMs = ctx.now().getTime();
      const decision = statusWriteDecision(obj.status, next, lastWrite.get(key), nowMs);
      if (!decision.write) return { requeueAfterMs: decision.holdMs };
      lastWrite.set(key, nowMs);
      await patchStatus(ctx, spec.kind, obj.metadata, next);
      const transition = readyTransition(obj.status, next);
      if (transition) await ctx.event(obj, transition.type, transition.reason, transition.message);
      log.debug(
        { ready: next.conditions?.find((c) => c.type === "Ready")?.status },
        "status written",
      );
    }
    // Silent agents only show up as time passes: fold again while nodes are involved.
    return activeNodes > 0 ? { requeueAfterMs: ctx.statusResyncMs } : undefined;
  });
}

/**
 * An object the API server accepted but this operator cannot parse (a CRD older or newer than
 * the code): Stalled with the field named, an Event, and nothing rendered from it.
 */
async function reportInvalid<T extends UserObject>(
  ctx: OperatorContext,
  spec: StatusControllerSpec<T>,
  target: EventTarget & { metadata: { name: string; generation?: number | undefined } },
  status: UserStatus | undefined,
  error: string,
): Promise<void> {
  const generation = target.metadata.generation ?? 0;
  const decisions: ConditionDecision[] = [
    { type: "Ready", status: "False", reason: "InvalidSpec", message: error },
    { type: "Reconciling", status: "False", reason: "InvalidSpec", message: error },
    { type: "Stalled", status: "True", reason: "InvalidSpec", message: error },
  ];
  const next = nextStatus(status, generation, decisions, {}, ctx.now());
  if (sameStatus(status, next)) return;
  await patchStatus(ctx, spec.kind, target.metadata, next);
  await ctx.event(target, "Warning", "InvalidSpec", error);
}

function patchStatus(
  ctx: OperatorContext,
  kind: ResourceKind,
  meta: { name: string; namespace?: string | undefined },
  status: UserStatus,
): Promise<unknown> {
  const ref = { kind, name: meta.name, ...(meta.namespace ? { namespace: meta.namespace } : {}) };
  return mergePatchStatus(ctx.custom, ref, status);
}
