/**
 * LinuxDriver + NodeAgent on the real kernel: what the agent applies is what it reads back, so
 * a converged node never drifts, and real drift is found and healed. A veth pair in the host
 * namespace stands in for the node's device. Needs root, kernel BTF and the compiled object
 * (make bpf).
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { skipWhen, unmet } from "../../../test/support/prerequisites.js";
import { NodeAgent } from "../../agent/agent.js";
import { REPO_ROOT } from "../../api/fixtures.js";
import type { NodeDatapath, NodeNetworkStateStatus } from "../../api/nodenetworkstate.js";
import { IpcacheTable, slicesOf } from "../../policy/ipcache.js";
import { FakeClock } from "../../util/clock.js";
import { type ApplyContext, diffDatapath, expectedState, planDatapath } from "../driver.js";
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
      egress_deny: 7,
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
    // Emptied, the maps' lookups are skipped (egress_skip): that is drift too until healed.
    assert.ok(
      drifts[0]!.some((d) =>
        /egress lookups skipped: .*every-port IPv4 deny.*; want: none/.test(d),
      ),
      drifts[0]!.join("; "),
    );
    assert.equal(last().drift?.healedTotal, 1);
    await advance(HOUR);
    assert.equal(drifts.length, 1, "healed for good");
  });
});

describe("what the kernel refuses is reported, the rest applied (real kernel)", {
  skip: skipWhen(reason ?? unmet({ tools: ["clang"] })),
}, () => {
  const dev2 = `nld${process.pid % 100000}z`;
  const peer2 = `nld${process.pid % 100000}w`;
  const pins = `/sys/fs/bpf/netloom-drvtest-refused-${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), "netloom-refused-"));
  const drivers: LinuxDriver[] = [];
  const spec: NodeDatapath = {
    nodeName: "drv2",
    sources: { networkConfig: { name: "nc", generation: 1 } },
    devices: [dev2, "nlnosuch0"],
    egressDeny: [{ cidr: "169.254.169.254/32" }],
  };

  before(() => {
    ip(["link", "add", dev2, "type", "veth", "peer", "name", peer2]);
    ip(["link", "set", dev2, "up"]);
  });
  after(async () => {
    for (const d of drivers) await d.teardown().catch(() => {});
    spawnSync("ip", ["link", "del", dev2]);
    for (const dir of [`${pins}-a`, `${pins}-b`]) BpfDatapath.removePins(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  it("a device that does not exist is named; the devices that do exist get the programs", async () => {
    const driver = new LinuxDriver({ pinDir: `${pins}-a` });
    drivers.push(driver);
    const report = await driver.apply(spec);
    assert.deepEqual(report.notEnforced, [
      "device nlnosuch0: no such device on this node (nothing attached to it)",
    ]);
    assert.equal(
      BpfDatapath.attachedOn(dev2, report.attach === "tcx" ? "tcx" : "clsact").length,
      1,
    );
    assert.deepEqual(
      diffDatapath(expectedState(planDatapath(spec, driver.devicesFor(spec))), await driver.read()),
      [],
    );
    await driver.teardown();
    drivers.pop();
  });

  it("an object the verifier rejects: Degraded with the verifier's words, Ready, nothing attached", async () => {
    // The real program renamed away, and in its place one that reads the packet unchecked.
    const src = join(dir, "rejected.bpf.c");
    writeFileSync(
      src,
      [
        "#define netloom_egress netloom_egress_real",
        `#include "${join(REPO_ROOT, "bpf", "netloom.bpf.c")}"`,
        "#undef netloom_egress",
        'SEC("tc") int netloom_egress(struct __sk_buff *skb)',
        "{ return *(volatile __u8 *)(long)skb->data; }",
      ].join("\n"),
    );
    const objectPath = join(dir, "rejected.bpf.o");
    execFileSync("clang", [
      "-O2",
      "-g",
      "-target",
      "bpf",
      "-D__TARGET_ARCH_x86",
      `-I${join(REPO_ROOT, "dist", "bpf")}`,
      "-c",
      src,
      "-o",
      objectPath,
    ]);
    const driver = new LinuxDriver({ pinDir: `${pins}-b`, objectPath });
    drivers.push(driver);
    const writes: NodeNetworkStateStatus[] = [];
    const agent = new NodeAgent({
      node: "drv2",
      driver,
      clock: new FakeClock(),
      writeStatus: async (s) => void writes.push(structuredClone(s)),
    });
    await agent.observe({ ...spec, devices: [dev2] });
    agent.stop();
    const status = writes.at(-1);
    const ready = status?.conditions?.find((c) => c.type === "Ready");
    const degraded = status?.conditions?.find((c) => c.type === "Degraded");
    assert.equal(ready?.status, "True", ready?.message);
    assert.equal(degraded?.status, "True");
    assert.equal(degraded?.reason, "NotEnforced");
    assert.match(
      degraded?.message ?? "",
      /eBPF programs not loaded .*: .*invalid access to packet/,
    );
    assert.ok((degraded?.message.length ?? 0) < 1200, "bounded message");
    assert.equal(status?.datapath?.attach, "none");
    assert.deepEqual(BpfDatapath.attachedOn(dev2, "tcx"), []);
  });
});

describe("LinuxDriver's ipcache: only changes written, drift read back and healed (real kernel)", {
  skip: skipWhen(reason),
}, () => {
  const ipDev = `nld${process.pid % 100000}i`;
  const ipPins = `${pinDir}-ipcache`;
  const driver = new LinuxDriver({ pinDir: ipPins });
  const table = new IpcacheTable();
  const spec: NodeDatapath = { nodeName: "drv", devices: [ipDev] };
  const pod = (name: string, identity: number, ips: string[]) => ({
    namespace: "shop",
    name,
    identity,
    ips,
  });
  const ctx = (slices: Map<string, ReturnType<typeof pod>[]>): ApplyContext => ({
    policy: {
      enforcement: "Default",
      endpoints: [],
      sources: [],
      ipcache: table.update({ slices: slicesOf(slices), world: [], nodeIPs: ["192.0.2.1"] }),
    },
  });
  const kernel = () => {
    const dp = BpfDatapath.open({ objectPath: BPF_OBJECT, pinDir: ipPins });
    try {
      return dp.readIpcache();
    } finally {
      dp.close();
    }
  };

  before(() => {
    ip(["link", "add", ipDev, "type", "veth", "peer", "name", `${ipDev}p`]);
  });
  after(async () => {
    await driver.teardown();
    spawnSync("ip", ["link", "del", ipDev]);
  });

  it("holds what the table holds after each apply, and the drift check finds what was changed behind its back", async () => {
    const first = ctx(
      new Map([
        ["n1", [pod("a", 300, ["10.244.1.5", "fd00:244::5"])]],
        ["n2", [pod("b", 301, ["10.244.2.5"])]],
      ]),
    );
    await driver.apply(spec, first);
    assert.deepEqual(kernel(), new Map(first.policy!.ipcache.entries));
    // A pod starts on n2 and n1's pod goes: only n2's slice and n1's are new objects.
    const second = ctx(
      new Map([
        ["n1", []],
        ["n2", [pod("b", 301, ["10.244.2.5"]), pod("c", 302, ["10.244.2.6"])]],
      ]),
    );
    await driver.apply(spec, second);
    const want = new Map(second.policy!.ipcache.entries);
    assert.deepEqual(kernel(), want);
    assert.deepEqual(
      diffDatapath(expectedState(planDatapath(spec, [ipDev], second)), await driver.read()),
      [],
    );

    const intruder = BpfDatapath.open({ objectPath: BPF_OBJECT, pinDir: ipPins });
    const tampered = new Map(want);
    tampered.delete("10.244.2.5/32");
    tampered.set("10.244.2.6/32", 999);
    tampered.set("10.9.9.9/32", 998);
    intruder.syncIpcache(tampered);
    intruder.close();
    const drift = diffDatapath(
      expectedState(planDatapath(spec, [ipDev], second)),
      await driver.read(),
    ).map((d) => d.detail);
    assert.deepEqual(drift, [
      "1 ipcache entries missing (e.g. 10.244.2.5/32 identity 301)",
      "1 ipcache entries with another identity (e.g. 10.244.2.6/32 identity 999, want 302)",
      "1 unexpected ipcache entries (e.g. 10.9.9.9/32 identity 998)",
    ]);
    // Heal: the apply writes the difference from what the drift check read.
    await driver.apply(spec, second);
    assert.deepEqual(kernel(), want);
  });
});
