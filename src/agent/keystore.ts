import { join } from "node:path";
import {
  generateKeyPair,
  loadOrCreateKey,
  type WireguardKeyPair,
  writeKey,
} from "../datapath-driver/wireguard/keys.js";

/**
 * The node's WireGuard keys: the current pair from the 0600 key file (created when missing or
 * corrupt) and, during a rotation, the next pair announced ahead of its switch time.
 * With no directory (the simulator) keys live in memory only.
 */
export class KeyStore {
  private keys: WireguardKeyPair | undefined;
  private pending: { keys: WireguardKeyPair; switchAt: Date } | undefined;

  constructor(
    private readonly dir: string | undefined,
    private readonly onCreated: (reason: string) => void = () => {},
  ) {}

  private path(ifname: string): string | undefined {
    return this.dir ? join(this.dir, "wireguard", `${ifname}.key`) : undefined;
  }

  current(ifname: string): WireguardKeyPair {
    if (!this.keys) {
      const path = this.path(ifname);
      if (path) {
        const loaded = loadOrCreateKey(path);
        this.keys = loaded.keys;
        if (loaded.created) this.onCreated(loaded.reason);
      } else {
        this.keys = generateKeyPair();
      }
    }
    return this.keys;
  }

  get next(): { publicKey: string; switchAt: Date } | undefined {
    return this.pending
      ? { publicKey: this.pending.keys.publicKey, switchAt: this.pending.switchAt }
      : undefined;
  }

  /** Makes the next key pair; only its public half is published, with the switch time. */
  prepare(switchAt: Date): string {
    this.pending ??= { keys: generateKeyPair(), switchAt };
    return this.pending.keys.publicKey;
  }

  /** Forgets an announced pair that was withdrawn before its switch (never used). */
  cancel(): void {
    this.pending = undefined;
  }

  /** Switches to the announced pair (persisted first, so a crash keeps the key peers expect). */
  commit(ifname: string): void {
    if (!this.pending) return;
    const path = this.path(ifname);
    if (path) writeKey(path, this.pending.keys.privateKey);
    this.keys = this.pending.keys;
    this.pending = undefined;
  }
}
