import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  lstatSync,
  mkdtempSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { skipOrFail, unmet } from "../../../test/support/prerequisites.js";
import {
  generateKeyPair,
  hexToKey,
  isValidKey,
  keyToHex,
  loadOrCreateKey,
  publicKeyOf,
  writeKey,
} from "./keys.js";
import {
  kickRequests,
  parseGet,
  peersToHandshake,
  removeRequest,
  retiringPeers,
  updateRequest,
} from "./uapi.js";

const noWg = unmet({ tools: ["wg"] });

describe("WireGuard keys", () => {
  it("derives the same public key as `wg pubkey`", (t) => {
    if (noWg) return skipOrFail(t, noWg);
    for (let i = 0; i < 10; i++) {
      const k = generateKeyPair();
      const wg = execFileSync("wg", ["pubkey"], { input: `${k.privateKey}\n` })
        .toString()
        .trim();
      assert.equal(k.publicKey, wg);
      assert.equal(publicKeyOf(k.privateKey), wg);
    }
  });
  it("round-trips the hex form the UAPI uses", () => {
    const k = generateKeyPair();
    assert.equal(hexToKey(keyToHex(k.publicKey)), k.publicKey);
    assert.ok(isValidKey(k.privateKey));
    assert.equal(isValidKey("not a key"), false);
  });
  it("never writes the key through a link planted at its temporary path", () => {
    const dir = mkdtempSync(join(tmpdir(), "nlwg-"));
    const path = join(dir, "netloom-wg0.key");
    const target = join(dir, "elsewhere");
    writeFileSync(target, "untouched\n", { mode: 0o644 });
    symlinkSync(target, `${path}.tmp`);
    const k = generateKeyPair();
    writeKey(path, k.privateKey);
    assert.equal(readFileSync(target, "utf8"), "untouched\n", "the link's target is not written");
    assert.equal(readFileSync(path, "utf8").trim(), k.privateKey);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(lstatSync(path).isSymbolicLink(), false);
  });
  it("stores the private key 0600, reuses it, and replaces a corrupt file instead of failing", () => {
    const path = join(mkdtempSync(join(tmpdir(), "nlwg-")), "wireguard", "netloom-wg0.key");
    const first = loadOrCreateKey(path);
    assert.equal(first.created, true);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const again = loadOrCreateKey(path);
    assert.equal(again.created, false);
    assert.equal(again.keys.publicKey, first.keys.publicKey);
    writeFileSync(path, "garbage\n");
    const replaced = loadOrCreateKey(path);
    assert.equal(replaced.created, true);
    assert.match(replaced.created ? replaced.reason : "", /corrupt/);
    assert.notEqual(replaced.keys.publicKey, first.keys.publicKey);
    assert.equal(readFileSync(path, "utf8").trim(), replaced.keys.privateKey);
  });
});

describe("WireGuard UAPI", () => {
  it("parses a get answer", () => {
    const p = generateKeyPair();
    const s = parseGet(
      `private_key=00\nlisten_port=51871\npublic_key=${keyToHex(p.publicKey)}\nendpoint=192.168.50.12:51871\nlast_handshake_time_sec=1700000000\nrx_bytes=10\ntx_bytes=20\nallowed_ip=10.244.2.0/24\nerrno=0\n\n`,
    );
    assert.equal(s.listenPort, 51871);
    assert.deepEqual(s.peers, [
      {
        publicKey: p.publicKey,
        endpoint: "192.168.50.12:51871",
        allowedIPs: ["10.244.2.0/24"],
        lastHandshakeSeconds: 1700000000,
        rxBytes: 10,
        txBytes: 20,
      },
    ]);
    assert.throws(() => parseGet("errno=22\n\n"), /errno=22/);
  });
});

