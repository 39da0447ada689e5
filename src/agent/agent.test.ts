import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type {
  NodeDatapath,
  NodeNetworkState,
  NodeNetworkStateStatus,
} from "../api/nodenetworkstate.js";
import type { NodePeer, NodePeerStatus } from "../api/nodepeer.js";
import { diffDatapath, expectedState, planDatapath } from "../datapath-driver/driver.js";
import { MemoryDriver } from "../datapath-driver/memory.js";
import { contentHash } from "../reconcilers/shared/hash.js";
import { FakeClock } from "../util/clock.js";
import { NodeAgent } from "./agent.js";
import { KeyStore } from "./keystore.js";
import { ROTATION_GUARD_MS } from "./rotation.js";

/** A desired datapath as rendered from generation `generation` of NetworkConfig nc. */
function state(generation: number, mode: "Heal" | "Report"): NodeDatapath {
  return {
    nodeName: "n1",
    egressDeny: [
      { cidr: "169.254.169.254/32" },
      { cidr: "10.0.0.0/8", ports: [{ port: 22, protocol: "TCP" }] },
    ],
    bandwidth: [
      { pod: "ns/p", ip: "10.244.1.10", egressBitsPerSecond: 50_000_000, source: "ns/bp" },
    ],
    drift: { checkInterval: "1h", mode },
    sources: { networkConfig: { name: "nc", generation } },
  };
}

/** The NetworkConfig generation a report says was rendered (and, if Ready, applied). */
const appliedGen = (s: NodeNetworkStateStatus) => s.sources?.networkConfig?.generation;
const readyOf = (s: NodeNetworkStateStatus) => s.conditions?.find((c) => c.type === "Ready");

/** This node's NodeNetworkState as the watch would deliver it. */
const ownState = (status: NodeNetworkStateStatus): NodeNetworkState => ({
  apiVersion: "netloom.io/v1alpha1",
  kind: "NodeNetworkState",
  metadata: { name: "n1", generation: 1 },
  spec: { nodeName: "n1" },
  status,
});

function harness() {
  const driver = new MemoryDriver();
  const clock = new FakeClock();
  const writes: NodeNetworkStateStatus[] = [];
  const drifts: string[][] = [];
  const agent = new NodeAgent({
    node: "n1",
    driver,
    clock,
    writeStatus: async (s) => void writes.push(structuredClone(s)),
    onDrift: (items) => drifts.push(items.map((i) => i.detail)),
    retryMs: 10,
  });
  const advance = (ms: number) => clock.advance(ms, () => agent.idle());
  return { driver, clock, advance, writes, drifts, agent, last: () => writes.at(-1)! };
}

