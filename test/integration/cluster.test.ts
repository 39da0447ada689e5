import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { REPO_ROOT } from "../../src/api/fixtures.js";
import { type ControlPlaneState, isAlive } from "../../src/cluster/control-plane.js";

const cli = join(REPO_ROOT, "bin", "netloom.js");

describe("netloom cluster up|down", () => {
  const cwd = mkdtempSync(join(tmpdir(), "netloom-cli-"));
  after(() => {
    // Best effort if an assertion failed half-way: never leave daemons behind.
    try {
      execFileSync("node", [cli, "cluster", "down"], { cwd, stdio: "ignore" });
    } catch {}
    rmSync(cwd, { recursive: true, force: true });
  });

  it("starts a control plane whose kubeconfig works, then stops it leaving nothing behind", () => {
    const t0 = Date.now();
    execFileSync("node", [cli, "cluster", "up"], { cwd, stdio: ["ignore", "ignore", "pipe"] });
    const upMs = Date.now() - t0;
    const kubeconfig = join(cwd, ".netloom", "kubeconfig");
    assert.ok(existsSync(kubeconfig), "kubeconfig written to .netloom/kubeconfig");
    const state = JSON.parse(
      readFileSync(join(cwd, ".netloom", "cluster", "control-plane.json"), "utf8"),
    ) as ControlPlaneState;
    assert.ok(state.kubectl);
    const version = JSON.parse(
      execFileSync(state.kubectl!, ["--kubeconfig", kubeconfig, "get", "--raw", "/version"], {
        encoding: "utf8",
      }),
    ) as { gitVersion: string; minor: string };
    assert.match(version.gitVersion, /^v1\.(3[4-9]|[4-9][0-9])\./, "a supported Kubernetes minor");
    process.stderr.write(`warm cluster up: ${upMs} ms, ${version.gitVersion}\n`);

    execFileSync("node", [cli, "cluster", "down"], { cwd, stdio: "ignore" });
    assert.equal(isAlive(state.apiServerPid), false, "kube-apiserver stopped");
    assert.equal(isAlive(state.etcdPid), false, "etcd stopped");
    assert.equal(existsSync(join(cwd, ".netloom", "cluster")), false, "data dir removed");
    assert.equal(existsSync(kubeconfig), false, "kubeconfig removed");
  });
});
