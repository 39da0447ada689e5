// The wireguard-go backend against a real daemon (root and wireguard-go needed): a rotated
// peer key is retired, drains, and only then is removed.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, describe, it } from "node:test";
import { skipWhen, unmet } from "../../../test/support/prerequisites.js";
import { FakeClock } from "../../util/clock.js";
import { RETIRED_PEER_DRAIN_MS, UserspaceWireguard } from "./backend.js";
import { generateKeyPair } from "./keys.js";

const missing = unmet({ root: "a TUN device for wireguard-go", tools: ["ip", "wireguard-go"] });

describe("UserspaceWireguard (real wireguard-go)", { skip: skipWhen(missing) }, () => {
  const clock = new FakeClock();
  const wg = new UserspaceWireguard(undefined, clock);
  const ifname = `nlt${process.pid % 100000}`;
  const self = generateKeyPair();
  const old = generateKeyPair();
  const next = generateKeyPair();
  const gone = generateKeyPair();
  const base = {
    ifname,
    privateKey: self.privateKey,
    listenPort: 45000 + (process.pid % 5000),
    mtu: 1420,
  };
  const peer = (publicKey: string, cidr: string, port: number) => ({
    publicKey,
    endpoint: `127.0.0.1:${port}`,
    allowedIPs: [cidr],
  });
  after(() => wg.remove(ifname));

  it("never deletes a host link an EncryptionProfile names as its interface", async () => {
    const host = `nlh${process.pid % 100000}`;
    // A veth pair stands for a host link (this kernel has no dummy links).
    const made = spawnSync("ip", ["link", "add", host, "type", "veth", "peer", "name", `${host}p`]);
    assert.equal(made.status, 0, String(made.stderr));
    try {
      await assert.rejects(
        wg.apply({ ...base, ifname: host, peers: [] }),
        /interface nlh\d+ exists and is not a WireGuard device/,
      );
      wg.remove(host);
      const still = spawnSync("ip", ["link", "show", "dev", host], { encoding: "utf8" });
      assert.equal(still.status, 0, "the host link is still there");
    } finally {
      spawnSync("ip", ["link", "del", host]);
    }
  });

  it("keeps a rotated-away key (no allowed IPs) while it drains, removes it afterwards, and removes a departed node's key at once", async () => {
    await wg.apply({
      ...base,
      peers: [peer(old.publicKey, "10.99.1.0/24", 9), peer(gone.publicKey, "10.99.2.0/24", 10)],
    });
    // The peer at port 9 rotates to `next`; the one at port 10 leaves.
    await wg.apply({ ...base, peers: [peer(next.publicKey, "10.99.1.0/24", 9)] });
    const during = (await wg.read(ifname))?.peers ?? [];
    const ips = (k: string) => during.find((p) => p.publicKey === k)?.allowedIPs;
    assert.deepEqual(ips(next.publicKey), ["10.99.1.0/24"], "the successor holds the prefix");
    assert.deepEqual(ips(old.publicKey), [], "the old key stays, with no allowed IPs");
    assert.equal(ips(gone.publicKey), undefined, "a departed node's key goes at once");
    // An update while it drains keeps it.
    await wg.apply({ ...base, peers: [peer(next.publicKey, "10.99.1.0/24", 9)] });
    assert.ok((await wg.read(ifname))?.peers.some((p) => p.publicKey === old.publicKey));
    await clock.advance(RETIRED_PEER_DRAIN_MS - 1);
    await wg.settled();
    assert.ok(
      (await wg.read(ifname))?.peers.some((p) => p.publicKey === old.publicKey),
      "still draining a millisecond before its time",
    );
    await clock.advance(1);
    await wg.settled();
    assert.deepEqual(
      (await wg.read(ifname))?.peers.map((p) => p.publicKey),
      [next.publicKey],
      "drained, then removed",
    );
  });
});