describe("WireGuard UAPI incremental update", () => {
  const a = generateKeyPair();
  const p1 = generateKeyPair();
  const p2 = generateKeyPair();
  const p2next = generateKeyPair();
  const current = {
    privateKey: a.privateKey,
    listenPort: 51871,
    peers: [
      {
        publicKey: p1.publicKey,
        endpoint: "192.168.50.11:51871",
        allowedIPs: ["10.244.1.0/24"],
        lastHandshakeSeconds: 0,
        rxBytes: 0,
        txBytes: 0,
      },
      {
        publicKey: p2.publicKey,
        endpoint: "192.168.50.12:51871",
        allowedIPs: ["10.244.2.0/24"],
        lastHandshakeSeconds: 0,
        rxBytes: 0,
        txBytes: 0,
      },
    ],
  };
  it("sends nothing when nothing changed", () => {
    assert.equal(
      updateRequest(current, {
        privateKey: a.privateKey,
        listenPort: 51871,
        peers: current.peers.map(({ publicKey, endpoint, allowedIPs }) => ({
          publicKey,
          endpoint,
          allowedIPs,
        })),
      }),
      undefined,
    );
  });
  const switched = {
    privateKey: a.privateKey,
    listenPort: 51871,
    peers: [
      { publicKey: p1.publicKey, endpoint: "192.168.50.11:51871", allowedIPs: ["10.244.1.0/24"] },
      {
        publicKey: p2next.publicKey,
        endpoint: "192.168.50.12:51871",
        allowedIPs: ["10.244.2.0/24"],
      },
    ],
  };
  it("on a peer's key switch moves the allowed IPs to the successor and retires the old key instead of removing it, leaving other peers alone", () => {
    const req = updateRequest(current, switched);
    // The successor's allowed_ip line moves the prefix, so there is no moment without a peer;
    // the old key stays, so packets already queued on it still go out.
    assert.equal(
      req,
      `set=1\npublic_key=${keyToHex(p2next.publicKey)}\nendpoint=192.168.50.12:51871\nreplace_allowed_ips=true\nallowed_ip=10.244.2.0/24\n\n`,
    );
    assert.deepEqual(retiringPeers(current, switched), [p2.publicKey]);
    assert.equal(
      req?.includes(keyToHex(p1.publicKey)),
      false,
      "the untouched peer keeps its session",
    );
  });
  it("keeps a retired key while it drains and removes it afterwards", () => {
    // After the switch: the old key holds no allowed IPs any more.
    const after = {
      ...current,
      peers: [
        current.peers[0]!,
        { ...current.peers[1]!, allowedIPs: [] },
        { ...current.peers[1]!, publicKey: p2next.publicKey },
      ],
    };
    assert.equal(updateRequest(after, switched, new Set([p2.publicKey])), undefined);
    assert.equal(
      updateRequest(after, switched),
      `set=1\npublic_key=${keyToHex(p2.publicKey)}\nremove=true\n\n`,
    );
    assert.equal(removeRequest([p2.publicKey]), updateRequest(after, switched));
    assert.equal(removeRequest([]), undefined);
  });
  it("removes a departed node's peer at once (no successor takes its allowed IPs)", () => {
    const departed = { ...switched, peers: switched.peers.slice(0, 1) };
    assert.deepEqual(retiringPeers(current, departed), []);
    assert.equal(
      updateRequest(current, departed),
      `set=1\npublic_key=${keyToHex(p2.publicKey)}\nremove=true\n\n`,
    );
  });
  it("handshakes with the successor alone after a peer's switch, with every peer after our own", () => {
    assert.deepEqual(
      peersToHandshake(current, switched).map((p) => p.publicKey),
      [p2next.publicKey],
    );
    const own = generateKeyPair();
    const ownSwitch = { ...switched, privateKey: own.privateKey };
    assert.deepEqual(
      peersToHandshake({ ...current, peers: current.peers.slice(0, 1) }, ownSwitch).map(
        (p) => p.publicKey,
      ),
      [p1.publicKey, p2next.publicKey],
    );
  });
  it("leaves a new device and a newly joined node to traffic", () => {
    const { privateKey: _k, ...fresh } = current;
    assert.deepEqual(peersToHandshake({ ...fresh, peers: [] }, switched), []);
    const joined = {
      ...switched,
      peers: [
        ...switched.peers,
        { publicKey: generateKeyPair().publicKey, endpoint: "192.168.50.14:51871", allowedIPs: [] },
      ],
    };
    assert.deepEqual(
      peersToHandshake(current, joined).map((p) => p.publicKey),
      [p2next.publicKey],
      "only the successor, not the new node",
    );
  });
});

describe("WireGuard UAPI handshake kick", () => {
  it("ends the kick with keepalive 0 → 1 (what makes WireGuard send now), then restores the configured interval", () => {
    const p = generateKeyPair();
    const q = generateKeyPair();
    const [kick, restore] = kickRequests([
      { publicKey: p.publicKey, allowedIPs: [] },
      { publicKey: q.publicKey, allowedIPs: [], persistentKeepaliveSeconds: 25 },
    ])!;
    const pk = (k: string) => `public_key=${keyToHex(k)}`;
    const on = "persistent_keepalive_interval=0\npersistent_keepalive_interval=1";
    assert.equal(kick, `set=1\n${pk(p.publicKey)}\n${on}\n${pk(q.publicKey)}\n${on}\n\n`);
    assert.equal(
      restore,
      `set=1\n${pk(p.publicKey)}\npersistent_keepalive_interval=0\n${pk(q.publicKey)}\npersistent_keepalive_interval=25\n\n`,
    );
    assert.equal(kickRequests([]), undefined);
  });
});
