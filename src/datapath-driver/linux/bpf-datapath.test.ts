/**
 * BpfDatapath against the real kernel: two network namespaces joined by a veth pair, the
 * Netloom program on namespace a's end, traffic from a to b.
 *
 *   a: nlt<pid>a 10.99.0.1/24, route 169.254.169.254/32 → b;  tun nlt<pid>t 10.98.0.1/24
 *   b: nlt<pid>b 10.99.0.2/24 + 169.254.169.254/32, TCP servers on :22 and :80
 *
 * Device work (if_nametoindex, tcx links, clsact) runs in namespace a by switching this thread
 * with setns (withNetns); map work needs no namespace. Clients and servers run with
 * `ip netns exec` (they do not need the bpffs pins it hides). Needs root, the kernel BTF,
 * clang and bpftool; skipped with the reason otherwise.
 */

import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { release, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { skipOrFail, skipWhen, unmet } from "../../../test/support/prerequisites.js";
import {
  type DenyRule,
  describeDenyEntries,
  EGRESS_SKIP,
  egressDenyEntries,
} from "../maps/egress-deny.js";
import { BpfDatapath } from "./bpf-datapath.js";
import { withNetns } from "./libbpf.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");
const pid = process.pid;
const nsA = `nlt-${pid}-a`;
const nsB = `nlt-${pid}-b`;
const devA = `nlt${pid}a`;
const devB = `nlt${pid}b`;
const devTun = `nlt${pid}t`;
const pinDir = `/sys/fs/bpf/netloom-test-${pid}`;
const METADATA = "169.254.169.254";
const PEER = "10.99.0.2";
const PEER6_A = "fd00:99::1";
const PEER6 = "fd00:99::2";

function skipReason(): string | undefined {
  if (process.platform !== "linux") return "needs Linux";
  return unmet({
    root: "loads eBPF programs and creates namespaces",
    btf: true,
    tools: ["clang", "bpftool", "ip", "tc", "timeout", "bash", "sh"],
  });
}

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

const inA = (args: string[]): string => run("ip", ["netns", "exec", nsA, ...args]);
const inB = (args: string[]): string => run("ip", ["netns", "exec", nsB, ...args]);
const nsPath = (ns: string): string => `/run/netns/${ns}`;

/** TCP connect (and optionally send bytes) from a; false when it does not connect in 1 s. */
function tcpFromA(ip: string, port: number, sendBytes = 0): boolean {
  const send = sendBytes ? `; head -c ${sendBytes} /dev/zero >&3` : "";
  const r = spawnSync(
    "ip",
    ["netns", "exec", nsA, "timeout", "1", "bash", "-c", `exec 3<>/dev/tcp/${ip}/${port}${send}`],
    { stdio: "ignore" },
  );
  return r.status === 0;
}

/** One UDP datagram from a (no answer expected: checks go through the drop counters). */
function udpFromA(ip: string, port: number): void {
  spawnSync(
    "ip",
    ["netns", "exec", nsA, "timeout", "1", "bash", "-c", `echo x >/dev/udp/${ip}/${port}`],
    { stdio: "ignore" },
  );
}

function classSentBytes(dev: string, classid: string): number {
  const out = inA(["tc", "-s", "class", "show", "dev", dev, "classid", classid]);
  const m = /Sent (\d+) bytes/.exec(out);
  if (!m?.[1]) throw new Error(`no counters for class ${classid} on ${dev}: ${out}`);
  return Number(m[1]);
}

function egressFilterCount(dev: string): number {
  return inA(["tc", "filter", "show", "dev", dev, "egress"])
    .split("\n")
    .filter((l) => / handle 0x/.test(l)).length;
}

/** The agent's translation of rules into entries, then the maps (what LinuxDriver does). */
const syncDeny = (dp: BpfDatapath, rules: DenyRule[]) =>
  dp.syncEgressDeny(egressDenyEntries(rules));
