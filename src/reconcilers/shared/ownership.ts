import type { LabelSelector } from "../../api/common.js";
import { matchesSelector } from "./selector.js";

/** The fields of an object that decide who wins a node when several select it. */
export interface Contender {
  name: string;
  creationTimestamp?: string | Date | undefined;
}

function createdAt(c: Contender): number {
  if (!c.creationTimestamp) return Number.POSITIVE_INFINITY;
  return new Date(c.creationTimestamp).getTime();
}

/** Deterministic order: older first, then by name. The first is the winner. */
export function byAgeThenName(a: Contender, b: Contender): number {
  return createdAt(a) - createdAt(b) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

export function pickWinner<T extends Contender>(contenders: T[]): T | undefined {
  return [...contenders].sort(byAgeThenName)[0];
}

/** The fields of a NetworkConfig or EncryptionProfile that decide which nodes it owns. */
export interface SelectingObject {
  metadata: { name?: string; creationTimestamp?: string | Date; deletionTimestamp?: string | Date };
  spec: { nodeSelector?: LabelSelector | undefined };
}

/** The object that owns a node: of all live objects selecting it, the oldest (then by name). */
export function ownerOfNode<T extends SelectingObject>(
  objects: readonly T[],
  labels: Record<string, string>,
): { owner: T | undefined; selecting: T[] } {
  const selecting = objects.filter(
    (o) => !o.metadata.deletionTimestamp && matchesSelector(o.spec.nodeSelector, labels),
  );
  const owner = pickWinner(
    selecting.map((o) => ({
      name: o.metadata.name ?? "",
      creationTimestamp: o.metadata.creationTimestamp,
      o,
    })),
  )?.o;
  return { owner, selecting };
}

/** For one object: the nodes it owns and the nodes it selects but an older object owns. */
export function nodesOf<T extends SelectingObject>(
  object: T,
  all: readonly T[],
  nodes: readonly { name: string; labels: Record<string, string> }[],
): { owned: string[]; lost: { node: string; winner: string }[] } {
  const owned: string[] = [];
  const lost: { node: string; winner: string }[] = [];
  for (const n of nodes) {
    if (!matchesSelector(object.spec.nodeSelector, n.labels)) continue;
    const { owner } = ownerOfNode(all, n.labels);
    if (owner?.metadata.name === object.metadata.name) owned.push(n.name);
    else if (owner) lost.push({ node: n.name, winner: owner.metadata.name ?? "" });
  }
  return { owned, lost };
}
