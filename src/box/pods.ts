import { createHash } from "node:crypto";
import type { KubeConfig } from "@kubernetes/client-node";
import { kubeRequest } from "../kube/raw.js";
import {
  type BoxNode,
  type BoxPod,
  type BoxPodPort,
  type BoxState,
  createPodNetwork,
  saveBoxState,
} from "./box.js";
import { inNs, ip, netnsExists, sysctl } from "./netns.js";
import { PodHelper, stopPodHelper } from "./probe.js";

// Pods that come and go in a running cluster-in-a-box: what a kubelet and a CNI plugin do for a
// scheduled pod (namespace, veth, addresses, routes, Pod status), with a pod helper
// (src/box/pod-helper.ts) standing in for its containers.

export interface BoxPodSpec {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  /** The node's name (e.g. "<prefix>-node-1"). */
  node: string;
  /** Container ports: in the Pod object (named ports) and listened on by the pod helper. */
  ports?: BoxPodPort[];
  /**
   * Labels of the namespace when it is created here; on an existing namespace they are merged
   * in (setBoxNamespaceLabels sets the exact set).
   */
  namespaceLabels?: Record<string, string>;
}

export interface AddBoxPodOptions {
  /** Start the pod helper (listeners on `ports`, probes from the pod); default true. */
  helper?: boolean;
}

/** Host part of the first address addBoxPod gives out: .10 and below stay free. */
const FIRST_HOST = 11;
const LAST_HOST = 254;

/** The label the API server puts on every namespace (and keeps there). */
const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

export function findBoxPod(s: BoxState, namespace: string, name: string): BoxPod | undefined {
  return s.nodes.flatMap((n) => n.pods).find((p) => p.namespace === namespace && p.name === name);
}

function nodeNamed(s: BoxState, name: string): BoxNode {
  const node = s.nodes.find((n) => n.name === name);
  if (!node)
    throw new Error(`no node ${name} in the box (${s.nodes.map((n) => n.name).join(", ")})`);
  return node;
}

const hostPart = (ip: string) => Number(ip.split(".").at(-1));

/**
 * Pure: the next free host part on `node`, round robin after the last one given out (as the
 * host-local IPAM plugin does), so a removed pod's address is not handed out again at once.
 */
export function nextPodHost(node: BoxNode): number {
  const used = new Set(node.pods.map((p) => hostPart(p.ip)));
  const start = node.lastPodHost ?? FIRST_HOST - 1;
  const span = LAST_HOST - FIRST_HOST + 1;
  for (let i = 1; i <= span; i++) {
    const h = FIRST_HOST + ((start - FIRST_HOST + i + span) % span);
    if (!used.has(h)) return h;
  }
  throw new Error(`node ${node.name}: no free address left in ${node.podCIDR}`);
}

/**
 * Pure: the host side of a pod's veth, as Cilium names it: "lxc" + 8 hex digits of a hash of
 * namespace/name (11 characters: fits IFNAMSIZ with room). `taken` forces another name.
 */
export function hostIfFor(
  namespace: string,
  name: string,
  taken: (n: string) => boolean = () => false,
): string {
  for (let salt = 0; ; salt++) {
    const key = salt === 0 ? `${namespace}/${name}` : `${namespace}/${name}#${salt}`;
    const n = `lxc${createHash("sha256").update(key).digest("hex").slice(0, 8)}`;
    if (!taken(n)) return n;
  }
}

/** Nodes route each other's IPv6 pod CIDRs over the underlay (metric 100, as IPv4's). */
function ensurePodRoutes6(s: BoxState): void {
  if (s.podRoutes6) return;
  for (const node of s.nodes)
    for (const other of s.nodes)
      if (other !== node)
        inNs(node.netns, [
          "ip",
          "-6",
          "route",
          "replace",
          other.podCIDR6,
          "via",
          other.ip6,
          "metric",
          "100",
        ]);
  s.podRoutes6 = true;
}

async function must(
  what: string,
  r: Promise<{ status: number; body: string }>,
  ok: (status: number) => boolean = (st) => st < 300,
): Promise<{ status: number; body: string }> {
  const res = await r;
  if (!ok(res.status)) throw new Error(`${what}: ${res.status} ${res.body.slice(0, 600)}`);
  return res;
}

