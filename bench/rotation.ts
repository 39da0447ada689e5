// Key-rotation loss on real wireguard-go, old order against new in one run. Two nodes in network
// namespaces, a UDP stream each way (a ping's two legs, at BENCH_ROTATION_PPS); B switches to a
// new key BENCH_ROTATIONS times, and A takes the new key up as the agent does, 20 ms later (its
// status arriving): the successor gets the allowed IPs, then a handshake kick.
// - baseline: A removes the old key in the same request (what Netloom did before);
// - netloom: A keeps the old key to drain and removes it RETIRED_PEER_DRAIN_MS later.
// A control phase without rotations shows what the streams lose anyway on this machine.
// B → A shows the limit of the design: B queues its packets (128 per peer in WireGuard) from its
// switch until A has the new key, so above ~128 packets per gap it loses the overflow.
// Needs root and wireguard-go; prints why not otherwise.
import type { ChildProcess } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { inNs, ip, spawnInNs } from "../src/box/netns.js";
import { UserspaceWireguard } from "../src/datapath-driver/wireguard/backend.js";
import { generateKeyPair } from "../src/datapath-driver/wireguard/keys.js";
import {
  type DeviceConfig,
  peersToHandshake,
  removeRequest,
  retiringPeers,
  socketPath,
  uapiGet,
  uapiKick,
  uapiSet,
  updateRequest,
} from "../src/datapath-driver/wireguard/uapi.js";
import { isRoot } from "../src/util/process.js";
import { toolsRequirement } from "../src/util/system-tools.js";

const RATE = Number(process.env.BENCH_ROTATION_PPS ?? 10_000);
const ROTATIONS = Number(process.env.BENCH_ROTATIONS ?? 40);
const GAP_MS = 600; // between rotations
const PREFIX = "nlr";
const NS = { a: `${PREFIX}-a`, b: `${PREFIX}-b` };
const WG = { a: `${PREFIX}wa`, b: `${PREFIX}wb` };
const TUNNEL_IP = { a: "10.79.0.1", b: "10.79.0.2" };
const UNDERLAY_IP = { a: "192.168.79.1", b: "192.168.79.2" };
const PORT = 51879;

function missing(): string | undefined {
  if (!isRoot()) return "needs root (network namespaces, TUN)";
  return toolsRequirement(["ip", "nsenter", "ping", "wireguard-go"]);
}

function teardown(): void {
  for (const side of ["a", "b"] as const) {
    ip(["-n", NS[side], "link", "del", WG[side]], true);
    ip(["netns", "del", NS[side]], true);
    rmSync(socketPath(WG[side]), { force: true });
  }
}

async function setup(): Promise<void> {
  teardown();
  for (const side of ["a", "b"] as const) ip(["netns", "add", NS[side]]);
  ip([
    "link",
    "add",
    `${PREFIX}-va`,
    "netns",
    NS.a,
    "type",
    "veth",
    "peer",
    "name",
    `${PREFIX}-vb`,
    "netns",
    NS.b,
  ]);
  for (const side of ["a", "b"] as const) {
    const dev = `${PREFIX}-v${side}`;
    ip(["-n", NS[side], "addr", "add", `${UNDERLAY_IP[side]}/24`, "dev", dev]);
    ip(["-n", NS[side], "link", "set", dev, "up"]);
    ip(["-n", NS[side], "link", "set", "lo", "up"]);
    inNs(NS[side], ["wireguard-go", WG[side]]);
    for (let i = 0; i < 50 && !existsSync(socketPath(WG[side])); i++) await sleep(100);
    const other = side === "a" ? "b" : "a";
    ip(["-n", NS[side], "addr", "add", `${TUNNEL_IP[side]}/32`, "dev", WG[side]]);
    ip(["-n", NS[side], "link", "set", WG[side], "mtu", "1420", "up"]);
    ip(["-n", NS[side], "route", "add", `${TUNNEL_IP[other]}/32`, "dev", WG[side]]);
  }
}

/** Node one-liners run inside a namespace: a paced UDP sender and a counting receiver. */
const RECEIVER = `
const s = require("node:dgram").createSocket({ type: "udp4", recvBufferSize: 16 << 20 });
const seen = new Set();
s.on("message", (m) => seen.add(m.readUInt32BE(0)));
s.bind(9000, process.argv[1], () => console.log("ready"));
process.stdin.on("end", () => {
  // Lengths of the runs of missing sequence numbers: 1-2 in a row is a packet lost in flight,
  // long runs are a queue that overflowed.
  const runs = []; let run = 0; let max = -1; for (const q of seen) if (q > max) max = q;
  for (let q = 0; q <= max; q++) if (seen.has(q)) { if (run) runs.push(run); run = 0; } else run++;
  console.log(JSON.stringify({ received: seen.size, runs }));
  process.exit(0);
});
process.stdin.resume();`;
const SENDER = `
const s = require("node:dgram").createSocket("udp4");
const [to, rate] = [process.argv[1], Number(process.argv[2])];
let seq = 0, stop = false;
const t0 = Date.now();
process.stdin.on("end", () => (stop = true));
process.stdin.resume();
(function tick() {
  const due = Math.floor(((Date.now() - t0) * rate) / 1000);
  while (seq < due) { const b = Buffer.alloc(64); b.writeUInt32BE(seq++); s.send(b, 9000, to); }
  if (stop) setTimeout(() => { console.log(JSON.stringify({ sent: seq })); process.exit(0); }, 300);
  else setTimeout(tick, 1);
})();`;

