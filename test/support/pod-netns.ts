/**
 * Two pods behind one node, on the real kernel, as src/box builds them (Calico-style routing):
 *
 *   node <prefix>-n   host veths <short>a / <short>b, a /32 (/128) route per pod, forwarding;
 *                     10.67.255.1 on lo is "the host" talking to pods
 *   pod  <prefix>-a   eth0 10.67.0.1/32 fd00:67::1/128
 *   pod  <prefix>-b   eth0 10.67.0.2/32 fd00:67::2/128
 *
 * Pods reach the node through a permanent neighbour entry for their gateway 169.254.1.1 (the
 * host veth's MAC). Commands in a pod run with `nsenter --net` (keeps /sys/fs/bpf visible).
 * For real-kernel tests only (root).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";

export interface TestPod {
  ns: string;
  host: string;
  ip: string;
  ip6: string;
}

export interface TwoPods {
  node: string;
  a: TestPod;
  b: TestPod;
  hostIP: string;
  destroy(): void;
}

const GATEWAY = "169.254.1.1";

export function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

export const inNs = (ns: string, args: string[]): string =>
  run("nsenter", [`--net=/run/netns/${ns}`, ...args]);

export const nsPath = (ns: string): string => `/run/netns/${ns}`;

/** Builds the node and its two pods; `short` names the host veths (≤ 13 characters). */
export function twoPods(prefix: string, short: string, net = 67): TwoPods {
  const node = `${prefix}-n`;
  const hostIP = `10.${net}.255.1`;
  const a: TestPod = {
    ns: `${prefix}-a`,
    host: `${short}a`,
    ip: `10.${net}.0.1`,
    ip6: `fd00:${net}::1`,
  };
  const b: TestPod = {
    ns: `${prefix}-b`,
    host: `${short}b`,
    ip: `10.${net}.0.2`,
    ip6: `fd00:${net}::2`,
  };
  const made: string[] = [];
  const destroy = () => {
    for (const ns of made.reverse()) spawnSync("ip", ["netns", "del", ns]);
  };
  try {
    for (const ns of [node, a.ns, b.ns]) {
      run("ip", ["netns", "add", ns]);
      made.push(ns);
      inNs(ns, ["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"]);
      inNs(ns, ["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"]);
      inNs(ns, ["ip", "link", "set", "lo", "up"]);
    }
    inNs(node, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    inNs(node, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    inNs(node, ["ip", "addr", "add", `${hostIP}/32`, "dev", "lo"]);
    for (const pod of [a, b]) {
      inNs(node, [
        "ip",
        "link",
        "add",
        pod.host,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        pod.ns,
      ]);
      inNs(node, ["ip", "link", "set", pod.host, "up"]);
      inNs(node, ["ip", "route", "add", `${pod.ip}/32`, "dev", pod.host, "src", hostIP]);
      inNs(node, ["ip", "-6", "addr", "add", "fe80::1/64", "dev", pod.host, "nodad"]);
      inNs(node, ["ip", "-6", "route", "add", `${pod.ip6}/128`, "dev", pod.host]);
      const mac = (
        JSON.parse(inNs(node, ["ip", "-j", "link", "show", pod.host])) as { address: string }[]
      )[0]?.address;
      assert.ok(mac, `MAC of ${pod.host}`);
      inNs(pod.ns, ["ip", "addr", "add", `${pod.ip}/32`, "dev", "eth0"]);
      inNs(pod.ns, ["ip", "-6", "addr", "add", `${pod.ip6}/128`, "dev", "eth0", "nodad"]);
      inNs(pod.ns, ["ip", "link", "set", "eth0", "up"]);
      inNs(pod.ns, ["ip", "route", "add", GATEWAY, "dev", "eth0", "scope", "link"]);
      inNs(pod.ns, ["ip", "route", "add", "default", "via", GATEWAY, "dev", "eth0"]);
      inNs(pod.ns, ["ip", "neigh", "replace", GATEWAY, "lladdr", mac, "dev", "eth0"]);
      inNs(pod.ns, ["ip", "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0"]);
    }
  } catch (e) {
    destroy();
    throw e;
  }
  return { node, a, b, hostIP, destroy };
}

/** Runs a Node.js script in a pod's namespace; resolves with its stdout once it exits 0. */
export function nodeIn(ns: string, script: string, timeoutMs = 60_000): Promise<string> {
  const child = spawn("nsenter", [`--net=/run/netns/${ns}`, process.execPath, "-e", script], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  return new Promise((ok, fail) => {
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) ok(out);
      else fail(new Error(`script in ${ns} exited ${code ?? signal}: ${err || out}`));
    });
  });
}

