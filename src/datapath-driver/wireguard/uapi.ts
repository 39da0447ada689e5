import { createConnection } from "node:net";
import { hexToKey, keyToHex } from "./keys.js";

// The cross-platform userspace API of WireGuard (wireguard-go, boringtun): key=value lines on a
// unix socket at /var/run/wireguard/<ifname>.sock, "set=1" or "get=1", ended by a blank line.

export interface PeerConfig {
  publicKey: string;
  endpoint?: string;
  allowedIPs: string[];
  /** With node encryption: the peer node's own IP, also among allowedIPs (as /32). */
  nodeIP?: string;
  persistentKeepaliveSeconds?: number;
}

export interface DeviceConfig {
  privateKey: string;
  listenPort: number;
  /** Marks the tunnel's own UDP, so policy routing can send host traffic into the tunnel. */
  fwmark?: number;
  peers: PeerConfig[];
}

export interface PeerState {
  publicKey: string;
  endpoint?: string;
  allowedIPs: string[];
  lastHandshakeSeconds: number;
  rxBytes: number;
  txBytes: number;
}

export interface DeviceState {
  /** base64; stays in the agent's memory like the key file it came from. */
  privateKey?: string;
  listenPort: number;
  fwmark?: number;
  peers: PeerState[];
}

export const socketPath = (ifname: string, runDir = "/var/run/wireguard") =>
  `${runDir}/${ifname}.sock`;

/** Pure: parses a "get" response. */
export function parseGet(text: string): DeviceState {
  const state: DeviceState = { listenPort: 0, peers: [] };
  let peer: PeerState | undefined;
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq < 0) continue;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    switch (key) {
      case "private_key":
        state.privateKey = hexToKey(value);
        break;
      case "listen_port":
        state.listenPort = Number(value);
        break;
      case "fwmark":
        state.fwmark = Number(value);
        break;
      case "public_key":
        peer = {
          publicKey: hexToKey(value),
          allowedIPs: [],
          lastHandshakeSeconds: 0,
          rxBytes: 0,
          txBytes: 0,
        };
        state.peers.push(peer);
        break;
      case "endpoint":
        if (peer) peer.endpoint = value;
        break;
      case "allowed_ip":
        peer?.allowedIPs.push(value);
        break;
      case "last_handshake_time_sec":
        if (peer) peer.lastHandshakeSeconds = Number(value);
        break;
      case "rx_bytes":
        if (peer) peer.rxBytes = Number(value);
        break;
      case "tx_bytes":
        if (peer) peer.txBytes = Number(value);
        break;
      case "errno":
        if (value !== "0") throw new Error(`wireguard UAPI error errno=${value}`);
        break;
    }
  }
  return state;
}