function nodeIn(ns: string, script: string, args: string[]): ChildProcess {
  return spawnInNs(ns, [process.execPath, "-e", script, ...args], {
    stdio: ["pipe", "pipe", "inherit"],
  });
}

function lastJson(p: ChildProcess): Promise<{ sent?: number; received?: number; runs?: number[] }> {
  let out = "";
  p.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) =>
    p.on("exit", () => resolve(JSON.parse(out.trim().split("\n").at(-1) ?? "{}"))),
  );
}

/** One direction of a run: packets sent and received. */
interface Stream {
  sent: number;
  received: number;
  /** Lengths of the runs of lost packets. */
  runs: number[];
}

/** Streams A → B and B → A (a ping's two legs) while `during` runs. */
async function stream(during: () => Promise<void>): Promise<{ ab: Stream; ba: Stream }> {
  const legs = (["a", "b"] as const).map((from) => {
    const to: "a" | "b" = from === "a" ? "b" : "a";
    const rx = nodeIn(NS[to], RECEIVER, [TUNNEL_IP[to]]);
    return { from, to, rx, rxReady: new Promise<void>((r) => rx.stdout?.once("data", () => r())) };
  });
  await Promise.all(legs.map((l) => l.rxReady));
  const running = legs.map((l) => {
    const rxDone = lastJson(l.rx);
    const tx = nodeIn(NS[l.from], SENDER, [TUNNEL_IP[l.to], String(RATE)]);
    return { ...l, tx, rxDone, txDone: lastJson(tx) };
  });
  await sleep(500);
  await during();
  await sleep(1000);
  const out: Stream[] = [];
  for (const l of running) {
    l.tx.stdin?.end();
    const { sent } = await l.txDone;
    await sleep(500);
    l.rx.stdin?.end();
    const { received, runs } = await l.rxDone;
    out.push({ sent: sent ?? 0, received: received ?? 0, runs: runs ?? [] });
  }
  return { ab: out[0]!, ba: out[1]! };
}

async function main(): Promise<void> {
  const why = missing();
  if (why) {
    console.log(`rotation bench skipped: ${why}`);
    return;
  }
  await setup();
  const wg = new UserspaceWireguard();
  const keys = { a: generateKeyPair(), b: generateKeyPair() };
  const config = (side: "a" | "b"): DeviceConfig & { ifname: string } => {
    const other = side === "a" ? "b" : "a";
    return {
      ifname: WG[side],
      privateKey: keys[side].privateKey,
      listenPort: PORT,
      peers: [
        {
          publicKey: keys[other].publicKey,
          endpoint: `${UNDERLAY_IP[other]}:${PORT}`,
          allowedIPs: [`${TUNNEL_IP[other]}/32`],
        },
      ],
    };
  };
  try {
    await wg.updatePeers(config("a"));
    await wg.updatePeers(config("b"));
    inNs(NS.a, ["ping", "-c", "3", "-i", "0.2", TUNNEL_IP.b]); // sessions up before measuring

    const rotate = async (removeAtOnce: boolean) => {
      for (let i = 0; i < ROTATIONS; i++) {
        keys.b = generateKeyPair();
        await wg.updatePeers(config("b")); // B switches first and kicks, as the agent does
        await sleep(20); // its status reaching A
        if (removeAtOnce) {
          // The old request: the successor takes the allowed IPs and the old key goes, at once.
          const sock = socketPath(WG.a);
          const before = await uapiGet(sock);
          const retired = retiringPeers(before, config("a"));
          const body = updateRequest(before, config("a"))?.replace(/\n\n$/, "");
          const removal = removeRequest(retired)?.replace(/^set=1\n/, "") ?? "\n";
          if (body) await uapiSet(sock, `${body}\n${removal}`, "set");
          await uapiKick(sock, peersToHandshake(before, config("a")));
        } else await wg.updatePeers(config("a")); // A takes the new key up; the old one drains
        await sleep(GAP_MS);
      }
    };
    const control = await stream(() => sleep(ROTATIONS * (GAP_MS + 20)));
    const baseline = await stream(() => rotate(true));
    const netloom = await stream(() => rotate(false));
    const line = (name: string, r: Stream, rotations: number) => {
      const lost = r.sent - r.received;
      const per = rotations ? `, ${(lost / rotations).toFixed(2)} per rotation` : "";
      // A packet lost in flight goes alone; an overflowing queue (128 per peer) loses a run.
      const alone = r.runs.filter((n) => n <= 2).length;
      const longest = Math.max(0, ...r.runs);
      console.log(
        `${name.padEnd(46)} lost ${lost} of ${r.sent}${per}; ${alone} lost alone (1-2 in a row), longest run ${longest}`,
      );
      return lost;
    };
    console.log(`rotation under a ${RATE} packets/s UDP stream, ${ROTATIONS} rotations per phase:`);
    for (const leg of ["ab", "ba"] as const) {
      const dir = leg === "ab" ? "A → B (to the rotating node)" : "B → A (from the rotating node)";
      console.log(`  ${dir}`);
      line("  control (no rotation)", control[leg], 0);
      const lb = line("  baseline (old key removed at once)", baseline[leg], ROTATIONS);
      const ln = line("  netloom (old key drains 3 s, then removed)", netloom[leg], ROTATIONS);
      console.log(
        `    lost, netloom / baseline: ${lb ? (ln / lb).toFixed(3) : "n/a (baseline lost none)"}`,
      );
    }
  } finally {
    teardown();
  }
}

await main();
