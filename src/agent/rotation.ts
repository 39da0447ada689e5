import type { NodePeer } from "../api/nodepeer.js";
import { MESH_CLUSTER_LABEL } from "../api/remotenodepeer.js";
import { contentHash } from "../reconcilers/shared/hash.js";
import { PEER_SWITCH_FALLBACK_MS } from "./peers.js";

/**
 * Two peers must not switch keys this close together. A switch stops a node's sessions from
 * sending until a new handshake; a peer that switched too, and has not yet moved to the node's
 * new key, holds those packets queued on the old key's peer entry — and removing that entry
 * drops them. Each switch is confirmed within PEER_SWITCH_FALLBACK_MS, so twice that is clear.
 */
export const ROTATION_GUARD_MS = 2 * PEER_SWITCH_FALLBACK_MS;

export interface Announcement {
  node: string;
  switchAt: Date;
}

/**
 * Pure: the switches of this node's peers — local nodes of its profile and every remote
 * cluster's node (peered whatever its profile is called) — announced ones, else the last.
 */
function peerSwitches(self: string, profile: string, peers: readonly NodePeer[]): Announcement[] {
  const out: Announcement[] = [];
  for (const s of peers) {
    const wg = s.status;
    const remote = s.metadata.labels?.[MESH_CLUSTER_LABEL] !== undefined;
    if (s.metadata.name === self || (wg?.profile !== profile && !remote)) continue;
    const at = wg?.nextPublicKey ? wg.nextKeySwitchTime : wg?.lastRotationTime;
    if (at) out.push({ node: s.metadata.name ?? "", switchAt: new Date(at) });
  }
  return out;
}

/** Pure: whether `a` goes first when two switches clash: the earlier time, then the name. */
const goesFirst = (a: Announcement, b: Announcement) =>
  a.switchAt.getTime() < b.switchAt.getTime() ||
  (a.switchAt.getTime() === b.switchAt.getTime() && a.node < b.node);

/**
 * Pure: the peer switch (announced, or just done) that a switch of ours at `switchAt` would
 * clash with, if any. Before announcing, every one counts (it was there first); once
 * announced, only one that goes first (both nodes see the clash, and exactly one gives way).
 */
export function rotationClash(
  self: string,
  profile: string,
  peers: readonly NodePeer[],
  switchAt: Date,
  announced: boolean,
): Announcement | undefined {
  const mine = { node: self, switchAt };
  return peerSwitches(self, profile, peers)
    .filter((p) => Math.abs(p.switchAt.getTime() - switchAt.getTime()) < ROTATION_GUARD_MS)
    .filter((p) => !announced || goesFirst(p, mine))
    .sort((a, b) => (goesFirst(a, b) ? -1 : 1))[0];
}

/**
 * Pure: when a node's first rotation is due: `intervalMs` after rotation was switched on,
 * plus an offset spread over one whole interval by node name, so that the nodes of a cluster
 * rotate at different moments rather than together.
 */
export function firstRotationDue(node: string, enabledAt: number, intervalMs: number): number {
  const spread = (Number.parseInt(contentHash(node).slice(0, 8), 16) % 1000) / 1000;
  return enabledAt + Math.round(spread * intervalMs) + intervalMs;
}
