import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { DEFAULT_LEASE_NAMESPACE } from "../agent/lease.js";
import { REPO_ROOT } from "../api/fixtures.js";
import {
  type ControlPlaneState,
  startControlPlane,
  stopControlPlane,
} from "../cluster/control-plane.js";
import { installCRDs } from "../kube/crds.js";
import { newKubeConfig } from "../kube/kubeconfig.js";
import { ensureNamespace } from "../kube/namespace.js";
import { kubeRequest } from "../kube/raw.js";
import { spawnDaemon, terminate } from "../util/process.js";
import { inNs, ip, listNetns, netnsExists, sh, sysctl } from "./netns.js";

export interface BoxPod {
  name: string;
  namespace: string;
  netns: string;
  ip: string;
  /**
   * The pod's IPv6 address (the box is dual-stack; the fixed pods' Pod objects carry only the
   * IPv4 one, those of addBoxPod both).
   */
  ip6: string;
  labels: Record<string, string>;
  /** The node it runs on (set for pods planned or added since this field exists). */
  node?: string;
  /** The host side of its veth, in the node's namespace (`vp<j>` fixed, `lxc<hash>` added). */
  hostIf?: string;
  /** Added by addBoxPod (src/box/pods.ts) rather than planned by boxUp. */
  dynamic?: boolean;
  /** Its container ports (addBoxPod), as in the Pod object. */
  ports?: BoxPodPort[];
  /** Its pod helper (src/box/pod-helper.ts), when one was started. */
  helperPid?: number;
}

export interface BoxPodPort {
  name?: string;
  port: number;
  protocol: "TCP" | "UDP";
}

export interface BoxNode {
  name: string;
  netns: string;
  ip: string;
  ip6: string;
  podCIDR: string;
  podCIDR6: string;
  pods: BoxPod[];
  /** The host part of the last address addBoxPod gave out here (round robin, as host-local). */
  lastPodHost?: number;
}

export interface BoxState {
  dir: string;
  prefix: string;
  bridge: string;
  gatewayIP: string;
  cloudNetns: string;
  cloudIP: string;
  cloudIP6: string;
  nodes: BoxNode[];
  kubeconfigPath: string;
  agentKubeconfigPath: string;
  bpfPinRoot: string;
  stateRoot: string;
  pids: { operator?: number; agents: Record<string, number>; extra: number[] };
  simulated?: boolean;
  /** The bridge and cloud belong to another box (BoxOptions.underlay): not created or removed. */
  joinedUnderlay?: boolean;
  operatorArgs?: string[];
  /** Nodes route each other's IPv6 pod CIDRs over the underlay (set by addBoxPod). */
  podRoutes6?: boolean;
}

export interface BoxOptions {
  /** Where everything the box writes lives (control plane, logs, kubeconfigs). */
  dir: string;
  /** Names of every netns, link and pin start with it; keeps two boxes apart. */
  prefix: string;
  /** Third octet of the underlay 192.168.X.0/24. */
  underlayOctet: number;
  nodes: number;
  /** Labels of pod j (0-based) on every node. */
  pods: Record<string, string>[];
  /** Run the operator and agents (false: only namespaces and objects). */
  startProcesses?: boolean;
  agentArgs?: string[];
  operatorArgs?: string[];
  /** Number of the first node (node n: address .10+n, pod CIDR 10.244.n.0/24); default 1. */
  firstNode?: number;
  /**
   * Join another box's underlay (its bridge and its cloud) instead of making one: a second
   * cluster on the same network, for cluster mesh. Give it other node numbers (firstNode).
   */
  underlay?: { bridge: string; cloudNetns: string };
  /** No namespaces and no kernel: agents with the in-memory driver (for machines without root). */
  simulated?: boolean;
  progress?: (line: string) => void;
}

const STATE = "box.json";
const NETLOOM = join(REPO_ROOT, "bin", "netloom.js");

export function readBoxState(dir: string): BoxState | undefined {
  const p = join(resolve(dir), STATE);
  return existsSync(p) ? (JSON.parse(readFileSync(p, "utf8")) as BoxState) : undefined;
}

function saveState(s: BoxState): void {
  writeFileSync(join(s.dir, STATE), `${JSON.stringify(s, null, 2)}\n`);
}

/** Writes the box's state (box.json) after a change made outside this module. */
export const saveBoxState = saveState;