describe("NodeAgent (memory driver)", () => {
  it("applies a new generation once and reports it", async () => {
    const h = harness();
    await h.agent.observe(state(1, "Heal"));
    await h.agent.observe(state(1, "Heal"));
    assert.equal(h.driver.applies, 1, "the same generation is not applied twice");
    assert.equal(appliedGen(h.last()), 1);
    assert.equal(h.last().appliedSpecHash, contentHash(state(1, "Heal")));
    assert.equal(h.last().conditions?.find((c) => c.type === "Ready")?.status, "True");
    assert.deepEqual(h.last().mapEntries, {
      egress_deny: 2,
      egress_deny6: 0,
      strict_cidrs: 0,
      pod_class: 1,
    });
    h.agent.stop();
  });

  it("reports a failed apply against the generation it tried, then retries", async () => {
    const h = harness();
    await h.agent.observe(state(1, "Heal"));
    const appliedHash = h.last().appliedSpecHash;
    h.driver.failWith("bpf attach failed: no device");
    await h.agent.observe(state(2, "Heal"));
    assert.equal(appliedGen(h.last()), 2, "the generation that failed is named");
    assert.equal(h.last().appliedSpecHash, appliedHash, "what is applied is still generation 1");
    assert.equal(readyOf(h.last())?.status, "False");
    assert.equal(readyOf(h.last())?.message, "bpf attach failed: no device");
    h.driver.failWith(undefined);
    await h.advance(9);
    assert.equal(readyOf(h.last())?.status, "False", "no retry before retryMs");
    await h.advance(1);
    assert.equal(readyOf(h.last())?.status, "True", "retried after the failure cleared");
    assert.equal(h.last().appliedSpecHash, contentHash(state(2, "Heal")));
    h.agent.stop();
  });

  it("heals drift in Heal mode and counts it", async () => {
    const h = harness();
    await h.agent.observe(state(1, "Heal"));
    h.driver.injectDrift("bandwidth");
    await h.agent.checkDrift();
    assert.deepEqual(h.drifts, [["rate limit for 10.244.1.10 missing"]]);
    const s = state(1, "Heal");
    const expected = expectedState(planDatapath(s, h.driver.devicesFor(s)));
    assert.deepEqual(diffDatapath(expected, await h.driver.read()), [], "healed to the plan");
    assert.equal(h.last().drift?.drifted, false);
    assert.equal(h.last().drift?.detectedTotal, 1);
    assert.equal(h.last().drift?.healedTotal, 1);
    h.agent.stop();
  });

  it("only reports drift in Report mode", async () => {
    const h = harness();
    await h.agent.observe(state(1, "Report"));
    h.driver.injectDrift("egressDeny");
    await h.agent.checkDrift();
    assert.equal(h.last().drift?.drifted, true);
    assert.equal(h.last().drift?.healedTotal ?? 0, 0);
    assert.match(h.last().drift?.lastDriftReason ?? "", /egress-deny entry .* missing/);
    assert.equal(
      (await h.driver.read()).egressDeny.length,
      1,
      "left alone: one of two entries still missing",
    );
    h.agent.stop();
  });
});