/** Creates the namespace with `labels` unless it exists; merges `labels` into an existing one. */
export async function ensureBoxNamespace(
  kc: KubeConfig,
  namespace: string,
  labels: Record<string, string> = {},
): Promise<void> {
  const r = await kubeRequest(kc, "POST", "/api/v1/namespaces", {
    body: { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace, labels } },
  });
  if (r.status === 409) {
    if (Object.keys(labels).length > 0)
      await must(
        `namespace ${namespace} labels`,
        kubeRequest(kc, "PATCH", `/api/v1/namespaces/${namespace}`, {
          body: { metadata: { labels } },
          contentType: "application/merge-patch+json",
        }),
      );
  } else if (r.status >= 300) {
    throw new Error(`namespace ${namespace}: ${r.status} ${r.body.slice(0, 600)}`);
  }
}

/** A merge patch that makes `current` exactly `want` (absent keys deleted). */
function exactLabels(
  current: Record<string, string> | undefined,
  want: Record<string, string>,
  keep: string[] = [],
): Record<string, string | null> {
  const patch: Record<string, string | null> = { ...want };
  for (const k of Object.keys(current ?? {}))
    if (!(k in want) && !keep.includes(k)) patch[k] = null;
  return patch;
}

/**
 * Sets a namespace's labels to exactly `labels` (creating the namespace if missing). The API
 * server's own kubernetes.io/metadata.name stays (it would put it back anyway).
 */
export async function setBoxNamespaceLabels(
  kc: KubeConfig,
  namespace: string,
  labels: Record<string, string>,
): Promise<void> {
  const r = await kubeRequest(kc, "GET", `/api/v1/namespaces/${namespace}`);
  if (r.status === 404) return ensureBoxNamespace(kc, namespace, labels);
  if (r.status >= 300)
    throw new Error(`namespace ${namespace}: ${r.status} ${r.body.slice(0, 600)}`);
  const current = r.json<{ metadata: { labels?: Record<string, string> } }>().metadata.labels;
  await must(
    `namespace ${namespace} labels`,
    kubeRequest(kc, "PATCH", `/api/v1/namespaces/${namespace}`, {
      body: { metadata: { labels: exactLabels(current, labels, [NAMESPACE_NAME_LABEL]) } },
      contentType: "application/merge-patch+json",
    }),
  );
}

/** Sets a box pod's labels to exactly `labels`, in the Pod object and the box state. */
export async function setBoxPodLabels(
  s: BoxState,
  kc: KubeConfig,
  namespace: string,
  name: string,
  labels: Record<string, string>,
): Promise<void> {
  const pod = findBoxPod(s, namespace, name);
  if (!pod) throw new Error(`no pod ${namespace}/${name} in the box`);
  await must(
    `pod ${namespace}/${name} labels`,
    kubeRequest(kc, "PATCH", `/api/v1/namespaces/${namespace}/pods/${name}`, {
      body: { metadata: { labels: exactLabels(pod.labels, labels) } },
      contentType: "application/merge-patch+json",
    }),
  );
  pod.labels = { ...labels };
  saveBoxState(s);
}

function removeFromState(s: BoxState, pod: BoxPod): void {
  for (const n of s.nodes) n.pods = n.pods.filter((p) => p !== pod);
  saveBoxState(s);
}

/** Kills what runs in the pod's namespace, then removes its veth (both ends) and namespace. */
function deletePodNetwork(s: BoxState, pod: BoxPod): void {
  if (netnsExists(pod.netns)) {
    for (const pid of ip(["netns", "pids", pod.netns], true).split("\n").filter(Boolean)) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {}
    }
  }
  const node = s.nodes.find((n) => n.pods.includes(pod) || n.name === pod.node);
  // Deleting the host side takes the pod side, its routes and its proxy ARP with it now; a
  // namespace's devices otherwise go when the kernel gets round to destroying it.
  if (node && pod.hostIf) inNs(node.netns, ["ip", "link", "del", pod.hostIf], true);
  ip(["netns", "del", pod.netns], true);
}

/**
 * Adds a pod to a running box, as a kubelet and CNI plugin would: the Pod object (its namespace
 * first, if missing) with spec.nodeName and the named container ports; then the pod's network
 * namespace behind a veth `lxc<hash>` on its node with the next free IPv4 and IPv6 address of
 * the node's pod CIDRs (routes and proxy ARP as the fixed pods); then its helper (listening on
 * the ports); then the status: Running, podIP, podIPs [IPv4, IPv6].
 *
 * Addresses are taken before the first await and kept in box.json, so concurrent calls on one
 * BoxState never collide (two processes each holding their own BoxState could).
 */
