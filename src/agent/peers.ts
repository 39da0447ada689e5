import type { NodeNetworkState } from "../api/nodenetworkstate.js";
import type { PeerConfig } from "../datapath-driver/wireguard/uapi.js";

export interface PeerPlan {
  peers: PeerConfig[];
  /** Other nodes of the same profile, keyed or not: what "all peers configured" means. */
  expected: number;
  /** The soonest future key switch among peers: reconverge then. */
  nextSwitch?: Date;
}

/** A peer's key at `now`: its announced next key once the switch time has come. */
/**
 * Peers follow a rotating node a few milliseconds after its switch: the node's new handshake is
 * already accepted (standby peer), while a peer that switched first would start a handshake
 * the node cannot answer yet and wait WireGuard's 5 s rekey timeout.
 */
export const PEER_SWITCH_DELAY_MS = 5;

export function peerSwitchTime(announced: string): Date {
  return new Date(new Date(announced).getTime() + PEER_SWITCH_DELAY_MS);
}

export function peerKeyAt(state: NodeNetworkState, now: Date): string | undefined {
  const wg = state.status?.wireguard;
  if (wg?.nextPublicKey && wg.nextKeySwitchTime && now >= peerSwitchTime(wg.nextKeySwitchTime)) {
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
): PeerPlan {
  const others = states.filter(
    (s) =>
      s.metadata.name !== self &&
      s.spec.wireguard?.profile === profile &&
      !s.metadata.deletionTimestamp,
  );
  const peers: PeerConfig[] = [];
  let nextSwitch: Date | undefined;
  for (const s of others) {
    const key = peerKeyAt(s, now);
    const endpoint = s.status?.wireguard?.endpoint;
    if (!key || !endpoint || !s.spec.podCIDRs?.length) continue;
    peers.push({
      publicKey: key,
      endpoint,
      allowedIPs: [...s.spec.podCIDRs].sort(),
      ...(keepaliveSeconds !== undefined ? { persistentKeepaliveSeconds: keepaliveSeconds } : {}),
    });
    const sw = s.status?.wireguard?.nextKeySwitchTime;
    const next = s.status?.wireguard?.nextPublicKey;
    if (next && sw && peerSwitchTime(sw) > now) {
      const at = peerSwitchTime(sw);
      if (!nextSwitch || at < nextSwitch) nextSwitch = at;
      // Make before break: the announced key is a peer already (no allowed IPs yet), so its
      // first handshake is accepted even if our switch timer fires a few ms after the peer's.
      peers.push({ publicKey: next, endpoint, allowedIPs: [] });
    }
  }
  peers.sort((a, b) => (a.publicKey < b.publicKey ? -1 : 1));
  return { peers, expected: others.length, ...(nextSwitch ? { nextSwitch } : {}) };
}
