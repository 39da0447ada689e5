import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { PeerState } from "../datapath-driver/wireguard/uapi.js";
import { HANDSHAKE_GRACE_MS, STALE_HANDSHAKE_SECONDS, tunnelHealth } from "./tunnel-health.js";

const now = new Date("2026-11-24T12:00:00Z");
const nowS = now.getTime() / 1000;
const peer = (publicKey: string, lastHandshakeSeconds: number, txBytes = 148): PeerState => ({
  publicKey,
  allowedIPs: [],
  lastHandshakeSeconds,
  rxBytes: 0,
  txBytes,
});
const nodeOf = new Map([
  ["ka", "node-a"],
  ["kb", "node-b"],
  ["kc", "node-c"],
]);

describe("tunnelHealth", () => {
  it("counts peers with a handshake; a new peer gets a grace before it is a problem", () => {
    const configuredAt = new Map([
      ["ka", 0],
      ["kb", now.getTime() - HANDSHAKE_GRACE_MS + 1000],
      ["kc", now.getTime() - HANDSHAKE_GRACE_MS - 1000],
    ]);
    const h = tunnelHealth(
      [peer("ka", nowS - 30), peer("kb", 0), peer("kc", 0)],
      nodeOf,
      configuredAt,
      now,
    );
    assert.deepEqual(h, { handshaken: 1, problems: ["no handshake with node-c"], problemCount: 1 });
  });

  it("an idle peer we never sent to is not a problem (WireGuard handshakes on traffic)", () => {
    const h = tunnelHealth([peer("kc", 0, 0)], nodeOf, new Map([["kc", 0]]), now);
    assert.deepEqual(h, { handshaken: 0, problems: [], problemCount: 0 });
  });

  it("with keepalives a stale handshake is a problem; without, an idle peer is fine", () => {
    const old = peer("ka", nowS - STALE_HANDSHAKE_SECONDS - 12);
    assert.deepEqual(tunnelHealth([old], nodeOf, new Map(), now, 25).problems, [
      `last handshake with node-a ${STALE_HANDSHAKE_SECONDS + 12}s ago`,
    ]);
    assert.equal(tunnelHealth([old], nodeOf, new Map(), now).handshaken, 1);
  });

  it("lists at most five problems and counts them all", () => {
    const peers = Array.from({ length: 8 }, (_, i) => peer(`k${i}`, 0));
    const h = tunnelHealth(peers, new Map(), new Map(), now);
    assert.equal(h.problems.length, 5);
    assert.equal(h.problemCount, 8);
  });
});

describe("tunnelHealth: missing peers", () => {
  it("names a planned peer the tunnel lacks, after the grace", () => {
    const configuredAt = new Map([
      ["ka", now.getTime() - HANDSHAKE_GRACE_MS - 1],
      ["kb", now.getTime()],
    ]);
    const h = tunnelHealth([], nodeOf, configuredAt, now);
    assert.deepEqual(h.problems, ["node-a not configured"]);
  });
});
