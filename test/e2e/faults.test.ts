/**
 * Faults on the cluster-in-a-box (real kube-apiserver + etcd, real kernel, WireGuard in strict
 * mode): an agent killed, the API server stopped for a minute, etcd compacted under a stopped
 * watcher (410 Gone), the leading operator killed in the middle of a large change, and peer
 * data edited by hand. Each test checks what users rely on while the fault lasts (the deny
 * holds, the tunnel carries a 10 ms ping without loss) and after it (state converges, no
 * status regresses or flaps). Figures go to stderr for docs/reliability.md.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { DEFAULT_LEASE_NAMESPACE } from "../../src/agent/lease.js";
import { readManifests } from "../../src/api/fixtures.js";
import {
  type BoxNode,
  type BoxPod,
  type BoxState,
  boxDown,
  boxKubeConfig,
  boxTcpServer,
  METADATA_IP,
  startAgent,
  startOperator,
  wireguardInterfaceOf,
} from "../../src/box/box.js";
import { spawnInNs } from "../../src/box/netns.js";
import {
  type ControlPlaneState,
  compactEtcd,
  readControlPlaneState,
  restartApiServer,
  startApiServer,
  stopApiServer,
} from "../../src/cluster/control-plane.js";
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

const unavailable = e2eUnavailable(["wireguard-go", "wg", "bpftool", "bash", "timeout"]);
const CLOUD_PORT = 8080;
const API = "/apis/netloom.io/v1alpha1";
const NC = `${API}/networkconfigs/default`;
const EP = `${API}/encryptionprofiles/default`;
const AGENT_LEASES = `/apis/coordination.k8s.io/v1/namespaces/${DEFAULT_LEASE_NAMESPACE}/leases`;
const OPERATOR_LEASE =
  "/apis/coordination.k8s.io/v1/namespaces/netloom-system/leases/netloom-operator";
const OUTAGE_MS = 60_000;

interface Condition {
  type: string;
  status: string;
  reason?: string;
  lastTransitionTime?: string;
}
interface Obj {
  metadata: { name: string; generation: number };
  spec?: Record<string, unknown>;
  status?: { observedGeneration?: number; conditions?: Condition[] };
}

const denyRules = (o: Obj): unknown[] => (o.spec?.egressDeny as unknown[] | undefined) ?? [];

const cond = (o: { status?: { conditions?: Condition[] } } | undefined, type: string) =>
  o?.status?.conditions?.find((c) => c.type === type);

describe("faults (cluster-in-a-box, 2 nodes, real kernel, WireGuard strict mode)", {
  skip: skipWhen(unavailable),
}, () => {
  let box: BoxState;
  let cp: ControlPlaneState;
  const node = (i: number): BoxNode => box.nodes[i]!;
  const kc = () => boxKubeConfig(box);
  const get = async <T = Obj>(path: string): Promise<T> => {
    const r = await kubeRequest(kc(), "GET", path);
    assert.equal(r.status, 200, `GET ${path}: ${r.body}`);
    return r.json<T>();
  };
  const mergePatch = async (path: string, body: unknown): Promise<Obj> => {
    const r = await kubeRequest(kc(), "PATCH", path, {
      body,
      contentType: "application/merge-patch+json",
    });
    assert.equal(r.status, 200, `PATCH ${path}: ${r.body}`);
    return r.json<Obj>();
  };
  const metricsURL = (n: BoxNode) => `http://${n.ip}:9962/metrics`;

  /** A ping every 10 ms from one pod to another; resolves with what came back. */
  function ping(from: BoxPod, to: BoxPod, count: number) {
    const p = spawnInNs(from.netns, ["ping", "-i", "0.01", "-c", String(count), "-W", "1", to.ip], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    p.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    return new Promise<{ sent: number; received: number }>((resolve) =>
      p.on("exit", () => resolve(pingLoss(out))),
    );
  }

  /** The tcx link pinned for a node's eth0: the same id means it was never re-attached. */
  const linkOf = (n: BoxNode): { id: number; prog_id: number } =>
    JSON.parse(
      execFileSync("bpftool", [
        "-j",
        "link",
        "show",
        "pinned",
        // The agent pins under <--bpffs>/netloom (src/cli/agent.ts).
        join(box.bpfPinRoot, n.name, "netloom", "links", "eth0-egress"),
      ]).toString(),
    );
  const wgPeers = (n: BoxNode): number =>
    execFileSync("wg", ["show", wireguardInterfaceOf(box, n), "peers"])
      .toString()
      .split("\n")
      .filter(Boolean).length;
  const metadataReachable = (p: BoxPod) => canConnect(p.netns, METADATA_IP, CLOUD_PORT, 1, 1);

  /** Samples `read` every 250 ms until stop() and returns every distinct value seen. */
  function watchValues<T>(read: () => Promise<T>) {
    const seen = new Set<string>();
    let running = true;
    const loop = (async () => {
      while (running) {
        try {
          seen.add(JSON.stringify(await read()));
        } catch {}
        await sleep(250);
      }
    })();
    return async () => {
      running = false;
      await loop;
      return [...seen].map((s) => JSON.parse(s) as T);
    };
  }

  before(async () => {
    box = await startBox({
      prefix: "nlf",
      underlayOctet: 63,
      nodes: 2,
      pods: [{ app: "a" }, { app: "b" }],
    });
    const state = readControlPlaneState(join(box.dir, "cluster"));
    assert.ok(state, "the box's control plane state");
    cp = state;
    boxTcpServer(box, box.cloudNetns, "cloud-server", CLOUD_PORT, "ok");
    await applyManifests(
      kc(),
      readManifests("config/samples").filter((m) =>
        ["NetworkConfig", "EncryptionProfile"].includes(m.object.kind),
      ),
      "e2e",
    );
    await objectReady(box, NC);
    await objectReady(box, EP);
    await allApplied(box, (s) => s.status?.sources?.encryptionProfile !== undefined);
    assert.equal(metadataReachable(node(0).pods[0]!), false, "the sample denies the metadata IP");
  });
  after(async () => {
    if (box) await boxDown(box.dir, box.prefix);
  });

  it("an agent killed (SIGKILL): deny and tunnel hold, a 10 ms ping loses nothing; the restarted agent adopts the state (same link, no Ready flap)", async () => {
    const n = node(0);
    const before = await nodeState(box, n.name);
    const readySince = cond(before, "Ready")?.lastTransitionTime;
    const link = linkOf(n);
    const pinging = ping(n.pods[0]!, node(1).pods[0]!, 800);
    await sleep(1000);
    await terminate(box.pids.agents[n.name], "SIGKILL");
    const killedAt = Date.now();
    assert.equal(metadataReachable(n.pods[0]!), false, "deny holds with no agent");
    assert.equal(wgPeers(n), 1, "the tunnel keeps its peer with no agent");
    await sleep(2000);
    startAgent(box, n);
    const deadMs = Date.now() - killedAt;
    const { sent, received } = await pinging;
    process.stderr.write(
      `[faults] agent SIGKILLed, restarted after ${deadMs} ms: ping ${received}/${sent}\n`,
    );
    assert.equal(received, sent, "no packet lost");
    const gen = (await get(NC)).metadata.generation;
    await waitFor("the restarted agent applied the NetworkConfig", async () =>
      (await scrape(
        metricsURL(n),
        "netloom_agent_applied_generation",
        'kind="NetworkConfig",name="default"',
      )) === gen
        ? true
        : undefined,
    );
    // The same link: never detached. Its program is the restarted agent's, swapped in
    // atomically (bpf_link_update), which is also how an upgrade replaces it.
    const after = linkOf(n);
    assert.equal(after.id, link.id, "same tcx link: adopted, not re-attached");
    process.stderr.write(`[faults] link ${link.id}: program ${link.prog_id} → ${after.prog_id}\n`);
    const now = await nodeState(box, n.name);
    assert.equal(cond(now, "Ready")?.status, "True");
    assert.equal(cond(now, "Ready")?.lastTransitionTime, readySince, "Ready never flapped");
  });

  it("the API server stopped for 60 s: datapath kept, agents report when it is back, informers recover, no status regresses", async () => {
    const from = node(0).pods[0]!;
    const to = node(1).pods[1]!;
    const before = { nc: await get(NC), ep: await get(EP) };
    const pinging = ping(from, to, Math.round((OUTAGE_MS + 5_000) / 10));
    await stopApiServer(cp);
    const stoppedAt = Date.now();
    let denyHeld = 0;
    while (Date.now() - stoppedAt < OUTAGE_MS) {
      assert.equal(metadataReachable(from), false, "deny holds while the API server is down");
      assert.equal(wgPeers(node(0)), 1);
      denyHeld++;
      await sleep(10_000);
    }
    await startApiServer(cp);
    const back = Date.now();
    // What a reader sees from now on: Ready and observedGeneration of both objects.
    const stopWatching = watchValues(async () => {
      const [nc, ep] = [await get(NC), await get(EP)];
      return {
        nc: [cond(nc, "Ready")?.status, nc.status?.observedGeneration],
        ep: [cond(ep, "Ready")?.status, ep.status?.observedGeneration],
      };
    });
    const { sent, received } = await pinging;
    process.stderr.write(
      `[faults] API server down ${back - stoppedAt} ms: ping ${received}/${sent}, deny checked ${denyHeld} times\n`,
    );
    assert.equal(received, sent, "no packet lost while the API server was down");
    for (const n of box.nodes) {
      await waitFor(`${n.name} renews its Lease after the outage`, async () => {
        const l = await get<{ spec: { renewTime?: string } }>(`${AGENT_LEASES}/${n.name}`);
        return Date.parse(l.spec.renewTime ?? "") > back ? true : undefined;
      });
    }
    process.stderr.write(`[faults] Leases renewed ${Date.now() - back} ms after the API server\n`);
    // The operator's stale window (45 s) from its reconnection, and then some.
    await sleep(50_000);
    const seen = await stopWatching();
    for (const v of seen) {
      assert.deepEqual(v.nc, ["True", before.nc.status?.observedGeneration], "NetworkConfig");
      assert.deepEqual(v.ep, ["True", before.ep.status?.observedGeneration], "EncryptionProfile");
    }
    for (const [path, o] of [
      [NC, before.nc],
      [EP, before.ep],
    ] as const) {
      assert.equal(
        cond(await get(path), "Ready")?.lastTransitionTime,
        cond(o, "Ready")?.lastTransitionTime,
        `${path}: Ready never flipped`,
      );
    }
    // Informers recovered: a change made now reaches every node and its status.
    const changed = await mergePatch(NC, {
      spec: {
        egressDeny: [...denyRules(before.nc), { cidr: "192.0.2.1/32" }],
      },
    });
    await objectReady(box, NC);
    await allApplied(
      box,
      (s) => s.status?.sources?.networkConfig?.generation === changed.metadata.generation,
    );
  });

  it("etcd compacted while an agent was stopped: its watches get 410 Gone, relist and converge", async () => {
    const n = node(1);
    const pid = box.pids.agents[n.name]!;
    const log = join(box.dir, `agent-${n.name}.log`);
    const gone = () => (readFileSync(log, "utf8").match(/410 Gone/g) ?? []).length;
    const goneBefore = gone();
    process.kill(pid, "SIGSTOP");
    let generation = 0;
    try {
      for (const mode of ["Report", "Heal", "Report"] as const)
        generation = (await mergePatch(NC, { spec: { drift: { mode } } })).metadata.generation;
      await compactEtcd(cp);
      // A fresh watch cache starts at etcd's current revision: older resourceVersions are gone.
      await restartApiServer(cp);
    } finally {
      process.kill(pid, "SIGCONT");
    }
    await waitFor(`${n.name} applied generation ${generation}`, async () =>
      (await nodeState(box, n.name))?.status?.sources?.networkConfig?.generation === generation
        ? true
        : undefined,
    );
    await objectReady(box, NC);
    assert.ok(gone() > goneBefore, "the agent's watches were answered 410 Gone and relisted");
    await mergePatch(NC, { spec: { drift: { mode: "Heal" } } });
    await objectReady(box, NC);
  });

  it("a NodePeer's or NodeNetworkState's spec edited by hand is put back by the operator", async () => {
    const n = node(0);
    for (const [path, edit] of [
      [`${API}/nodepeers/${n.name}`, { spec: { podCIDRs: ["10.99.0.0/24"] } }],
      [`${API}/nodenetworkstates/${n.name}`, { spec: { nodeName: "someone-else" } }],
    ] as const) {
      const want = (await get(path)).spec;
      await mergePatch(path, edit);
      const t0 = Date.now();
      await waitFor(`${path}: spec restored`, async () =>
        JSON.stringify((await get(path)).spec) === JSON.stringify(want) ? true : undefined,
      );
      process.stderr.write(`[faults] hand edit of ${path} put back in ${Date.now() - t0} ms\n`);
    }
  });

  it("the leading operator killed (SIGKILL) in the middle of a large change: the other replica takes over and everything converges", async () => {
    await terminate(box.pids.operator);
    const pids = [
      startOperator(box, ["--leader-elect"], "operator-a"),
      startOperator(box, ["--leader-elect"], "operator-b"),
    ];
    const holder = async () =>
      (await get<{ spec: { holderIdentity?: string } }>(OPERATOR_LEASE)).spec.holderIdentity;
    const pidOf = (identity: string | undefined) => Number(identity?.split("_").at(-1));
    const leader = await waitFor("a leader", async () => {
      const pid = pidOf(await holder());
      return pids.includes(pid) ? pid : undefined;
    });
    // The change: 300 deny rules on every node and 40 BandwidthPolicies, all at once.
    const rules = Array.from({ length: 300 }, (_, i) => ({
      cidr: `198.18.${i >> 8}.${i & 255}/32`,
      ports: [{ port: 1000 + i, protocol: "TCP" }],
    }));
    const policies = Array.from({ length: 40 }, (_, i) => ({
      apiVersion: "netloom.io/v1alpha1",
      kind: "BandwidthPolicy",
      metadata: { name: `failover-${i}`, namespace: "default" },
      spec: { podSelector: { matchLabels: { app: `none-${i}` } }, egress: { rate: "10M" } },
    }));
    const nc = await get(NC);
    const changed = mergePatch(NC, {
      spec: { egressDeny: [...denyRules(nc), ...rules] },
    });
    const created = policies.map((p) =>
      kubeRequest(kc(), "POST", `${API}/namespaces/default/bandwidthpolicies`, { body: p }),
    );
    await sleep(200);
    await terminate(leader, "SIGKILL");
    const killedAt = Date.now();
    const { metadata } = await changed;
    for (const r of await Promise.all(created)) assert.equal(r.status, 201, r.body);
    const next = await waitFor(
      "the other replica leads",
      async () => {
        const pid = pidOf(await holder());
        return pid && pid !== leader && pids.includes(pid) ? pid : undefined;
      },
      60_000,
    );
    const takeover = Date.now() - killedAt;
    await objectReady(box, NC);
    await allApplied(
      box,
      (s) => s.status?.sources?.networkConfig?.generation === metadata.generation,
    );
    for (const p of policies)
      await objectReady(box, `${API}/namespaces/default/bandwidthpolicies/${p.metadata.name}`);
    process.stderr.write(
      `[faults] operator ${leader} killed: ${next} leads after ${takeover} ms; all converged ${Date.now() - killedAt} ms after the kill\n`,
    );
    assert.equal(
      (await nodeState(box, node(0).name))?.status?.sources?.networkConfig?.generation,
      metadata.generation,
    );
  });
});
