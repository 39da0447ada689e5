/**
 * `netloom box probe --scenario FILE`: NetworkPolicy measured for real. A scenario names
 * namespaces, pods (labels, named container ports, node) and cases — each a set of
 * NetworkPolicies and probes. The box is built once, each case's policies are applied and
 * waited for until every node realized them, every probe runs as a real TCP or UDP connection
 * from the source pod, and one JSON line per probe says what was measured. Format:
 * docs/networkpolicy.md ("The probe harness").
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CustomObjectsApi, type KubeConfig, NetworkingV1Api } from "@kubernetes/client-node";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { isIPAddress } from "../api/cidr.js";
import { REALIZATION_ANNOTATION } from "../api/policyrealization.js";
import {
  pinnedDropCount,
  pinnedEndpointEnforced,
  pinnedPolicyDrops,
} from "../datapath-driver/linux/pinned.js";
import type { PolicyDropCount } from "../datapath-driver/maps/policy.js";
import { kubeRequest } from "../kube/raw.js";
import type { NetworkPolicy } from "../policy/networkpolicy.js";
import { type Endpoint, policyVerdict } from "../policy/verdict.js";
import { type BoxPod, type BoxState, boxDown, boxKubeConfig, boxUp } from "./box.js";
import { addBoxPod, removeBoxPod } from "./pods.js";
import { PodHelper, PodProbes, stopAllPodHelpers } from "./probe.js";

const labels = z.record(z.string(), z.string());
const protocol = z.enum(["TCP", "UDP"]);

const probeSpec = z
  .object({
    from: z.string().regex(/^[^/]+\/[^/]+$/, "namespace/pod"),
    to: z.string().min(1).meta({ description: "namespace/pod, or an IP address" }),
    port: z.int().min(1).max(65535),
    protocol: protocol.default("TCP"),
    /** Probe the destination pod's IPv6 address (pods are dual-stack). */
    ipFamily: z.union([z.literal(4), z.literal(6)]).default(4),
  })
  .strict();

export const scenarioSchema = z
  .object({
    nodes: z.int().min(1).max(8).default(2),
    namespaces: z
      .array(z.object({ name: z.string().min(1).max(63), labels: labels.default({}) }).strict())
      .default([]),
    pods: z
      .array(
        z
          .object({
            namespace: z.string().min(1).max(63),
            name: z.string().min(1).max(63),
            labels: labels.default({}),
            /** 1-based node number. */
            node: z.int().min(1).default(1),
            ports: z
              .array(
                z
                  .object({
                    name: z.string().min(1).max(15).optional(),
                    port: z.int().min(1).max(65535),
                    protocol: protocol.default("TCP"),
                  })
                  .strict(),
              )
              .default([]),
          })
          .strict(),
      )
      .min(1),
    /** A NetworkConfig spec applied as "default" before the first case (egressDeny, ...). */
    networkConfig: z.record(z.string(), z.unknown()).optional(),
    cases: z
      .array(
        z
          .object({
            name: z.string().min(1).optional(),
            /** networking.k8s.io/v1 NetworkPolicy objects (metadata.namespace required). */
            policies: z.array(z.record(z.string(), z.unknown())).default([]),
            probes: z.array(probeSpec).min(1),
          })
          .strict(),
      )
      .min(1),
  })
  .strict();

export type Scenario = z.infer<typeof scenarioSchema>;
export type ScenarioInput = z.input<typeof scenarioSchema>;
export type ProbeSpec = z.infer<typeof probeSpec>;

/** One measured probe: what `netloom box probe` prints, one JSON line each. */
export interface ProbeLine {
  case: string;
  from: string;
  to: string;
  ip: string;
  port: number;
  protocol: "TCP" | "UDP";
  verdict: "allow" | "deny" | "error";
  /** For a deny: "policy_denied" (a NetworkPolicy, with the identities) or "egress_deny". */
  reason?: string;
  /** The NetworkPolicy drop's identities (source, destination). */
  identities?: [number, number];
  ms: number;
  error?: string;
}