describe("NodeAgent units on one clock (memory driver)", () => {
  const degraded = (s: NodeNetworkStateStatus) => s.conditions?.find((c) => c.type === "Degraded");

  it("a drift check whose kernel read throws is reported, and the next check still runs", async () => {
    const h = harness();
    await h.agent.observe(state(1, "Heal"));
    h.driver.failReadWith("bpf_map_get_next_key: Operation not permitted");
    await h.advance(3_600_000);
    assert.equal(degraded(h.last())?.status, "True");
    assert.equal(degraded(h.last())?.reason, "DriftCheckFailed");
    assert.match(degraded(h.last())?.message ?? "", /Operation not permitted/);
    assert.ok(h.clock.scheduled("n1/drift"), "the next drift check is armed");
    h.driver.failReadWith(undefined);
    h.driver.injectDrift("bandwidth");
    await h.advance(3_600_000);
    assert.deepEqual(h.drifts, [["rate limit for 10.244.1.10 missing"]], "checked again, healed");
    assert.equal(degraded(h.last())?.status, "False", "a completed check clears DriftCheckFailed");
    h.agent.stop();
  });

  it("keeps checking drift when its own status writes come back through the watch", async () => {
    const driver = new MemoryDriver();
    const clock = new FakeClock();
    const current = state(1, "Heal");
    const drifts: string[][] = [];
    const agent: NodeAgent = new NodeAgent({
      node: "n1",
      driver,
      clock,
      // As the informer does: every status write arrives as an update of the object.
      writeStatus: async (status) => void agent.observeOwnState(ownState(structuredClone(status))),
      onDrift: (items) => drifts.push(items.map((i) => i.detail)),
    });
    await agent.observe(current);
    for (let i = 1; i <= 3; i++) {
      driver.injectDrift("program");
      await clock.advance(3_600_000, () => agent.idle());
      assert.equal(drifts.length, i, `drift check ${i} ran and healed`);
    }
    agent.stop();
  });

  it("a status write that fails (the object not created yet) is made again, with backoff", async () => {
    const clock = new FakeClock();
    let failing = true;
    const writes: NodeNetworkStateStatus[] = [];
    const agent = new NodeAgent({
      node: "n1",
      driver: new MemoryDriver(),
      clock,
      writeStatus: async (s) => {
        if (failing) throw new Error('nodenetworkstates.netloom.io "n1" not found');
        writes.push(structuredClone(s));
      },
    });
    await agent.observe(state(1, "Heal"));
    await clock.advance(1000, () => agent.idle());
    assert.equal(writes.length, 0, "still failing: retried once, then backing off");
    assert.ok(clock.scheduled("n1/republish"), "the next retry is armed");
    failing = false;
    await clock.advance(2000, () => agent.idle());
    assert.equal(writes.length, 1);
    assert.equal(appliedGen(writes[0]!), 1);
    await clock.advance(60_000, () => agent.idle());
    assert.equal(writes.length, 1, "no retry once written");
    agent.stop();
  });

  it("a status write that never answers fails after its timeout, so the agent's work goes on", async () => {
    const clock = new FakeClock();
    let hang = true;
    const writes: NodeNetworkStateStatus[] = [];
    const agent = new NodeAgent({
      node: "n1",
      driver: new MemoryDriver(),
      clock,
      writeTimeoutMs: 20,
      writeStatus: (st) =>
        hang ? new Promise<void>(() => {}) : Promise.resolve(void writes.push(structuredClone(st))),
    });
    await agent.observe(state(1, "Heal"));
    assert.ok(clock.scheduled("n1/republish"), "the hung write counted as failed, a retry armed");
    hang = false;
    await agent.observe(state(2, "Heal"));
    assert.equal(appliedGen(writes.at(-1)!), 2, "the chain was not stalled by the hung write");
    agent.stop();
  });

  it("writes nothing at rest: liveness is the Lease's job, the heartbeat writes only changes", async () => {
    const h = harness();
    await h.agent.observe(state(1, "Heal"));
    h.agent.start();
    const writes = h.writes.length;
    await h.advance(10 * 15_000);
    assert.equal(h.writes.length, writes, "ten quiet heartbeat periods, no status write");
    h.agent.stop();
  });

  it("a drift check that finds nothing changes nothing a reader sees (no write at rest either)", async () => {
    const h = harness();
    const s = state(1, "Heal");
    s.drift = { checkInterval: "30s", mode: "Heal" };
    await h.agent.observe(s);
    h.agent.start();
    const writes = h.writes.length;
    await h.advance(10 * 15_000);
    assert.equal(h.writes.length, writes, "five quiet drift checks, ten heartbeats, no write");
    h.agent.stop();
  });

  it("a heal that throws is reported, and healing is tried again at the next interval", async () => {
    const h = harness();
    await h.agent.observe(state(1, "Heal"));
    h.driver.injectDrift("egressDeny");
    h.driver.failWith("tc: RTNETLINK answers: No such device");
    await h.advance(3_600_000);
    assert.equal(degraded(h.last())?.reason, "DriftCheckFailed");
    h.driver.failWith(undefined);
    await h.advance(3_600_000);
    assert.equal(h.last().drift?.healedTotal, 1);
    assert.equal(h.last().drift?.drifted, false);
    h.agent.stop();
  });

  it("drift checks start every checkInterval whatever they take; one that overruns is followed at once, never overlapped", async () => {
    const clock = new FakeClock();
    const t0 = clock.now().getTime();
    /** How long each kernel read takes, in order (then none); the fake clock moves meanwhile. */
    const durations = [3_000, 3_000, 15_000, 15_000, 3_000];
    const starts: number[] = [];
    let running = 0;
    let most = 0;
    class SlowRead extends MemoryDriver {
      override async read() {
        starts.push((clock.now().getTime() - t0) / 1000);
        most = Math.max(most, ++running);
        // Timers falling due meanwhile fire: the next check is queued behind this one.
        await clock.advance(durations.shift() ?? 0);
        running--;
        return super.read();
      }
    }
    const agent = new NodeAgent({
      node: "n1",
      driver: new SlowRead(),
      clock,
      writeStatus: async () => {},
    });
    /** Until the serial chain stops growing: a check queued during another runs too. */
    const settle = async () => {
      for (let chain = agent.idle(); ; ) {
        await chain;
        if (chain === agent.idle()) return;
        chain = agent.idle();
      }
    };
    const s = state(1, "Heal");
    s.drift = { checkInterval: "10s", mode: "Heal" };
    await agent.observe(s);
    await clock.advance(75_000, settle);
    // Old behaviour (armed when a check ended): 10, 23, 36, 61 …
    assert.deepEqual(starts, [10, 20, 30, 45, 60, 70], "seconds after the apply");
    assert.equal(most, 1, "never two checks at once");
    assert.equal(clock.scheduled("n1/drift")?.getTime(), t0 + 80_000, "armed from the last start");
    agent.stop();
  });

  it("rules that merge, overlap and mix families converge once and never drift", async () => {
    const h = harness();
    const s = state(1, "Heal");
    s.egressDeny = [
      { cidr: "10.0.0.0/8" },
      { cidr: "10.0.0.0/8", ports: [{ port: 22, protocol: "TCP" }] },
      { cidr: "10.1.0.0/16", ports: [{ port: 22, protocol: "TCP" }] },
      { cidr: "fd00::/8" },
    ];
    await h.agent.observe(s);
    await h.advance(3 * 3_600_000);
    assert.deepEqual(h.drifts, []);
    assert.equal(h.last().drift?.detectedTotal ?? 0, 0);
    assert.deepEqual((await h.driver.read()).egressDeny, [
      "10.0.0.0/8",
      "10.0.0.0/8 TCP/22",
      "10.1.0.0/16 TCP/22",
      "fd00::/8",
    ]);
    h.agent.stop();
  });

  it("what the datapath cannot enforce is named in Degraded and counted, never dropped silently", async () => {
    const h = harness();
    const s = state(1, "Heal");
    s.bandwidth = [
      ...(s.bandwidth ?? []),
      { pod: "ns/v6", ip: "fd00::10", egressBitsPerSecond: 1_000_000, source: "ns/bp" },
    ];
    await h.agent.observe(s);
    assert.equal(h.last().conditions?.find((c) => c.type === "Ready")?.status, "True");
    assert.equal(degraded(h.last())?.reason, "NotEnforced");
    assert.match(degraded(h.last())?.message ?? "", /pod ns\/v6 \(fd00::10\)/);
    assert.equal(h.last().datapath?.notEnforced, 1);
    await h.advance(3_600_000);
    assert.deepEqual(h.drifts, [], "left out of the plan, so not drift either");
    h.agent.stop();
  });

  it("renders its own datapath from the watched sources and reports their generations", async () => {
    const h = harness();
    await h.agent.observeSources(sources(networkConfig(1, "169.254.169.254/32")));
    assert.equal(appliedGen(h.last()), 1);
    assert.deepEqual((await h.driver.read()).egressDeny, ["169.254.169.254/32"]);
    await h.agent.observeSources(sources(networkConfig(2, "10.0.0.0/8")));
    assert.equal(appliedGen(h.last()), 2);
    assert.equal(readyOf(h.last())?.status, "True");
    assert.deepEqual((await h.driver.read()).egressDeny, ["10.0.0.0/8"]);
    assert.equal(h.driver.applies, 2);
    h.agent.stop();
  });

  it("a source the code cannot parse is reported, naming the field; the datapath stays", async () => {
    const invalid: string[] = [];
    const h = harness();
    const agent = new NodeAgent({
      node: "n1",
      driver: h.driver,
      clock: h.clock,
      writeStatus: async (st) => void h.writes.push(structuredClone(st)),
      onInvalid: (e) => invalid.push(e),
    });
    await agent.observeSources(sources(networkConfig(1, "169.254.169.254/32")));
    await agent.observeSources(sources(networkConfig(2, "10.0.0.0/33")));
    const ready = readyOf(h.last());
    assert.equal(ready?.status, "False");
    assert.equal(ready?.reason, "InvalidSpec");
    assert.match(
      ready?.message ?? "",
      /NetworkConfig default is not usable: spec\.egressDeny\[0\]\.cidr/,
    );
    assert.equal(invalid.length, 1);
    assert.equal(appliedGen(h.last()), 1, "generation 1 stays applied");
    assert.equal(h.driver.applies, 1);
    agent.stop();
  });

  it("a pod annotation it cannot honour is reported once, naming the pod, and limits nothing", async () => {
    const reported: string[] = [];
    const agent = new NodeAgent({
      node: "n1",
      driver: new MemoryDriver(),
      clock: new FakeClock(),
      writeStatus: async () => {},
      onBadAnnotation: (pod, value, error) =>
        reported.push(`${pod.namespace}/${pod.name} ${value}: ${error}`),
    });
    const pod = {
      metadata: {
        namespace: "shop",
        name: "web-1",
        annotations: { "kubernetes.io/egress-bandwidth": "1e100" },
      },
      spec: { nodeName: "n1" },
      status: { podIP: "10.244.1.9" },
    };
    const raw = { ...sources(networkConfig(1, "169.254.169.254/32")), pods: [pod] };
    await agent.observeSources(raw);
    await agent.observeSources({ ...raw });
    assert.equal(reported.length, 1, reported.join(" | "));
    assert.match(reported[0]!, /^shop\/web-1 1e100: .*between 1k and 100G/);
    assert.equal(agent.currentDesired()?.bandwidth, undefined);
    agent.stop();
  });

  it("nothing is rendered for a node that is gone: what it applied is torn down", async () => {
    const h = harness();
    await h.agent.observeSources(sources(networkConfig(1, "169.254.169.254/32")));
    await h.agent.observeSources({
      ...sources(networkConfig(1, "169.254.169.254/32")),
      node: undefined,
    });
    assert.deepEqual((await h.driver.read()).egressDeny, []);
    h.agent.stop();
  });
});

