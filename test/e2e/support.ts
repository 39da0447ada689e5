import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type BoxOptions,
  type BoxState,
  boxDown,
  boxKubeConfig,
  boxUp,
} from "../../src/box/box.js";
import { canConnect, sh } from "../../src/box/netns.js";
import { cacheDir, locateBinaries } from "../../src/cluster/binaries.js";
import { BPF_OBJECT } from "../../src/datapath-driver/linux/driver.js";
import { kubeRequest } from "../../src/kube/raw.js";
import { eventually } from "../support/eventually.js";
import { unmet } from "../support/prerequisites.js";

/** Why the real-kernel suite cannot run here, or undefined when it can. */
export function e2eUnavailable(extraTools: string[] = []): string | undefined {
  return unmet({
    root: "network namespaces, eBPF, qdiscs: run as root",
    btf: true,
    files: [{ path: BPF_OBJECT, hint: "the compiled eBPF object: make bpf" }],
    tools: ["ip", "nsenter", "tc", "sysctl", "mountpoint", "ping", ...extraTools],
  });
}

/** Why the control plane cannot run here (undefined: it can): its binaries are built once. */
export function controlPlaneMissing(): string | undefined {
  try {
    return locateBinaries()
      ? undefined
      : `needs kube-apiserver and kubectl in ${cacheDir()} (or KUBEBUILDER_ASSETS) and etcd: make control-plane builds them`;
  } catch (err) {
    return `needs kube-apiserver and etcd: ${(err as Error).message}`;
  }
}

export async function startBox(opts: Omit<BoxOptions, "dir">): Promise<BoxState> {
  const dir = mkdtempSync(join(tmpdir(), `netloom-e2e-${opts.prefix}-`));
  // A previous run killed half-way must not leave namespaces that clash with this one.
  await boxDown(dir, opts.prefix);
  try {
    return await boxUp({ ...opts, dir, progress: (l) => process.stderr.write(`[box] ${l}\n`) });
  } catch (err) {
    await boxDown(dir, opts.prefix);
    throw err;
  }
}

/** eventually() with the e2e defaults: a minute, polled every 200 ms. */
export function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 60_000,
): Promise<T> {
  return eventually(what, check, timeoutMs, 200);
}

export interface StateView {
  metadata: { name: string; generation: number };
  status?: {
    /** The sources (and generations) of what the agent applied last. */
    sources?: {
      networkConfig?: { name: string; generation: number };
      encryptionProfile?: { name: string; generation: number };
      bandwidthPolicies?: { name: string; generation: number }[];
    };
    conditions?: { type: string; status: string; message: string }[];
    drift?: {
      drifted?: boolean;
      detectedTotal?: number;
      healedTotal?: number;
      lastDriftReason?: string;
    };
    datapath?: { attach?: string; bandwidth?: string; driver?: string };
    wireguard?: Record<string, unknown>;
  };
  spec: Record<string, unknown>;
}

export async function nodeState(box: BoxState, node: string): Promise<StateView | undefined> {
  const r = await kubeRequest(
    boxKubeConfig(box),
    "GET",
    `/apis/netloom.io/v1alpha1/nodenetworkstates/${node}`,
  );
  return r.status === 200 ? r.json<StateView>() : undefined;
}

/**
 * Waits until the object at `path` (a NetworkConfig, EncryptionProfile or BandwidthPolicy) is
 * Ready at its current generation: the operator's fold of every selected node's report, as
 * `kubectl wait --for=condition=Ready` would see it.
 */
export async function objectReady(box: BoxState, path: string): Promise<void> {
  await waitFor(`${path} Ready at its generation`, async () => {
    const r = await kubeRequest(boxKubeConfig(box), "GET", path);
    if (r.status !== 200) return undefined;
    const o = r.json<{
      metadata: { generation: number };
      status?: { observedGeneration?: number; conditions?: { type: string; status: string }[] };
    }>();
    const ready = o.status?.conditions?.find((c) => c.type === "Ready");
    return o.status?.observedGeneration === o.metadata.generation && ready?.status === "True"
      ? o
      : undefined;
  });
}

/** Waits until every node's agent reports Ready (and `check`) for what it applied. */
export async function allApplied(
  box: BoxState,
  check: (s: StateView) => boolean = () => true,
): Promise<void> {
  for (const n of box.nodes) {
    await waitFor(`${n.name} applied`, async () => {
      const s = await nodeState(box, n.name);
      const ready = s?.status?.conditions?.find((c) => c.type === "Ready");
      return s && ready?.status === "True" && check(s) ? s : undefined;
    });
  }
}

/** Prometheus text → value of one series (labels as written, e.g. 'reason="policy_denied"'). */
export async function scrape(url: string, metric: string, labels = ""): Promise<number> {
  const text = await (await fetch(url)).text();
  const line = text
    .split("\n")
    .find((l) => l.startsWith(labels ? `${metric}{${labels}}` : `${metric} `));
  return line ? Number(line.split(" ").at(-1)) : 0;
}

export function pingLoss(out: string): { sent: number; received: number } {
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  if (!m) throw new Error(`no ping summary in: ${out}`);
  return { sent: Number(m[1]), received: Number(m[2]) };
}

export { canConnect, sh };
