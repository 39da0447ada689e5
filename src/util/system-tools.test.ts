import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
import { REPO_ROOT } from "../api/fixtures.js";
import {
  describeMissing,
  missingTools,
  parseSystemTools,
  systemTools,
  toolPresent,
  toolsRequirement,
} from "./system-tools.js";

// Calls whose first argument is the command: spawn("tc", …), sh("ip", …), runTool(name, "go", …).
const COMMAND_FIRST =
  /\b(?:spawn|spawnSync|execFile|execFileSync|execFileP|sh|run|spawnDaemon)\(\s*["'`]([^"'`$\s]+)["'`]/g;
const RUN_TOOL = /\brunTool\(\s*[^,]+,\s*["'`]([^"'`$\s]+)["'`]/g;
// Calls whose command is the first element of an argv array: inNs(ns, ["ping", …]).
const ARGV_CALL = /\b(?:inNs|spawnInNs|boxSpawn|inA|inB)\([^[;]*\[\s*["'`]([^"'`$\s]+)["'`]/g;
// Commands behind a wrapper inside an argv: ["netns", "exec", ns, "tc"], ["timeout", "2", "bash"].
const AFTER_NETNS_EXEC = /["']netns["'],\s*["']exec["'],\s*[^,\]]+,\s*["']([^"'$\s]+)["']/g;
const AFTER_TIMEOUT = /["']timeout["'],\s*[^,\]]+,\s*["']([^"'$\s]+)["']/g;
// Shell scripts: "-c", "tc qdisc … && echo yes" → every command of the script.
const SHELL_SCRIPT = /["']-c["'],\s*(["'`])((?:(?!\1).)*)\1/g;
const SHELL_BUILTINS = new Set(["command", "echo", "exec", "test", "[", "true", "false", "cd"]);

function scriptCommands(script: string): string[] {
  return script
    .split(/&&|\|\||;|\||\n/)
    .map((part) => part.trim().replace(/^!\s*/, "").split(/\s+/)[0] ?? "")
    .filter((word) => /^[a-z][\w.-]*$/.test(word) && !SHELL_BUILTINS.has(word));
}

/** The commands a TypeScript source spawns by name (the registry must list each). */
export function spawnedCommands(source: string): string[] {
  const found = new Set<string>();
  for (const re of [COMMAND_FIRST, RUN_TOOL, ARGV_CALL, AFTER_NETNS_EXEC, AFTER_TIMEOUT])
    for (const m of source.matchAll(re)) found.add(m[1]!);
  for (const m of source.matchAll(SHELL_SCRIPT))
    for (const c of scriptCommands(m[2]!)) found.add(c);
  return [...found].sort();
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === "node_modules" ? [] : sourceFiles(path);
    return e.name.endsWith(".ts") ? [path] : [];
  });
}

describe("system tools registry (hack/system-tools.tsv)", () => {
  it("lists every command that src/, test/ and bench/ spawn by name", () => {
    const registry = systemTools();
    const unlisted: string[] = [];
    const seen = new Set<string>();
    const files = ["src", "test", "bench"].flatMap((d) => sourceFiles(join(REPO_ROOT, d)));
    // This file's own snippets name made-up commands on purpose.
    for (const file of files.filter((f) => !f.endsWith("system-tools.test.ts"))) {
      for (const cmd of spawnedCommands(readFileSync(file, "utf8"))) {
        seen.add(cmd);
        if (!registry.has(cmd)) unlisted.push(`${relative(REPO_ROOT, file)} runs ${cmd}`);
      }
    }
    assert.deepEqual(unlisted, [], "add these to hack/system-tools.tsv (and its Debian package)");
    // The scan is not vacuous: it sees the tools the agent and the box are known to run.
    for (const cmd of ["ip", "tc", "nsenter", "wireguard-go", "wg", "iperf3", "go", "openssl"])
      assert.ok(seen.has(cmd), `the scan no longer finds ${cmd}: a call pattern changed`);
  });

  it("finds commands in every call shape the code uses, and a new one", () => {
    const src = [
      `sh("frobnicate", ["-x"]);`,
      `execFileSync("openssl", args);`,
      `inNs(node.netns, ["iperf3", "-c", ip]);`,
      `boxSpawn(box, ns, "srv", ["socat", "-"]);`,
      `run("ip", ["netns", "exec", nsB, "tcpdump", "-i"]);`,
      `inNs(ns, ["timeout", String(t), "bash", "-c", \`</dev/tcp/\${h}/\${p} && echo ok\`]);`,
      `sh("sh", ["-c", "mountpoint -q /x || mount -t bpf bpf /x"]);`,
      `await runTool(name, "go", ["build"]);`,
      `spawn(bin, args); sh(cmd, []);`,
    ].join("\n");
    assert.deepEqual(
      spawnedCommands(src),
      [
        "bash",
        "frobnicate",
        "go",
        "ip",
        "iperf3",
        "mount",
        "mountpoint",
        "openssl",
        "sh",
        "socat",
        "tcpdump",
        "timeout",
      ].sort(),
    );
  });

  it("every line names a package or says where the tool comes from", () => {
    const tools = systemTools();
    assert.ok(tools.size >= 20);
    for (const t of tools.values())
      assert.ok(t.neededBy.length > 10, `${t.name}: say what needs it`);
    assert.equal(tools.get("wireguard-go")?.debianPackage, "wireguard-go");
    assert.equal(tools.get("wg")?.debianPackage, "wireguard-tools");
    assert.equal(tools.get("go")?.debianPackage, undefined);
    assert.throws(() => parseSystemTools("ip iproute2 no tabs\n"), /line 1/);
  });

  it("names what is missing, its package and the install command", () => {
    const reg = parseSystemTools(
      "wireguard-go\twireguard-go\tthe agent\nwg\twireguard-tools\ttests\ngo\t-\tbuilds kube-apiserver: Go >= 1.21\n",
    );
    const msg = describeMissing([reg.get("wireguard-go")!, reg.get("wg")!, reg.get("go")!]);
    assert.equal(
      msg,
      "needs wireguard-go, wg, go; Debian packages wireguard-go, wireguard-tools: as root, `make deps` installs them; go: builds kube-apiserver: Go >= 1.21",
    );
  });

  it("looks tools up on PATH, and refuses names the registry does not list", () => {
    assert.equal(toolPresent("node", process.env.PATH), true);
    assert.equal(toolPresent("node", "/nonexistent"), false);
    assert.equal(toolsRequirement(["node"]), undefined);
    assert.throws(() => missingTools(["frobnicate"]), /not in hack\/system-tools.tsv/);
  });
});