export async function addBoxPod(
  s: BoxState,
  kc: KubeConfig,
  spec: BoxPodSpec,
  opts: AddBoxPodOptions = {},
): Promise<BoxPod> {
  if (s.simulated) throw new Error("addBoxPod needs the kernel: this box is simulated");
  const node = nodeNamed(s, spec.node);
  const existing = findBoxPod(s, spec.namespace, spec.name);
  if (existing)
    throw new Error(`pod ${spec.namespace}/${spec.name} is already in the box (${existing.netns})`);
  const host = nextPodHost(node);
  const allPods = s.nodes.flatMap((n) => n.pods);
  const hostIf = hostIfFor(
    spec.namespace,
    spec.name,
    (n) =>
      node.pods.some((p) => p.hostIf === n) ||
      allPods.some((p) => p.netns === `${s.prefix}-${n}`) ||
      netnsExists(`${s.prefix}-${n}`),
  );
  const prefix4 = node.podCIDR.split("/")[0]!.split(".").slice(0, 3).join(".");
  const prefix6 = node.podCIDR6.split("/")[0]!.replace(/::$/, "");
  const pod: BoxPod = {
    name: spec.name,
    namespace: spec.namespace,
    netns: `${s.prefix}-${hostIf}`,
    ip: `${prefix4}.${host}`,
    // As the fixed pods: the host part's decimal digits, read as IPv6 hex (.11 → ::11).
    ip6: `${prefix6}::${host}`,
    labels: { ...spec.labels },
    node: node.name,
    hostIf,
    dynamic: true,
    ports: (spec.ports ?? []).map((p) => ({ ...p })),
  };
  node.pods.push(pod);
  node.lastPodHost = host;
  saveBoxState(s);

  let created = false;
  try {
    ensurePodRoutes6(s);
    await ensureBoxNamespace(kc, spec.namespace, spec.namespaceLabels);
    await must(
      `pod ${spec.namespace}/${spec.name}`,
      kubeRequest(kc, "POST", `/api/v1/namespaces/${spec.namespace}/pods`, {
        body: {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: spec.name, namespace: spec.namespace, labels: pod.labels },
          spec: {
            nodeName: node.name,
            containers: [
              {
                name: "app",
                image: "registry.invalid/app:1",
                ports: pod.ports!.map((p) => ({
                  containerPort: p.port,
                  protocol: p.protocol,
                  ...(p.name ? { name: p.name } : {}),
                })),
              },
            ],
          },
        },
      }),
    );
    created = true;
    createPodNetwork(node, pod, hostIf, { quick: true });
    // Closed UDP ports answer every probe with a port unreachable, not 1/s per source.
    sysctl(pod.netns, "net.ipv4.icmp_ratelimit", "0");
    sysctl(pod.netns, "net.ipv6.icmp.ratelimit", "0");
    if (opts.helper ?? true) await PodHelper.start(s, pod);
    // No kubelet runs: the status is set through /status as a kubelet would.
    await must(
      `pod ${spec.namespace}/${spec.name} status`,
      kubeRequest(kc, "PATCH", `/api/v1/namespaces/${spec.namespace}/pods/${spec.name}/status`, {
        body: {
          status: {
            phase: "Running",
            podIP: pod.ip,
            podIPs: [{ ip: pod.ip }, { ip: pod.ip6 }],
          },
        },
        contentType: "application/merge-patch+json",
      }),
    );
    saveBoxState(s);
    return pod;
  } catch (err) {
    await stopPodHelper(pod).catch(() => {});
    deletePodNetwork(s, pod);
    if (created) await deletePodObject(kc, spec.namespace, spec.name).catch(() => {});
    removeFromState(s, pod);
    throw err;
  }
}

/** Deletes a Pod object at once (no kubelet would ever confirm a graceful deletion). */
async function deletePodObject(kc: KubeConfig, namespace: string, name: string): Promise<void> {
  await must(
    `delete pod ${namespace}/${name}`,
    // A query parameter, not a DeleteOptions body: kubeRequest sends a DELETE's body without
    // Content-Length (Node does not chunk DELETE), so the server ignores it.
    kubeRequest(kc, "DELETE", `/api/v1/namespaces/${namespace}/pods/${name}?gracePeriodSeconds=0`),
    (st) => st < 300 || st === 404,
  );
}

/**
 * Removes a pod from the box, in a kubelet's order: its helper (and anything else running in
 * it) stops, its veth and namespace go, then its Pod object (grace period 0).
 */
export async function removeBoxPod(
  s: BoxState,
  kc: KubeConfig,
  namespace: string,
  name: string,
): Promise<void> {
  const pod = findBoxPod(s, namespace, name);
  if (!pod) throw new Error(`no pod ${namespace}/${name} in the box`);
  await stopPodHelper(pod);
  deletePodNetwork(s, pod);
  await deletePodObject(kc, namespace, name);
  removeFromState(s, pod);
}
