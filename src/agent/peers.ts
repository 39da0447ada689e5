import type { NodePeer } from "../api/nodepeer.js";
import { MESH_CLUSTER_LABEL } from "../api/remotenodepeer.js";
import type { PeerConfig } from "../datapath-driver/wireguard/uapi.js";

export interface PeerPlan {
  peers: PeerConfig[];
  /** Other nodes of the same profile, keyed or not: what "all peers configured" means. */
  expected: number;
  /** The soonest future fallback switch among peers: reconverge then. */
  nextSwitch?: Date;
  /** Each peer key's node name (for status and metrics). */
  nodeOf: Map<string, string>;
}

/**
 * How long after an announced switch time a peer takes up the new key even though the rotating
 * node has not yet published it as current (its status write is late or lost). Normally the
 * peer switches as soon as that status arrives; until then WireGuard queues the rotating
 * node's packets (128 per peer), so this bounds the queueing, not the loss.
 */
export const PEER_SWITCH_FALLBACK_MS = 1000;

export function peerFallbackTime(announced: string): Date {
  return new Date(new Date(announced).getTime() + PEER_SWITCH_FALLBACK_MS);
}

/**
 * Pure: the key to configure for a peer node at `now`.
 *
 * Make before break, ordered by the rotating node itself: it switches its private key first
 * (its sessions can then only receive, and its outgoing packets wait in WireGuard's queue for a
 * new handshake), then publishes the new key as current; only then does a peer replace the old
 * key by the new one and handshake. A peer that switched earlier would drop the node's packets
 * still sent on the old session, and its own handshake would go to a key the node cannot
 * answer yet (then WireGuard waits its 5 s rekey timeout). So the announced key is never
 * configured ahead of time (a standby peer would accept the node's new session while the
 * allowed IPs still point at the old key, and its packets would be dropped), except as a
 * fallback once PEER_SWITCH_FALLBACK_MS have passed after the announced switch time.
 */
export function peerKeyAt(peer: NodePeer, now: Date): string | undefined {
  const wg = peer.status;
  if (wg?.nextPublicKey && wg.nextKeySwitchTime && now >= peerFallbackTime(wg.nextKeySwitchTime)) {
    return wg.nextPublicKey;
  }
  return wg?.publicKey;
}

/** "ip:port", with brackets around an IPv6 address. */
export function endpointOf(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** Every key a peer entry claims: the current one and an announced next one. */
const claimedKeys = (p: NodePeer) =>
  [p.status?.publicKey, p.status?.nextPublicKey].filter((k): k is string => !!k);

/**
 * Pure: the peer entries this node may use. Each entry passed its schema (the API server's and
 * again zod's where the agent parsed it); what no single entry can show is checked here: a key
 * claimed by two nodes (or by a peer and this node) would route one node's traffic to another,
 * so every claimant of such a key is left out and named in `problems`.
 */
export function usablePeers(
  self: string,
  ownKeys: readonly string[],
  peers: readonly NodePeer[],
): { peers: NodePeer[]; problems: string[] } {
  const claimants = new Map<string, string[]>();
  for (const k of ownKeys) claimants.set(k, [self]);
  for (const p of peers) {
    if (p.metadata.name === self) continue;
    for (const k of new Set(claimedKeys(p)))
      claimants.set(k, [...(claimants.get(k) ?? []), p.metadata.name ?? ""]);
  }
  const problems: string[] = [];
  const clashing = new Set<string>();
  for (const [key, nodes] of claimants) {
    if (nodes.length < 2) continue;
    for (const n of nodes) if (n !== self) clashing.add(n);
    problems.push(`WireGuard key ${key.slice(0, 8)}… claimed by ${nodes.sort().join(", ")}`);
  }
  return {
    peers: peers.filter((p) => !clashing.has(p.metadata.name ?? "")),
    problems: problems.sort(),
  };
}

/**
 * Pure: this node's WireGuard peers, learned from the other nodes' NodePeers (their status
 * carries public key and endpoint, their spec the pod CIDRs the operator took from the Node) —
 * never copied into this node's objects, so a node joining costs no write for any other node.
 */
export function planPeers(
  self: string,
  profile: string,
  entries: readonly NodePeer[],
  now: Date,
  keepaliveSeconds?: number,
  nodeEncryption = false,
): PeerPlan {
  // Local nodes of the same profile, and every remote cluster's node (each cluster names its
  // own profile; the ClusterMeshPeer is what says "peer with them").
  const others = entries.filter(
    (s) =>
      s.metadata.name !== self &&
      (s.status?.profile === profile || s.metadata.labels?.[MESH_CLUSTER_LABEL] !== undefined) &&
      !s.metadata.deletionTimestamp,
  );
  const peers: PeerConfig[] = [];
  const nodeOf = new Map<string, string>();
  let nextSwitch: Date | undefined;
  for (const s of others) {
    const key = peerKeyAt(s, now);
    const st = s.status;
    if (!key || !st?.nodeIP || !st.listenPort || !s.spec.podCIDRs?.length) continue;
    const endpoint = endpointOf(st.nodeIP, st.listenPort);
    nodeOf.set(key, s.metadata.name ?? "");
    // Host-to-host traffic too, when both ends take part (control-plane nodes do not).
    const nodeIP = nodeEncryption && st.nodeEncryption ? st.nodeIP : undefined;
    const hostPrefix = nodeIP?.includes(":") ? 128 : 32;
    peers.push({
      publicKey: key,
      endpoint,
      allowedIPs: [...s.spec.podCIDRs, ...(nodeIP ? [`${nodeIP}/${hostPrefix}`] : [])].sort(),
      ...(nodeIP ? { nodeIP } : {}),
      ...(keepaliveSeconds !== undefined ? { persistentKeepaliveSeconds: keepaliveSeconds } : {}),
    });
    const sw = st.nextKeySwitchTime;
    if (st.nextPublicKey && sw && peerFallbackTime(sw) > now) {
      const at = peerFallbackTime(sw);
      if (!nextSwitch || at < nextSwitch) nextSwitch = at;
    }
  }
  peers.sort((a, b) => (a.publicKey < b.publicKey ? -1 : 1));
  return { peers, expected: others.length, nodeOf, ...(nextSwitch ? { nextSwitch } : {}) };
}
