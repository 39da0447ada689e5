import type { PeerState } from "../datapath-driver/wireguard/uapi.js";

/** A peer just configured gets this long to complete its first handshake (we kick it at once). */
export const HANDSHAKE_GRACE_MS = 10_000;
/**
 * With a persistent keepalive a session is rekeyed every 2 minutes, so a last handshake older
 * than this means the peer stopped answering. Without keepalives an idle peer is normal.
 */
export const STALE_HANDSHAKE_SECONDS = 300;

export interface TunnelHealth {
  /** Configured peers with a recent enough handshake on their current key. */
  handshaken: number;
  /** Up to 5 entries such as "no handshake with node-3": peers past the grace with none or a stale one. */
  problems: string[];
  /** How many peers have a problem (the list above is a sample). */
  problemCount: number;
}

/**
 * Pure: which configured peers have a working session, from the tunnel's peer list.
 * `nodeOf` names each peer key's node; `configuredAt` says since when each key is configured.
 */
export function tunnelHealth(
  peers: readonly PeerState[],
  nodeOf: ReadonlyMap<string, string>,
  configuredAt: ReadonlyMap<string, number>,
  now: Date,
  keepaliveSeconds?: number,
): TunnelHealth {
  const nowS = now.getTime() / 1000;
  let handshaken = 0;
  const problems: string[] = [];
  for (const p of peers) {
    const node = nodeOf.get(p.publicKey) ?? `${p.publicKey.slice(0, 8)}…`;
    if (p.lastHandshakeSeconds === 0) {
      const since = configuredAt.get(p.publicKey) ?? 0;
      // Only once we tried to reach it (sent bytes): WireGuard handshakes on traffic.
      if (p.txBytes > 0 && now.getTime() - since > HANDSHAKE_GRACE_MS)
        problems.push(`no handshake with ${node}`);
      continue;
    }
    const age = Math.round(nowS - p.lastHandshakeSeconds);
    if (keepaliveSeconds && age > STALE_HANDSHAKE_SECONDS) {
      problems.push(`last handshake with ${node} ${age}s ago`);
      continue;
    }
    handshaken++;
  }
  // Planned peers the tunnel does not have (configuredAt holds what we configured).
  const present = new Set(peers.map((p) => p.publicKey));
  for (const [key, since] of configuredAt) {
    if (present.has(key) || now.getTime() - since <= HANDSHAKE_GRACE_MS) continue;
    problems.push(`${nodeOf.get(key) ?? `${key.slice(0, 8)}…`} not configured`);
  }
  problems.sort();
  return { handshaken, problems: problems.slice(0, 5), problemCount: problems.length };
}
