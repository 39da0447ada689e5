// A node:test reporter used beside `spec` by `make test`: it lists every skipped test and suite
// with its reason (the spec summary counts a skipped suite as one test, hiding what it held),
// and where skipping is not allowed (CI, NETLOOM_REQUIRE_REAL=1) it fails the run.
import { relative } from "node:path";
import { requireReal } from "./prerequisites.js";

interface TestEventData {
  name: string;
  file?: string;
  skip?: string | boolean;
  details?: { type?: string };
}
interface TestEvent {
  type: string;
  data: TestEventData;
}

export interface Skipped {
  what: "suite" | "test";
  name: string;
  file: string;
  reason: string;
}

export function skippedOf(e: TestEvent): Skipped | undefined {
  if ((e.type !== "test:pass" && e.type !== "test:fail") || !e.data.skip) return undefined;
  return {
    what: e.data.details?.type === "suite" ? "suite" : "test",
    name: e.data.name,
    file: e.data.file ? relative(process.cwd(), e.data.file) : "?",
    reason: e.data.skip === true ? "(no reason given)" : e.data.skip,
  };
}

export function skipSummary(skipped: Skipped[], strict: boolean): string {
  if (skipped.length === 0) return "\nskipped: none\n";
  const suites = skipped.filter((s) => s.what === "suite").length;
  const lines = [
    "",
    `skipped: ${suites} suite${suites === 1 ? "" : "s"} and ${skipped.length - suites} test${skipped.length - suites === 1 ? "" : "s"}`,
    ...skipped.map((s) => `  ${s.what} "${s.name}" (${s.file}): ${s.reason}`),
  ];
  if (strict) lines.push("FAIL: this run may not skip (CI or NETLOOM_REQUIRE_REAL=1)");
  return `${lines.join("\n")}\n`;
}

export default async function* skipReport(
  source: AsyncIterable<TestEvent>,
): AsyncGenerator<string> {
  const skipped: Skipped[] = [];
  for await (const e of source) {
    const s = skippedOf(e);
    if (s) skipped.push(s);
  }
  const strict = requireReal();
  yield skipSummary(skipped, strict);
  if (strict && skipped.length > 0) process.exitCode = 1;
}
