#!/usr/bin/env node
// The netloom CLI runs the compiled TypeScript in dist/ (make build, or any make target).
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const main = fileURLToPath(new URL("../dist/src/cli/main.js", import.meta.url));
if (!existsSync(main)) {
  process.stderr.write("netloom: not built yet; run `make build` (or any make target) first\n");
  process.exit(2);
}
const { run } = await import(main);
process.exitCode = await run(process.argv.slice(2));
