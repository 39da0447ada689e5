/**
 * NetworkPolicy in the eBPF datapath, on the real kernel: a node namespace with two pods behind
 * veths (Calico-style routing, as src/box/box.ts builds it), the pod programs on both host
 * veths, real traffic from inside the pods.
 *
 *   node nlpt-<pid>-n   host veths nlpt<pid>a / nlpt<pid>b, a /32 (/128) route per pod, forwarding;
 *                       10.66.255.1 on lo is "the host" (identity 1) talking to pods
 *   pod  nlpt-<pid>-a   eth0 10.66.0.1/32 fd00:66::1/128, identity 1000, echo servers TCP 7070, UDP 5353
 *   pod  nlpt-<pid>-b   eth0 10.66.0.2/32 fd00:66::2/128, identity 2000, echo servers TCP 8080,
 *                       8090, 8096, 9090, UDP 5353
 *
 * Pods reach the node through a permanent neighbour entry for their gateway 169.254.1.1 (the
 * host veth's MAC) instead of proxy ARP, which would need a route out of the node. Clients and
 * servers run with `nsenter --net` (keeps /sys/fs/bpf visible); device work in the node
 * namespace by switching this thread (withNetns). Needs root, kernel BTF with tcx, the built
 * object (make bpf); skipped with the reason otherwise.
 */

