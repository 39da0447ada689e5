// Which wireguard-go the backend runs (pure and with files), then the backend against a real
// daemon (root and wireguard-go needed): a rotated peer key is retired, drains, and only then
// is removed.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { skipWhen, unmet } from "../../../test/support/prerequisites.js";
import { REPO_ROOT } from "../../api/fixtures.js";
import { FakeClock } from "../../util/clock.js";
import {
  findWireguardGo,
  parseWireguardGoVersion,
  RETIRED_PEER_DRAIN_MS,
  runningWireguardGo,
  UserspaceWireguard,
  WIREGUARD_GO_MODULE_VERSION,
  wireguardGoCacheDir,
  wireguardGoVersion,
} from "./backend.js";
import { generateKeyPair } from "./keys.js";

describe("choosing the wireguard-go binary", () => {
  const dir = mkdtempSync(join(tmpdir(), "nl-wggo-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  /** A stand-in that answers --version as wireguard-go does. */
  const fake = (path: string, version: string) => {
    mkdirSync(join(path, ".."), { recursive: true });
    writeFileSync(
      path,
      `#!/bin/sh\necho "wireguard-go v${version}"\necho\necho "Userspace WireGuard daemon for linux-amd64."\n`,
    );
    chmodSync(path, 0o755);
    return path;
  };
  const debian = fake(join(dir, "usr-bin", "wireguard-go"), "0.0.20220316");
  const env = (extra: NodeJS.ProcessEnv = {}) => ({
    PATH: `${join(dir, "nothing-here")}:${join(dir, "usr-bin")}`,
    XDG_CACHE_HOME: join(dir, "cache"),
    ...extra,
  });

  it("takes Debian's on PATH while the current build is not cached", () => {
    assert.deepEqual(findWireguardGo(env()), { path: debian, source: "PATH" });
  });

  it("prefers the project's current build in ~/.cache/netloom/wireguard-go/<version>", () => {
    const cached = fake(
      join(dir, "cache", "netloom", "wireguard-go", WIREGUARD_GO_MODULE_VERSION, "wireguard-go"),
      "0.0.20250522",
    );
    assert.equal(wireguardGoCacheDir(undefined, env()), join(cached, ".."));
    assert.deepEqual(findWireguardGo(env()), { path: cached, source: "cache" });
    assert.equal(wireguardGoVersion(cached), "0.0.20250522");
    assert.match(
      new UserspaceWireguard(undefined, undefined, cached).implementation(),
      /^wireguard-go v0\.0\.20250522 \(.*wireguard-go\)$/,
    );
  });

  it("NETLOOM_WIREGUARD_GO names one explicitly, and must exist", () => {
    assert.deepEqual(findWireguardGo(env({ NETLOOM_WIREGUARD_GO: debian })), {
      path: debian,
      source: "NETLOOM_WIREGUARD_GO",
    });
    assert.throws(
      () => findWireguardGo(env({ NETLOOM_WIREGUARD_GO: join(dir, "missing") })),
      /NETLOOM_WIREGUARD_GO=.*missing is not an executable file/,
    );
  });

  it("none at all: undefined (the backend then names wireguard-go and fails to start it)", () => {
    assert.equal(
      findWireguardGo({ PATH: join(dir, "nothing-here"), XDG_CACHE_HOME: dir }),
      undefined,
    );
  });

  it("parses what --version prints", () => {
    assert.equal(
      parseWireguardGoVersion("wireguard-go v0.0.20250522\n\nUserspace WireGuard daemon"),
      "0.0.20250522",
    );
    assert.equal(parseWireguardGoVersion("usage: wireguard-go [-f] INTERFACE"), undefined);
  });

  it("hack/build-wireguard-go.sh builds the version the backend looks for", () => {
    const script = readFileSync(join(REPO_ROOT, "hack", "build-wireguard-go.sh"), "utf8");
    assert.match(
      script,
      new RegExp(`WIREGUARD_GO_MODULE_VERSION:-${WIREGUARD_GO_MODULE_VERSION}\\}`),
    );
  });

  it("finds the daemon serving an interface in /proc (argv ends with the interface)", () => {
    const proc = join(dir, "proc");
    const entry = (pid: string, argv: string[], exe: string) => {
      mkdirSync(join(proc, pid), { recursive: true });
      writeFileSync(join(proc, pid, "cmdline"), `${argv.join("\0")}\0`);
      symlinkSync(exe, join(proc, pid, "exe"));
    };
    entry("10", ["/usr/bin/wireguard-go", "wg-other"], "/usr/bin/wireguard-go");
    entry("11", ["/root/.cache/x/wireguard-go", "wg0"], "/root/.cache/x/wireguard-go");
    entry("12", ["node", "agent", "wg0"], "/usr/bin/node");
    mkdirSync(join(proc, "self"), { recursive: true });
    assert.equal(runningWireguardGo("wg0", proc), "/root/.cache/x/wireguard-go");
    assert.equal(runningWireguardGo("wg1", proc), undefined);
  });
});

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

  it("reports the version of the daemon that serves the interface", async () => {
    await wg.apply({ ...base, peers: [] });
    const running = runningWireguardGo(ifname);
    assert.ok(running, "the daemon is found in /proc");
    assert.match(wg.implementation(ifname), /^wireguard-go v\d+\.\d+\.\d+ \(/);
    wg.remove(ifname);
  });

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