/** Pure: the addresses and names of a box, before anything is created. */
export function planBox(opts: BoxOptions): BoxState {
  const dir = resolve(opts.dir);
  const p = opts.prefix;
  const net = `192.168.${opts.underlayOctet}`;
  const net6 = `fd00:0:${opts.underlayOctet}:`;
  const nodes: BoxNode[] = Array.from({ length: opts.nodes }, (_, i) => {
    const n = (opts.firstNode ?? 1) + i;
    const name = `${p}-node-${n}`;
    return {
      name,
      netns: name,
      ip: `${net}.${10 + n}`,
      ip6: `${net6}:${10 + n}`,
      podCIDR: `10.244.${n}.0/24`,
      podCIDR6: `fd00:244:${n}::/64`,
      pods: opts.pods.map((labels, j) => ({
        name: `${labels.app ?? "pod"}-${n}-${j + 1}`,
        namespace: "default",
        netns: `${p}-n${n}p${j + 1}`,
        ip: `10.244.${n}.${10 + j + 1}`,
        ip6: `fd00:244:${n}::${10 + j + 1}`,
        labels,
        node: name,
        hostIf: `vp${j + 1}`,
      })),
    };
  });
  return {
    dir,
    prefix: p,
    bridge: opts.underlay?.bridge ?? `${p}br0`,
    gatewayIP: `${net}.1`,
    cloudNetns: opts.underlay?.cloudNetns ?? `${p}-cloud`,
    cloudIP: `${net}.254`,
    cloudIP6: `${net6}:fe`,
    nodes,
    kubeconfigPath: join(dir, "kubeconfig"),
    agentKubeconfigPath: join(dir, "agent-kubeconfig"),
    bpfPinRoot: `/sys/fs/bpf/${p}`,
    stateRoot: join(dir, "state"),
    pids: { agents: {}, extra: [] },
    ...(opts.underlay ? { joinedUnderlay: true } : {}),
    ...(opts.simulated ? { simulated: true } : {}),
  };
}

/** The metadata endpoint every sample denies; the box's "cloud" answers on it. */
export const METADATA_IP = "169.254.169.254";
/** Its IPv6 address (as on AWS Nitro instances); the cloud answers there too. */
export const METADATA_IP6 = "fd00:ec2::254";
/** The node side of every pod's veth: the pods' IPv6 gateway (Calico uses the same trick). */
const POD_GATEWAY6 = "fe80::1";

function createNetwork(s: BoxState): void {
  if (!s.joinedUnderlay) {
    ip(["link", "add", s.bridge, "type", "bridge"]);
    ip(["addr", "add", `${s.gatewayIP}/24`, "dev", s.bridge]);
    ip(["link", "set", s.bridge, "up"]);
  }
  const attach = (ns: string, hostIf: string, addr: string, addr6: string) => {
    ip(["netns", "add", ns]);
    ip(["link", "add", hostIf, "type", "veth", "peer", "name", "eth0", "netns", ns]);
    ip(["link", "set", hostIf, "master", s.bridge, "up"]);
    inNs(ns, ["ip", "addr", "add", `${addr}/24`, "dev", "eth0"]);
    inNs(ns, ["ip", "-6", "addr", "add", `${addr6}/64`, "dev", "eth0", "nodad"]);
    inNs(ns, ["ip", "link", "set", "eth0", "up"]);
    inNs(ns, ["ip", "link", "set", "lo", "up"]);
  };
  // The cloud: an upstream host on the underlay that also answers on the metadata address.
  if (!s.joinedUnderlay) {
    attach(s.cloudNetns, `${s.prefix}c`, s.cloudIP, s.cloudIP6);
    inNs(s.cloudNetns, ["ip", "addr", "add", `${METADATA_IP}/32`, "dev", "eth0"]);
    inNs(s.cloudNetns, ["ip", "-6", "addr", "add", `${METADATA_IP6}/128`, "dev", "eth0", "nodad"]);
  }
  for (const [i, node] of s.nodes.entries()) {
    attach(node.netns, `${s.prefix}n${i + 1}`, node.ip, node.ip6);
    // The cloud answers pods directly (no NAT in the box), so it routes pod CIDRs to nodes.
    inNs(s.cloudNetns, ["ip", "route", "add", node.podCIDR, "via", node.ip]);
    inNs(s.cloudNetns, ["ip", "-6", "route", "add", node.podCIDR6, "via", node.ip6]);
    sysctl(node.netns, "net.ipv4.ip_forward", "1");
    sysctl(node.netns, "net.ipv6.conf.all.forwarding", "1");
    sysctl(node.netns, "net.ipv4.conf.all.rp_filter", "0");
    inNs(node.netns, ["ip", "route", "add", "default", "via", s.gatewayIP]);
    inNs(node.netns, ["ip", "route", "add", `${METADATA_IP}/32`, "via", s.cloudIP]);
    inNs(node.netns, ["ip", "-6", "route", "add", `${METADATA_IP6}/128`, "via", s.cloudIP6]);
    for (const other of s.nodes) {
      // Metric 100: WireGuard's routes (metric 0) win while the tunnel is up; without it pod
      // traffic falls back to the underlay in clear, where strict mode must drop it.
      if (other !== node)
        inNs(node.netns, ["ip", "route", "add", other.podCIDR, "via", other.ip, "metric", "100"]);
    }
    for (const [j, pod] of node.pods.entries()) createPodNetwork(node, pod, `vp${j + 1}`);
  }
}

