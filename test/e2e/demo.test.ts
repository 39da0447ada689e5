import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import { REPO_ROOT } from "../../src/api/fixtures.js";
import type { BoxState } from "../../src/box/box.js";
import { listNetns } from "../../src/box/netns.js";
import { isAlive } from "../../src/cluster/control-plane.js";
import { skipWhen } from "../support/prerequisites.js";
import { e2eUnavailable } from "./support.js";

const unavailable = e2eUnavailable(["iperf3", "wireguard-go", "pgrep", "ls", "bash", "timeout"]);
const dir = join(mkdtempSync(join(tmpdir(), "netloom-demo-test-")), "demo");
const env = {
  ...process.env,
  NETLOOM_DEMO_DIR: dir,
  NETLOOM_DEMO_PREFIX: "nle",
  NETLOOM_DEMO_UNDERLAY_OCTET: "63",
};
const netloom = (...args: string[]) =>
  spawnSync(process.execPath, [join(REPO_ROOT, "bin", "netloom.js"), ...args], {
    env,
    encoding: "utf8",
    timeout: 300_000,
  });

describe("make demo, end to end (netloom demo up / drift / down)", {
  skip: skipWhen(unavailable),
}, () => {
  after(() => {
    netloom("demo", "down");
    rmSync(dirname(dir), { recursive: true, force: true });
  });

  it("comes up with every resource Ready and a summary of real measurements", () => {
    const up = netloom("demo", "up");
    process.stderr.write(
      `${up.stdout
        .split("\n")
        .filter((l) => l.startsWith("nle-node"))
        .join("\n")}\n`,
    );
    assert.equal(up.status, 0, `demo up failed:\n${up.stderr}\n${up.stdout}`);
    for (const kind of ["networkconfig", "encryptionprofile", "bandwidthpolicy"]) {
      assert.match(
        up.stdout,
        new RegExp(`${kind}\\.netloom\\.io/\\S+\\s+True\\s+3/3\\s+0`),
        `${kind} Ready 3/3`,
      );
    }
    const rows = up.stdout.split("\n").filter((l) => /^nle-node-\d /.test(l));
    assert.equal(rows.length, 3);
    for (const r of rows) {
      assert.match(r, /✓ 169\.254\.169\.254 blocked/);
      const mbps = Number(/✓ 50M: ([\d.]+)/.exec(r)?.[1]);
      assert.ok(mbps > 45 && mbps < 52.5, `measured ${mbps} Mbit/s through the 50M limit`);
      assert.match(r, /✓ 2 peers, handshake \d+s ago/);
      assert.match(r, /✓ 10\.244\.0\.0\/16/);
    }
    const again = netloom("demo", "up");
    assert.equal(again.status, 1);
    assert.match(again.stderr, /already running/);
  });

  it("demo drift shows an out-of-band change healed", () => {
    const drift = netloom("demo", "drift");
    assert.equal(drift.status, 0, drift.stderr);
    assert.match(drift.stderr, /class present: yes\s+detected [1-9]\d*\s+healed [1-9]/);
  });

  it("demo down leaves no namespace, process, pin, WireGuard socket or data directory", () => {
    const state = JSON.parse(readFileSync(join(dir, "box.json"), "utf8")) as BoxState;
    const down = netloom("demo", "down");
    assert.equal(down.status, 0, down.stderr);
    assert.deepEqual(listNetns("nle-"), []);
    const pids = [
      state.pids.operator,
      ...Object.values(state.pids.agents),
      ...state.pids.extra,
    ].filter((p): p is number => !!p);
    assert.deepEqual(pids.filter(isAlive), [], "no process left");
    assert.equal(existsSync("/sys/fs/bpf/nle"), false, "no bpffs pins");
    assert.equal(
      spawnSync("sh", ["-c", "ls /var/run/wireguard/nle* 2>/dev/null"], { encoding: "utf8" })
        .stdout,
      "",
      "no WireGuard socket",
    );
    assert.equal(existsSync(dir), false, "no data directory");
    assert.equal(spawnSync("pgrep", ["-f", "wireguard-go nlewg"]).status, 1, "no wireguard-go");
  });
});
