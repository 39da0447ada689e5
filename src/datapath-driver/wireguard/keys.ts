import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from "node:crypto";
import {
  closeSync,
  constants,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";

/** A WireGuard key pair. The private half never leaves the node: not in status, logs or events. */
export interface WireguardKeyPair {
  /** base64, as `wg genkey` prints it. */
  privateKey: string;
  /** base64, as `wg pubkey` prints it. */
  publicKey: string;
}

const b64url = (s: string) => Buffer.from(s, "base64url");

/** X25519 from node:crypto; the JWK's d and x are the raw 32-byte keys `wg` uses. */
export function generateKeyPair(): WireguardKeyPair {
  const { privateKey } = generateKeyPairSync("x25519");
  return fromPrivateKeyObject(privateKey);
}

function fromPrivateKeyObject(key: KeyObject): WireguardKeyPair {
  const jwk = key.export({ format: "jwk" });
  if (!jwk.d || !jwk.x) throw new Error("X25519 key without d/x");
  return {
    privateKey: b64url(jwk.d).toString("base64"),
    publicKey: b64url(jwk.x).toString("base64"),
  };
}

/** The public key of a base64 private key; throws when the text is not a 32-byte key. */
export function publicKeyOf(privateKeyBase64: string): string {
  const raw = Buffer.from(privateKeyBase64.trim(), "base64");
  if (raw.length !== 32) throw new Error(`a WireGuard private key is 32 bytes, got ${raw.length}`);
  const key = createPrivateKey({
    key: { kty: "OKP", crv: "X25519", d: raw.toString("base64url"), x: "" },
    format: "jwk",
  });
  const jwk = createPublicKey(key).export({ format: "jwk" });
  return b64url(jwk.x ?? "").toString("base64");
}

export function isValidKey(base64: string): boolean {
  return /^[A-Za-z0-9+/]{43}=$/.test(base64) && Buffer.from(base64, "base64").length === 32;
}

/** WireGuard's UAPI speaks hex. */
export const keyToHex = (base64: string) => Buffer.from(base64, "base64").toString("hex");
export const hexToKey = (hex: string) => Buffer.from(hex, "hex").toString("base64");

export type KeyLoad =
  | { keys: WireguardKeyPair; created: false }
  | { keys: WireguardKeyPair; created: true; reason: string };

/**
 * Reads the node's private key (0600 file), or makes a new one when it is missing or corrupt —
 * a corrupt file is replaced, never a crash loop. Written atomically (temp file + rename).
 */
export function loadOrCreateKey(path: string): KeyLoad {
  let reason = "no key file yet";
  if (existsSync(path)) {
    const text = readFileSync(path, "utf8").trim();
    try {
      if (!isValidKey(text)) throw new Error("not a base64 32-byte key");
      return { keys: { privateKey: text, publicKey: publicKeyOf(text) }, created: false };
    } catch (err) {
      reason = `key file ${path} was corrupt (${(err as Error).message}); replaced`;
    }
  }
  const keys = generateKeyPair();
  writeKey(path, keys.privateKey);
  return { keys, created: true, reason };
}

/**
 * Writes the private key so that it is never readable by others, never written through a link
 * someone planted, and never lost or half-written by a crash: a new file (O_EXCL, O_NOFOLLOW,
 * 0600 from its creation), fsynced, renamed over the old one, and the directory fsynced.
 */
export function writeKey(path: string, privateKey: string): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp`;
  // A stale temporary file, or a link in its place: removed, never followed.
  rmSync(tmp, { force: true });
  const fd = openSync(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    writeSync(fd, `${privateKey}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dirFd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}