/**
 * A pod's namespace behind a veth on its node, with Calico's routing: a /32 (/128) route to the
 * pod on the host side, proxy ARP for the pod's IPv4 gateway, fe80::1 as its IPv6 gateway.
 *
 * `quick` (pods added to a running box): usable the moment this returns, as Calico's workload
 * interfaces are: no IPv6 duplicate address detection on either end of the veth (a tentative
 * fe80::1 answers no neighbour solicitation for a second or two) and no proxy ARP delay (the
 * kernel's default delays each proxied answer by up to 0.8 s). boxUp's pods keep the defaults.
 */
export function createPodNetwork(
  node: BoxNode,
  pod: BoxPod,
  hostIf: string,
  opts: { quick?: boolean } = {},
): void {
  ip(["netns", "add", pod.netns]);
  inNs(node.netns, [
    "ip",
    "link",
    "add",
    hostIf,
    "type",
    "veth",
    "peer",
    "name",
    "eth0",
    "netns",
    pod.netns,
  ]);
  if (opts.quick) {
    // Before the links come up, which starts DAD on their link-local addresses.
    sysctl(node.netns, `net.ipv6.conf.${hostIf}.accept_dad`, "0");
    sysctl(pod.netns, "net.ipv6.conf.eth0.accept_dad", "0");
    sysctl(node.netns, `net.ipv4.neigh.${hostIf}.proxy_delay`, "0");
  }
  inNs(node.netns, ["ip", "link", "set", hostIf, "up"]);
  // Calico's routing: the node answers ARP for the pod's gateway on the pod's veth.
  sysctl(node.netns, `net.ipv4.conf.${hostIf}.proxy_arp`, "1");
  inNs(node.netns, ["ip", "route", "add", `${pod.ip}/32`, "dev", hostIf]);
  inNs(node.netns, ["ip", "-6", "addr", "add", `${POD_GATEWAY6}/64`, "dev", hostIf]);
  inNs(node.netns, ["ip", "-6", "route", "add", `${pod.ip6}/128`, "dev", hostIf]);
  inNs(pod.netns, ["ip", "link", "set", "lo", "up"]);
  inNs(pod.netns, ["ip", "addr", "add", `${pod.ip}/32`, "dev", "eth0"]);
  inNs(pod.netns, ["ip", "link", "set", "eth0", "up"]);
  inNs(pod.netns, ["ip", "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"]);
  inNs(pod.netns, ["ip", "route", "add", "default", "via", "169.254.1.1", "dev", "eth0"]);
  inNs(pod.netns, ["ip", "-6", "addr", "add", `${pod.ip6}/128`, "dev", "eth0", "nodad"]);
  inNs(pod.netns, ["ip", "-6", "route", "add", "default", "via", POD_GATEWAY6, "dev", "eth0"]);
}

