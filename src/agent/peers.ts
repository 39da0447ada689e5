import type { NodeNetworkState } from "../api/nodenetworkstate.js";
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
export function peerKeyAt(state: NodeNetworkState, now: Date): string | undefined {
  const wg = state.status?.wireguard;
  if (wg?.nextPublicKey && wg.nextKeySwitchTime && now >= peerFallbackTime(wg.nextKeySwitchTime)) {
    return wg.nextPublicKey;
  }
  return wg?.publicKey;
}

/**
 * Pure: this node's WireGuard peers, learned from the other nodes' NodeNetworkStates (their
 * status carries public key and endpoint, their spec the pod CIDRs) — never copied into
 * this node's spec, so a node joining costs no write to any other node's state.
 */
export function planPeers(
  self: string,
  profile: string,
  states: readonly NodeNetworkState[],
  now: Date,
  keepaliveSeconds?: number,
  nodeEncryption = false,
): PeerPlan {
  const others = states.filter(
    (s) =>
      s.metadata.name !== self &&
      s.spec.wireguard?.profile === profile &&
      !s.metadata.deletionTimestamp,
  );
  const peers: PeerConfig[] = [];
  const nodeOf = new Map<string, string>();
  let nextSwitch: Date | undefined;
  for (const s of others) {
    const key = peerKeyAt(s, now);
    const endpoint = s.status?.wireguard?.endpoint;
    if (!key || !endpoint || !s.spec.podCIDRs?.length) continue;
    nodeOf.set(key, s.metadata.name ?? "");
    // Host-to-host traffic too, when both ends take part (control-plane nodes do not): the
    // peer's node IP (its status says; else its endpoint's host).
    const nodeIP =
      nodeEncryption && s.spec.wireguard?.nodeEncryption
        ? (s.status?.nodeIP ?? endpoint.slice(0, endpoint.lastIndexOf(":")))
        : undefined;
    peers.push({
      publicKey: key,
      endpoint,
      allowedIPs: [...s.spec.podCIDRs, ...(nodeIP ? [`${nodeIP}/32`] : [])].sort(),
      ...(nodeIP ? { nodeIP } : {}),
      ...(keepaliveSeconds !== undefined ? { persistentKeepaliveSeconds: keepaliveSeconds } : {}),
    });
    const sw = s.status?.wireguard?.nextKeySwitchTime;
    if (s.status?.wireguard?.nextPublicKey && sw && peerFallbackTime(sw) > now) {
      const at = peerFallbackTime(sw);
      if (!nextSwitch || at < nextSwitch) nextSwitch = at;
    }
  }
  peers.sort((a, b) => (a.publicKey < b.publicKey ? -1 : 1));
  return { peers, expected: others.length, nodeOf, ...(nextSwitch ? { nextSwitch } : {}) };
}
