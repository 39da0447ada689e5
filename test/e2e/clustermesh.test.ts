/**
 * Two clusters, one encrypted pod network: two real control planes ("east", ID 1, and "west",
 * ID 2), two nodes each as network namespaces on one underlay, the real kernel and
 * wireguard-go. Each cluster's operator mirrors the other's NodePeers through a ClusterMeshPeer
 * whose kubeconfig was minted by `netloom clustermesh kubeconfig` (a token bound to the
 * read-only remote role), and its agents peer with the remote nodes as with local ones.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { REPO_ROOT, readManifests } from "../../src/api/fixtures.js";
import {
  type BoxNode,
  type BoxState,
  boxDown,
  boxKubeConfig,
  boxTcpServer,
  wireguardInterfaceOf,
} from "../../src/box/box.js";
import { captureWhile, inNs, spawnInNs, tcpEcho } from "../../src/box/netns.js";
import {
  readControlPlaneState,
  startApiServer,
  stopApiServer,
} from "../../src/cluster/control-plane.js";
import { applyManifests } from "../../src/kube/apply.js";
import { kubeRequest } from "../../src/kube/raw.js";
import { skipWhen } from "../support/prerequisites.js";
import { allApplied, e2eUnavailable, objectReady, pingLoss, startBox, waitFor } from "./support.js";

const unavailable = e2eUnavailable([
  "wireguard-go",
  "wg",
  "tcpdump",
  "iptables",
  "bash",
  "timeout",
]);
const API = "/apis/netloom.io/v1alpha1";
const PEERS = `${API}/clustermeshpeers`;
const MIRRORS = `${API}/remotenodepeers`;
const ECHO_PORT = 7000;
const MARKER = "NETLOOM-MESH-PLAINTEXT-MARKER";

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}
interface MeshPeer {
  metadata: { name: string; generation: number };
  status?: {
    conditions?: Condition[];
    remoteNodes?: number;
    connected?: boolean;
    lastSyncTime?: string;
    localClusterName?: string;
    localClusterID?: number;
  };
}

describe("cluster mesh: two clusters, one encrypted pod network (real kernel)", {
  skip: skipWhen(unavailable),
}, () => {
  let east: BoxState;
  let west: BoxState;
  const req = (box: BoxState, method: string, path: string, body?: unknown, contentType?: string) =>
    kubeRequest(boxKubeConfig(box), method, path, {
      ...(body !== undefined ? { body } : {}),
      ...(contentType ? { contentType } : {}),
    });
  const ready = (p: MeshPeer | undefined) => p?.status?.conditions?.find((c) => c.type === "Ready");
  const peerOf = async (box: BoxState, name: string) => {
    const r = await req(box, "GET", `${PEERS}/${name}`);
    return r.status === 200 ? r.json<MeshPeer>() : undefined;
  };
  const waitPeer = (
    box: BoxState,
    name: string,
    what: string,
    ok: (p: MeshPeer) => boolean,
    ms = 60_000,
  ) =>
    waitFor(
      `${name}: ${what}`,
      async () => {
        const p = await peerOf(box, name);
        return p && ok(p) ? p : undefined;
      },
      ms,
    );
  const wgIf = wireguardInterfaceOf;
  const wgPeers = (box: BoxState, n: BoxNode) =>
    execFileSync("wg", ["show", wgIf(box, n), "peers"])
      .toString()
      .split("\n")
      .filter(Boolean);
  const apiPort = (box: BoxState) => {
    const cp = readControlPlaneState(join(box.dir, "cluster"));
    assert.ok(cp);
    return { cp, port: Number(new URL(cp.apiServerURL).port) };
  };

  /** `netloom clustermesh kubeconfig` against `remote`, stored in a Secret of `local`. */
  async function peerWith(
    local: BoxState,
    remote: BoxState,
    peer: { name: string; cluster: string; id: number; token?: string },
  ) {
    const { port } = apiPort(remote);
    let kubeconfig = execFileSync(
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
        peer.cluster,
        "--duration",
        "1h",
      ],
      { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
    );
    if (peer.token) kubeconfig = kubeconfig.replace(/"token": "[^"]+"/, `"token": "${peer.token}"`);
    const secret = `clustermesh-${peer.name}`;
    await req(local, "DELETE", `/api/v1/namespaces/netloom-system/secrets/${secret}`);
    const s = await req(local, "POST", "/api/v1/namespaces/netloom-system/secrets", {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: secret, namespace: "netloom-system" },
      data: { kubeconfig: Buffer.from(kubeconfig).toString("base64") },
    });
    assert.equal(s.status, 201, s.body);
    const p = await req(local, "POST", PEERS, {
      apiVersion: "netloom.io/v1alpha1",
      kind: "ClusterMeshPeer",
      metadata: { name: peer.name },
      spec: {
        clusterName: peer.cluster,
        clusterID: peer.id,
        kubeconfigSecretRef: { name: secret, namespace: "netloom-system", key: "kubeconfig" },
      },
    });
    assert.equal(p.status, 201, p.body);
  }

  /** A Node (and its NodePeer, with a made-up key) in `box` that no agent runs: peer data only. */
  async function fakeNode(box: BoxState, name: string, podCIDR: string): Promise<string> {
    const n = await req(box, "POST", "/api/v1/nodes", {
      apiVersion: "v1",
      kind: "Node",
      metadata: { name },
      spec: { podCIDR, podCIDRs: [podCIDR] },
    });
    assert.equal(n.status, 201, n.body);
    await waitFor(`NodePeer ${name}`, async () =>
      (await req(box, "GET", `${API}/nodepeers/${name}`)).status === 200 ? true : undefined,
    );
    const key = randomBytes(32).toString("base64");
    const s = await req(
      box,
      "PATCH",
      `${API}/nodepeers/${name}/status`,
      {
        status: { profile: "default", publicKey: key, nodeIP: "192.168.64.99", listenPort: 51871 },
      },
      "application/merge-patch+json",
    );
    assert.equal(s.status, 200, s.body);
    return key;
  }

  before(async () => {
    east = await startBox({
      prefix: "nma",
      underlayOctet: 64,
      nodes: 2,
      pods: [{ app: "east" }],
      operatorArgs: ["--cluster-name", "east", "--cluster-id", "1"],
    });
    west = await startBox({
      prefix: "nmb",
      underlayOctet: 64,
      nodes: 2,
      firstNode: 3,
      pods: [{ app: "west" }],
      underlay: { bridge: east.bridge, cloudNetns: east.cloudNetns },
      operatorArgs: ["--cluster-name", "west", "--cluster-id", "2"],
    });
    for (const box of [east, west]) {
      await applyManifests(
        boxKubeConfig(box),
        readManifests("config/samples").filter((m) =>
          ["NetworkConfig", "EncryptionProfile"].includes(m.object.kind),
        ),
        "e2e",
      );
      await objectReady(box, `${API}/encryptionprofiles/default`);
    }
    await peerWith(east, west, { name: "west", cluster: "west", id: 2 });
    await peerWith(west, east, { name: "east", cluster: "east", id: 1 });
  });
  after(async () => {
    spawnSyncQuiet("iptables", [
      "-D",
      "OUTPUT",
      "-p",
      "tcp",
      "-d",
      east?.gatewayIP ?? "",
      "--dport",
      String(westPort),
      "-j",
      "DROP",
    ]);
    spawnSyncQuiet("iptables", [
      "-D",
      "OUTPUT",
      "-p",
      "tcp",
      "-s",
      east?.gatewayIP ?? "",
      "--sport",
      String(westPort),
      "-j",
      "DROP",
    ]);
    // NETLOOM_KEEP_LOGS=<dir> keeps both operators' logs (the boxes' directories go away).
    const keep = process.env.NETLOOM_KEEP_LOGS;
    if (keep)
      for (const box of [east, west])
        if (box) {
          copyFileSync(join(box.dir, "operator.log"), join(keep, `${box.prefix}-operator.log`));
          for (const n of box.nodes)
            copyFileSync(join(box.dir, `agent-${n.name}.log`), join(keep, `agent-${n.name}.log`));
        }
    if (west) await boxDown(west.dir, west.prefix);
    if (east) await boxDown(east.dir, east.prefix);
  });
  let westPort = 0;

  it("each side's ClusterMeshPeer is Ready, shows both identities and mirrors the other cluster's nodes", async () => {
    const t0 = Date.now();
    for (const [box, name, local] of [
      [east, "west", "east"],
      [west, "east", "west"],
    ] as const) {
      const p = await waitPeer(
        box,
        name,
        "Ready with 2 remote nodes",
        (x) => ready(x)?.status === "True" && x.status?.remoteNodes === 2,
      );
      assert.equal(p.status?.connected, true);
      assert.equal(p.status?.localClusterName, local);
      assert.ok(p.status?.lastSyncTime);
    }
    const mirrors = (await req(east, "GET", MIRRORS)).json<{
      items: { metadata: { name: string } }[];
    }>();
    assert.deepEqual(mirrors.items.map((m) => m.metadata.name).sort(), [
      "west.nmb-node-3",
      "west.nmb-node-4",
    ]);
    process.stderr.write(`[mesh] both peers Ready ${Date.now() - t0} ms after they were created\n`);
    // At rest the mirrors are not rewritten: a write happens only when a remote node changes.
    const versions = async () =>
      (await req(east, "GET", MIRRORS))
        .json<{ items: { metadata: { name: string; resourceVersion: string } }[] }>()
        .items.map((m) => `${m.metadata.name}@${m.metadata.resourceVersion}`)
        .sort();
    const before = await versions();
    await sleep(6_000);
    assert.deepEqual(await versions(), before, "no mirror written at rest");
    // Every node has its local peer and the two remote ones.
    for (const [box, n] of [
      ...east.nodes.map((n) => [east, n] as const),
      ...west.nodes.map((n) => [west, n] as const),
    ])
      await waitFor(`${n.name}: 3 WireGuard peers`, () =>
        wgPeers(box, n).length === 3 ? true : undefined,
      );
  });

  it("a pod in east pings and opens TCP to a pod in west; the underlay carries only WireGuard UDP, never the plaintext", async () => {
    const from = east.nodes[0]!.pods[0]!;
    const to = west.nodes[0]!.pods[0]!;
    boxTcpServer(west, to.netns, "echo", ECHO_PORT, "echo");
    const a = east.nodes[0]!;
    const b = west.nodes[0]!;
    const file = join(east.dir, "mesh-capture.pcap");
    let ping = "";
    let echoed = "";
    const { packets, ascii } = await captureWhile(
      east.bridge,
      file,
      `ip and host ${a.ip} and host ${b.ip}`,
      () => {
        ping = inNs(from.netns, ["ping", "-c", "5", "-i", "0.2", "-W", "1", to.ip], true);
        echoed = tcpEcho(from.netns, to.ip, ECHO_PORT, MARKER);
      },
    );
    assert.match(ping, /5 received/, ping);
    assert.equal(echoed.trim(), MARKER, "TCP across clusters echoes");
    assert.ok(packets.length > 10, `the capture saw the traffic (${packets.length} packets)`);
    const other = packets.filter((l) => !/ UDP, length \d+$/.test(l) || !/\.51871[ :]/.test(l));
    assert.ok(!ascii.includes(MARKER), "the marker never shows in the capture's text");
    assert.deepEqual(other, [], "only WireGuard UDP between the nodes");
    assert.ok(
      !readFileSync(file).includes(MARKER),
      "the marker never crosses the underlay in clear",
    );
  });

  it("west's API server stopped: pods keep talking, east's peer says RemoteUnreachable, and Ready again when it is back", async () => {
    const from = east.nodes[1]!.pods[0]!;
    const to = west.nodes[1]!.pods[0]!;
    const { cp } = apiPort(west);
    const ping = spawnInNs(from.netns, ["ping", "-i", "0.01", "-c", "3000", "-W", "1", to.ip], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    ping.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    const done = new Promise<void>((r) => ping.on("exit", () => r()));
    await stopApiServer(cp);
    const stopped = Date.now();
    const p = await waitPeer(
      east,
      "west",
      "RemoteUnreachable",
      (x) => ready(x)?.reason === "RemoteUnreachable",
      30_000,
    );
    process.stderr.write(
      `[mesh] RemoteUnreachable ${Date.now() - stopped} ms after west's API server stopped\n`,
    );
    assert.equal(p.status?.remoteNodes, 2, "the mirrored nodes stay (last known good)");
    assert.equal(wgPeers(east, east.nodes[1]!).length, 3, "tunnels stay");
    await startApiServer(cp);
    const back = Date.now();
    await waitPeer(east, "west", "Ready again", (x) => ready(x)?.status === "True");
    process.stderr.write(`[mesh] Ready ${Date.now() - back} ms after west's API server was back\n`);
    await done;
    const { sent, received } = pingLoss(out);
    process.stderr.write(`[mesh] west's API server down: ping ${received}/${sent}\n`);
    assert.equal(received, sent, "pods keep talking while the remote API server is down");
  });

  it("east cut off from west's API server while west adds a node and deletes another: on reconnect east peers with the new one and has dropped the deleted one", async () => {
    westPort = apiPort(west).port;
    const gone = await fakeNode(west, "nmb-fake-1", "10.244.21.0/24");
    await waitFor("east mirrors nmb-fake-1", async () =>
      (await req(east, "GET", `${MIRRORS}/west.nmb-fake-1`)).status === 200 ? true : undefined,
    );
    await waitFor("east's agent peers with nmb-fake-1", () =>
      wgPeers(east, east.nodes[0]!).includes(gone) ? true : undefined,
    );
    // A partition: east's operator (this host) can no longer reach west's API server; west's
    // own operator (127.0.0.1) and agents (the bridge) still can.
    const rule = (op: "-A" | "-D") => [
      [
        "iptables",
        op,
        "OUTPUT",
        "-p",
        "tcp",
        "-d",
        east.gatewayIP,
        "--dport",
        String(westPort),
        "-j",
        "DROP",
      ],
      [
        "iptables",
        op,
        "OUTPUT",
        "-p",
        "tcp",
        "-s",
        east.gatewayIP,
        "--sport",
        String(westPort),
        "-j",
        "DROP",
      ],
    ];
    for (const [cmd, ...args] of rule("-A")) execFileSync(cmd!, args);
    const cut = Date.now();
    let added = "";
    try {
      await waitPeer(
        east,
        "west",
        "RemoteUnreachable",
        (x) => ready(x)?.reason === "RemoteUnreachable",
        30_000,
      );
      process.stderr.write(`[mesh] partition noticed after ${Date.now() - cut} ms\n`);
      const del = await req(west, "DELETE", "/api/v1/nodes/nmb-fake-1");
      assert.equal(del.status, 200, del.body);
      added = await fakeNode(west, "nmb-fake-2", "10.244.22.0/24");
      await waitFor("west deleted nmb-fake-1's NodePeer", async () =>
        (await req(west, "GET", `${API}/nodepeers/nmb-fake-1`)).status === 404 ? true : undefined,
      );
      assert.equal(
        (await req(east, "GET", `${MIRRORS}/west.nmb-fake-1`)).status,
        200,
        "nothing changes while cut off",
      );
    } finally {
      for (const [cmd, ...args] of rule("-D")) execFileSync(cmd!, args);
    }
    const healed = Date.now();
    await waitFor("east mirrors nmb-fake-2 and dropped nmb-fake-1", async () =>
      (await req(east, "GET", `${MIRRORS}/west.nmb-fake-2`)).status === 200 &&
      (await req(east, "GET", `${MIRRORS}/west.nmb-fake-1`)).status === 404
        ? true
        : undefined,
    );
    await waitFor("east's agent peers with nmb-fake-2, not nmb-fake-1", () => {
      const peers = wgPeers(east, east.nodes[0]!);
      return peers.includes(added) && !peers.includes(gone) ? true : undefined;
    });
    process.stderr.write(`[mesh] resynced ${Date.now() - healed} ms after the partition healed\n`);
    await req(west, "DELETE", "/api/v1/nodes/nmb-fake-2");
  });

  it("refuses bad meshes with clear messages: its own ID, overlapping pod CIDRs, wrong credentials", async () => {
    await peerWith(east, west, { name: "self", cluster: "selfie", id: 1 });
    const self = await waitPeer(
      east,
      "self",
      "Stalled",
      (x) => ready(x)?.reason === "DuplicateClusterID",
    );
    assert.match(ready(self)?.message ?? "", /clusterID 1 is this cluster's own \(east\)/);

    await peerWith(east, west, { name: "west-again", cluster: "west2", id: 3 });
    const overlap = await waitPeer(
      east,
      "west-again",
      "Stalled",
      (x) => ready(x)?.reason === "PodCIDROverlap",
    );
    assert.match(
      ready(overlap)?.message ?? "",
      /remote node west2\/nmb-node-3 10\.244\.3\.0\/24 overlaps node west\/nmb-node-3/,
    );
    const mirrors = (await req(east, "GET", MIRRORS)).json<{
      items: { metadata: { name: string } }[];
    }>();
    assert.ok(
      !mirrors.items.some((m) => m.metadata.name.startsWith("west2.")),
      "nothing programmed for it",
    );
    assert.equal(ready(await peerOf(east, "west"))?.status, "True", "the first peer keeps working");

    await peerWith(east, west, {
      name: "bad-token",
      cluster: "north",
      id: 4,
      token: "not-a-token",
    });
    const bad = await waitPeer(
      east,
      "bad-token",
      "Stalled",
      (x) => ready(x)?.reason === "RemoteUnauthorized",
    );
    assert.match(ready(bad)?.message ?? "", /answered 401: Unauthorized/);

    for (const name of ["self", "west-again", "bad-token"])
      await req(east, "DELETE", `${PEERS}/${name}`);
  });

  it("key rotation across clusters: three rotations per node under a 10 ms ping (loss counted; at most 2 of 4,500)", async () => {
    const from = east.nodes[0]!.pods[0]!;
    const to = west.nodes[1]!.pods[0]!;
    const keys = new Map<string, string[]>();
    const nodes = [
      ...east.nodes.map((n) => [east, n] as const),
      ...west.nodes.map((n) => [west, n] as const),
    ];
    // The mesh is up and the two pods talk before the count starts (also when this test runs
    // alone, right after the clusters were peered).
    for (const [box, name] of [
      [east, "west"],
      [west, "east"],
    ] as const)
      await waitPeer(box, name, "Ready with 2 remote nodes", (x) => x.status?.remoteNodes === 2);
    for (const [box, n] of nodes)
      await waitFor(`${n.name}: 3 WireGuard peers`, () =>
        wgPeers(box, n).length === 3 ? true : undefined,
      );
    await waitFor("the two pods ping", () =>
      /1 received/.test(inNs(from.netns, ["ping", "-c", "1", "-W", "1", to.ip], true))
        ? true
        : undefined,
    );
    for (const box of [east, west]) {
      const r = await req(
        box,
        "PATCH",
        `${API}/encryptionprofiles/default`,
        { spec: { wireguard: { keyRotationInterval: "10s" } } },
        "application/merge-patch+json",
      );
      assert.equal(r.status, 200, r.body);
      const generation = r.json<{ metadata: { generation: number } }>().metadata.generation;
      await allApplied(box, (s) => s.status?.sources?.encryptionProfile?.generation === generation);
    }
    const ping = spawnInNs(
      from.netns,
      ["ping", "-D", "-i", "0.01", "-c", "4500", "-W", "1", to.ip],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    ping.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    const done = new Promise<void>((r) => ping.on("exit", () => r()));
    const poll = (async () => {
      while (ping.exitCode === null) {
        for (const [box, n] of nodes) {
          const k = execFileSync("wg", ["show", wgIf(box, n), "public-key"])
            .toString()
            .trim();
          const seen = keys.get(n.name) ?? [];
          if (seen.at(-1) !== k) seen.push(k);
          keys.set(n.name, seen);
        }
        await sleep(500);
      }
    })();
    // How long an announced key takes from a west node's NodePeer to its mirror in east.
    const firstSeen = new Map<string, { source?: number; mirror?: number }>();
    const announcements = (async () => {
      while (ping.exitCode === null) {
        for (const n of west.nodes) {
          const src = (await req(west, "GET", `${API}/nodepeers/${n.name}`)).json<{
            status?: { nextPublicKey?: string };
          }>().status?.nextPublicKey;
          const mir = (await req(east, "GET", `${MIRRORS}/west.${n.name}`)).json<{
            spec?: { peer?: { nextPublicKey?: string } };
          }>().spec?.peer?.nextPublicKey;
          const now = Date.now();
          for (const [k, field] of [
            [src, "source"],
            [mir, "mirror"],
          ] as const) {
            if (!k) continue;
            const e = firstSeen.get(k) ?? {};
            e[field] ??= now;
            firstSeen.set(k, e);
          }
        }
        await sleep(100);
      }
    })();
    await done;
    await poll;
    await announcements;
    const delays = [...firstSeen.values()]
      .filter((e) => e.source !== undefined && e.mirror !== undefined)
      .map((e) => Math.max(0, (e.mirror ?? 0) - (e.source ?? 0)))
      .sort((x, y) => x - y);
    process.stderr.write(
      `[mesh] announced key, west NodePeer → east mirror: ${delays.length} announcements, median ${delays[Math.floor(delays.length / 2)] ?? "-"} ms, max ${delays.at(-1) ?? "-"} ms (polled every ~100 ms)\n`,
    );
    assert.ok(delays.length >= 3, "announcements were seen on both sides");
    for (const box of [east, west])
      await req(
        box,
        "PATCH",
        `${API}/encryptionprofiles/default`,
        { spec: { wireguard: { keyRotationInterval: "24h" } } },
        "application/merge-patch+json",
      );
    const keep = process.env.NETLOOM_KEEP_LOGS;
    if (keep) writeFileSync(join(keep, "rotation-ping.txt"), out);
    const { sent, received } = pingLoss(out);
    const rotations = [...keys.values()].map((k) => k.length - 1);
    const maxRtt = Math.max(...[...out.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1])));
    process.stderr.write(
      `[mesh] rotation across clusters: ping ${received}/${sent}, slowest round trip ${maxRtt} ms, rotations per node ${rotations.join(", ")}\n`,
    );
    // Across clusters the new key reaches the peer through the operator's mirror. 0 of 4,500
    // lost in every run since the mirror's stale-cache comparison, the unarmed fallback and
    // the rotation starvation were fixed; one CI run of six had lost 1 before them, never
    // reproduced since. The count is printed above; more than 2 fails.
    assert.ok(sent - received <= 2, `lost ${sent - received} of ${sent} across the rotations`);
    for (const r of rotations) assert.ok(r >= 3, `three rotations per node, got ${rotations}`);
  });
});

function spawnSyncQuiet(cmd: string, args: string[]): void {
  try {
    execFileSync(cmd, args, { stdio: "ignore" });
  } catch {}
}