/** Echo servers in a pod: TCP on tcpPorts, UDP on udpPorts, both families; kill() to stop. */
export function echoServers(
  ns: string,
  tcpPorts: number[],
  udpPorts: number[],
): Promise<ChildProcess> {
  const js =
    "const net=require('net'),dgram=require('dgram');let n=0;const total=" +
    `${tcpPorts.length + udpPorts.length};const up=()=>{if(++n===total)console.log('ready')};` +
    `for(const p of ${JSON.stringify(tcpPorts)})net.createServer(s=>{s.on('error',()=>{});s.pipe(s)}).listen(p,'::',up);` +
    `for(const p of ${JSON.stringify(udpPorts)}){const u=dgram.createSocket('udp6');` +
    "u.on('message',(m,r)=>u.send(m,r.port,r.address));u.bind(p,'::',up)}";
  const child = spawn("nsenter", [`--net=/run/netns/${ns}`, process.execPath, "-e", js], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((ok, fail) => {
    child.stdout?.on("data", (d: Buffer) => d.toString().includes("ready") && ok(child));
    child.on("exit", (code) => fail(new Error(`servers in ${ns} exited (${code})`)));
  });
}

/**
 * One TCP connection from a pod: `messages` writes, each waiting for its echo, then a clean
 * close (FIN). Resolves with the local port the connection used.
 */
export async function tcpConversation(
  ns: string,
  ip: string,
  port: number,
  messages: number,
): Promise<number> {
  const js = `const net=require('net');const s=net.connect(${port},'${ip}');let n=0,lp=0;
s.setNoDelay(true);
s.on('connect',()=>{lp=s.localPort;s.write('x')});
s.on('data',()=>{if(++n<${messages})s.write('x');else s.end()});
s.on('close',()=>console.log(lp));
s.on('error',e=>{console.error(e.message);process.exit(1)});`;
  return Number((await nodeIn(ns, js)).trim());
}

/** A TCP connection attempt from a pod that gives up after timeoutMs: true when it connected. */
export async function tcpConnects(
  ns: string,
  ip: string,
  port: number,
  timeoutMs = 1000,
): Promise<boolean> {
  const js = `const s=require('net').connect(${port},'${ip}');
const t=setTimeout(()=>{console.log('timeout');s.destroy();process.exit(0)},${timeoutMs});
s.on('connect',()=>{console.log('connected');clearTimeout(t);s.end()});
s.on('error',()=>{console.log('error');process.exit(0)});`;
  return (await nodeIn(ns, js)).trim() === "connected";
}

/**
 * UDP datagrams from a pod to ip, each to another destination port (a new connection each):
 * `count` of them at `perSecond` (in batches every 10 ms), from one socket. Resolves with the
 * number sent.
 */
export async function udpFlood(
  ns: string,
  ip: string,
  count: number,
  perSecond: number,
  firstPort = 1024,
): Promise<number> {
  const js = `const s=require('dgram').createSocket('${ip.includes(":") ? "udp6" : "udp4"}');
const count=${count},batch=Math.max(1,Math.round(${perSecond}/100));let sent=0,acked=0;const t0=Date.now();
const payload=Buffer.from('x');
const tick=()=>{const due=Math.min(count,Math.round((Date.now()-t0)*${perSecond}/1000)+batch);
while(sent<due){const p=${firstPort}+(sent%(65535-${firstPort}));sent++;
s.send(payload,p,'${ip}',()=>{if(++acked===count){console.log(acked);s.close()}})}
if(sent<count)setTimeout(tick,10)};tick();`;
  return Number((await nodeIn(ns, js)).trim());
}
