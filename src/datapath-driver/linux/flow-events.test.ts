/**
 * Flow events on the real kernel: two pods behind a node (test/support/pod-netns.ts), the pod
 * programs on both host veths, the ring buffer read through its pin as the agent reads it
 * (PinnedFlowEvents), then through the agent's pipeline (FlowObserver: names, NDJSON lines).
 *
 *   pod A  10.67.0.1  identity 1000
 *   pod B  10.67.0.2  identity 2000, echo servers TCP 8080 and 9090, UDP 5353
 *
 * Checks: a policy drop's event (reason, both identities, direction, ports, flags); a forwarded
 * connection's first packet seen once per endpoint however many packets it carries, and its
 * end once; audit; lost events counted when the ring is flooded; the reader's CPU at idle and
 * under a flood of ~10,000 new connections per second. Needs root, kernel BTF with tcx, the
 * built object (make bpf); skipped with the reason otherwise.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { Registry } from "prom-client";
import {
  echoServers,
  nsPath,
  type TwoPods,
  tcpConnects,
  tcpConversation,
  twoPods,
  udpFlood,
} from "../../../test/support/pod-netns.js";
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
import { FlowBuffer } from "../../flows/buffer.js";
import { emptyContext, type FlowContext, interfacePods } from "../../flows/context.js";
import type { Flow, FlowLine } from "../../flows/flow.js";
import { FlowMetrics } from "../../flows/metrics.js";
import { FlowObserver } from "../../flows/observer.js";
import type { EndpointPlan } from "../../policy/node.js";
import { RealClock } from "../../util/clock.js";
import { decodeFlowEvent, FLOW_RING_RECORDS, type FlowEvent } from "../maps/flow-events.js";
import { IDENTITY_HOST, ipcacheEntries, type PolicyTiers } from "../maps/policy.js";
import { BpfDatapath } from "./bpf-datapath.js";
import { BPF_OBJECT } from "./driver.js";
import { PinnedFlowEvents } from "./flow-events.js";
import { ifNameToIndex, withNetns } from "./libbpf.js";

const pid = process.pid;
const pinDir = `/sys/fs/bpf/nlfe-${pid}`;
const ID_A = 1000;
const ID_B = 2000;

function skipReason(): string | undefined {
  if (process.platform !== "linux") return "needs Linux";
  return unmet({
    root: "loads eBPF programs and creates namespaces",
    btf: true,
    files: [{ path: BPF_OBJECT, hint: "build the eBPF object with make bpf" }],
    tools: ["ip", "nsenter", "sysctl"],
  });
}

const reason = skipReason();

describe("flow events on the real kernel", { skip: skipWhen(reason) }, () => {
  let pods: TwoPods;
  let dp: BpfDatapath;
  let events: PinnedFlowEvents;
  let tcx = false;
  const servers: ChildProcess[] = [];
  const ifindex = { a: 0, b: 0 };

  const setPolicy = (a: PolicyTiers, b: PolicyTiers) =>
    syncEndpointPolicies(dp, [
      { ifindex: ifindex.a, identity: ID_A, tiers: a },
      { ifindex: ifindex.b, identity: ID_B, tiers: b },
    ]);

  /** Every record in the ring now, decoded (a record that does not decode fails the test). */
  const drain = (): FlowEvent[] => {
    const out: FlowEvent[] = [];
    events.read(1_000_000, (r) => {
      const d = decodeFlowEvent(r);
      assert.ok(d.ok, d.ok ? "" : d.error);
      out.push(d.event);
    });
    return out;
  };

  before(async () => {
    pods = twoPods(`nlfe-${pid}`, `nlfe${pid}`);
    servers.push(await echoServers(pods.b.ns, [8080, 9090], [5353]));
    withNetns(nsPath(pods.node), () => {
      ifindex.a = ifNameToIndex(pods.a.host);
      ifindex.b = ifNameToIndex(pods.b.host);
      tcx = BpfDatapath.detectTcx();
    });
    if (!tcx) return;
    dp = BpfDatapath.open({ objectPath: BPF_OBJECT, pinDir });
    dp.syncIpcache(
      ipcacheEntries({
        [pods.a.ip]: ID_A,
        [pods.a.ip6]: ID_A,
        [pods.b.ip]: ID_B,
        [pods.b.ip6]: ID_B,
        [pods.hostIP]: IDENTITY_HOST,
      }),
    );
    setPolicy(NOT_ISOLATED, NOT_ISOLATED);
    withNetns(nsPath(pods.node), () => {
      for (const dev of [pods.a.host, pods.b.host]) {
        dp.attach(dev, "netloom_pod_egress", "tcx");
        dp.attach(dev, "netloom_pod_ingress", "tcx");
      }
    });
    events = new PinnedFlowEvents(pinDir);
  });

  after(() => {
    const step = (what: string, fn: () => void): void => {
      try {
        fn();
      } catch (e) {
        console.error(`cleanup: ${what}: ${(e as Error).message}`);
      }
    };
    step("reader", () => events?.close());
    step("close", () => dp?.close());
    step("pins", () => BpfDatapath.removePins(pinDir));
    for (const s of servers) step("servers", () => s.kill());
    step("netns", () => pods?.destroy());
  });

  const needTcx = (t: Parameters<typeof skipOrFail>[0]): boolean => {
    if (tcx) return true;
    skipOrFail(t, "kernel has no tcx (needs Linux 6.6+)");
    return false;
  };

  it("a policy drop: one event per dropped packet, with the reason, both identities and the direction", async (t) => {
    if (!needTcx(t)) return;
    setPolicy(NOT_ISOLATED, both(endpoint(isolated(tcp(ID_A, 8080)))));
    drain();
    assert.equal(await tcpConnects(pods.a.ns, pods.b.ip, 9090, 1500), false, "9090 is denied");
    const all = drain();
    // Only A's packets: B's isolation also drops what else reaches it (link-local multicast).
    const drops = all.filter((e) => e.kind === "drop" && e.source === pods.a.ip);
    assert.ok(drops.length >= 1, `drop events among ${all.map((e) => e.kind).join(", ")}`);
    const counted = dp
      .readPolicyDrops()
      .filter((d) => d.localIdentity === ID_B && d.peerIdentity === ID_A)
      .reduce((n, d) => n + d.packets, 0);
    assert.equal(counted, drops.length, "one event per counted drop");
    for (const d of drops) {
      assert.deepEqual(
        {
          verdict: d.verdict,
          reason: d.reason,
          direction: d.direction,
          local: d.localIdentity,
          peer: d.peerIdentity,
          ifindex: d.ifindex,
          source: d.source,
          destination: d.destination,
          dport: d.destinationPort,
          protocol: d.protocol,
          syn: d.l4Flags & 0x02,
        },
        {
          verdict: "DROPPED",
          reason: "policy_denied",
          direction: "ingress",
          local: ID_B,
          peer: ID_A,
          ifindex: ifindex.b,
          source: pods.a.ip,
          destination: pods.b.ip,
          dport: 9090,
          protocol: 6,
          syn: 0x02,
        },
      );
    }
    // A's egress let it out: A's first packet is a new connection there, forwarded.
    const atA = all.filter(
      (e) => e.kind === "new" && e.ifindex === ifindex.a && e.destinationPort === 9090,
    );
    assert.equal(atA.length, 1, "one new connection at A's egress");
    assert.equal(atA[0]?.verdict, "FORWARDED");
    assert.equal(atA[0]?.direction, "egress");
    assert.equal(atA[0]?.peerIdentity, ID_B);
  });

  it("IPv6: a drop names both IPv6 addresses", async (t) => {
    if (!needTcx(t)) return;
    setPolicy(NOT_ISOLATED, both(endpoint(isolated(tcp(ID_A, 8080)))));
    drain();
    assert.equal(await tcpConnects(pods.a.ns, pods.b.ip6, 9090, 600), false);
    const drop = drain().find((e) => e.kind === "drop" && e.source === pods.a.ip6);
    assert.ok(drop, "an IPv6 drop event from A");
    assert.equal(drop.family, 6);
    assert.equal(drop.destination, pods.b.ip6);
    assert.equal(drop.destinationPort, 9090);
    assert.equal(drop.peerIdentity, ID_A);
    assert.equal(drop.localIdentity, ID_B);
  });

  it("a forwarded connection: its first packet once per endpoint, not per packet, and its end once", async (t) => {
    if (!needTcx(t)) return;
    setPolicy(NOT_ISOLATED, both(endpoint(isolated(tcp(ID_A, 8080)))));
    drain();
    const port = await tcpConversation(pods.a.ns, pods.b.ip, 8080, 200);
    const ofConnection = drain().filter(
      (e) => e.sourcePort === port && e.destinationPort === 8080 && e.protocol === 6,
    );
    const summary = ofConnection.map((e) => `${e.kind}@${e.direction}/${e.ifindex}`).sort();
    // 200 round trips (400+ packets each way) and two FINs: four events.
    assert.deepEqual(summary, [
      `end@egress/${ifindex.a}`,
      `end@ingress/${ifindex.b}`,
      `new@egress/${ifindex.a}`,
      `new@ingress/${ifindex.b}`,
    ]);
    for (const e of ofConnection) {
      assert.equal(e.verdict, "FORWARDED");
      assert.equal(e.reason, undefined);
      assert.equal(e.source, pods.a.ip, "the tuple as first seen (is_reply false)");
      assert.equal(e.destination, pods.b.ip);
      assert.equal(e.localIdentity, e.ifindex === ifindex.a ? ID_A : ID_B);
      assert.equal(e.peerIdentity, e.ifindex === ifindex.a ? ID_B : ID_A);
    }
    const first = ofConnection.find((e) => e.kind === "new");
    assert.equal(first?.l4Flags, 0x02, "the first packet is the SYN");
    const ends = ofConnection.filter((e) => e.kind === "end");
    assert.ok(
      ends.every((e) => e.l4Flags & 0x01 || e.l4Flags & 0x04),
      "ends on a FIN or RST",
    );
  });

  it("audit: a connection only audit-mode policies would drop is a new AUDIT flow with its reason", async (t) => {
    if (!needTcx(t)) return;
    setPolicy(NOT_ISOLATED, {
      full: endpoint(isolated(tcp(ID_A, 9090))),
      enforced: endpoint(open),
    });
    drain();
    const port = await tcpConversation(pods.a.ns, pods.b.ip, 8080, 3);
    const atB = drain().filter((e) => e.sourcePort === port && e.ifindex === ifindex.b);
    const first = atB.find((e) => e.kind === "new");
    assert.equal(first?.verdict, "AUDIT");
    assert.equal(first?.reason, "policy_denied");
    assert.equal(first?.direction, "ingress");
    assert.ok(!atB.some((e) => e.kind === "drop"), "nothing dropped");
  });

  it("through the agent's pipeline: named ends, the denying policy, NDJSON lines", async (t) => {
    if (!needTcx(t)) return;
    setPolicy(NOT_ISOLATED, both(endpoint(isolated(tcp(ID_A, 8080)))));
    drain();
    const plan = (pod: string, identity: number, ingress: string[]): EndpointPlan => ({
      pod,
      ips: [],
      identity,
      tiers: both(endpoint(open)),
      audit: { ingress: [], egress: [] },
      isolatedBy: { ingress, egress: [] },
    });
    const byAddress = new Map([
      [pods.a.ip, { namespace: "shop", name: "web-7d9f8c6b5d-x2x4k", identity: ID_A }],
      [pods.b.ip, { namespace: "shop", name: "db-0", identity: ID_B }],
    ]);
    const ctx: FlowContext = {
      node: "node-1",
      directory: {
        identities: new Map([
          [ID_A, { namespace: "shop", labels: { app: "web" }, namespaceLabels: {} }],
          [ID_B, { namespace: "shop", labels: { app: "db" }, namespaceLabels: {} }],
        ]),
        podAt: (address) => byAddress.get(address),
        pods: () => byAddress.values(),
      },
      endpoints: new Map([
        ["shop/web-7d9f8c6b5d-x2x4k", plan("shop/web-7d9f8c6b5d-x2x4k", ID_A, [])],
        ["shop/db-0", plan("shop/db-0", ID_B, ["shop/db-allow-web"])],
      ]),
      interfaces: interfacePods(
        new Map([
          [ifindex.a, "shop/web-7d9f8c6b5d-x2x4k"],
          [ifindex.b, "shop/db-0"],
        ]),
      ),
      interfaceName: (i) =>
        i === ifindex.a ? pods.a.host : i === ifindex.b ? pods.b.host : undefined,
      sources: {},
    };
    const buffer = new FlowBuffer(100);
    const observer = new FlowObserver({
      source: events,
      buffer,
      context: () => ctx,
      clock: new RealClock(),
    });
    const before = Date.now();
    assert.equal(await tcpConnects(pods.a.ns, pods.b.ip, 9090, 600), false);
    observer.poll();
    const lines = buffer.query().map((f) => JSON.parse(f.line()) as FlowLine);
    const drop = lines
      .map((l) => ("flow" in l ? l.flow : undefined))
      .find((f): f is Flow => f?.verdict === "DROPPED");
    assert.ok(drop, JSON.stringify(lines));
    assert.equal(drop.drop_reason_desc, "POLICY_DENIED");
    assert.equal(drop.traffic_direction, "INGRESS");
    assert.deepEqual(drop.ingress_denied_by, [
      { kind: "NetworkPolicy", namespace: "shop", name: "db-allow-web" },
    ]);
    assert.equal(drop.source.pod_name, "web-7d9f8c6b5d-x2x4k");
    assert.deepEqual(drop.source.workloads, [{ name: "web" }]);
    assert.equal(drop.source.identity, ID_A);
    assert.deepEqual(drop.source.labels, ["k8s:app=web", "k8s:io.kubernetes.pod.namespace=shop"]);
    assert.equal(drop.destination.pod_name, "db-0");
    assert.equal(drop.destination.identity, ID_B);
    assert.deepEqual(drop.l4, {
      TCP: {
        source_port: drop.l4 && "TCP" in drop.l4 ? drop.l4.TCP.source_port : 0,
        destination_port: 9090,
        flags: { SYN: true },
      },
    });
    assert.deepEqual(drop.interface, { index: ifindex.b, name: pods.b.host });
    assert.equal(drop.node_name, "node-1");
    const at = Date.parse(drop.time);
    assert.ok(at >= before - 5 && at <= Date.now() + 5, `time ${drop.time} is now`);
  });

  it("a flooded ring: what does not fit is counted as lost, never blocks the programs", async (t) => {
    if (!needTcx(t)) return;
    setPolicy(NOT_ISOLATED, NOT_ISOLATED);
    drain();
    const lostBefore = events.lost();
    // Each datagram to a new port is a new connection at A's egress and at B's ingress.
    const sent = await udpFlood(pods.a.ns, pods.b.ip, FLOW_RING_RECORDS * 2, 50_000, 20_000);
    const read = drain().filter((e) => e.protocol === 17).length;
    const lost = events.lost() - lostBefore;
    t.diagnostic(
      `${sent} datagrams: ${read} UDP events read, ${lost} lost (ring of ${FLOW_RING_RECORDS})`,
    );
    assert.ok(read <= FLOW_RING_RECORDS, "no more than the ring holds");
    assert.ok(lost > 0, "the overflow is counted");
    assert.ok(read + lost >= 2 * sent, "every event is either read or counted lost");
  });

  it("the agent's reader: CPU at idle and under ~10,000 new connections per second", async (t) => {
    if (!needTcx(t)) return;
    setPolicy(NOT_ISOLATED, NOT_ISOLATED);
    drain();
    const registry = new Registry();
    const buffer = new FlowBuffer();
    const ctx = emptyContext("node-1");
    let observer: FlowObserver | undefined;
    const metrics = new FlowMetrics(registry, () => observer!.flowCounts());
    observer = new FlowObserver({
      source: new PinnedFlowEvents(pinDir),
      buffer,
      metrics,
      context: () => ctx,
      clock: new RealClock(),
    });
    const measure = async (work: () => Promise<unknown>) => {
      const cpu = process.cpuUsage();
      const started = performance.now();
      const lost = events.lost();
      const read = observer!.flowCounts().read;
      await work();
      const used = process.cpuUsage(cpu);
      const seconds = (performance.now() - started) / 1000;
      return {
        seconds,
        cpuPercent: (used.user + used.system) / 1e4 / seconds,
        read: observer!.flowCounts().read - read,
        lost: events.lost() - lost,
      };
    };
    // Idle: what one poll of an empty ring costs (a consume, the lost counter, the pin's stat).
    // Process CPU accounting here is per 4 ms tick (CONFIG_TICK_CPU_ACCOUNTING, HZ=250), so a
    // few wakeups a second read as 0.5-1% of a CPU whatever they do; timing 1,000 polls does not.
    const polls = 1000;
    const idleCpu = process.cpuUsage();
    for (let i = 0; i < polls; i++) observer.poll();
    const idleUsed = process.cpuUsage(idleCpu);
    const perPollUs = (idleUsed.user + idleUsed.system) / polls;
    t.diagnostic(
      `idle: ${perPollUs.toFixed(0)} µs of CPU per poll: ${((perPollUs * 10) / 1e4).toFixed(2)}% of one CPU at 10 polls/s`,
    );
    assert.ok(perPollUs < 1000, `an empty poll costs ${perPollUs} µs`);
    observer.start();
    try {
      const idle = await measure(() => new Promise((r) => setTimeout(r, 3000)));
      const perSecond = 10_000;
      let sent = 0;
      const flood = await measure(async () => {
        sent = await udpFlood(pods.a.ns, pods.b.ip, 3 * perSecond, perSecond, 30_000);
        await new Promise((r) => setTimeout(r, 250)); // the last poll
      });
      const fmt = (m: typeof idle) =>
        `${m.cpuPercent.toFixed(1)}% of one CPU over ${m.seconds.toFixed(1)} s, ${m.read} events read (${Math.round(m.read / m.seconds)}/s), ${m.lost} lost`;
      t.diagnostic(`idle, as the process is accounted: ${fmt(idle)}`);
      t.diagnostic(`flood of ${sent} new UDP connections at ${perSecond}/s: ${fmt(flood)}`);
      t.diagnostic(
        `${((flood.cpuPercent * flood.seconds * 1e4) / Math.max(1, flood.read)).toFixed(1)} µs of CPU per event under the flood`,
      );
      assert.ok(flood.read + flood.lost >= 2 * sent, "every event read or counted lost");
      assert.ok(flood.cpuPercent < 80, `bounded under the flood: ${fmt(flood)}`);
      assert.equal(buffer.size(), buffer.capacity, "the buffer keeps its 4,095 most recent");
      const text = await registry.metrics();
      assert.match(
        text,
        /netloom_agent_flows_total\{verdict="FORWARDED",reason="none",direction="egress"\} \d+/,
      );
    } finally {
      observer.stop();
    }
  });
});
