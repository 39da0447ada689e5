import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { REPO_ROOT } from "../api/fixtures.js";
import { COMMAND_HELP } from "./main.js";

const netloom = (...args: string[]) =>
  spawnSync(process.execPath, [join(REPO_ROOT, "bin", "netloom.js"), ...args], {
    encoding: "utf8",
  });

describe("netloom --help", () => {
  it("every command answers --help with its usage, exit 0", () => {
    for (const command of ["cluster", "crds", "operator", "agent", "clustermesh", "demo"]) {
      const r = netloom(command, "--help");
      assert.equal(r.status, 0, `${command}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^usage: netloom ${command}`), command);
    }
    assert.equal(netloom("--help").status, 0);
  });

  it("names every flag the operator and the agent parse", () => {
    const sources = {
      operator: readFileSync(join(REPO_ROOT, "src/cli/operator.ts"), "utf8"),
      agent: readFileSync(join(REPO_ROOT, "src/cli/agent.ts"), "utf8"),
      clustermesh: readFileSync(join(REPO_ROOT, "src/cli/clustermesh.ts"), "utf8"),
      box: readFileSync(join(REPO_ROOT, "src/cli/box.ts"), "utf8"),
      observe: readFileSync(join(REPO_ROOT, "src/cli/observe.ts"), "utf8"),
    };
    for (const [command, src] of Object.entries(sources)) {
      const block =
        /flags\("netloom [\w ]+", (?:argv|rest), \{([\s\S]*?)\n {2}\}\);/.exec(src)?.[1] ?? "";
      const parsed = [...block.matchAll(/^\s+"?([a-z-]+)"?: \{ type/gm)].map((m) => m[1]);
      assert.ok(parsed.length > 3, `${command}: flags found`);
      for (const flag of parsed)
        assert.match(
          COMMAND_HELP[command] ?? "",
          new RegExp(`--${flag}\\b`),
          `${command} --${flag}`,
        );
    }
  });
});