/** Pure: what policyVerdict (and NetworkConfig egress deny) says a probe must measure. */
export function expectedProbeVerdict(
  sc: Scenario,
  policySet: NetworkPolicy[],
  p: ProbeSpec,
): "allow" | "deny" {
  const denied = new Set(
    ((sc.networkConfig?.egressDeny ?? []) as { cidr: string }[]).map((r) => r.cidr.split("/")[0]),
  );
  if (denied.has(p.to)) return "deny";
  const endpoint = (key: string): Endpoint => {
    const pod = sc.pods.find((x) => `${x.namespace}/${x.name}` === key);
    if (!pod) return { kind: "external", ip: key };
    const ns = sc.namespaces.find((n) => n.name === pod.namespace);
    return {
      kind: "pod",
      namespace: pod.namespace,
      labels: pod.labels,
      namespaceLabels: { ...ns?.labels, "kubernetes.io/metadata.name": pod.namespace },
      ip: "",
      namedPorts: Object.fromEntries(
        pod.ports
          .filter((x) => x.name)
          .map((x) => [x.name!, { port: x.port, protocol: x.protocol }]),
      ),
    };
  };
  const v = policyVerdict(policySet, {
    source: endpoint(p.from),
    destination: endpoint(p.to),
    port: p.port,
    protocol: p.protocol,
  });
  return v.ingress.allowed && v.egress.allowed ? "allow" : "deny";
}

/** Reads a scenario file (JSON or YAML) and says what is wrong with it, naming the field. */
export function readScenario(path: string): Scenario {
  const text = readFileSync(path, "utf8");
  const parsed = scenarioSchema.safeParse(parseYaml(text));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`${path}: ${issue.path.join(".") || "(top)"}: ${issue.message}`);
  }
  return checkScenario(parsed.data, path);
}

/** Pure: cross-references (pods named by probes exist, nodes exist) — errors name the probe. */
export function checkScenario(sc: Scenario, where = "scenario"): Scenario {
  const pods = new Set(sc.pods.map((p) => `${p.namespace}/${p.name}`));
  for (const p of sc.pods)
    if (p.node > sc.nodes)
      throw new Error(`${where}: pod ${p.namespace}/${p.name} is on node ${p.node} of ${sc.nodes}`);
  for (const [i, c] of sc.cases.entries())
    for (const [j, p] of c.probes.entries()) {
      const at = `${where}: cases.${i}.probes.${j}`;
      if (!pods.has(p.from)) throw new Error(`${at}.from: no pod ${p.from}`);
      if (!isIPAddress(p.to) && !pods.has(p.to))
        throw new Error(`${at}.to: ${p.to} is neither a pod of the scenario nor an IP address`);
    }
  return sc;
}

/** Pure: per pod, every port it must listen on (its own, and every port probed on it). */
export function listenPorts(
  sc: Scenario,
): Map<string, { name?: string; port: number; protocol: "TCP" | "UDP" }[]> {
  const out = new Map<string, { name?: string; port: number; protocol: "TCP" | "UDP" }[]>();
  for (const p of sc.pods) out.set(`${p.namespace}/${p.name}`, [...p.ports]);
  for (const c of sc.cases)
    for (const probe of c.probes) {
      const ports = out.get(probe.to);
      if (ports && !ports.some((x) => x.port === probe.port && x.protocol === probe.protocol))
        ports.push({ port: probe.port, protocol: probe.protocol });
    }
  return out;
}

export interface ScenarioOptions {
  dir: string;
  prefix: string;
  underlayOctet: number;
  /** Each measured probe, as it is known (printed as a JSON line by the CLI). */
  onProbe?: (line: ProbeLine) => void;
  progress?: (line: string) => void;
  /** How long to wait for a case's policies to be realized (default 60 s). */
  realizeTimeoutMs?: number;
  /** Leave the box up afterwards (for a person to look around). */
  keepBox?: boolean;
}

/** Builds the scenario in a new box, measures every probe of every case, tears down. */
export async function runScenario(sc: Scenario, opts: ScenarioOptions): Promise<ProbeLine[]> {
  const box = await ScenarioBox.up(sc, opts);
  try {
    const lines: ProbeLine[] = [];
    for (const [i, c] of sc.cases.entries()) lines.push(...(await box.runCase(c, i)));
    return lines;
  } finally {
    if (!opts.keepBox) await box.down();
    else await stopAllPodHelpers();
  }
}

export type ScenarioCase = Scenario["cases"][number];

/**
 * A scenario's box: pods built and enforced, ready for cases. Tests keep one across steps
 * (runCase, then their own changes); runScenario runs every case and tears down.
 */
export class ScenarioBox {
  private applied: { namespace: string; name: string }[] = [];
  private readonly probes = new PodProbes();

  private constructor(
    readonly s: BoxState,
    readonly kc: KubeConfig,
    readonly pods: Map<string, BoxPod>,
    /** namespace/pod → identity, as the endpoint slices said once every pod was enforced. */
    readonly identityOf: Map<string, number>,
    private readonly opts: ScenarioOptions,
    private readonly sc: Scenario,
  ) {}