const denyText = (dp: BpfDatapath): string[] => describeDenyEntries(dp.readEgressDeny());

const reason = skipReason();

describe("BpfDatapath on the real kernel", { skip: skipWhen(reason) }, () => {
  let work = "";
  let objectPath = "";
  let server: ChildProcess | undefined;
  let tcx = false;
  const opened: BpfDatapath[] = [];
  const open = (): BpfDatapath => {
    const dp = BpfDatapath.open({ objectPath, pinDir });
    opened.push(dp);
    return dp;
  };

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "netloom-bpf-test-"));
    // Compile the current source against this kernel's BTF (what `make bpf` does).
    execFileSync("sh", [
      "-c",
      `bpftool btf dump file /sys/kernel/btf/vmlinux format c > ${work}/vmlinux.h`,
    ]);
    objectPath = join(work, "netloom.bpf.o");
    run("clang", [
      "-O2",
      "-g",
      "-Wall",
      "-target",
      "bpf",
      "-D__TARGET_ARCH_x86",
      `-I${work}`,
      "-c",
      join(repoRoot, "bpf/netloom.bpf.c"),
      "-o",
      objectPath,
    ]);

    run("ip", ["netns", "add", nsA]);
    run("ip", ["netns", "add", nsB]);
    run("ip", ["link", "add", devA, "netns", nsA, "type", "veth", "peer", devB, "netns", nsB]);
    inA(["ip", "link", "set", "lo", "up"]);
    inB(["ip", "link", "set", "lo", "up"]);
    inA(["ip", "addr", "add", "10.99.0.1/24", "dev", devA]);
    inB(["ip", "addr", "add", `${PEER}/24`, "dev", devB]);
    inB(["ip", "addr", "add", `${METADATA}/32`, "dev", devB]);
    inA(["ip", "addr", "add", `${PEER6_A}/64`, "dev", devA, "nodad"]);
    inB(["ip", "addr", "add", `${PEER6}/64`, "dev", devB, "nodad"]);
    inA(["ip", "link", "set", devA, "up"]);
    inB(["ip", "link", "set", devB, "up"]);
    inA(["ip", "route", "add", `${METADATA}/32`, "via", PEER]);
    // The WireGuard-side device is L3 (no Ethernet header): a persistent TUN device stands in.
    inA(["ip", "tuntap", "add", "dev", devTun, "mode", "tun"]);
    inA(["ip", "addr", "add", "10.98.0.1/24", "dev", devTun]);
    inA(["ip", "link", "set", devTun, "up"]);

    const serverJs =
      "const net=require('net');let n=0;for(const p of [22,80,443])" +
      "net.createServer(s=>{s.resume();s.on('error',()=>{})}).listen(p,'::',()=>{if(++n===3)console.log('ready')});";
    server = spawn("ip", ["netns", "exec", nsB, process.execPath, "-e", serverJs], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    await new Promise<void>((ok, fail) => {
      server?.stdout?.on("data", (d: Buffer) => d.toString().includes("ready") && ok());
      server?.on("exit", (code) => fail(new Error(`test server exited (${code})`)));
    });
    tcx = BpfDatapath.detectTcx();
  });

  after(() => {
    const step = (what: string, fn: () => void): void => {
      try {
        fn();
      } catch (e) {
        console.error(`cleanup: ${what}: ${(e as Error).message}`);
      }
    };
    // Deleting namespace a removes the devices with their qdiscs and filters; removePins
    // detaches and unpins the tcx links.
    for (const dp of opened) step("close", () => dp.close());
    step("pins", () => BpfDatapath.removePins(pinDir));
    if (server?.pid) step("server", () => server?.kill());
    step("netns a", () => run("ip", ["netns", "del", nsA]));
    step("netns b", () => run("ip", ["netns", "del", nsB]));
    if (work) step("workdir", () => rmSync(work, { recursive: true, force: true }));
  });

  it("detects tcx exactly where the kernel has it (Linux 6.6+)", (t) => {
    const [major = 0, minor = 0] = release()
      .split(".")
      .map((n) => Number.parseInt(n, 10));
    const expected = major > 6 || (major === 6 && minor >= 6);
    t.diagnostic(`kernel ${release()}: tcx ${tcx ? "present" : "absent"}`);
    assert.equal(tcx, expected, `detectTcx() on kernel ${release()}`);
  });

  it("tcx: an all-ports deny drops 169.254.169.254, other peers pass, policyDenied grows", (t) => {
    if (!tcx) return skipOrFail(t, "kernel has no tcx (needs Linux 6.6+)");
    const dp = open();
    withNetns(nsPath(nsA), () => dp.attach(devA, "netloom_egress", "tcx"));
    assert.ok(tcpFromA(METADATA, 80), "metadata reachable before the rule");
    const before = dp.readDrops().policyDenied;
    const r = syncDeny(dp, [{ cidr: `${METADATA}/32` }]);
    assert.deepEqual(r, { written: 1, deleted: 0 });
    assert.deepEqual(denyText(dp), [`${METADATA}/32`]);
    assert.equal(tcpFromA(METADATA, 80), false, "metadata must be unreachable");
    assert.ok(tcpFromA(PEER, 80), "peer still reachable");
    assert.ok(dp.readDrops().policyDenied > before, "policyDenied counted");
  });

  it("tcx: a port rule denies only that protocol/port", (t) => {
    if (!tcx) return skipOrFail(t, "kernel has no tcx (needs Linux 6.6+)");
    const dp = opened.at(-1)!;
    syncDeny(dp, [
      { cidr: `${METADATA}/32` },
      { cidr: `${PEER}/32`, ports: [{ port: 22, protocol: "TCP" }] },
    ]);
    assert.equal(tcpFromA(PEER, 22), false, "TCP/22 denied");
    assert.ok(tcpFromA(PEER, 80), "TCP/80 allowed");

    // A port without protocol is TCP and UDP; the metadata key goes away.
    const r = syncDeny(dp, [
      { cidr: `${PEER}/32`, ports: [{ port: 22, protocol: "TCP" }] },
      { cidr: "10.99.0.2/32", ports: [{ port: 5353 }] },
      { cidr: "fd00::/8" },
    ]);
    assert.deepEqual(r, { written: 3, deleted: 1 }, "fd00::/8 goes to egress_deny6");
    assert.deepEqual(denyText(dp), [
      `${PEER}/32 TCP/22`,
      `${PEER}/32 TCP/5353`,
      `${PEER}/32 UDP/5353`,
      "fd00::/8",
    ]);
    assert.ok(tcpFromA(METADATA, 80), "metadata reachable again");
    let before = dp.readDrops().policyDenied;
    udpFromA(PEER, 5354);
    assert.equal(dp.readDrops().policyDenied, before, "UDP/5354 not denied");
    udpFromA(PEER, 5353);
    assert.equal(dp.readDrops().policyDenied, before + 1, "UDP/5353 denied");
    before = dp.readDrops().policyDenied;
    assert.equal(tcpFromA(PEER, 22), false);
    assert.ok(dp.readDrops().policyDenied > before);
    assert.deepEqual(dp.mapEntryCounts(), {
      egress_deny: 3,
      egress_deny6: 1,
      strict_cidrs: 0,
      pod_class: 0,
      endpoints: 0,
      policy: 0,
      ipcache4: 0,
      ipcache6: 0,
      conntrack: 0,
    });

    // A covering network's port still applies under a longer entry for another port: the
    // program looks the packet's own (protocol, port) up, not the longest network's list.
    syncDeny(dp, [
      { cidr: "10.99.0.0/24", ports: [{ port: 80, protocol: "TCP" }] },
      { cidr: `${PEER}/32`, ports: [{ port: 22, protocol: "TCP" }] },
    ]);
    assert.equal(tcpFromA(PEER, 80), false, "TCP/80 denied by the /24");
    assert.equal(tcpFromA(PEER, 22), false, "TCP/22 denied by the /32");
    assert.ok(tcpFromA(PEER, 443), "TCP/443 allowed");
    syncDeny(dp, [{ cidr: `${PEER}/32`, ports: [{ port: 22, protocol: "TCP" }] }]);
  });

  it("tcx: egress_skip leaves out the lookups of empty kinds, never those of a kind with entries", (t) => {
    if (!tcx) return skipOrFail(t, "kernel has no tcx (needs Linux 6.6+)");
    const dp = opened.at(-1)!;
    const port22 = { cidr: `${PEER}/32`, ports: [{ port: 22, protocol: "TCP" as const }] };
    syncDeny(dp, [port22]);
    dp.syncStrictCidrs([]);
    const { deny4EveryPort, deny4Ports, deny6EveryPort, deny6Ports, strict } = EGRESS_SKIP;
    const skipped = dp.readEgressSkip() & ~EGRESS_SKIP.podClass;
    assert.equal(skipped, deny4EveryPort | deny6EveryPort | deny6Ports | strict);
    assert.equal(tcpFromA(PEER, 22), false, "the per-port entry still denies");
    // The program reads the bits: a kind skipped behind the agent's back goes unenforced.
    dp.writeEgressSkip(dp.readEgressSkip() | deny4Ports);
    assert.ok(tcpFromA(PEER, 22), "per-port lookups skipped: TCP/22 passes");
    // A sync sets them from the entries again; an every-port entry turns its lookup on.
    syncDeny(dp, [port22, { cidr: `${METADATA}/32` }]);
    assert.equal(dp.readEgressSkip() & (deny4EveryPort | deny4Ports), 0);
    assert.equal(tcpFromA(METADATA, 80), false, "every-port entry denies");
    assert.equal(tcpFromA(PEER, 22), false, "per-port entry denies");
    syncDeny(dp, [port22]);
    assert.equal(dp.readEgressSkip() & deny4EveryPort, deny4EveryPort, "off once it is gone");
    assert.ok(tcpFromA(METADATA, 80));
  });

  it("tcx: a restart (open + attach again) keeps the maps and leaves exactly one program", (t) => {
    if (!tcx) return skipOrFail(t, "kernel has no tcx (needs Linux 6.6+)");
    const old = opened.at(-1)!;
    const oldId = old.programId("netloom_egress");
    const ids = withNetns(nsPath(nsA), () => old.attachedProgramIds(devA, "tcx"));
    assert.deepEqual(ids, [oldId]);
    const deny = denyText(old);
    old.close();

    const dp = open();
    assert.deepEqual(denyText(dp), deny, "map contents survive the restart");
    const newId = dp.programId("netloom_egress");
    assert.notEqual(newId, oldId);
    withNetns(nsPath(nsA), () => {
      dp.attach(devA, "netloom_egress", "tcx");
      assert.deepEqual(dp.attachedProgramIds(devA, "tcx"), [newId], "swapped, not added");
      dp.attach(devA, "netloom_egress", "tcx");
      assert.deepEqual(dp.attachedProgramIds(devA, "tcx"), [newId], "idempotent");
    });
    assert.deepEqual(readdirSync(join(pinDir, "links")), [`${devA}-egress`]);
    assert.equal(tcpFromA(PEER, 22), false, "still enforced after the swap");
    assert.ok(tcpFromA(PEER, 80));
  });

  it("tcx: IPv6 destinations are denied through egress_deny6, by port, and counted", (t) => {
    if (!tcx) return skipOrFail(t, "kernel has no tcx (needs Linux 6.6+)");
    const dp = opened.at(-1)!;
    syncDeny(dp, []);
    assert.ok(tcpFromA(PEER6, 22), "IPv6 TCP/22 reachable before the rule");
    syncDeny(dp, [{ cidr: "fd00:99::/64", ports: [{ port: 22, protocol: "TCP" }] }]);
    assert.deepEqual(denyText(dp), ["fd00:99::/64 TCP/22"]);
    const before = dp.readDrops().policyDenied;
    assert.equal(tcpFromA(PEER6, 22), false, "IPv6 TCP/22 denied");
    assert.ok(dp.readDrops().policyDenied > before, "the IPv6 drop is counted");
    assert.ok(tcpFromA(PEER6, 80), "IPv6 TCP/80 still allowed");
    assert.ok(tcpFromA(PEER, 22), "IPv4 TCP/22 to the same host still allowed");
    // A more specific all-ports entry for the host; the /64 port rule still covers the rest.
    syncDeny(dp, [
      { cidr: "fd00:99::/64", ports: [{ port: 80, protocol: "TCP" }] },
      { cidr: `${PEER6}/128` },
    ]);
    assert.equal(tcpFromA(PEER6, 22), false, "every port of the /128 denied, TCP/22 too");
    syncDeny(dp, []);
    assert.ok(tcpFromA(PEER6, 22), "reachable again once the rule is gone");
  });

  it("tcx: strict CIDRs drop clear pod-to-pod packets and count unencrypted", (t) => {
    if (!tcx) return skipOrFail(t, "kernel has no tcx (needs Linux 6.6+)");
    const dp = opened.at(-1)!;
    syncDeny(dp, []);
    dp.syncStrictCidrs(["10.99.0.0/24"]);
    assert.throws(() => dp.syncStrictCidrs(["fd00::/64"]), /IPv4 networks/);
    assert.deepEqual(dp.readStrictCidrs(), ["10.99.0.0/24"]);
    const before = dp.readDrops();
    assert.equal(tcpFromA(PEER, 80), false, "10.99.0.1 → 10.99.0.2 both strict: dropped");
    assert.ok(tcpFromA(METADATA, 80), "destination outside the strict CIDRs passes");
    const afterDrops = dp.readDrops();
    assert.ok(afterDrops.unencrypted > before.unencrypted, "unencrypted counted");
    assert.equal(afterDrops.policyDenied, before.policyDenied);
    dp.syncStrictCidrs([]);
    assert.ok(tcpFromA(PEER, 80));
  });

  it("tcx: pod_class sets skb->priority so HTB puts the pod's traffic in its class", async (t) => {
    if (!tcx) return skipOrFail(t, "kernel has no tcx (needs Linux 6.6+)");
    const dp = opened.at(-1)!;
    inA(["tc", "qdisc", "add", "dev", devA, "root", "handle", "1:", "htb"]);
    try {
      inA([
        "tc",
        "class",
        "add",
        "dev",
        devA,
        "parent",
        "1:",
        "classid",
        "1:a",
        "htb",
        "rate",
        "10mbit",
      ]);
      assert.ok(tcpFromA(PEER, 80, 20000));
      assert.equal(classSentBytes(devA, "1:a"), 0, "unclassified traffic bypasses the class");
      dp.syncPodClasses(new Map([["10.99.0.1", 0x0001000a]]));
      assert.deepEqual(dp.readPodClasses(), new Map([["10.99.0.1", 0x1000a]]));
      assert.ok(tcpFromA(PEER, 80, 100000));
      // The socket drains after the client exits (10 Mbit/s: ~80 ms for 100 kB).
      let sent = 0;
      for (let i = 0; i < 40 && sent <= 100000; i++) {
        await sleep(50);
        sent = classSentBytes(devA, "1:a");
      }
      assert.ok(sent > 100000, `class 1:a sent ${sent} bytes, expected > 100000`);
      dp.syncPodClasses(new Map());
      assert.equal(dp.readPodClasses().size, 0);
    } finally {
      inA(["tc", "qdisc", "del", "dev", devA, "root"]);
    }
  });

  it("tcx: the tunnel program parses L3 packets (no Ethernet header) and skips strict mode", (t) => {
    if (!tcx) return skipOrFail(t, "kernel has no tcx (needs Linux 6.6+)");
    const dp = opened.at(-1)!;
    withNetns(nsPath(nsA), () => dp.attach(devTun, "netloom_tunnel_egress", "tcx"));
    try {
      assert.deepEqual(
        withNetns(nsPath(nsA), () => dp.attachedProgramIds(devTun, "tcx")),
        [dp.programId("netloom_tunnel_egress")],
      );
      syncDeny(dp, [{ cidr: "10.98.0.0/24", ports: [{ port: 53, protocol: "UDP" }] }]);
      dp.syncStrictCidrs(["10.98.0.0/24"]);
      const before = dp.readDrops();
      udpFromA("10.98.0.5", 54);
      assert.deepEqual(dp.readDrops(), before, "UDP/54 passes; no strict check on the tunnel");
      udpFromA("10.98.0.5", 53);
      assert.equal(dp.readDrops().policyDenied, before.policyDenied + 1, "UDP/53 denied");
    } finally {
      syncDeny(dp, []);
      dp.syncStrictCidrs([]);
      withNetns(nsPath(nsA), () => dp.detach(devTun, "tcx"));
    }
    assert.deepEqual(
      withNetns(nsPath(nsA), () => dp.attachedProgramIds(devTun, "tcx")),
      [],
    );
  });

  it("clsact fallback: attaches, replaces without duplicates, detaches", () => {
    let dp = opened.at(-1) ?? open();
    syncDeny(dp, [{ cidr: `${METADATA}/32` }]);
    withNetns(nsPath(nsA), () => {
      dp.detach(devA, "tcx");
      if (tcx) assert.deepEqual(dp.attachedProgramIds(devA, "tcx"), []);
      dp.attach(devA, "netloom_egress", "clsact");
      assert.deepEqual(dp.attachedProgramIds(devA, "clsact"), [dp.programId("netloom_egress")]);
    });
    assert.equal(egressFilterCount(devA), 1);
    assert.equal(tcpFromA(METADATA, 80), false, "deny enforced through cls_bpf");
    assert.ok(tcpFromA(PEER, 80));

    // Restart: a new object's program replaces the filter in place.
    dp.close();
    dp = open();
    withNetns(nsPath(nsA), () => {
      dp.attach(devA, "netloom_egress", "clsact");
      dp.attach(devA, "netloom_egress", "clsact");
      assert.deepEqual(dp.attachedProgramIds(devA, "clsact"), [dp.programId("netloom_egress")]);
    });
    assert.equal(egressFilterCount(devA), 1, "replaced, not added");
    assert.equal(tcpFromA(METADATA, 80), false);

    if (tcx) {
      // Switching modes leaves one copy: tcx attach removes Netloom's clsact filter, and back.
      withNetns(nsPath(nsA), () => {
        dp.attach(devA, "netloom_egress", "tcx");
        assert.deepEqual(dp.attachedProgramIds(devA, "clsact"), []);
        assert.deepEqual(dp.attachedProgramIds(devA, "tcx"), [dp.programId("netloom_egress")]);
        dp.attach(devA, "netloom_egress", "clsact");
        assert.deepEqual(dp.attachedProgramIds(devA, "tcx"), []);
      });
    }

    withNetns(nsPath(nsA), () => {
      dp.detach(devA, "clsact");
      assert.deepEqual(dp.attachedProgramIds(devA, "clsact"), []);
    });
    assert.equal(egressFilterCount(devA), 0);
    assert.ok(tcpFromA(METADATA, 80), "nothing enforces after detach");
    syncDeny(dp, []);
  });

  it("removePins leaves nothing behind", () => {
    const dp = opened.at(-1)!;
    dp.close();
    BpfDatapath.removePins(pinDir);
    assert.equal(existsSync(pinDir), false);
  });
});
