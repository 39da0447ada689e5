/**
 * `netloom demo mesh` (make demo-mesh): two clusters-in-a-box on one underlay, each with its own
 * control plane, operator and agents — "east" (ID 1) and "west" (ID 2) — peered through
 * ClusterMeshPeers whose kubeconfigs `netloom clustermesh kubeconfig` mints, then measured:
 * cross-cluster ping and TCP through WireGuard, and what the underlay carried.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { REPO_ROOT, readManifests } from "../api/fixtures.js";
import {
  type BoxState,
  boxDown,
  boxKubeConfig,
  boxTcpServer,
  boxUp,
  readBoxState,
  wireguardInterfaceOf,
} from "../box/box.js";
import { captureWhile, inNs, listNetns, tcpEcho } from "../box/netns.js";
import { locateBinaries } from "../cluster/binaries.js";
import { readControlPlaneState } from "../cluster/control-plane.js";
import { applyManifests } from "../kube/apply.js";
import { kubeRequest } from "../kube/raw.js";
import { ensureDemoTools, realKernelUnavailable } from "./demo.js";

const ROOT = resolve(".netloom", "demo-mesh");
const CLUSTERS = [
  { name: "east", id: 1, prefix: "nle", firstNode: 1 },
  { name: "west", id: 2, prefix: "nlw", firstNode: 3 },
] as const;
const UNDERLAY_OCTET = 52;
const API = "/apis/netloom.io/v1alpha1";
const ECHO_PORT = 7000;
const MARKER = "netloom-demo-mesh-marker";

const dirOf = (name: string) => join(ROOT, name);

async function waitFor<T>(what: string, f: () => Promise<T | undefined>, ms = 120_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

export async function demoMeshUp(say: (line: string) => void): Promise<number> {
  const why = realKernelUnavailable();
  if (why) {
    say(`the mesh demo needs the real kernel: ${why}`);
    return 1;
  }
  ensureDemoTools(say, ["wg", "tcpdump"]);
  if (CLUSTERS.some((c) => readBoxState(dirOf(c.name)) && listNetns(`${c.prefix}-`).length)) {
    say("a mesh demo is already running; stop it with: make demo-mesh-down");
    return 1;
  }
  const t0 = Date.now();
  const step = (what: string) =>
    say(`[demo-mesh +${((Date.now() - t0) / 1000).toFixed(1)}s] ${what}`);
  await demoMeshDown(() => {});
  const boxes: BoxState[] = [];
  for (const c of CLUSTERS) {
    step(`cluster ${c.name} (ID ${c.id}): a control plane, 2 nodes, 1 pod each`);
    boxes.push(
      await boxUp({
        dir: dirOf(c.name),
        prefix: c.prefix,
        underlayOctet: UNDERLAY_OCTET,
        nodes: 2,
        firstNode: c.firstNode,
        pods: [{ app: c.name }],
        operatorArgs: ["--cluster-name", c.name, "--cluster-id", String(c.id)],
        ...(boxes[0]
          ? { underlay: { bridge: boxes[0].bridge, cloudNetns: boxes[0].cloudNetns } }
          : {}),
        progress: (l) => step(`  ${c.name}: ${l}`),
      }),
    );
  }
  const [east, west] = boxes as [BoxState, BoxState];
  for (const box of boxes) {
    await applyManifests(
      boxKubeConfig(box),
      readManifests("config/samples").filter((m) =>
        ["NetworkConfig", "EncryptionProfile"].includes(m.object.kind),
      ),
      "netloom-demo",
    );
  }
  step("samples applied in both (EncryptionProfile: WireGuard, strict mode for 10.244.0.0/16)");
  for (const [local, remote, li] of [
    [east, west, 1],
    [west, east, 0],
  ] as const) {
    const peer = CLUSTERS[li]!;
    const port = new URL(readControlPlaneState(join(remote.dir, "cluster"))!.apiServerURL).port;
    const kubeconfig = execFileSync(
      process.execPath,
      [
        join(REPO_ROOT, "bin", "netloom.js"),
        "clustermesh",
        "kubeconfig",
        "--kubeconfig",
        remote.kubeconfigPath,
        "--server",
        `https://${remote.gatewayIP}:${port}`,
        "--cluster-name",
        peer.name,
      ],
      { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] },
    );
    const kc = boxKubeConfig(local);
    await kubeRequest(kc, "POST", "/api/v1/namespaces/netloom-system/secrets", {
      body: {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: `clustermesh-${peer.name}`, namespace: "netloom-system" },
        data: { kubeconfig: Buffer.from(kubeconfig).toString("base64") },
      },
    });
    await kubeRequest(kc, "POST", `${API}/clustermeshpeers`, {
      body: {
        apiVersion: "netloom.io/v1alpha1",
        kind: "ClusterMeshPeer",
        metadata: { name: peer.name },
        spec: {
          clusterName: peer.name,
          clusterID: peer.id,
          kubeconfigSecretRef: { name: `clustermesh-${peer.name}`, namespace: "netloom-system" },
        },
      },
    });
  }
  step("ClusterMeshPeers created (kubeconfigs minted by `netloom clustermesh kubeconfig`)");
  for (const [box, peer] of [
    [east, "west"],
    [west, "east"],
  ] as const) {
    await waitFor(`${peer} Ready`, async () => {
      const p = (
        await kubeRequest(boxKubeConfig(box), "GET", `${API}/clustermeshpeers/${peer}`)
      ).json<{
        status?: { conditions?: { type: string; status: string }[]; remoteNodes?: number };
      }>();
      const ready = p.status?.conditions?.find((c) => c.type === "Ready")?.status === "True";
      return ready && p.status?.remoteNodes === 2 ? true : undefined;
    });
  }
  step("both ClusterMeshPeers Ready; measuring pod to pod across the clusters");
  const wgPeers = (box: BoxState, node: string) =>
    execFileSync("wg", ["show", wireguardInterfaceOf(box, { name: node }), "peers"], {
      encoding: "utf8",
    })
      .split("\n")
      .filter(Boolean).length;
  for (const box of boxes)
    for (const n of box.nodes)
      await waitFor(`${n.name} peers`, async () => (wgPeers(box, n.name) === 3 ? true : undefined));

  const rows: string[][] = [];
  const file = join(ROOT, "underlay.pcap");
  for (const [a, b] of [
    [east.nodes[0]!, west.nodes[0]!],
    [east.nodes[1]!, west.nodes[1]!],
  ] as const) {
    const from = a.pods[0]!;
    const to = b.pods[0]!;
    boxTcpServer(west, to.netns, `echo-${to.name}`, ECHO_PORT, "echo");
    await sleep(300);
    let ping = "";
    let tcp = "";
    // The first packet waits for the WireGuard handshake: warm up, then measure.
    inNs(from.netns, ["ping", "-c", "3", "-i", "0.2", "-W", "2", to.ip], true);
    const { packets: lines } = await captureWhile(
      east.bridge,
      file,
      `ip and host ${a.ip} and host ${b.ip}`,
      () => {
        ping = inNs(from.netns, ["ping", "-c", "20", "-i", "0.05", "-W", "1", to.ip], true);
        tcp = tcpEcho(from.netns, to.ip, ECHO_PORT, MARKER);
      },
    );
    const wg = lines.filter((l) => /\.51871[ :]/.test(l) && / UDP, length \d+$/.test(l)).length;
    const received = /(\d+) received/.exec(ping)?.[1] ?? "0";
    const rtt = /= [\d.]+\/([\d.]+)\//.exec(ping)?.[1] ?? "-";
    rows.push([
      `${from.name} (east) → ${to.name} (west)`,
      `${received}/20, avg ${rtt} ms`,
      tcp === MARKER ? "✓ echoed" : "✗",
      `${wg}/${lines.length} WireGuard UDP`,
      readFileSync(file).includes(MARKER) ? "✗ seen" : "✓ never seen",
    ]);
  }
  const kubectl = locateBinaries()?.kubectl ?? "kubectl";
  for (const box of boxes) {
    const out = execFileSync(
      kubectl,
      ["--kubeconfig", box.kubeconfigPath, "get", "clustermeshpeers,remotenodepeers"],
      {
        encoding: "utf8",
      },
    );
    process.stdout.write(
      `\n$ KUBECONFIG=${box.kubeconfigPath.replace(`${process.cwd()}/`, "")} kubectl get clustermeshpeers,remotenodepeers\n${out}`,
    );
  }
  const header = ["pods", "ping", "TCP", "underlay packets", "plaintext marker"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ");
  process.stdout.write(`\n${line(header)}\n${rows.map(line).join("\n")}\n`);
  const rel = (p: string) => p.replace(`${process.cwd()}/`, "");
  process.stdout.write(`
Try next:
  KUBECONFIG=${rel(east.kubeconfigPath)} kubectl describe clustermeshpeer west
  KUBECONFIG=${rel(west.kubeconfigPath)} kubectl get nlrpeer -o wide
  make demo-mesh-down                              # remove both clusters
`);
  step("done");
  return rows.every((r) => r.every((c) => !c.startsWith("✗")) && r[1]!.startsWith("20/")) ? 0 : 1;
}

export async function demoMeshDown(say: (line: string) => void): Promise<number> {
  // West first: it uses east's underlay.
  for (const c of [...CLUSTERS].reverse()) await boxDown(dirOf(c.name), c.prefix);
  say("[demo-mesh down] both clusters removed");
  return 0;
}