  static async up(sc: Scenario, opts: ScenarioOptions): Promise<ScenarioBox> {
    const s = await boxUp({
      dir: opts.dir,
      prefix: opts.prefix,
      underlayOctet: opts.underlayOctet,
      nodes: sc.nodes,
      pods: [],
      progress: opts.progress ?? (() => {}),
    });
    try {
      return await ScenarioBox.within(s, sc, opts);
    } catch (e) {
      await stopAllPodHelpers();
      if (!opts.keepBox) await boxDown(s.dir, s.prefix);
      throw e;
    }
  }

  /**
   * The scenario's pods in a box that runs already (the demo's). Its NetworkConfig is applied
   * only when the box has none (`default`).
   */
  static async within(
    s: BoxState,
    sc: Scenario,
    opts: Omit<ScenarioOptions, "dir" | "prefix" | "underlayOctet">,
  ): Promise<ScenarioBox> {
    if (sc.nodes > s.nodes.length)
      throw new Error(`the scenario needs ${sc.nodes} nodes; the box has ${s.nodes.length}`);
    const say = opts.progress ?? (() => {});
    const kc = boxKubeConfig(s);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const existing = await kubeRequest(
      kc,
      "GET",
      "/apis/netloom.io/v1alpha1/networkconfigs/default",
    );
    if (sc.networkConfig && existing.status === 404)
      await custom.createClusterCustomObject({
        group: "netloom.io",
        version: "v1alpha1",
        plural: "networkconfigs",
        body: {
          apiVersion: "netloom.io/v1alpha1",
          kind: "NetworkConfig",
          metadata: { name: "default" },
          spec: sc.networkConfig,
        },
      });
    const ports = listenPorts(sc);
    const nsLabels = new Map(sc.namespaces.map((n) => [n.name, n.labels]));
    const pods = new Map<string, BoxPod>();
    say(`adding ${sc.pods.length} pods`);
    for (const p of sc.pods) {
      const key = `${p.namespace}/${p.name}`;
      const pod = await addBoxPod(s, kc, {
        namespace: p.namespace,
        name: p.name,
        labels: p.labels,
        node: s.nodes[p.node - 1]!.name,
        ports: ports.get(key) ?? [],
        namespaceLabels: nsLabels.get(p.namespace) ?? {},
      });
      pods.set(key, pod);
    }
    // Addresses outside the cluster answer from the box's "cloud" (the metadata endpoint
    // lives there): a deny must be a drop, not a port nobody listens on.
    const external = sc.cases
      .flatMap((c) => c.probes)
      .filter((p) => isIPAddress(p.to))
      .map((p) => ({ port: p.port, protocol: p.protocol }));
    if (external.length)
      await PodHelper.start(
        s,
        {
          name: "cloud",
          namespace: "",
          netns: s.cloudNetns,
          ip: s.cloudIP,
          ip6: s.cloudIP6,
          labels: {},
        },
        [...new Map(external.map((p) => [`${p.protocol}/${p.port}`, p])).values()],
      );
    const full = { dir: s.dir, prefix: s.prefix, underlayOctet: 0, ...opts };
    const identityOf = await waitForEndpoints(kc, s, pods, opts.realizeTimeoutMs ?? 60_000);
    say(`every pod has an identity (${new Set(identityOf.values()).size} identities)`);
    return new ScenarioBox(s, kc, pods, identityOf, full, sc);
  }

