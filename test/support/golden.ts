// Golden-fixture plumbing shared by the reconcilers' tests: input YAML → views → expected YAML.
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { V1Node, V1Pod } from "@kubernetes/client-node";
import { parseAllDocuments, stringify } from "yaml";
import { REPO_ROOT } from "../../src/api/fixtures.js";
import type { NodeNetworkState } from "../../src/api/nodenetworkstate.js";
import {
  type BandwidthPolicy,
  type EncryptionProfile,
  type NetworkConfig,
  type NodeView,
  nodeView,
  type PodView,
  podView,
} from "../../src/reconcilers/model.js";

export interface GoldenInputs {
  nodes: NodeView[];
  pods: PodView[];
  networkConfigs: NetworkConfig[];
  encryptionProfiles: EncryptionProfile[];
  bandwidthPolicies: BandwidthPolicy[];
  states: Map<string, NodeNetworkState>;
  /** From a "# now: <RFC 3339>" line; status folding is a function of time. */
  now: Date;
}

export function goldenCases(dir: string): string[] {
  const abs = join(REPO_ROOT, dir);
  return readdirSync(abs)
    .filter((d) => existsSync(join(abs, d, "input.yaml")))
    .sort()
    .map((d) => join(abs, d));
}

export function readGoldenInputs(caseDir: string): GoldenInputs {
  const text = readFileSync(join(caseDir, "input.yaml"), "utf8");
  const out: GoldenInputs = {
    nodes: [],
    pods: [],
    networkConfigs: [],
    encryptionProfiles: [],
    bandwidthPolicies: [],
    states: new Map(),
    now: new Date(/^# now: (\S+)/m.exec(text)?.[1] ?? "2026-11-24T12:00:00Z"),
  };
  for (const doc of parseAllDocuments(text)) {
    const o = doc.toJS() as { kind: string } | null;
    if (!o) continue;
    switch (o.kind) {
      case "Node":
        out.nodes.push(nodeView(o as V1Node));
        break;
      case "Pod":
        out.pods.push(podView(o as V1Pod));
        break;
      case "NetworkConfig":
        out.networkConfigs.push(o as NetworkConfig);
        break;
      case "EncryptionProfile":
        out.encryptionProfiles.push(o as EncryptionProfile);
        break;
      case "BandwidthPolicy":
        out.bandwidthPolicies.push(o as BandwidthPolicy);
        break;
      case "NodeNetworkState": {
        const s = o as NodeNetworkState;
        out.states.set(s.metadata.name ?? "", s);
        break;
      }
      default:
        throw new Error(`${caseDir}/input.yaml: unexpected kind ${o.kind}`);
    }
  }
  return out;
}

/**
 * Compares `actual` with <case>/expected.yaml. Only UPDATE_GOLDEN=1 writes the file (review the
 * diff before committing it); a missing expected.yaml is an error, so a new case cannot pass
 * by writing its own expectation.
 */
export function expectGolden(
  caseDir: string,
  actual: unknown,
  update = process.env.UPDATE_GOLDEN === "1",
): { expected: string; actual: string } {
  const path = join(caseDir, "expected.yaml");
  const text = stringify(actual, { lineWidth: 0, aliasDuplicateObjects: false });
  if (update) writeFileSync(path, text);
  else if (!existsSync(path))
    throw new Error(`${path} is missing: run with UPDATE_GOLDEN=1, review it, and commit it`);
  return { expected: readFileSync(path, "utf8"), actual: text };
}