function networkConfig(generation: number, cidr: string) {
  return {
    apiVersion: "netloom.io/v1alpha1",
    kind: "NetworkConfig",
    metadata: { name: "default", generation, creationTimestamp: "2026-11-01T00:00:00Z" },
    spec: { egressDeny: [{ cidr }] },
  };
}

/** What the agent's watches deliver for node n1 with one NetworkConfig. */
function sources(nc: unknown) {
  return {
    node: { metadata: { name: "n1", labels: {} }, spec: { podCIDR: "10.244.1.0/24" } },
    pods: [],
    networkConfigs: [nc],
    encryptionProfiles: [],
    bandwidthPolicies: [],
  };
}

describe("NodeAgent key rotation (memory driver)", () => {
  it("announces the next public key ahead of the switch, then publishes it, every interval", async () => {
    const published: { key?: string; next?: string }[] = [];
    const clock = new FakeClock();
    const agent = new NodeAgent({
      node: "n1",
      driver: new MemoryDriver(),
      clock,
      keys: new KeyStore(undefined),
      nodeIP: "192.0.2.1",
      rotationLeadMs: 100,
      writeStatus: async (s) =>
        void published.push({ key: s.wireguard?.publicKey, next: s.wireguard?.nextPublicKey }),
    });
    const spec = (generation: number, interval: number): NodeDatapath => ({
      nodeName: "n1",
      podCIDRs: ["10.244.1.0/24"],
      wireguard: {
        profile: "p",
        interfaceName: "wg0",
        listenPort: 51871,
        keyRotationIntervalSeconds: interval,
      },
      sources: { encryptionProfile: { name: "p", generation } },
    });
    await agent.observe(spec(1, 86_400));
    await agent.observe(spec(2, 1));
    await clock.advance(2600, () => agent.idle());
    agent.stop();
    const keys = [...new Set(published.map((p) => p.key))];
    assert.ok(keys.length >= 3, `at least two rotations: ${keys.length - 1}`);
    // Every new key was announced as "next" before it became current, and once current the
    // announcement is gone (peers take a current key as the node's word that it switched).
    for (const k of keys.slice(1)) {
      const announced = published.findIndex((p) => p.next === k);
      const current = published.findIndex((p) => p.key === k);
      assert.ok(announced >= 0 && announced < current, "announced before use");
      assert.equal(published[current]?.next, undefined, "no announcement once switched");
    }
  });
});