  /** Replaces the previous case's policies with this case's, waits, measures every probe. */
  async runCase(c: ScenarioCase, index: number): Promise<ProbeLine[]> {
    const name = c.name ?? `case-${index + 1}`;
    const say = this.opts.progress ?? (() => {});
    const net = this.kc.makeApiClient(NetworkingV1Api);
    for (const p of this.applied)
      await net.deleteNamespacedNetworkPolicy({ name: p.name, namespace: p.namespace });
    this.applied = [];
    for (const body of c.policies) {
      const meta = (body.metadata ?? {}) as { name?: string; namespace?: string };
      const namespace = meta.namespace ?? "default";
      // Raw JSON: client-node's typed serializer knows the ingress rule's "from" as "_from" and
      // would drop a plain object's "from".
      const r = await kubeRequest(
        this.kc,
        "POST",
        `/apis/networking.k8s.io/v1/namespaces/${namespace}/networkpolicies`,
        { body: { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", ...body } },
      );
      if (r.status >= 300)
        throw new Error(`${name}: NetworkPolicy ${namespace}/${meta.name}: ${r.body}`);
      this.applied.push({ namespace, name: meta.name ?? "" });
    }
    await waitRealized(this.kc, this.s, this.applied, this.opts.realizeTimeoutMs ?? 60_000);
    say(`${name}: ${this.applied.length} policies realized; ${c.probes.length} probes`);
    return this.measure(name, c.probes);
  }

  /** Runs probes as they are (no policy change) and reports them like a case. */
  async measure(name: string, specs: readonly ProbeSpec[]): Promise<ProbeLine[]> {
    const before = countersOf(this.s);
    const cases = specs.map((p) => {
      const to = this.pods.get(p.to);
      const ip = to ? (p.ipFamily === 6 ? to.ip6 : to.ip) : p.to;
      const from = this.pods.get(p.from);
      if (!from) throw new Error(`no pod ${p.from}`);
      return { from, to: { ip }, port: p.port, protocol: p.protocol };
    });
    const results = await this.probes.verdicts(cases);
    const after = countersOf(this.s);
    return specs.map((p, j) => {
      const r = results[j]!;
      const line: ProbeLine = {
        case: name,
        from: p.from,
        to: p.to,
        ip: cases[j]!.to.ip,
        port: p.port,
        protocol: p.protocol,
        verdict: r.verdict,
        ms: Math.round(r.result.ms * 100) / 100,
        ...(r.result.error && r.verdict !== "allow" ? { error: r.result.error } : {}),
      };
      if (r.verdict === "deny") Object.assign(line, dropReason(p, this.identityOf, before, after));
      this.opts.onProbe?.(line);
      return line;
    });
  }

  /**
   * A pod restarted as a kubelet and a CNI would: the old one deleted, a new one with the same
   * name and labels on the same node, with a new address. Resolves once every node enforces
   * again (it has an identity and its node attached its programs).
   */
  async replacePod(key: string): Promise<BoxPod> {
    const spec = this.sc.pods.find((p) => `${p.namespace}/${p.name}` === key);
    const old = this.pods.get(key);
    if (!spec || !old) throw new Error(`no pod ${key} in the scenario`);
    await removeBoxPod(this.s, this.kc, spec.namespace, spec.name);
    const pod = await addBoxPod(this.s, this.kc, {
      namespace: spec.namespace,
      name: spec.name,
      labels: spec.labels,
      node: this.s.nodes[spec.node - 1]!.name,
      ports: listenPorts(this.sc).get(key) ?? [],
    });
    this.pods.set(key, pod);
    const ids = await waitForEndpoints(
      this.kc,
      this.s,
      this.pods,
      this.opts.realizeTimeoutMs ?? 60_000,
      (e) => `${e.namespace}/${e.name}` !== key || e.ips.includes(pod.ip),
    );
    for (const [k, v] of ids) this.identityOf.set(k, v);
    const node = this.s.nodes[spec.node - 1]!;
    const link = JSON.parse(
      execFileSync("ip", ["-n", node.netns, "-j", "link", "show", pod.hostIf ?? ""], {
        encoding: "utf8",
      }),
    ) as { ifindex: number }[];
    const ifindex = link[0]?.ifindex ?? 0;
    await waitUntil(
      () => `${node.name} enforcing ${key} on ${pod.hostIf} (ifindex ${ifindex})`,
      this.opts.realizeTimeoutMs ?? 60_000,
      async () =>
        pinnedEndpointEnforced(
          join(this.s.bpfPinRoot, node.name, "netloom"),
          pod.hostIf ?? "",
          ifindex,
        )
          ? true
          : undefined,
    );
    return pod;
  }

  async down(): Promise<void> {
    await stopAllPodHelpers();
    await boxDown(this.s.dir, this.s.prefix);
  }
}

interface Counters {
  policy: PolicyDropCount[];
  /** drops[policy_denied] per node (NetworkPolicy and egress deny both count there). */
  denied: number;
}

function countersOf(s: BoxState): Counters {
  let denied = 0;
  const policy: PolicyDropCount[] = [];
  for (const n of s.nodes) {
    // The agent pins under <its --bpffs>/netloom.
    const dir = join(s.bpfPinRoot, n.name, "netloom");
    policy.push(...pinnedPolicyDrops(dir));
    denied += pinnedDropCount(dir, 0);
  }
  return { policy, denied };
}

/** Pure: why a denied probe was dropped, from the counters before and after its case. */
export function dropReason(
  p: ProbeSpec,
  identityOf: ReadonlyMap<string, number>,
  before: Counters,
  after: Counters,
): Pick<ProbeLine, "reason" | "identities"> {
  const src = identityOf.get(p.from);
  const dst = identityOf.get(p.to);
  const grew = (local: number | undefined, peer: number | undefined, dir: string) => {
    const sum = (c: Counters) =>
      c.policy
        .filter(
          (d) =>
            d.direction === dir &&
            d.localIdentity === local &&
            (peer === undefined || d.peerIdentity === peer),
        )
        .reduce((a, d) => a + d.packets, 0);
    return sum(after) > sum(before);
  };
  // Egress on the source's node (peer: the destination's identity, or any for an address),
  // ingress on the destination's.
  if (src !== undefined && grew(src, dst, "egress"))
    return { reason: "policy_denied", identities: [src, dst ?? 0] };
  if (dst !== undefined && grew(dst, src, "ingress"))
    return { reason: "policy_denied", identities: [src ?? 0, dst] };
  const policyDelta =
    after.policy.reduce((a, d) => a + d.packets, 0) -
    before.policy.reduce((a, d) => a + d.packets, 0);
  if (after.denied - before.denied > policyDelta) return { reason: "egress_deny" };
  return {};
}

async function waitUntil<T>(
  what: () => string,
  timeoutMs: number,
  check: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let delay = 100;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s: ${what()}`);
    // Polling the API server here is the harness waiting on a state, not a sleep in a test.
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 1000);
  }
}

/** Every pod in its node's endpoint slice with an identity, and every node enforcing them. */
async function waitForEndpoints(
  kc: KubeConfig,
  s: BoxState,
  pods: ReadonlyMap<string, BoxPod>,
  timeoutMs: number,
  /** An endpoint must also pass this (e.g. carry a restarted pod's new address). */
  fresh: (e: { namespace: string; name: string; ips: string[] }) => boolean = () => true,
): Promise<Map<string, number>> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  let missing: string[] = [];
  return waitUntil(
    () => `pods without an identity or not enforced: ${missing.join(", ")}`,
    timeoutMs,
    async () => {
      const slices = (await custom.listClusterCustomObject({
        group: "netloom.io",
        version: "v1alpha1",
        plural: "networkendpointslices",
      })) as {
        items: {
          spec: {
            endpoints: { namespace: string; name: string; identity: number; ips: string[] }[];
          };
        }[];
      };
      const identityOf = new Map<string, number>();
      const stale = new Set<string>();
      for (const sl of slices.items)
        for (const e of sl.spec.endpoints) {
          const key = `${e.namespace}/${e.name}`;
          identityOf.set(key, e.identity);
          if (!fresh(e)) stale.add(key);
        }
      missing = [...pods.keys()].filter((k) => !identityOf.has(k) || stale.has(k));
      if (missing.length) return undefined;
      const states = (await custom.listClusterCustomObject({
        group: "netloom.io",
        version: "v1alpha1",
        plural: "nodenetworkstates",
      })) as {
        items: { metadata: { name: string }; status?: { policy?: { endpoints?: number } } }[];
      };
      for (const n of s.nodes) {
        const want = [...pods.values()].filter((p) => n.pods.includes(p)).length;
        const have =
          states.items.find((x) => x.metadata.name === n.name)?.status?.policy?.endpoints ?? 0;
        if (have < want) {
          missing = [`${n.name} enforces ${have} of ${want} pods`];
          return undefined;
        }
      }
      return identityOf;
    },
  );
}

/** The policies realized at their generation, and no node still holding a deleted one. */
async function waitRealized(
  kc: KubeConfig,
  s: BoxState,
  policies: readonly { namespace: string; name: string }[],
  timeoutMs: number,
): Promise<void> {
  const net = kc.makeApiClient(NetworkingV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  let pending = "";
  const wanted = new Set(policies.map((p) => `${p.namespace}/${p.name}`));
  await waitUntil(
    () => pending,
    timeoutMs,
    async () => {
      for (const p of policies) {
        const np = await net.readNamespacedNetworkPolicy(p);
        const raw = np.metadata?.annotations?.[REALIZATION_ANNOTATION];
        const summary = raw
          ? (JSON.parse(raw) as { generation: number; state: string })
          : undefined;
        if (summary?.generation !== np.metadata?.generation || summary?.state !== "Realized") {
          pending = `${p.namespace}/${p.name}: ${raw ?? "not realized yet"}`;
          return undefined;
        }
      }
      const states = (await custom.listClusterCustomObject({
        group: "netloom.io",
        version: "v1alpha1",
        plural: "nodenetworkstates",
      })) as {
        items: {
          metadata: { name: string };
          status?: { sources?: { networkPolicies?: { name: string }[] } };
        }[];
      };
      for (const st of states.items) {
        if (!s.nodes.some((n) => n.name === st.metadata.name)) continue;
        const stale = (st.status?.sources?.networkPolicies ?? []).find((r) => !wanted.has(r.name));
        if (stale) {
          pending = `${st.metadata.name} still enforces ${stale.name}`;
          return undefined;
        }
      }
      return true;
    },
  );
}