async function registerObjects(kc: KubeConfig, s: BoxState): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  for (const node of s.nodes) {
    await core.createNode({
      body: {
        metadata: { name: node.name, labels: { "kubernetes.io/hostname": node.name } },
        spec: { podCIDR: node.podCIDR, podCIDRs: [node.podCIDR] },
      },
    });
    // No kubelet runs: the address is set through /status as a kubelet would.
    await kubeRequest(kc, "PATCH", `/api/v1/nodes/${node.name}/status`, {
      body: { status: { addresses: [{ type: "InternalIP", address: node.ip }] } },
      contentType: "application/merge-patch+json",
    });
    for (const pod of node.pods) {
      await core.createNamespacedPod({
        namespace: pod.namespace,
        body: {
          metadata: { name: pod.name, namespace: pod.namespace, labels: pod.labels },
          spec: {
            nodeName: node.name,
            containers: [{ name: "app", image: "registry.invalid/app:1" }],
          },
        },
      });
      await kubeRequest(
        kc,
        "PATCH",
        `/api/v1/namespaces/${pod.namespace}/pods/${pod.name}/status`,
        {
          body: { status: { phase: "Running", podIP: pod.ip, podIPs: [{ ip: pod.ip }] } },
          contentType: "application/merge-patch+json",
        },
      );
    }
  }
}

function launch(s: BoxState, name: string, cmd: string, args: string[], ns?: string): number {
  const log = join(s.dir, `${name}.log`);
  const child = ns
    ? spawnDaemon("nsenter", [`--net=/run/netns/${ns}`, cmd, ...args], log)
    : spawnDaemon(cmd, args, log);
  return child.pid ?? 0;
}

/**
 * Starts an operator. The box's own is "operator"; others (replicas with --leader-elect, for
 * fault tests) are remembered for teardown like any extra process. Returns its pid.
 */
export function startOperator(s: BoxState, extraArgs: string[] = [], name = "operator"): number {
  const pid = launch(s, name, process.execPath, [
    NETLOOM,
    "operator",
    "--kubeconfig",
    s.kubeconfigPath,
    "--metrics-port",
    "0",
    ...(s.operatorArgs ?? []),
    ...extraArgs,
  ]);
  if (name === "operator") s.pids.operator = pid;
  else s.pids.extra.push(pid);
  saveState(s);
  return pid;
}

/**
 * The WireGuard interface a node's agent uses in the box: wireguard-go's sockets
 * (/var/run/wireguard/<if>.sock) are shared by all namespaces, so names carry the box prefix.
 */
export function wireguardInterfaceOf(s: BoxState, node: { name: string }): string {
  return `${s.prefix}wg${node.name.split("-").at(-1)}`;
}

export function startAgent(s: BoxState, node: BoxNode, extraArgs: string[] = []): number {
  const args = [
    NETLOOM,
    "agent",
    "--node",
    node.name,
    "--kubeconfig",
    s.simulated ? s.kubeconfigPath : s.agentKubeconfigPath,
    "--heartbeat",
    "5s",
    ...(s.simulated
      ? ["--driver", "memory", "--metrics-port", "0", "--state-dir", join(s.stateRoot, node.name)]
      : [
          "--bpffs",
          join(s.bpfPinRoot, node.name),
          "--state-dir",
          join(s.stateRoot, node.name),
          "--wireguard-interface",
          wireguardInterfaceOf(s, node),
        ]),
    ...extraArgs,
  ];
  const pid = launch(
    s,
    `agent-${node.name}`,
    process.execPath,
    args,
    s.simulated ? undefined : node.netns,
  );
  s.pids.agents[node.name] = pid;
  saveState(s);
  return pid;
}

/**
 * The cluster-in-a-box: a real control plane, N nodes as network namespaces on an underlay
 * bridge, pods as namespaces behind veths on their node, Node and Pod objects through the API,
 * the operator and one agent per node (in the node's namespace).
 */
export async function boxUp(opts: BoxOptions): Promise<BoxState> {
  const say = opts.progress ?? (() => {});
  const s = planBox(opts);
  if (readBoxState(s.dir) && listNetns(`${s.prefix}-`).length > 0) {
    throw new Error(
      `a cluster-in-a-box with prefix ${s.prefix} is already running (state in ${s.dir})`,
    );
  }
  mkdirSync(s.dir, { recursive: true });
  saveState(s);
  if (!s.simulated) await createKernelParts(s, say, opts.pods.length);
  say("starting etcd and kube-apiserver");
  const cp: ControlPlaneState = await startControlPlane({
    dir: join(s.dir, "cluster"),
    kubeconfigPath: s.kubeconfigPath,
    ...(s.simulated ? {} : { extraAddresses: [s.gatewayIP] }),
    progress: (l) => say(`  ${l}`),
  });
  if (!s.simulated) {
    const port = new URL(cp.apiServerURL).port;
    writeFileSync(
      s.agentKubeconfigPath,
      readFileSync(s.kubeconfigPath, "utf8").replace(
        cp.apiServerURL,
        `https://${s.gatewayIP}:${port}`,
      ),
      { mode: 0o600 },
    );
  }
  return finishBox(s, opts, say);
}