describe("NodeAgent peer data (memory driver)", () => {
  it("publishes peer data only when it changes, and a key announcement before the report", async () => {
    const order: string[] = [];
    const peerWrites: NodePeerStatus[] = [];
    const clock = new FakeClock();
    const agent = new NodeAgent({
      node: "n1",
      driver: new MemoryDriver(),
      clock,
      keys: new KeyStore(undefined),
      nodeIP: "192.0.2.1",
      rotationLeadMs: 100,
      heartbeatMs: 1000,
      writeStatus: async (s) =>
        void order.push(`report${s.wireguard?.nextPublicKey ? "+next" : ""}`),
      writePeer: async (s) => {
        peerWrites.push(structuredClone(s));
        order.push(`peer${s.nextPublicKey ? "+next" : ""}`);
      },
    });
    const desired: NodeDatapath = {
      nodeName: "n1",
      podCIDRs: ["10.244.1.0/24"],
      wireguard: { profile: "p", interfaceName: "wg0", listenPort: 51871 },
      drift: { checkInterval: "1s", mode: "Heal" },
      sources: { encryptionProfile: { name: "p", generation: 1 } },
    };
    await agent.observe(desired);
    agent.start();
    await clock.advance(30_000, () => agent.idle());
    assert.equal(peerWrites.length, 1, "30 heartbeats and drift checks: no new peer data");
    assert.deepEqual(Object.keys(peerWrites[0]!).sort(), [
      "listenPort",
      "nodeIP",
      "profile",
      "publicKey",
    ]);
    assert.equal(peerWrites[0]?.profile, "p");
    // Rotation on: the announcement reaches the NodePeer before the report.
    await agent.observe({
      ...desired,
      wireguard: { ...desired.wireguard!, keyRotationIntervalSeconds: 1 },
      sources: { encryptionProfile: { name: "p", generation: 2 } },
    });
    await clock.advance(2_500, () => agent.idle());
    agent.stop();
    const announced = order.indexOf("peer+next");
    assert.ok(announced >= 0, `announced: ${order.join(" ")}`);
    assert.equal(order[announced + 1], "report+next", "peer data first, then the report");
  });

  it("a peer's announcement alone arms the fallback: its key is taken up 1 s after the switch time without a confirmation", async () => {
    const key = (c: string) => `${c.repeat(42)}A=`;
    const driver = new MemoryDriver();
    const clock = new FakeClock();
    const agent = new NodeAgent({
      node: "n1",
      driver,
      clock,
      keys: new KeyStore(undefined),
      nodeIP: "192.0.2.1",
      writeStatus: async () => {},
    });
    await agent.observe({
      nodeName: "n1",
      podCIDRs: ["10.244.1.0/24"],
      wireguard: { profile: "p", interfaceName: "wg0", listenPort: 51871 },
    });
    const peer = (status: NodePeerStatus): NodePeer => ({
      apiVersion: "netloom.io/v1alpha1",
      kind: "NodePeer",
      metadata: { name: "n2" },
      spec: { nodeName: "n2", podCIDRs: ["10.244.2.0/24"] },
      status,
    });
    const base = { profile: "p", publicKey: key("B"), nodeIP: "192.0.2.2", listenPort: 51871 };
    await agent.observePeers([peer(base)]);
    const switchAt = new Date(clock.now().getTime() + 5_000);
    // The announcement, and then nothing more: the peer's confirmation never arrives.
    await agent.observePeers([
      peer({ ...base, nextPublicKey: key("C"), nextKeySwitchTime: switchAt.toISOString() }),
    ]);
    const routed = async () =>
      (await driver.wireguardPeers())?.find((p) => p.allowedIPs.length > 0)?.publicKey;
    assert.equal(await routed(), key("B"), "not before the switch");
    await clock.advance(5_000 + 1_100, () => agent.idle());
    assert.equal(
      await routed(),
      key("C"),
      "the announced key carries the traffic after the fallback",
    );
    agent.stop();
  });

  it("leaves out a peer that claims another peer's key, and reports it once", async () => {
    const invalid: string[] = [];
    const key = (c: string) => `${c.repeat(42)}A=`;
    const peer = (name: string, publicKey: string, ip: string): NodePeer => ({
      apiVersion: "netloom.io/v1alpha1",
      kind: "NodePeer",
      metadata: { name },
      spec: { nodeName: name, podCIDRs: [`10.244.${name.slice(1)}.0/24`] },
      status: { profile: "p", publicKey, nodeIP: ip, listenPort: 51871 },
    });
    const driver = new MemoryDriver();
    const agent = new NodeAgent({
      node: "n1",
      driver,
      clock: new FakeClock(),
      keys: new KeyStore(undefined),
      nodeIP: "192.0.2.1",
      writeStatus: async () => {},
      onInvalid: (e) => invalid.push(e),
    });
    await agent.observe({
      nodeName: "n1",
      podCIDRs: ["10.244.1.0/24"],
      wireguard: { profile: "p", interfaceName: "wg0", listenPort: 51871 },
    });
    const peers = [
      peer("n2", key("B"), "192.0.2.2"),
      peer("n3", key("C"), "192.0.2.3"),
      peer("n4", key("C"), "192.0.2.4"),
    ];
    await agent.observePeers(peers);
    await agent.observePeers([...peers]);
    const configured = (await driver.wireguardPeers())?.map((p) => p.publicKey) ?? [];
    assert.deepEqual(configured, [key("B")], "n3 and n4 both left out");
    assert.equal(invalid.length, 1, `reported once: ${invalid.join(" | ")}`);
    assert.match(invalid[0]!, /claimed by n3, n4/);
    agent.stop();
  });
});

