/**
 * Pods that come and go in the cluster-in-a-box (src/box/pods.ts) and real connection probes
 * between them (src/box/probe.ts, src/box/pod-helper.ts): the groundwork for NetworkPolicy
 * tests. No operator and no agents run (no policy exists yet): pods reach each other over the
 * nodes' plain routes (cross-node via the underlay, metric 100).
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  type BoxPod,
  type BoxState,
  boxDown,
  boxKubeConfig,
  boxUp,
  planBox,
  readBoxState,
} from "../../src/box/box.js";
import { inNs, listNetns, netnsExists } from "../../src/box/netns.js";
import {
  addBoxPod,
  type BoxPodSpec,
  findBoxPod,
  hostIfFor,
  nextPodHost,
  removeBoxPod,
  setBoxNamespaceLabels,
  setBoxPodLabels,
} from "../../src/box/pods.js";
import {
  helperOf,
  POD_HELPER,
  PodProbes,
  type ProbeCase,
  portOf,
  probeVerdict,
} from "../../src/box/probe.js";
import { kubeRequest } from "../../src/kube/raw.js";
import { isAlive } from "../../src/util/process.js";
import { eventually } from "../support/eventually.js";
import { skipWhen, unmet } from "../support/prerequisites.js";
import { controlPlaneMissing } from "./support.js";

const unavailable =
  unmet({
    root: "network namespaces: run as root",
    files: [{ path: POD_HELPER, hint: "the compiled pod helper: make build" }],
    tools: ["ip", "nsenter", "sysctl", "mountpoint", "iptables"],
  }) ?? controlPlaneMissing();

const PREFIX = "nbp";
const HTTP = { name: "http", port: 80, protocol: "TCP" } as const;
const DNS = { name: "dns", port: 53, protocol: "UDP" } as const;
const WEB = { name: "web", port: 8080, protocol: "TCP" } as const;
const SYSLOG = { port: 5514, protocol: "UDP" } as const; // unnamed

interface PodObject {
  metadata: { labels?: Record<string, string> };
  spec: {
    nodeName: string;
    containers: { ports?: { name?: string; containerPort: number; protocol: string }[] }[];
  };
  status: { phase?: string; podIP?: string; podIPs?: { ip: string }[] };
}

describe("box pod addresses and names (pure)", () => {
  const node = () =>
    planBox({ dir: "/nonexistent", prefix: "t", underlayOctet: 1, nodes: 1, pods: [{}, {}] })
      .nodes[0]!;

  it("the next free host part skips the fixed pods, goes round robin and wraps", () => {
    const n = node();
    assert.deepEqual(
      n.pods.map((p) => p.ip),
      ["10.244.1.11", "10.244.1.12"],
    );
    assert.equal(nextPodHost(n), 13);
    n.lastPodHost = 20;
    assert.equal(nextPodHost(n), 21, "after the last one given out, not the lowest free");
    n.lastPodHost = 254;
    assert.equal(nextPodHost(n), 13, "wraps, skipping the fixed pods");
    for (let h = 13; h <= 254; h++) n.pods.push({ ...n.pods[0]!, ip: `10.244.1.${h}` });
    assert.throws(() => nextPodHost(n), /no free address left in 10\.244\.1\.0\/24/);
  });

  it("host veths are lxc + 8 hex digits of namespace/name, another one when taken", () => {
    const a = hostIfFor("x", "a");
    assert.match(a, /^lxc[0-9a-f]{8}$/);
    assert.equal(hostIfFor("x", "a"), a, "stable");
    assert.notEqual(hostIfFor("x-a", ""), hostIfFor("x", "-a"));
    const b = hostIfFor("x", "a", (n) => n === a);
    assert.match(b, /^lxc[0-9a-f]{8}$/);
    assert.notEqual(b, a);
  });

  it("verdicts: connected or refused is allow, silence deny, anything else error", () => {
    assert.equal(probeVerdict({ ok: true }), "allow");
    assert.equal(probeVerdict({ ok: false, error: "ECONNREFUSED" }), "allow");
    assert.equal(probeVerdict({ ok: false, error: "ETIMEDOUT" }), "deny");
    assert.equal(probeVerdict({ ok: false, error: "EHOSTUNREACH" }), "error");
  });
});

describe("box pods that come and go, and connection probes between them (2 nodes, no agents)", {
  skip: skipWhen(unavailable),
}, () => {
  let box: BoxState;
  const kc = () => boxKubeConfig(box);
  const probes = new PodProbes({ timeoutMs: 1000, retryTimeoutMs: 3000 });
  const nodeName = (i: number) => box.nodes[i]!.name;
  const pod = (ns: string, name: string) => findBoxPod(box, ns, name)!;
  const getPod = (ns: string, name: string) =>
    kubeRequest(kc(), "GET", `/api/v1/namespaces/${ns}/pods/${name}`);
  const specs = (): BoxPodSpec[] => [
    { namespace: "x", name: "a", node: nodeName(0), labels: { app: "a" }, ports: [HTTP, DNS] },
    { namespace: "x", name: "b", node: nodeName(1), labels: { app: "b" }, ports: [HTTP, DNS] },
    {
      namespace: "y",
      name: "c",
      node: nodeName(0),
      labels: { app: "c", tier: "web" },
      ports: [WEB, SYSLOG],
      namespaceLabels: { team: "y" },
    },
    {
      namespace: "y",
      name: "d",
      node: nodeName(1),
      labels: { app: "d" },
      ports: [WEB, SYSLOG],
      namespaceLabels: { team: "y" },
    },
  ];
  const tcpPort = (p: BoxPod) => p.ports!.find((q) => q.protocol === "TCP")!.port;
  const udpPort = (p: BoxPod) => p.ports!.find((q) => q.protocol === "UDP")!.port;

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), `netloom-e2e-${PREFIX}-`));
    await boxDown(dir, PREFIX); // a run killed half-way must not leave clashing namespaces
    const t0 = Date.now();
    try {
      box = await boxUp({
        dir,
        prefix: PREFIX,
        underlayOctet: 66,
        nodes: 2,
        pods: [],
        startProcesses: false,
        progress: (l) => process.stderr.write(`[box] ${l}\n`),
      });
    } catch (err) {
      await boxDown(dir, PREFIX);
      throw err;
    }
    process.stderr.write(`[box-pods] box up in ${Date.now() - t0} ms\n`);
  });
  after(async () => {
    if (box) await boxDown(box.dir, box.prefix);
  });

  it("adds pods in two namespaces on both nodes, at once, with distinct dual-stack addresses", async () => {
    const t0 = Date.now();
    const pods = await Promise.all(specs().map((s) => addBoxPod(box, kc(), s)));
    process.stderr.write(
      `[box-pods] 4 pods added concurrently in ${Date.now() - t0} ms: ${pods
        .map((p) => `${p.namespace}/${p.name} ${p.ip} ${p.ip6} ${p.hostIf} (${p.netns})`)
        .join("; ")}\n`,
    );
    assert.equal(new Set(pods.map((p) => p.ip)).size, 4, "distinct IPv4 addresses");
    assert.equal(new Set(pods.map((p) => p.ip6)).size, 4, "distinct IPv6 addresses");
    for (const p of pods) {
      const n = box.nodes.find((x) => x.name === p.node)!;
      const net = n.podCIDR.replace(/\.0\/24$/, ".");
      assert.ok(p.ip.startsWith(net), `${p.ip} in ${n.podCIDR}`);
      assert.ok(p.ip6.startsWith(n.podCIDR6.replace(/\/64$/, "")), `${p.ip6} in ${n.podCIDR6}`);
      assert.match(p.hostIf!, /^lxc[0-9a-f]{8}$/);
      assert.ok(p.netns.startsWith(`${PREFIX}-`) && netnsExists(p.netns), p.netns);
      assert.ok(helperOf(p)?.alive, `helper of ${p.name} runs`);
      // Inside the pod: its addresses on eth0; on the node: the host veth and the routes.
      const addrs = inNs(p.netns, ["ip", "-br", "addr", "show", "dev", "eth0"]);
      assert.ok(addrs.includes(`${p.ip}/32`) && addrs.includes(`${p.ip6}/128`), addrs);
      assert.match(inNs(n.netns, ["ip", "route", "get", p.ip]), new RegExp(`dev ${p.hostIf}`));
      assert.match(
        inNs(n.netns, ["ip", "-6", "route", "get", p.ip6]),
        new RegExp(`dev ${p.hostIf}`),
      );
      assert.equal(
        inNs(n.netns, ["sysctl", "-n", `net.ipv4.conf.${p.hostIf}.proxy_arp`]).trim(),
        "1",
      );
    }
    // The state file knows them (boxDown, another process, the next addBoxPod).
    const saved = readBoxState(box.dir)!;
    const savedPods = saved.nodes.flatMap((n) => n.pods);
    assert.deepEqual(
      savedPods.map((p) => `${p.namespace}/${p.name}@${p.ip}`).sort(),
      pods.map((p) => `${p.namespace}/${p.name}@${p.ip}`).sort(),
    );
    assert.ok(savedPods.every((p) => p.dynamic && (p.helperPid ?? 0) > 0));
  });

  it("the Pod objects carry labels, nodeName, named containerPorts, phase and podIPs v4 + v6", async () => {
    for (const s of specs()) {
      const r = await getPod(s.namespace, s.name);
      assert.equal(r.status, 200, r.body);
      const o = r.json<PodObject>();
      const p = pod(s.namespace, s.name);
      assert.deepEqual(o.metadata.labels, s.labels);
      assert.equal(o.spec.nodeName, s.node);
      assert.deepEqual(
        o.spec.containers[0]!.ports,
        s.ports!.map((q) => ({
          ...("name" in q ? { name: q.name } : {}),
          containerPort: q.port,
          protocol: q.protocol,
        })),
      );
      assert.equal(o.status.phase, "Running");
      assert.equal(o.status.podIP, p.ip);
      assert.deepEqual(o.status.podIPs, [{ ip: p.ip }, { ip: p.ip6 }]);
    }
    assert.equal(portOf(pod("y", "c"), "web"), 8080);
    assert.equal(portOf(pod("x", "a"), "dns", "UDP"), 53);
    const ns = (await kubeRequest(kc(), "GET", "/api/v1/namespaces/y")).json<PodObject>().metadata
      .labels;
    assert.deepEqual(ns, { team: "y", "kubernetes.io/metadata.name": "y" });
  });

  it("TCP and UDP, same node and across nodes, IPv4 and IPv6: every probe connects", async () => {
    const all = box.nodes.flatMap((n) => n.pods);
    const cases: (ProbeCase & { label: string })[] = [];
    for (const from of all)
      for (const to of all) {
        if (from === to) continue;
        const where = from.node === to.node ? "same-node" : "cross-node";
        for (const [fam, ip] of [
          ["v4", to.ip],
          ["v6", to.ip6],
        ] as const) {
          cases.push({
            from,
            to: { ip },
            port: tcpPort(to),
            protocol: "TCP",
            label: `${where} ${fam} TCP`,
          });
          cases.push({
            from,
            to: { ip },
            port: udpPort(to),
            protocol: "UDP",
            label: `${where} ${fam} UDP`,
          });
        }
      }
    const t0 = performance.now();
    const verdicts = await probes.verdicts(cases);
    const wall = performance.now() - t0;
    const failed = cases.map((c, i) => ({ c, v: verdicts[i]! })).filter(({ v }) => !v.result.ok);
    assert.deepEqual(
      failed.map(({ c, v }) => `${c.label} ${c.from.name}→${c.to.ip}:${c.port}: ${v.result.error}`),
      [],
    );
    const byKind = new Map<string, number[]>();
    for (const [i, c] of cases.entries())
      byKind.set(c.label, [...(byKind.get(c.label) ?? []), verdicts[i]!.result.ms]);
    process.stderr.write(
      `[box-pods] ${cases.length} probes, all in flight at once, in ${wall.toFixed(0)} ms; max ms by kind: ${[
        ...byKind,
      ]
        .map(([k, ms]) => `${k} ${Math.max(...ms).toFixed(1)}`)
        .join(", ")}\n`,
    );
    assert.ok(verdicts.every((v) => v.verdict === "allow" && v.attempts.length === 1));
    // The TCP banner names the pod that answered.
    const r = await probes.connect(
      pod("x", "a"),
      { ip: pod("y", "d").ip6 },
      8080,
      "TCP",
      1000,
      true,
    );
    assert.equal(r.reply, "y/d tcp/8080\n");
  });

  it("a closed port is refused (the packet got through: allow), TCP and UDP, both families", async () => {
    const from = pod("x", "a");
    const to = pod("y", "d"); // other node
    for (const ip of [to.ip, to.ip6]) {
      for (const protocol of ["TCP", "UDP"] as const) {
        const r = await probes.connect(from, { ip }, 9, protocol);
        assert.equal(r.ok, false);
        assert.equal(r.error, "ECONNREFUSED", `${protocol} ${ip}:9 → ${JSON.stringify(r)}`);
        assert.equal(probeVerdict(r), "allow");
      }
    }
    // Many UDP probes to closed ports in a row: each is refused (no ICMP rate limit in pods).
    const burst = await Promise.all(
      Array.from({ length: 20 }, () => probes.connect(from, { ip: to.ip }, 9, "UDP")),
    );
    assert.deepEqual(
      burst.filter((r) => r.error !== "ECONNREFUSED"),
      [],
      "every closed-port UDP probe refused",
    );
  });

  it("a drop on the path reads as deny, after one longer retry; lifting it reads allow again", async () => {
    const from = pod("x", "a");
    const to = pod("x", "b");
    // iptables in the target pod (IPv4: the probe's timeout path is the same for both families).
    const rule = (op: "-I" | "-D") =>
      inNs(to.netns, ["iptables", op, "INPUT", "-p", "tcp", "--dport", "80", "-j", "DROP"]);
    rule("-I");
    try {
      const t0 = performance.now();
      const [dropped, other] = await Promise.all([
        probes.verdict(from, { ip: to.ip }, 80, "TCP"),
        probes.verdict(from, { ip: to.ip }, 53, "UDP"),
      ]);
      const wall = performance.now() - t0;
      process.stderr.write(
        `[box-pods] dropped: ${dropped.attempts.map((a) => `${a.error} after ${a.ms.toFixed(0)} ms`).join(" → ")} (${wall.toFixed(0)} ms in all)\n`,
      );
      assert.equal(dropped.verdict, "deny");
      assert.equal(dropped.attempts.length, 2, "re-probed once");
      assert.ok(dropped.attempts[0]!.ms >= 990, `first attempt: ${dropped.attempts[0]!.ms}`);
      assert.ok(
        dropped.attempts[1]!.ms >= 2990,
        `the retry's longer timeout: ${dropped.attempts[1]!.ms}`,
      );
      assert.equal(other.verdict, "allow", "the pod's other port still answers");
      assert.equal(other.attempts.length, 1, "an allow is not retried");
    } finally {
      rule("-D");
    }
    assert.equal((await probes.verdict(from, { ip: to.ip }, 80, "TCP")).verdict, "allow");
  });

  it("labels change on a namespace and a pod (exact sets; the API server keeps its own name label)", async () => {
    await setBoxNamespaceLabels(kc(), "y", { team: "why", env: "prod" });
    const ns = (await kubeRequest(kc(), "GET", "/api/v1/namespaces/y")).json<PodObject>();
    assert.deepEqual(ns.metadata.labels, {
      team: "why",
      env: "prod",
      "kubernetes.io/metadata.name": "y",
    });
    await setBoxPodLabels(box, kc(), "y", "c", { app: "c", tier: "db" });
    const o = (await getPod("y", "c")).json<PodObject>();
    assert.deepEqual(o.metadata.labels, { app: "c", tier: "db" });
    assert.deepEqual(readBoxState(box.dir)!.nodes[0]!.pods.find((p) => p.name === "c")!.labels, {
      app: "c",
      tier: "db",
    });
  });

  it("a removed pod leaves no Pod, namespace, veth or helper; added again, it gets the next address", async () => {
    const old = { ...pod("x", "b") };
    const node = box.nodes[1]!;
    const helperPid = old.helperPid!;
    const t0 = Date.now();
    await removeBoxPod(box, kc(), "x", "b");
    const removeMs = Date.now() - t0;
    assert.equal((await getPod("x", "b")).status, 404, "Pod object gone");
    assert.equal(netnsExists(old.netns), false, "netns gone");
    assert.equal(inNs(node.netns, ["ip", "link", "show", old.hostIf!], true), "", "veth gone");
    assert.ok(!inNs(node.netns, ["ip", "route"]).includes(old.ip), "no route left to the old IP");
    assert.equal(isAlive(helperPid), false, "helper gone");
    assert.equal(findBoxPod(box, "x", "b"), undefined);
    assert.equal(
      readBoxState(box.dir)!.nodes[1]!.pods.some((p) => p.name === "b"),
      false,
      "gone from box.json",
    );
    const gone = await probes.verdict(pod("x", "a"), { ip: old.ip }, 80, "TCP");
    process.stderr.write(
      `[box-pods] pod removed in ${removeMs} ms; probing its old address: ${gone.attempts.map((a) => a.error).join(" → ")} (${gone.verdict})\n`,
    );
    assert.notEqual(gone.verdict, "allow");

    const t1 = Date.now();
    const again = await addBoxPod(box, kc(), specs()[1]!);
    process.stderr.write(
      `[box-pods] x/b added again in ${Date.now() - t1} ms: ${old.ip} → ${again.ip}, ${old.ip6} → ${again.ip6}, veth ${again.hostIf} (same name: ${again.hostIf === old.hostIf})\n`,
    );
    // Round robin, as host-local: the old address is not handed out again at once.
    assert.notEqual(again.ip, old.ip);
    assert.notEqual(again.ip6, old.ip6);
    assert.equal(again.hostIf, old.hostIf, "the veth name follows namespace/name");
    const o = (await getPod("x", "b")).json<PodObject>();
    assert.deepEqual(o.status.podIPs, [{ ip: again.ip }, { ip: again.ip6 }]);
    for (const ip of [again.ip, again.ip6]) {
      const v = await probes.verdict(pod("y", "c"), { ip }, 80, "TCP");
      assert.equal(v.result.ok, true, `${ip}: ${JSON.stringify(v.attempts)}`);
    }
  });

  it("boxDown removes the added pods' namespaces, helpers and objects with the box", async () => {
    const pids = box.nodes.flatMap((n) => n.pods).map((p) => p.helperPid!);
    assert.ok(listNetns(`${PREFIX}-lxc`).length >= 4);
    const t0 = Date.now();
    await boxDown(box.dir, box.prefix);
    process.stderr.write(`[box-pods] box down in ${Date.now() - t0} ms\n`);
    assert.deepEqual(listNetns(`${PREFIX}-`), []);
    // Killed by boxDown (they run in the box); reaped by this process, their parent.
    await eventually("the helpers to be gone", () => !pids.some(isAlive), 5000, 50);
    assert.equal(existsSync(box.dir), false);
  });
});
