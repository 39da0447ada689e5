/**
 * LinuxDriver + NodeAgent on the real kernel: what the agent applies is what it reads back, so
 * a converged node never drifts, and real drift is found and healed. A veth pair in the host
 * namespace stands in for the node's device. Needs root, kernel BTF and the compiled object
 * (make bpf).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { skipWhen, unmet } from "../../../test/support/prerequisites.js";
import { NodeAgent } from "../../agent/agent.js";
import type { NodeDatapath, NodeNetworkStateStatus } from "../../api/nodenetworkstate.js";
import { FakeClock } from "../../util/clock.js";
import { diffDatapath, expectedState, planDatapath } from "../driver.js";
import { BpfDatapath } from "./bpf-datapath.js";
import { BPF_OBJECT, LinuxDriver } from "./driver.js";

const dev = `nld${process.pid % 100000}x`;
const peer = `nld${process.pid % 100000}y`;
const pinDir = `/sys/fs/bpf/netloom-drvtest-${process.pid}`;
const HOUR = 3_600_000;

const reason =
  process.platform !== "linux"
    ? "needs Linux"
    : unmet({
        root: "loads eBPF programs and creates devices",
        btf: true,
        files: [{ path: BPF_OBJECT, hint: "the compiled eBPF object: make bpf" }],
        tools: ["ip", "tc"],
      });

function ip(args: string[]): void {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr}`);
}

function nodeState(generation: number): NodeDatapath {
  return {
    nodeName: "drv",
    sources: { networkConfig: { name: "nc", generation } },
    devices: [dev],
    // Duplicates, an overlap and both families: the shapes whose translation used to differ.
    egressDeny: [
      { cidr: "10.0.0.0/8" },
      { cidr: "10.0.0.0/8", ports: [{ port: 22, protocol: "TCP" }] },
      { cidr: "10.1.0.0/16", ports: [{ port: 22, protocol: "TCP" }] },
      { cidr: "192.0.2.0/24", ports: [{ port: 53 }] },
      { cidr: "198.51.100.0/24", ports: [{ port: 80, protocol: "TCP" }] },
      { cidr: "198.51.100.7/32", ports: [{ port: 443, protocol: "TCP" }] },
      { cidr: "fd00::/8" },
      { cidr: "fd00:ec2::254/128", ports: [{ port: 80, protocol: "TCP" }] },
    ],
    bandwidth: [
      { pod: "ns/a", ip: "10.244.1.10", egressBitsPerSecond: 50_000_000, source: "ns/bp" },
      { pod: "ns/v6", ip: "fd00:244::10", egressBitsPerSecond: 10_000_000, source: "ns/bp" },
    ],
    wireguard: {
      profile: "p",
      interfaceName: "nlwgdrv",
      listenPort: 51999,
      strictCIDRs: ["10.244.0.0/16", "fd00:244::/48"],
    },
    drift: { checkInterval: "1h", mode: "Heal" },
  };
}

describe("LinuxDriver under the agent (real kernel)", { skip: skipWhen(reason) }, () => {
  const clock = new FakeClock();
  const driver = new LinuxDriver({ pinDir });
  const writes: NodeNetworkStateStatus[] = [];
  const drifts: string[][] = [];
  const agent = new NodeAgent({
    node: "drv",
    driver,
    clock,
    writeStatus: async (s) => void writes.push(structuredClone(s)),
    onDrift: (items) => drifts.push(items.map((i) => i.detail)),
  });
  const last = () => writes.at(-1)!;
  const advance = (ms: number) => clock.advance(ms, () => agent.idle());

  before(() => {
    ip(["link", "add", dev, "type", "veth", "peer", "name", peer]);
    ip(["link", "set", dev, "up"]);
    ip(["link", "set", peer, "up"]);
  });
  after(async () => {
    agent.stop();
    await driver.teardown();
    spawnSync("ip", ["link", "del", dev]);
  });

  it("reads back exactly what it applied: no drift, check after check", async () => {
    await agent.observe(nodeState(1));
    const ready = last().conditions?.find((c) => c.type === "Ready");
    assert.equal(ready?.status, "True", ready?.message);
    const spec = nodeState(1);
    const expected = expectedState(planDatapath(spec, driver.devicesFor(spec)));
    assert.deepEqual(diffDatapath(expected, await driver.read()), []);
    await advance(3 * HOUR);
    assert.deepEqual(drifts, [], "three drift checks found nothing");
    assert.equal(last().drift?.detectedTotal ?? 0, 0);
    assert.equal(last().drift?.drifted, false);
  });

  it("reports the IPv6 pod limit and strict network it cannot enforce", () => {
    const degraded = last().conditions?.find((c) => c.type === "Degraded");
    assert.equal(degraded?.reason, "NotEnforced");
    assert.match(degraded?.message ?? "", /fd00:244::\/48/);
    assert.match(degraded?.message ?? "", /ns\/v6/);
    assert.equal(last().datapath?.notEnforced, 2);
    assert.equal(last().datapath?.bandwidth, "HTB");
    assert.deepEqual(last().mapEntries, {
      egress_deny: 5,
      egress_deny6: 2,
      strict_cidrs: 1,
      pod_class: 1,
    });
  });

  it("finds real drift (maps emptied behind its back) and heals it", async () => {
    const intruder = BpfDatapath.open({ objectPath: BPF_OBJECT, pinDir });
    intruder.syncEgressDeny([]);
    intruder.syncStrictCidrs([]);
    intruder.close();
    await advance(HOUR);
    assert.equal(drifts.length, 1);
    assert.ok(drifts[0]!.some((d) => /egress-deny entry fd00::\/8 missing/.test(d)));
    assert.ok(drifts[0]!.some((d) => /strict-mode network 10\.244\.0\.0\/16 missing/.test(d)));
    assert.equal(last().drift?.healedTotal, 1);
    await advance(HOUR);
    assert.equal(drifts.length, 1, "healed for good");
  });
});
