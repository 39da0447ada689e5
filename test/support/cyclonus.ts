import { goToolBinary, runTool } from "./go-tool.js";

/** The cyclonus release test/tools/cyclonus-oracle is built with (pinned in its go.mod). */
export const CYCLONUS_VERSION = "v0.5.6";

/** Labels of a pod or a namespace. */
export type Labels = Record<string, string>;

/**
 * A pod. `namespaceLabels` need not include kubernetes.io/metadata.name: the oracle adds it
 * as the API server does. `ip` is accepted but never matched: ipBlocks do not match pods
 * (Netloom follows Cilium here).
 */
export interface OraclePod {
  namespace: string;
  podLabels?: Labels;
  namespaceLabels?: Labels;
  ip?: string;
}

/** An address outside the cluster: only an IP, no namespace. */
export interface OracleExternal {
  ip: string;
}

export type OraclePeer = OraclePod | OracleExternal;

export type OracleProtocol = "TCP" | "UDP" | "SCTP";

export interface OracleQuery {
  source: OraclePeer;
  destination: OraclePeer;
  /** The destination port number (1..65535). */
  port: number;
  /** The destination pod's named port that `port` resolves to, if it has one. */
  portName?: string;
  protocol: OracleProtocol;
}

export interface OracleInput {
  /**
   * networking.k8s.io/v1 NetworkPolicy objects as JSON. metadata.namespace is required;
   * empty spec.policyTypes are defaulted as the API server does.
   */
  policies: object[];
  queries: OracleQuery[];
}

/** Whether each direction alone allows the query's traffic; `allowed` is both. */
export interface OracleVerdict {
  allowed: boolean;
  ingress: boolean;
  egress: boolean;
}

/**
 * Kubernetes NetworkPolicy verdicts from the cyclonus matcher
 * (github.com/mattfenwick/cyclonus/pkg/matcher), one per query in order, with the input
 * rewritten where cyclonus deviates from the spec (NotIn on a missing label, matchLabels with
 * an empty value, empty policyTypes, ipBlocks matching pods): see
 * test/tools/cyclonus-oracle/main.go. Rejects with the tool's message on bad input.
 * The Go tool is built once per content hash into the user cache directory.
 */
export async function cyclonusVerdicts(input: OracleInput): Promise<OracleVerdict[]> {
  const binary = await cyclonusBinary();
  const stdout = await runTool("cyclonus-oracle", binary, JSON.stringify(input));
  return parseVerdicts(stdout, input.queries.length);
}

/** Path of the built tool; builds it on first use (memoized per process). */
export function cyclonusBinary(): Promise<string> {
  return goToolBinary("cyclonus-oracle");
}

function parseVerdicts(stdout: string, expected: number): OracleVerdict[] {
  const parsed: unknown = JSON.parse(stdout);
  const verdicts =
    typeof parsed === "object" && parsed !== null
      ? (parsed as Record<string, unknown>).verdicts
      : undefined;
  if (!Array.isArray(verdicts) || verdicts.length !== expected) {
    throw new Error(
      `cyclonus-oracle: expected {"verdicts": [${expected} verdicts]}, got: ${stdout}`,
    );
  }
  return verdicts.map((item: unknown): OracleVerdict => {
    const r = (typeof item === "object" && item !== null ? item : {}) as Record<string, unknown>;
    const { allowed, ingress, egress } = r;
    if (
      typeof allowed !== "boolean" ||
      typeof ingress !== "boolean" ||
      typeof egress !== "boolean"
    ) {
      throw new Error(`cyclonus-oracle: malformed verdict: ${JSON.stringify(item)}`);
    }
    return { allowed, ingress, egress };
  });
}