function request(path: string, body: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let out = "";
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`wireguard UAPI ${path}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on("connect", () => sock.write(body));
    sock.on("data", (d: Buffer) => {
      out += d.toString();
      // The answer ends with a blank line after errno=N.
      if (/errno=-?\d+\n\n$/.test(out) || out.endsWith("\n\n")) {
        clearTimeout(timer);
        sock.end();
        resolve(out);
      }
    });
    sock.on("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`wireguard UAPI ${path}: ${err.message}`));
    });
  });
}

const sameList = (a: string[], b: string[]) =>
  a.length === b.length && [...a].sort().join() === [...b].sort().join();

/**
 * Pure: the peers `want` drops whose allowed IPs all pass to peers it keeps: a rotated key
 * replaced by its successor. Such a peer is retired, not removed, by the update (its allowed IPs
 * move, it stays). Removing it at once would discard packets already in its pipeline: WireGuard
 * drops everything queued on a peer it stops, in both directions (device/peer.go Stop).
 */
export function retiringPeers(current: DeviceState, want: DeviceConfig): string[] {
  const wanted = new Set(want.peers.map((p) => p.publicKey));
  const taken = new Set(want.peers.flatMap((p) => p.allowedIPs));
  return current.peers
    .filter(
      (p) =>
        !wanted.has(p.publicKey) &&
        p.allowedIPs.length > 0 &&
        p.allowedIPs.every((ip) => taken.has(ip)),
    )
    .map((p) => p.publicKey);
}

/**
 * Pure: the smallest "set" request that turns `current` into `want`, or undefined when they
 * match. Unchanged peers are not touched, so their sessions survive (a full replace_peers
 * would make every peer handshake again on each change). Peers in `keep` (retired keys still
 * draining) and those retiring now stay; every other peer `want` drops is removed.
 */
export function updateRequest(
  current: DeviceState,
  want: DeviceConfig,
  keep: ReadonlySet<string> = new Set(),
): string | undefined {
  const lines: string[] = [];
  if (current.privateKey !== want.privateKey)
    lines.push(`private_key=${keyToHex(want.privateKey)}`);
  if (current.listenPort !== want.listenPort) lines.push(`listen_port=${want.listenPort}`);
  // Left alone when unsaid (the rotation fast path), so a key switch keeps the mark.
  if (want.fwmark !== undefined && (current.fwmark ?? 0) !== want.fwmark)
    lines.push(`fwmark=${want.fwmark}`);
  for (const p of want.peers) {
    const have = current.peers.find((c) => c.publicKey === p.publicKey);
    const endpointChanged = p.endpoint !== undefined && have?.endpoint !== p.endpoint;
    const ipsChanged = !have || !sameList(have.allowedIPs, p.allowedIPs);
    if (have && !endpointChanged && !ipsChanged) continue;
    lines.push(`public_key=${keyToHex(p.publicKey)}`);
    if (p.endpoint && endpointChanged) lines.push(`endpoint=${p.endpoint}`);
    if (p.persistentKeepaliveSeconds !== undefined)
      lines.push(`persistent_keepalive_interval=${p.persistentKeepaliveSeconds}`);
    if (ipsChanged)
      lines.push("replace_allowed_ips=true", ...p.allowedIPs.map((ip) => `allowed_ip=${ip}`));
  }
  // Removals last. A rotated key is not removed here: its successor took over its allowed IPs
  // above (WireGuard moves an allowed IP to the peer that names it), so no packet meets a gap,
  // and it is removed later (see retiringPeers), once its queues have drained.
  const wanted = new Set(want.peers.map((p) => p.publicKey));
  const retiring = new Set(retiringPeers(current, want));
  for (const p of current.peers) {
    if (wanted.has(p.publicKey) || keep.has(p.publicKey) || retiring.has(p.publicKey)) continue;
    lines.push(`public_key=${keyToHex(p.publicKey)}`, "remove=true");
  }
  return lines.length ? `set=1\n${lines.join("\n")}\n\n` : undefined;
}

/**
 * Pure: the peers to handshake with right after `want` is applied, in a key rotation only:
 * every peer when our own key changes (all sessions then stop sending), or the successor of a
 * peer's rotated key (a new key at the endpoint of a removed one). New nodes are left to
 * traffic: a kick sent before the other end knows us is dropped and holds our next initiation
 * back 5 s, and both ends kicking at once would cross.
 *
 * During a rotation this orders the handshakes: the rotating node initiates to every peer at
 * once — before its new key is published, so each peer still drops it, and WireGuard will not
 * initiate again for 5 s — then each peer, on taking up the new key, initiates alone. Two
 * initiations crossing would leave both ends with a session the other refused (each answered
 * the other's, which discards its own), and traffic would wait for the 5 s retry.
 */
export function peersToHandshake(current: DeviceState, want: DeviceConfig): PeerConfig[] {
  if (current.privateKey === undefined) return [];
  if (current.privateKey !== want.privateKey) return want.peers;
  const have = new Set(current.peers.map((p) => p.publicKey));
  const wanted = new Set(want.peers.map((p) => p.publicKey));
  const rotatedAway = new Set(
    current.peers.filter((p) => !wanted.has(p.publicKey)).map((p) => p.endpoint),
  );
  return want.peers.filter((p) => !have.has(p.publicKey) && rotatedAway.has(p.endpoint));
}

/**
 * Pure: two requests that make the device handshake with each peer now rather than when
 * traffic or a timer asks. WireGuard sends a keepalive (and, with no session, a handshake
 * initiation) when a peer's persistent keepalive goes from 0 to non-zero as the last setting
 * of a request; the second request restores the configured interval.
 */
export function kickRequests(peers: PeerConfig[]): [string, string] | undefined {
  if (peers.length === 0) return undefined;
  const kick = ["set=1"];
  const restore = ["set=1"];
  for (const p of peers) {
    const pk = `public_key=${keyToHex(p.publicKey)}`;
    kick.push(pk, "persistent_keepalive_interval=0", "persistent_keepalive_interval=1");
    restore.push(pk, `persistent_keepalive_interval=${p.persistentKeepaliveSeconds ?? 0}`);
  }
  return [`${kick.join("\n")}\n\n`, `${restore.join("\n")}\n\n`];
}

/** Sends one "set" request; throws with `what` unless WireGuard answers errno=0. */
export async function uapiSet(path: string, body: string, what: string): Promise<void> {
  const answer = await request(path, body);
  const errno = /errno=(-?\d+)/.exec(answer)?.[1];
  if (errno !== "0")
    throw new Error(`wireguard UAPI ${what} on ${path} failed: errno=${errno ?? "?"}`);
}

/** Handshakes with `peers` now rather than when traffic or a timer asks. */
export async function uapiKick(path: string, peers: PeerConfig[]): Promise<void> {
  const bodies = kickRequests(peers);
  if (!bodies) return;
  await uapiSet(path, bodies[0], "kick");
  await uapiSet(path, bodies[1], "keepalive restore");
}

/** Pure: a request removing `keys`, or undefined when there are none. */
export function removeRequest(keys: readonly string[]): string | undefined {
  if (keys.length === 0) return undefined;
  return `set=1\n${keys.map((k) => `public_key=${keyToHex(k)}\nremove=true`).join("\n")}\n\n`;
}

/**
 * Applies the difference to `config`, keeping the peers in `keep`; returns the peers to
 * handshake with now and the keys retired by this update (to remove once drained).
 */
export async function uapiUpdate(
  path: string,
  config: DeviceConfig,
  keep: ReadonlySet<string> = new Set(),
): Promise<{ handshake: PeerConfig[]; retired: string[] }> {
  const current = await uapiGet(path);
  const body = updateRequest(current, config, keep);
  if (body === undefined) return { handshake: [], retired: [] };
  await uapiSet(path, body, "set");
  return { handshake: peersToHandshake(current, config), retired: retiringPeers(current, config) };
}

/** Removes `keys` (retired peers whose queues have drained). */
export async function uapiRemove(path: string, keys: readonly string[]): Promise<void> {
  const body = removeRequest(keys);
  if (body) await uapiSet(path, body, "remove");
}

export async function uapiGet(path: string): Promise<DeviceState> {
  return parseGet(await request(path, "get=1\n\n"));
}
