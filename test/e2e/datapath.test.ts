import assert from "node:assert/strict";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { REPO_ROOT, readManifests } from "../../src/api/fixtures.js";
import {
  type BoxState,
  boxDown,
  boxKubeConfig,
  boxSpawn,
  boxTcpServer,
  METADATA_IP,
  METADATA_IP6,
  startAgent,
} from "../../src/box/box.js";
import { inNs, spawnInNs } from "../../src/box/netns.js";
import { classMinorFor, parseHtbClasses } from "../../src/datapath-driver/linux/htb.js";
import { applyManifests } from "../../src/kube/apply.js";
import { kubeRequest } from "../../src/kube/raw.js";
import { terminate } from "../../src/util/process.js";
import { skipWhen } from "../support/prerequisites.js";
import {
  allApplied,
  canConnect,
  e2eUnavailable,
  nodeState,
  objectReady,
  pingLoss,
  scrape,
  startBox,
  waitFor,
} from "./support.js";

const unavailable = e2eUnavailable(["iperf3", "bash", "timeout"]);
const CLOUD_PORT = 8080;

describe("datapath on the real kernel (cluster-in-a-box, 2 nodes)", {
  skip: skipWhen(unavailable),
}, () => {
  let box: BoxState;
  const node1 = () => box.nodes[0]!;
  const node2 = () => box.nodes[1]!;
  const metricsURL = (i: number) => `http://${box.nodes[i]!.ip}:9962/metrics`;
  const samples = () => readManifests("config/samples");
  const sample = (kind: string) => samples().filter((m) => m.object.kind === kind);
  const ncPath = "/apis/netloom.io/v1alpha1/networkconfigs/default";

  before(async () => {
    box = await startBox({
      prefix: "nlt",
      underlayOctet: 61,
      nodes: 2,
      pods: [{ app: "landing-page" }, { app: "api" }],
    });
    boxTcpServer(box, box.cloudNetns, "cloud-server", CLOUD_PORT, "ok");
    for (const pod of node2().pods)
      boxSpawn(box, pod.netns, `iperf3-${pod.name}`, ["iperf3", "-s", "-p", "5201"]);
    await allApplied(box, (s) => s.status?.datapath?.driver === "linux");
  });
  after(async () => {
    if (box) await boxDown(box.dir, box.prefix);
  });

  it("egress deny blocks the metadata endpoint, allows the rest, and counts the drops", async () => {
    const pod = node1().pods[0]!;
    assert.ok(canConnect(pod.netns, METADATA_IP, CLOUD_PORT), "reachable before any policy");
    assert.ok(canConnect(pod.netns, METADATA_IP6, CLOUD_PORT), "IPv6: reachable before any policy");
    await applyManifests(boxKubeConfig(box), sample("NetworkConfig"), "e2e");
    await objectReady(box, ncPath);
    await allApplied(box, (s) => s.status?.sources?.networkConfig?.name === "default");
    const policyDrops = () =>
      scrape(metricsURL(0), "netloom_agent_drops_total", 'reason="policy_denied"');
    const before = await policyDrops();
    assert.equal(
      canConnect(pod.netns, METADATA_IP, CLOUD_PORT),
      false,
      "metadata endpoint is denied",
    );
    assert.ok(canConnect(pod.netns, box.cloudIP, CLOUD_PORT), "other destinations stay reachable");
    const afterV4 = await policyDrops();
    assert.equal(
      canConnect(pod.netns, METADATA_IP6, CLOUD_PORT),
      false,
      "the metadata endpoint's IPv6 address is denied too",
    );
    assert.ok(
      canConnect(pod.netns, box.cloudIP6, CLOUD_PORT),
      "other IPv6 destinations stay reachable",
    );
    const afterV6 = await policyDrops();
    assert.ok(afterV4 > before, `IPv4 drops counted as policy_denied: ${before} → ${afterV4}`);
    assert.ok(afterV6 > afterV4, `IPv6 drops counted as policy_denied: ${afterV4} → ${afterV6}`);
  });

  it("a 50M BandwidthPolicy caps its pod within ±5 % (HTB wire rate); an unlimited pod is not capped", async () => {
    await applyManifests(boxKubeConfig(box), sample("BandwidthPolicy"), "e2e");
    await objectReady(
      box,
      "/apis/netloom.io/v1alpha1/namespaces/default/bandwidthpolicies/landing-page",
    );
    await allApplied(box);
    const limited = node1().pods[0]!;
    const unlimited = node1().pods[1]!;
    const target = node2().pods[1]!;
    const minor = classMinorFor(limited.ip).toString(16);
    const classBytes = () =>
      parseHtbClasses(inNs(node1().netns, ["tc", "-s", "class", "show", "dev", "eth0"])).get(
        Number.parseInt(minor, 16),
      )?.sentBytes ?? 0;
    // The wire rate is sampled in the steady part of the run (2.5 s to 6.5 s of 8 s): process
    // start, slow start and teardown would otherwise count as time at a lower rate.
    const iperf = async (ns: string) => {
      const child = spawnInNs(
        ns,
        ["iperf3", "-c", target.ip, "-p", "5201", "-t", "8", "-O", "1", "-J"],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      let out = "";
      child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
      const exited = new Promise<void>((r) => child.on("exit", () => r()));
      await sleep(2500);
      const b1 = classBytes();
      const t1 = performance.now();
      await sleep(4000);
      const b2 = classBytes();
      const t2 = performance.now();
      await exited;
      const result = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
      const wire = ((b2 - b1) * 8) / ((t2 - t1) / 1000);
      return { goodput: result.end.sum_received.bits_per_second / 1e6, wire: wire / 1e6 };
    };
    const capped = await iperf(limited.netns);
    const free = await iperf(unlimited.netns);
    process.stderr.write(
      `bandwidth: limited pod goodput ${capped.goodput.toFixed(1)} Mbit/s (TCP payload), HTB class wire rate ${capped.wire.toFixed(1)} Mbit/s (Ethernet frames, steady 4 s); unlimited pod ${free.goodput.toFixed(0)} Mbit/s\n`,
    );
    assert.ok(
      capped.goodput >= 50 * 0.9 && capped.goodput <= 50 * 1.05,
      `goodput ${capped.goodput}`,
    );
    assert.ok(Math.abs(capped.wire - 50) <= 2.5, `wire rate ${capped.wire} within ±5 % of 50`);
    assert.ok(free.goodput > 100, `unlimited pod reaches ${free.goodput} Mbit/s`);
  });

  it("drift is healed within checkInterval + 1 s and counted; Report mode counts and leaves it", async () => {
    const n = node1();
    const minor = classMinorFor(n.pods[0]!.ip).toString(16);
    const hasClass = () =>
      inNs(n.netns, ["tc", "class", "show", "dev", "eth0"]).includes(`1:${minor} `);
    const before = (await nodeState(box, n.name))?.status?.drift?.healedTotal ?? 0;
    // Out-of-band change 1: delete the pod's HTB class.
    inNs(n.netns, ["tc", "class", "del", "dev", "eth0", "classid", `1:${minor}`]);
    const t0 = Date.now();
    await waitFor("the HTB class to come back", () => (hasClass() ? true : undefined), 15_000);
    const healedIn = Date.now() - t0;
    process.stderr.write(`drift: HTB class healed in ${healedIn} ms (checkInterval 10 s)\n`);
    assert.ok(healedIn <= 11_000, `healed within checkInterval + 1 s, took ${healedIn} ms`);
    await waitFor("healedTotal to grow", async () =>
      ((await nodeState(box, n.name))?.status?.drift?.healedTotal ?? 0) > before ? true : undefined,
    );
    // Out-of-band change 2: remove the pinned tcx link, which detaches the program.
    const link = join(box.bpfPinRoot, n.name, "netloom", "links", "eth0-egress");
    assert.ok(existsSync(link), `pinned link at ${link}`);
    rmSync(link);
    await waitFor(
      "the program to be re-attached",
      () => (existsSync(link) ? true : undefined),
      12_000,
    );
    assert.equal(
      canConnect(n.pods[0]!.netns, METADATA_IP, CLOUD_PORT),
      false,
      "deny rule enforced again",
    );

    // Report mode: counted, reported in the NetworkConfig's DRIFTED column, left alone.
    const kc = boxKubeConfig(box);
    const patched = await kubeRequest(kc, "PATCH", ncPath, {
      body: { spec: { drift: { mode: "Report", checkInterval: "10s" } } },
      contentType: "application/merge-patch+json",
    });
    assert.equal(patched.status, 200, patched.body);
    await objectReady(box, ncPath);
    await allApplied(box);
    const detected = (await nodeState(box, n.name))?.status?.drift?.detectedTotal ?? 0;
    inNs(n.netns, ["tc", "class", "del", "dev", "eth0", "classid", `1:${minor}`]);
    await waitFor(
      "drift reported",
      async () => {
        const s = await nodeState(box, n.name);
        return s?.status?.drift?.drifted && (s.status.drift.detectedTotal ?? 0) > detected
          ? s
          : undefined;
      },
      15_000,
    );
    assert.equal(hasClass(), false, "Report mode leaves the change alone");
    const nc = await waitFor(
      "DRIFTED column shows the node",
      async () => {
        const o = (await kubeRequest(kc, "GET", ncPath)).json<{
          status?: { driftedNodes?: number };
        }>();
        return (o.status?.driftedNodes ?? 0) >= 1 ? o : undefined;
      },
      20_000,
    );
    assert.ok((nc.status?.driftedNodes ?? 0) >= 1);
    await kubeRequest(kc, "PATCH", ncPath, {
      body: { spec: { drift: { mode: "Heal" } } },
      contentType: "application/merge-patch+json",
    });
    await waitFor(
      "healed after switching back to Heal",
      () => (hasClass() ? true : undefined),
      25_000,
    );
  });

  it("restarting an agent while a ping runs every 10 ms loses no packet and leaves one program attached", async () => {
    const n = node1();
    const from = n.pods[1]!;
    const to = node2().pods[0]!;
    const ping = spawnInNs(from.netns, ["ping", "-i", "0.01", "-c", "600", "-W", "1", to.ip], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    ping.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    const done = new Promise<void>((resolve) => ping.on("exit", () => resolve()));
    await sleep(1500);
    await terminate(box.pids.agents[n.name]);
    await sleep(500);
    startAgent(box, n);
    await done;
    const { sent, received } = pingLoss(out);
    process.stderr.write(`agent restart: ping ${received}/${sent} received\n`);
    assert.equal(sent, 600);
    assert.equal(received, sent, "no packet lost across the agent restart");
    await allApplied(box);
    const progs = inNs(n.netns, [
      process.execPath,
      "--input-type=module",
      "-e",
      `import { BpfDatapath } from "${join(REPO_ROOT, "dist/src/datapath-driver/linux/bpf-datapath.js")}";
       process.stdout.write(JSON.stringify(BpfDatapath.attachedOn("eth0", "tcx")));`,
    ]);
    assert.equal(
      (JSON.parse(progs) as number[]).length,
      1,
      `exactly one program on eth0: ${progs}`,
    );
  });
});