import assert from "node:assert/strict";
import { type ChildProcess, spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { echoServers, nsPath, type TwoPods, twoPods } from "../../../test/support/pod-netns.js";
import {
  both,
  endpoint,
  isolated,
  NOT_ISOLATED,
  open,
  syncEndpointPolicies,
  tcp,
} from "../../../test/support/policy-tiers.js";
import { skipOrFail, skipWhen, unmet } from "../../../test/support/prerequisites.js";
import type { PolicyEntry } from "../../policy/compile.js";
import type { Protocol } from "../../policy/verdict.js";
import {
  DIRECTIONS,
  describePolicyEntries,
  ENDPOINT_FLAG,
  endpointFlags,
  IDENTITY_ANY,
  IDENTITY_HOST,
  IP_PROTOCOL,
  ipcacheEntries,
  lookupModel,
  POLICY_ALLOW,
  POLICY_ALLOW_ENFORCED,
  type PolicyTiers,
  policyMapEntries,
} from "../maps/policy.js";
import { BpfDatapath } from "./bpf-datapath.js";
import { BPF_OBJECT } from "./driver.js";
import { ifNameToIndex, withNetns } from "./libbpf.js";

const pid = process.pid;
const nsNode = `nlpt-${pid}-n`;
const nsA = `nlpt-${pid}-a`;
const nsB = `nlpt-${pid}-b`;
const hostA = `nlpt${pid}a`;
const hostB = `nlpt${pid}b`;
const pinDir = `/sys/fs/bpf/nlpt-${pid}`;
const HOST_IP = "10.66.255.1";
const A = { ns: nsA, host: hostA, ip: "10.66.0.1", ip6: "fd00:66::1", identity: 1000 };
const B = { ns: nsB, host: hostB, ip: "10.66.0.2", ip6: "fd00:66::2", identity: 2000 };

function skipReason(): string | undefined {
  if (process.platform !== "linux") return "needs Linux";
  return unmet({
    root: "loads eBPF programs and creates namespaces",
    btf: true,
    files: [{ path: BPF_OBJECT, hint: "build the eBPF object with make bpf" }],
    tools: ["ip", "nsenter", "sysctl", "timeout", "bash", "ping"],
  });
}

/** A TCP echo through a fresh connection from ns: true when the text comes back within 1 s. */
function tcpEcho(ns: string, ip: string, port: number): boolean {
  const r = spawnSync(
    "nsenter",
    [
      `--net=/run/netns/${ns}`,
      "timeout",
      "1",
      "bash",
      "-c",
      `exec 3<>/dev/tcp/${ip}/${port}; echo hi >&3; timeout 1 head -c 3 <&3`,
    ],
    { encoding: "utf8" },
  );
  return r.stdout === "hi\n";
}

/** One UDP datagram from ns and its echo: true when the echo comes back within 1 s. */
function udpEcho(ns: string, ip: string, port: number): boolean {
  const r = spawnSync(
    "nsenter",
    [
      `--net=/run/netns/${ns}`,
      "timeout",
      "1",
      "bash",
      "-c",
      `exec 3<>/dev/udp/${ip}/${port}; echo hi >&3; timeout 1 head -c 3 <&3`,
    ],
    { encoding: "utf8" },
  );
  return r.stdout === "hi\n";
}

/**
 * One UDP datagram from a fixed source port of ns and its echo: each call is the same 5-tuple,
 * so the same tracked connection. True when the echo comes back within 1 s.
 */
function udpEchoFrom(ns: string, ip: string, port: number, sourcePort: number): boolean {
  const js = `const s=require('dgram').createSocket('udp4');const t=setTimeout(()=>{console.log('timeout');process.exit(0)},1000);
s.on('message',()=>{console.log('echo');clearTimeout(t);s.close()});
s.bind(${sourcePort},()=>s.send('hi',${port},'${ip}'));`;
  const r = spawnSync("nsenter", [`--net=/run/netns/${ns}`, process.execPath, "-e", js], {
    encoding: "utf8",
  });
  return r.stdout.trim() === "echo";
}

function pings(ns: string, ip: string): boolean {
  const r = spawnSync("nsenter", [`--net=/run/netns/${ns}`, "ping", "-c", "1", "-W", "1", ip], {
    stdio: "ignore",
  });
  return r.status === 0;
}

const anyProtocol = (peer: number | "any"): PolicyEntry => ({
  peer,
  protocol: "any",
  ports: [0, 65535],
});

const reason = skipReason();

describe("NetworkPolicy datapath on the real kernel", { skip: skipWhen(reason) }, () => {
  const servers: ChildProcess[] = [];
  let topology: TwoPods | undefined;
  const opened: BpfDatapath[] = [];
  let dp: BpfDatapath;
  let tcx = false;
  const ifindex = { a: 0, b: 0 };

  const openDatapath = (): BpfDatapath => {
    const d = BpfDatapath.open({ objectPath: BPF_OBJECT, pinDir });
    opened.push(d);
    return d;
  };
  const attachAll = (d: BpfDatapath): void =>
    withNetns(nsPath(nsNode), () => {
      for (const dev of [hostA, hostB]) {
        d.attach(dev, "netloom_pod_egress", "tcx");
        d.attach(dev, "netloom_pod_ingress", "tcx");
      }
    });

  /** The agent's part: both endpoints' flags and policy entries into the maps. */
  const setPolicy = (a: PolicyTiers, b: PolicyTiers, allowHost = true) =>
    syncEndpointPolicies(
      dp,
      [
        { ifindex: ifindex.a, identity: A.identity, tiers: a },
        { ifindex: ifindex.b, identity: B.identity, tiers: b },
      ],
      { allowHost },
    );
  const ipcache = () =>
    ipcacheEntries({
      [A.ip]: A.identity,
      [A.ip6]: A.identity,
      [B.ip]: B.identity,
      [B.ip6]: B.identity,
      [HOST_IP]: IDENTITY_HOST,
    });
  const dropsOf = (local: number, peer: number, direction: "ingress" | "egress"): number =>
    dp
      .readPolicyDrops()
      .filter(
        (d) => d.localIdentity === local && d.peerIdentity === peer && d.direction === direction,
      )
      .reduce((n, d) => n + d.packets, 0);
  const auditOf = (ifx: number, direction: "ingress" | "egress"): number =>
    dp
      .readPolicyAudit()
      .filter((x) => x.ifindex === ifx && x.direction === direction)
      .reduce((n, x) => n + x.wouldDrop, 0);

  before(async () => {
    // The node and its two pods (test/support/pod-netns.ts: the same wiring as the box's).
    topology = twoPods(`nlpt-${pid}`, `nlpt${pid}`, 66);
    assert.deepEqual(
      [
        topology.node,
        topology.a.ns,
        topology.a.host,
        topology.a.ip,
        topology.b.ip,
        topology.hostIP,
      ],
      [nsNode, A.ns, A.host, A.ip, B.ip, HOST_IP],
    );
    servers.push(await echoServers(nsA, [7070], [5353]));
    servers.push(await echoServers(nsB, [8080, 8090, 8096, 9090], [5353]));
    withNetns(nsPath(nsNode), () => {
      ifindex.a = ifNameToIndex(hostA);
      ifindex.b = ifNameToIndex(hostB);
      tcx = BpfDatapath.detectTcx();
    });
    if (!tcx) return;
    dp = openDatapath();
    dp.syncIpcache(ipcache());
    setPolicy(NOT_ISOLATED, NOT_ISOLATED);
    attachAll(dp);
  });

  after(() => {
    const step = (what: string, fn: () => void): void => {
      try {
        fn();
      } catch (e) {
        console.error(`cleanup: ${what}: ${(e as Error).message}`);
      }
    };
    for (const d of opened) step("close", () => d.close());
    step("pins", () => BpfDatapath.removePins(pinDir));
    for (const s of servers) step("servers", () => s.kill());
    step("namespaces", () => topology?.destroy());
  });

  const needTcx = (t: Parameters<typeof skipOrFail>[0]): boolean => {
    if (tcx) return true;
    skipOrFail(t, "kernel has no tcx (needs Linux 6.6+)");
    return false;
  };

  it("not isolated: TCP, UDP, ping and IPv6 pass both ways, and flows are tracked", (t) => {
    if (!needTcx(t)) return;
    withNetns(nsPath(nsNode), () => {
      assert.deepEqual(dp.attachedProgramIds(hostB, "tcx", "ingress"), [
        dp.programId("netloom_pod_egress"),
      ]);
      assert.deepEqual(dp.attachedProgramIds(hostB, "tcx", "egress"), [
        dp.programId("netloom_pod_ingress"),
      ]);
    });
    const before = dp.readDrops().policyDenied;
    assert.ok(tcpEcho(nsA, B.ip, 8080), "A → B TCP/8080");
    assert.ok(tcpEcho(nsA, B.ip, 9090), "A → B TCP/9090");
    assert.ok(udpEcho(nsA, B.ip, 5353), "A → B UDP/5353");
    assert.ok(pings(nsA, B.ip), "A pings B");
    assert.ok(tcpEcho(nsA, B.ip6, 8080), "A → B IPv6 TCP/8080");
    assert.ok(tcpEcho(nsB, A.ip, 7070), "B → A TCP/7070");
    assert.equal(dp.readDrops().policyDenied, before);
    assert.ok((dp.mapEntryCounts().conntrack ?? 0) > 0, "allowed flows are tracked");
  });

  it("ingress-isolated B: A reaches TCP/8080 only; the drops are counted with both identities", (t) => {
    if (!needTcx(t)) return;
    setPolicy(NOT_ISOLATED, both(endpoint(isolated(tcp(A.identity, 8080)))));
    assert.deepEqual(describePolicyEntries(dp.readPolicy()), [
      `if${ifindex.b} ingress peer ${A.identity} TCP/8080 allow+enforced`,
    ]);
    const before = {
      drops: dp.readDrops().policyDenied,
      ab: dropsOf(B.identity, A.identity, "ingress"),
    };
    assert.ok(tcpEcho(nsA, B.ip, 8080), "TCP/8080 allowed, and B's replies pass");
    assert.equal(tcpEcho(nsA, B.ip, 9090), false, "TCP/9090 dropped");
    assert.equal(udpEcho(nsA, B.ip, 5353), false, "UDP/5353 dropped");
    assert.ok(dp.readDrops().policyDenied >= before.drops + 2, "counted as policy_denied");
    assert.ok(
      dropsOf(B.identity, A.identity, "ingress") >= before.ab + 2,
      "policy_drops (B, A, ingress)",
    );
    // The host (identity 1) reaches B's every port while ALLOW_HOST is set (kubelet probes).
    assert.ok(tcpEcho(nsNode, B.ip, 9090), "host → B TCP/9090 with ALLOW_HOST");
    setPolicy(NOT_ISOLATED, both(endpoint(isolated(tcp(A.identity, 8080)))), false);
    assert.equal(tcpEcho(nsNode, B.ip, 9090), false, "host → B TCP/9090 without ALLOW_HOST");
    assert.ok(dropsOf(B.identity, IDENTITY_HOST, "ingress") >= 1);
  });

  it("B egress-isolated with no egress entries: replies to A pass (conntrack), B's new flows do not", (t) => {
    if (!needTcx(t)) return;
    setPolicy(NOT_ISOLATED, both(endpoint(isolated(tcp(A.identity, 8080)), isolated())));
    const before = dropsOf(B.identity, A.identity, "egress");
    assert.ok(tcpEcho(nsA, B.ip, 8080), "A → B TCP/8080: B's replies are tracked replies");
    assert.equal(tcpEcho(nsB, A.ip, 7070), false, "B → A TCP/7070 dropped at B's egress");
    assert.equal(udpEcho(nsB, A.ip, 5353), false, "B → A UDP dropped");
    assert.ok(dropsOf(B.identity, A.identity, "egress") >= before + 2);
  });

  it("a port range (endPort) allows inside the range only", (t) => {
    if (!needTcx(t)) return;
    setPolicy(NOT_ISOLATED, both(endpoint(isolated(tcp(A.identity, 8085, 8095)))));
    assert.deepEqual(describePolicyEntries(dp.readPolicy()), [
      `if${ifindex.b} ingress peer ${A.identity} TCP/8085 allow+enforced`,
      `if${ifindex.b} ingress peer ${A.identity} TCP/8086-8087 allow+enforced`,
      `if${ifindex.b} ingress peer ${A.identity} TCP/8088-8095 allow+enforced`,
    ]);
    assert.ok(tcpEcho(nsA, B.ip, 8090), "8090 in 8085-8095");
    assert.equal(tcpEcho(nsA, B.ip, 8080), false, "8080 below the range");
    assert.equal(tcpEcho(nsA, B.ip, 8096), false, "8096 above the range");
  });

  it("a tracked connection skips the policy lookups until its endpoint's revision changes; then it is decided again", (t) => {
    if (!needTcx(t)) return;
    const udp = (peer: number): PolicyEntry => ({ peer, protocol: "UDP", ports: [5353, 5353] });
    const allowA = both(endpoint(isolated(udp(A.identity))));
    setPolicy(NOT_ISOLATED, allowA);
    assert.ok(udpEchoFrom(nsA, B.ip, 5353, 41000), "allowed: the connection is tracked");
    // The entries gone behind the program's back, the revision unchanged: the tracked
    // connection passes on the fast path (no lookup), a new one is looked up and dropped.
    dp.syncPolicy([]);
    assert.ok(udpEchoFrom(nsA, B.ip, 5353, 41000), "tracked, same revision: passes unlooked");
    assert.equal(udpEchoFrom(nsA, B.ip, 5353, 41001), false, "a new connection: dropped");
    // A policy that no longer allows it: a new revision, the tracked connection is dropped.
    setPolicy(NOT_ISOLATED, both(endpoint(isolated())));
    assert.equal(udpEchoFrom(nsA, B.ip, 5353, 41000), false, "decided again: dropped");
    setPolicy(NOT_ISOLATED, allowA);
    assert.ok(udpEchoFrom(nsA, B.ip, 5353, 41000), "allowed again");
    // The peer's identity changes (the ipcache, hence the revision): decided again, dropped.
    const relabelled = new Map(
      [...ipcache()].map(([prefix, id]) => [prefix, id === A.identity ? 3000 : id]),
    );
    try {
      // Only the ipcache is written (its epoch with it): the endpoints stay as they are.
      const endpoints = dp.readEndpoints();
      dp.syncIpcache(relabelled);
      assert.deepEqual(dp.readEndpoints(), endpoints);
      assert.equal(udpEchoFrom(nsA, B.ip, 5353, 41000), false, "A is identity 3000 now");
    } finally {
      dp.syncIpcache(ipcache());
    }
  });

  it("audit: what only audit-mode policies would drop passes and is counted once per flow", (t) => {
    if (!needTcx(t)) return;
    // An audit-mode policy isolates B (full set); no enforced policy selects B.
    setPolicy(NOT_ISOLATED, {
      full: endpoint(isolated(tcp(A.identity, 9090))),
      enforced: endpoint(open),
    });
    const drops = dp.readDrops().policyDenied;
    const audit = auditOf(ifindex.b, "ingress");
    assert.ok(tcpEcho(nsA, B.ip, 8080), "passes: no enforced policy isolates B");
    assert.equal(auditOf(ifindex.b, "ingress"), audit + 1, "one would-drop for the connection");
    assert.ok(tcpEcho(nsA, B.ip, 9090), "allowed by both");
    assert.equal(auditOf(ifindex.b, "ingress"), audit + 1, "no would-drop for an allowed flow");
    assert.equal(dp.readDrops().policyDenied, drops, "nothing dropped");

    // An audit-mode policy's allow rules never widen what the enforced policies allow.
    setPolicy(NOT_ISOLATED, {
      full: endpoint(isolated(tcp(A.identity, 8080), tcp(A.identity, 9090))),
      enforced: endpoint(isolated(tcp(A.identity, 8080))),
    });
    assert.equal(tcpEcho(nsA, B.ip, 9090), false, "only the audit policy allows 9090: dropped");
    assert.ok(tcpEcho(nsA, B.ip, 8080));
  });

  it("ICMP: ping passes with an any-protocol entry only; echo replies pass as tracked replies", (t) => {
    if (!needTcx(t)) return;
    setPolicy(NOT_ISOLATED, both(endpoint(isolated(tcp(A.identity, 8080)), isolated())));
    const before = dropsOf(B.identity, A.identity, "ingress");
    assert.equal(pings(nsA, B.ip), false, "a TCP entry does not allow ICMP");
    assert.equal(pings(nsA, B.ip6), false, "nor ICMPv6");
    assert.ok(dropsOf(B.identity, A.identity, "ingress") >= before + 2);
    // Egress-isolated B answers anyway: the echo reply matches the request's tracked tuple.
    setPolicy(NOT_ISOLATED, both(endpoint(isolated(anyProtocol(A.identity)), isolated())));
    assert.ok(pings(nsA, B.ip), "A pings B");
    assert.ok(pings(nsA, B.ip6), "A pings B over IPv6 (neighbour discovery passes)");
    assert.equal(pings(nsB, A.ip), false, "B's own echo requests are new flows: dropped");
  });

  it("IPv6: the peer's identity comes from ipcache6", (t) => {
    if (!needTcx(t)) return;
    setPolicy(NOT_ISOLATED, both(endpoint(isolated(tcp(A.identity, 8080)))));
    assert.ok(tcpEcho(nsA, B.ip6, 8080), "IPv6 TCP/8080 from A's identity");
    assert.equal(tcpEcho(nsA, B.ip6, 9090), false, "IPv6 TCP/9090 dropped");
    // Without its ipcache6 entry A's IPv6 address is "world" (2): not the entry's peer.
    dp.syncIpcache(
      new Map([...ipcache()].filter(([prefix, id]) => !prefix.includes(":") || id !== A.identity)),
    );
    const world = dropsOf(B.identity, 2, "ingress");
    assert.equal(tcpEcho(nsA, B.ip6, 8080), false, "IPv6 from an unknown address: world");
    assert.ok(dropsOf(B.identity, 2, "ingress") > world);
    assert.ok(tcpEcho(nsA, B.ip, 8080), "IPv4 still A's identity");
    dp.syncIpcache(ipcache());
    assert.deepEqual(dp.readIpcache(), ipcache());
  });

  it("the kernel's LPM lookups answer as lookupModel (random tiers, both endpoints)", (t) => {
    if (!needTcx(t)) return;
    const peers = [A.identity, B.identity, 3000];
    const port = fc.oneof(fc.integer({ min: 0, max: 40 }), fc.constantFrom(8080, 65535));
    const entry: fc.Arbitrary<PolicyEntry> = fc.oneof(
      fc.record({
        peer: fc.oneof(fc.constant<"any">("any"), fc.constantFrom(...peers)),
        protocol: fc.constant<"any">("any"),
        ports: fc.constant<[number, number]>([0, 65535]),
      }),
      fc.record({
        peer: fc.oneof(fc.constant<"any">("any"), fc.constantFrom(...peers)),
        protocol: fc.constantFrom<Protocol>("TCP", "UDP"),
        ports: fc.tuple(port, port).map(([x, y]): [number, number] => (x <= y ? [x, y] : [y, x])),
      }),
    );
    const dir = fc.record({ isolated: fc.boolean(), entries: fc.array(entry, { maxLength: 5 }) });
    const ep = fc.record({ ingress: dir, egress: dir });
    const tiers = fc.record({ full: ep, enforced: ep });
    let probes = 0;
    fc.assert(
      fc.property(tiers, tiers, (ta, tb) => {
        const entries = [...policyMapEntries(ifindex.a, ta), ...policyMapEntries(ifindex.b, tb)];
        dp.syncPolicy(entries);
        for (const [ifx, tiersOf] of [
          [ifindex.a, ta],
          [ifindex.b, tb],
        ] as const) {
          const flags = endpointFlags(tiersOf, { allowHost: false });
          for (const direction of DIRECTIONS)
            for (const peer of [...peers, 4000])
              for (const protocol of [IP_PROTOCOL.TCP, IP_PROTOCOL.UDP, IP_PROTOCOL.ICMP])
                for (const p of [0, 7, 8080, 65535]) {
                  const lookupPort = protocol === IP_PROTOCOL.ICMP ? 0 : p;
                  const ask = (identity: number) =>
                    dp.policyLookup({
                      ifindex: ifx,
                      identity,
                      direction,
                      protocol,
                      port: lookupPort,
                    });
                  const f = ask(peer) | ask(IDENTITY_ANY);
                  const [iso, isoEnf] =
                    direction === "ingress"
                      ? [ENDPOINT_FLAG.ingressIsolated, ENDPOINT_FLAG.ingressIsolatedEnforced]
                      : [ENDPOINT_FLAG.egressIsolated, ENDPOINT_FLAG.egressIsolatedEnforced];
                  const kernel = {
                    full: !(flags & iso) || (f & POLICY_ALLOW) !== 0,
                    enforced: !(flags & isoEnf) || (f & POLICY_ALLOW_ENFORCED) !== 0,
                  };
                  const model = lookupModel(entries, flags, ifx, direction, peer, protocol, p);
                  const where = `if${ifx} ${direction} peer ${peer} proto ${protocol}/${p}`;
                  assert.equal(kernel.full, model.full, `full: ${where}`);
                  assert.equal(kernel.enforced, model.enforced, `enforced: ${where}`);
                  probes++;
                }
        }
      }),
      { numRuns: 40, seed: 66 },
    );
    t.diagnostic(`${probes} lookups compared`);
  });

  it("clsact fallback: the pod programs run on the ingress and egress clsact hooks too", (t) => {
    if (!needTcx(t)) return;
    setPolicy(NOT_ISOLATED, both(endpoint(isolated(tcp(A.identity, 8080)))));
    withNetns(nsPath(nsNode), () => {
      dp.attach(hostB, "netloom_pod_egress", "clsact");
      dp.attach(hostB, "netloom_pod_ingress", "clsact");
      assert.deepEqual(dp.attachedProgramIds(hostB, "tcx", "ingress"), [], "tcx link removed");
      assert.deepEqual(dp.attachedProgramIds(hostB, "clsact", "ingress"), [
        dp.programId("netloom_pod_egress"),
      ]);
      assert.deepEqual(dp.attachedProgramIds(hostB, "clsact", "egress"), [
        dp.programId("netloom_pod_ingress"),
      ]);
    });
    assert.ok(tcpEcho(nsA, B.ip, 8080));
    assert.equal(tcpEcho(nsA, B.ip, 9090), false, "enforced through cls_bpf");
    withNetns(nsPath(nsNode), () => {
      dp.attach(hostB, "netloom_pod_egress", "tcx");
      dp.attach(hostB, "netloom_pod_ingress", "tcx");
      assert.deepEqual(dp.attachedProgramIds(hostB, "clsact", "ingress"), [], "filter removed");
      assert.deepEqual(dp.attachedProgramIds(hostB, "clsact", "egress"), []);
    });
    assert.equal(tcpEcho(nsA, B.ip, 9090), false, "enforced through tcx again");
  });

  it("agent restart: the reopened object finds the maps as they were and swaps the programs", (t) => {
    if (!needTcx(t)) return;
    setPolicy(NOT_ISOLATED, both(endpoint(isolated(tcp(A.identity, 8080)))));
    const state = {
      endpoints: dp.readEndpoints(),
      policy: describePolicyEntries(dp.readPolicy()),
      ipcache: dp.readIpcache(),
    };
    const conntrack = dp.mapEntryCounts().conntrack ?? 0;
    dp.close();

    dp = openDatapath();
    assert.deepEqual(dp.readEndpoints(), state.endpoints);
    assert.deepEqual(describePolicyEntries(dp.readPolicy()), state.policy);
    assert.deepEqual(dp.readIpcache(), state.ipcache);
    assert.ok(
      (dp.mapEntryCounts().conntrack ?? 0) >= conntrack,
      "tracked flows survive the restart",
    );
    attachAll(dp);
    withNetns(nsPath(nsNode), () => {
      for (const dev of [hostA, hostB]) {
        assert.deepEqual(dp.attachedProgramIds(dev, "tcx", "ingress"), [
          dp.programId("netloom_pod_egress"),
        ]);
        assert.deepEqual(dp.attachedProgramIds(dev, "tcx", "egress"), [
          dp.programId("netloom_pod_ingress"),
        ]);
      }
    });
    assert.deepEqual(readdirSync(join(pinDir, "links")).sort(), [
      `${hostA}-egress`,
      `${hostA}-ingress`,
      `${hostB}-egress`,
      `${hostB}-ingress`,
    ]);
    assert.ok(tcpEcho(nsA, B.ip, 8080));
    assert.equal(tcpEcho(nsA, B.ip, 9090), false, "still enforced");

    withNetns(nsPath(nsNode), () => dp.detach(hostB));
    assert.ok(tcpEcho(nsA, B.ip, 9090), "nothing enforces on B after detach");
    assert.deepEqual(readdirSync(join(pinDir, "links")).sort(), [
      `${hostA}-egress`,
      `${hostA}-ingress`,
    ]);
    dp.close();
    BpfDatapath.removePins(pinDir);
    assert.equal(existsSync(pinDir), false);
  });
});
