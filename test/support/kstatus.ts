import { goToolBinary, runTool } from "./go-tool.js";

/** One object's kstatus verdict, as printed by test/tools/kstatus. */
export interface KstatusResult {
  kind: string;
  name: string;
  namespace?: string;
  /** InProgress | Failed | Current | Terminating | NotFound | Unknown */
  status: string;
  message: string;
}

/**
 * Runs the real kstatus library (sigs.k8s.io/cli-utils/pkg/kstatus/status, what Flux and kpt
 * use) on the given Kubernetes objects and returns one result per object, in order.
 * The Go tool is built once per content hash into the user cache directory.
 */
export async function kstatus(objects: object[]): Promise<KstatusResult[]> {
  const binary = await kstatusBinary();
  const stdout = await runTool("kstatus", binary, JSON.stringify(objects));
  return parseResults(stdout, objects.length);
}

/** Path of the built tool; builds it on first use (memoized per process). */
export function kstatusBinary(): Promise<string> {
  return goToolBinary("kstatus");
}

function parseResults(stdout: string, expected: number): KstatusResult[] {
  const parsed: unknown = JSON.parse(stdout);
  if (!Array.isArray(parsed) || parsed.length !== expected) {
    throw new Error(`kstatus: expected a JSON array of ${expected} results, got: ${stdout}`);
  }
  return parsed.map((item: unknown): KstatusResult => {
    if (typeof item !== "object" || item === null) {
      throw new Error(`kstatus: malformed result: ${JSON.stringify(item)}`);
    }
    const r = item as Record<string, unknown>;
    const str = (key: string): string => {
      const v = r[key];
      if (typeof v !== "string") {
        throw new Error(`kstatus: result field ${key} is not a string: ${JSON.stringify(item)}`);
      }
      return v;
    };
    const result: KstatusResult = {
      kind: str("kind"),
      name: str("name"),
      status: str("status"),
      message: str("message"),
    };
    if (r.namespace !== undefined) result.namespace = str("namespace");
    return result;
  });
}
