import { createConnection } from "node:net";
import { hexToKey, keyToHex } from "./keys.js";

// The cross-platform userspace API of WireGuard (wireguard-go, boringtun): key=value lines on a
// unix socket at /var/run/wireguard/<ifname>.sock, "set=1" or "get=1", ended by a blank line.

export interface PeerConfig {
  publicKey: string;
  endpoint?: string;
  allowedIPs: string[];
  persistentKeepaliveSeconds?: number;
}

export interface DeviceConfig {
  privateKey: string;
  listenPort: number;
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
  peers: PeerState[];
}

export const socketPath = (ifname: string, runDir = "/var/run/wireguard") =>
  `${runDir}/${ifname}.sock`;

/** Pure: the "set" request that makes the device exactly `config` (peers replaced). */
export function setRequest(config: DeviceConfig): string {
  const lines = [
    "set=1",
    `private_key=${keyToHex(config.privateKey)}`,
    `listen_port=${config.listenPort}`,
    "replace_peers=true",
  ];
  for (const p of config.peers) {
    lines.push(`public_key=${keyToHex(p.publicKey)}`);
    if (p.endpoint) lines.push(`endpoint=${p.endpoint}`);
    if (p.persistentKeepaliveSeconds !== undefined)
      lines.push(`persistent_keepalive_interval=${p.persistentKeepaliveSeconds}`);
    lines.push("replace_allowed_ips=true");
    for (const ip of p.allowedIPs) lines.push(`allowed_ip=${ip}`);
  }
  return `${lines.join("\n")}\n\n`;
}

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
 * Pure: the smallest "set" request that turns `current` into `want`, or undefined when they
 * match. Unchanged peers are not touched, so their sessions survive (a full replace_peers
 * would make every peer handshake again on each change).
 */
export function updateRequest(current: DeviceState, want: DeviceConfig): string | undefined {
  const lines: string[] = [];
  if (current.privateKey !== want.privateKey)
    lines.push(`private_key=${keyToHex(want.privateKey)}`);
  if (current.listenPort !== want.listenPort) lines.push(`listen_port=${want.listenPort}`);
  const wanted = new Set(want.peers.map((p) => p.publicKey));
  // Removals first: allowed IPs an old key held are free for its successor below.
  for (const p of current.peers) {
    if (!wanted.has(p.publicKey)) lines.push(`public_key=${keyToHex(p.publicKey)}`, "remove=true");
  }
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
  return lines.length ? `set=1\n${lines.join("\n")}\n\n` : undefined;
}

/**
 * Pure: a request that makes the device send a keepalive to each peer now, which starts a
 * handshake where there is no session (wireguard-go sends one when a peer's persistent
 * keepalive goes from 0 to non-zero), then restores each peer's keepalive setting.
 */
export function kickRequest(peers: PeerConfig[]): string | undefined {
  if (peers.length === 0) return undefined;
  const lines = ["set=1"];
  for (const p of peers) {
    lines.push(
      `public_key=${keyToHex(p.publicKey)}`,
      "persistent_keepalive_interval=0",
      "persistent_keepalive_interval=1",
      `persistent_keepalive_interval=${p.persistentKeepaliveSeconds ?? 0}`,
    );
  }
  return `${lines.join("\n")}\n\n`;
}

export async function uapiKick(path: string, peers: PeerConfig[]): Promise<void> {
  const body = kickRequest(peers);
  if (body === undefined) return;
  const answer = await request(path, body);
  const errno = /errno=(-?\d+)/.exec(answer)?.[1];
  if (errno !== "0")
    throw new Error(`wireguard UAPI kick on ${path} failed: errno=${errno ?? "?"}`);
}

export async function uapiUpdate(path: string, config: DeviceConfig): Promise<void> {
  const body = updateRequest(await uapiGet(path), config);
  if (body === undefined) return;
  const answer = await request(path, body);
  const errno = /errno=(-?\d+)/.exec(answer)?.[1];
  if (errno !== "0") throw new Error(`wireguard UAPI set on ${path} failed: errno=${errno ?? "?"}`);
}

export async function uapiSet(path: string, config: DeviceConfig): Promise<void> {
  const answer = await request(path, setRequest(config));
  const errno = /errno=(-?\d+)/.exec(answer)?.[1];
  if (errno !== "0") throw new Error(`wireguard UAPI set on ${path} failed: errno=${errno ?? "?"}`);
}

export async function uapiGet(path: string): Promise<DeviceState> {
  return parseGet(await request(path, "get=1\n\n"));
}