describe("NodeAgent key rotation across peers (memory driver)", () => {
  it("two peers whose schedules clash never switch within the guard of each other, and both rotate", async () => {
    const names = ["n1", "n2"];
    const peers = new Map<string, NodePeer>();
    const switches: { node: string; at: number }[] = [];
    const agents: NodeAgent[] = [];
    const clock = new FakeClock();
    // Settled when no agent has work queued (one agent's write queues work on the other).
    const settle = async () => {
      for (;;) {
        const chains = agents.map((a) => a.idle());
        await Promise.all(chains);
        if (agents.every((a, i) => a.idle() === chains[i])) return;
      }
    };
    const podCIDRs = (name: string) => [name === "n1" ? "10.244.1.0/24" : "10.244.2.0/24"];
    const desired = (name: string): NodeDatapath => ({
      nodeName: name,
      podCIDRs: podCIDRs(name),
      // 3 s: shorter than two guards, so the two schedules clash on every round.
      wireguard: {
        profile: "p",
        interfaceName: "wg0",
        listenPort: 51871,
        keyRotationIntervalSeconds: 3,
      },
      sources: { encryptionProfile: { name: "p", generation: 1 } },
    });
    const peer = (name: string, status: NodePeerStatus): NodePeer => ({
      apiVersion: "netloom.io/v1alpha1",
      kind: "NodePeer",
      metadata: { name },
      spec: { nodeName: name, podCIDRs: podCIDRs(name) },
      status,
    });
    for (const name of names) {
      let lastKey: string | undefined;
      const agent = new NodeAgent({
        node: name,
        driver: new MemoryDriver(),
        clock,
        keys: new KeyStore(undefined),
        nodeIP: name === "n1" ? "192.0.2.1" : "192.0.2.2",
        rotationLeadMs: 300,
        writeStatus: async (s) => {
          if (lastKey && s.wireguard?.publicKey !== lastKey)
            switches.push({ node: name, at: clock.now().getTime() });
          lastKey = s.wireguard?.publicKey;
        },
        writePeer: async (s) => {
          peers.set(name, peer(name, s));
          // Each agent watches the other's peer entry, as through the API.
          for (const other of agents)
            if (other.node !== name) void other.observePeers([...peers.values()]);
        },
      });
      agents.push(agent);
    }
    for (const a of agents) await a.observe(desired(a.node));
    await clock.advance(8000, settle);
    for (const a of agents) a.stop();
    for (const name of names)
      assert.ok(
        switches.some((s) => s.node === name),
        `${name} rotated: ${JSON.stringify(switches)}`,
      );
    const sorted = switches.sort((a, b) => a.at - b.at);
    for (let i = 1; i < sorted.length; i++) {
      const [a, b] = [sorted[i - 1]!, sorted[i]!];
      if (a.node === b.node) continue;
      // On a fake clock timers fire at their time exactly: no jitter to allow for.
      assert.ok(b.at - a.at >= ROTATION_GUARD_MS, `${a.node}→${b.node} ${b.at - a.at} ms apart`);
    }
  });
});