async function createKernelParts(
  s: BoxState,
  say: (l: string) => void,
  pods: number,
): Promise<void> {
  sh("sh", ["-c", "mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf"]);
  say(
    `creating the underlay ${s.bridge} (${s.gatewayIP}/24), ${s.nodes.length} node and ${s.nodes.length * pods} pod namespaces`,
  );
  createNetwork(s);
}

async function finishBox(
  s: BoxState,
  opts: BoxOptions,
  say: (l: string) => void,
): Promise<BoxState> {
  const kc = newKubeConfig();
  kc.loadFromFile(s.kubeconfigPath);
  say("installing CRDs; registering Nodes and Pods");
  await installCRDs(kc);
  await ensureNamespace(kc, DEFAULT_LEASE_NAMESPACE); // where the agents renew their Leases
  await ensureNamespace(kc, "netloom-system"); // operator leader election (fault tests)
  await registerObjects(kc, s);
  if (opts.startProcesses ?? true) {
    say("starting the operator and one agent per node");
    if (opts.operatorArgs) s.operatorArgs = opts.operatorArgs;
    startOperator(s);
    for (const node of s.nodes) startAgent(s, node, opts.agentArgs);
  }
  saveState(s);
  return s;
}

/** Removes every process, namespace, link, pin and file of a box; safe to call twice. */
export async function boxDown(dir: string, prefixHint?: string): Promise<void> {
  const s = readBoxState(dir);
  const prefix = s?.prefix ?? prefixHint;
  if (s) {
    await Promise.all(Object.values(s.pids.agents).map((p) => terminate(p)));
    await terminate(s.pids.operator);
    await Promise.all(s.pids.extra.map((p) => terminate(p, "SIGKILL")));
  }
  if (prefix) {
    // Anything still running inside the box's namespaces (servers started by tests).
    for (const ns of listNetns(`${prefix}-`)) {
      for (const pid of ip(["netns", "pids", ns], true).split("\n").filter(Boolean)) {
        try {
          process.kill(Number(pid), "SIGKILL");
        } catch {}
      }
      ip(["netns", "del", ns], true);
    }
    ip(["link", "del", `${prefix}br0`], true);
    if (existsSync(`/sys/fs/bpf/${prefix}`))
      rmSync(`/sys/fs/bpf/${prefix}`, { recursive: true, force: true });
    // wireguard-go sockets of this box's interfaces.
    sh("sh", ["-c", `rm -f /var/run/wireguard/${prefix}*.sock`], { allowFail: true });
  }
  if (s) {
    await stopControlPlane(join(s.dir, "cluster"));
    rmSync(s.dir, { recursive: true, force: true });
  }
}

export function boxKubeConfig(s: BoxState): KubeConfig {
  const kc = newKubeConfig();
  kc.loadFromFile(s.kubeconfigPath);
  return kc;
}

/** Start a long-running process in a namespace, remembered for teardown. */
/** A process of the box (in network namespace `ns`, or on the host when undefined), logged to <dir>/<name>.log and stopped by boxDown. */
export function boxSpawn(s: BoxState, ns: string | undefined, name: string, cmd: string[]): number {
  const pid = launch(s, name, cmd[0]!, cmd.slice(1), ns);
  s.pids.extra.push(pid);
  saveState(s);
  return pid;
}

export { netnsExists };

/**
 * A TCP server in a namespace, remembered for teardown: "ok" answers and closes (the cloud),
 * "echo" sends back what it gets. Clients that reset the connection (bash's /dev/tcp closes at
 * once) must not crash it, so socket errors are ignored.
 */
export function boxTcpServer(
  s: BoxState,
  ns: string,
  name: string,
  port: number,
  mode: "ok" | "echo",
): number {
  const handler = mode === "ok" ? 's.end("ok")' : "s.pipe(s)";
  return boxSpawn(s, ns, name, [
    process.execPath,
    "-e",
    `require("net").createServer((s) => { s.on("error", () => {}); ${handler}; }).listen(${port})`,
  ]);
}
