/**
 * The pod helper: a stand-in for a pod's containers in the cluster-in-a-box, run inside the
 * pod's network namespace (`nsenter --net=/run/netns/<pod> node dist/src/box/pod-helper.js`).
 *
 *   --name NS/NAME   who it is (the TCP banner says so)
 *   --tcp PORT       listen on PORT/TCP (repeatable): accept, write a one-line banner, close
 *   --udp PORT       listen on PORT/UDP (repeatable): echo every datagram to its sender
 *   --stay           keep running when stdin ends (default: exit, so it dies with its owner)
 *
 * Every listener is bound on `::` with IPV6_V6ONLY off, so it answers IPv4 and IPv6. Once all
 * are bound it writes `{"ready":true,...}` on stdout, then reads newline-delimited JSON commands
 * on stdin and answers each with one JSON line, in completion order (match them by id):
 *
 *   {"id":1,"connect":{"ip":"10.244.2.11","port":80,"protocol":"TCP","timeoutMs":500}}
 *   → {"id":1,"ok":true,"ms":0.4}
 *   → {"id":1,"ok":false,"ms":0.3,"error":"ECONNREFUSED"}   (reached the pod: nothing listens)
 *   → {"id":1,"ok":false,"ms":500.8,"error":"ETIMEDOUT"}    (silence: dropped somewhere)
 *
 * TCP: ok when the handshake completes. With `"read":true` the answer also carries `reply`,
 * what the server sent before closing (within the same timeout). UDP: sends a datagram from a
 * connected socket; ok when the same bytes come back; an ICMP port unreachable shows as
 * ECONNREFUSED. Commands run concurrently.
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { createServer, isIP, type Server, Socket } from "node:net";
import { createInterface } from "node:readline";

export interface HelperConnect {
  ip: string;
  port: number;
  protocol: "TCP" | "UDP";
  timeoutMs: number;
  /** TCP: also return what the server sends before it closes (a helper's banner). */
  read?: boolean;
}

export interface HelperCommand {
  id: number;
  connect?: HelperConnect;
}

export interface HelperAnswer {
  id: number | null;
  ok: boolean;
  /** Milliseconds from the first packet to the outcome (connect / echo / error / timeout). */
  ms: number;
  /** The errno code (ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, …) when not ok. */
  error?: string;
  reply?: string;
}

interface Args {
  name: string;
  tcp: number[];
  udp: number[];
  stay: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { name: "pod", tcp: [], udp: [], stay: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    const port = () => {
      const p = Number(value());
      if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`${flag}: bad port`);
      return p;
    };
    if (flag === "--name") a.name = value();
    else if (flag === "--tcp") a.tcp.push(port());
    else if (flag === "--udp") a.udp.push(port());
    else if (flag === "--stay") a.stay = true;
    else throw new Error(`unknown argument ${flag}`);
  }
  return a;
}

const since = (t0: number) => Math.round((performance.now() - t0) * 100) / 100;
const codeOf = (err: unknown) => (err as NodeJS.ErrnoException).code ?? String(err);

function listenTcp(port: number, banner: (port: number) => string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const srv = createServer((sock) => {
      sock.on("error", () => {});
      sock.end(banner(port));
    });
    srv.once("error", reject);
    srv.listen({ host: "::", port, ipv6Only: false }, () => resolve(srv));
  });
}

function listenUdp(port: number): Promise<UdpSocket> {
  return new Promise((resolve, reject) => {
    const sock = createSocket({ type: "udp6", ipv6Only: false });
    sock.on("message", (msg, rinfo) => sock.send(msg, rinfo.port, rinfo.address));
    sock.once("error", reject);
    sock.bind({ address: "::", port }, () => {
      sock.removeListener("error", reject);
      sock.on("error", () => {});
      resolve(sock);
    });
  });
}

function connectTcp(c: HelperConnect): Promise<Omit<HelperAnswer, "id">> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const sock = new Socket();
    let connectedMs: number | undefined;
    let reply = "";
    let settled = false;
    const finish = (a: Omit<HelperAnswer, "id">) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(a);
    };
    const timer = setTimeout(() => {
      if (connectedMs !== undefined) finish({ ok: true, ms: connectedMs, reply });
      else finish({ ok: false, ms: since(t0), error: "ETIMEDOUT" });
    }, c.timeoutMs);
    sock.on("error", (err) => {
      if (connectedMs !== undefined) finish({ ok: true, ms: connectedMs, reply });
      else finish({ ok: false, ms: since(t0), error: codeOf(err) });
    });
    sock.on("data", (d: Buffer) => {
      reply += d.toString();
    });
    sock.on("end", () => finish({ ok: true, ms: connectedMs ?? since(t0), reply }));
    sock.connect({ host: c.ip, port: c.port }, () => {
      connectedMs = since(t0);
      if (!c.read) finish({ ok: true, ms: connectedMs });
    });
  });
}

let nonce = 0;

function connectUdp(c: HelperConnect): Promise<Omit<HelperAnswer, "id">> {
  return new Promise((resolve) => {
    const sock = createSocket(isIP(c.ip) === 6 ? "udp6" : "udp4");
    const payload = Buffer.from(`netloom-probe ${process.pid} ${++nonce} ${Date.now()}`);
    let t0 = performance.now();
    let settled = false;
    const finish = (a: Omit<HelperAnswer, "id">) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try {
        sock.close();
      } catch {}
      resolve(a);
    };
    const timer = setTimeout(
      () => finish({ ok: false, ms: since(t0), error: "ETIMEDOUT" }),
      c.timeoutMs,
    );
    sock.on("error", (err) => finish({ ok: false, ms: since(t0), error: codeOf(err) }));
    sock.on("message", (msg) => {
      if (msg.equals(payload)) finish({ ok: true, ms: since(t0) });
    });
    // Connected, so the kernel hands an ICMP port unreachable back as ECONNREFUSED.
    sock.connect(c.port, c.ip, () => {
      t0 = performance.now();
      sock.send(payload, (err) => {
        if (err) finish({ ok: false, ms: since(t0), error: codeOf(err) });
      });
    });
  });
}

async function run(cmd: HelperCommand): Promise<HelperAnswer> {
  const c = cmd.connect;
  if (!c) return { id: cmd.id, ok: false, ms: 0, error: "EBADCMD: no connect" };
  if (isIP(c.ip) === 0) return { id: cmd.id, ok: false, ms: 0, error: `EBADCMD: ip ${c.ip}` };
  const timeoutMs = c.timeoutMs > 0 ? c.timeoutMs : 1000;
  const req = { ...c, timeoutMs };
  const a =
    c.protocol === "UDP"
      ? await connectUdp(req)
      : c.protocol === "TCP"
        ? await connectTcp(req)
        : { ok: false, ms: 0, error: `EBADCMD: protocol ${c.protocol}` };
  return { id: cmd.id, ...a };
}

function write(o: unknown): void {
  process.stdout.write(`${JSON.stringify(o)}\n`);
}

async function main(): Promise<void> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    write({ ready: false, error: (err as Error).message });
    process.exit(2);
  }
  const banner = (port: number) => `${args.name} tcp/${port}\n`;
  try {
    await Promise.all([
      ...args.tcp.map((p) => listenTcp(p, banner)),
      ...args.udp.map((p) => listenUdp(p)),
    ]);
  } catch (err) {
    write({ ready: false, error: `${codeOf(err)}: ${(err as Error).message}` });
    process.exit(1);
  }
  write({ ready: true, pid: process.pid, name: args.name, tcp: args.tcp, udp: args.udp });
  const lines = createInterface({ input: process.stdin, terminal: false });
  lines.on("line", (line) => {
    if (!line.trim()) return;
    let cmd: HelperCommand;
    try {
      cmd = JSON.parse(line) as HelperCommand;
    } catch {
      write({ id: null, ok: false, ms: 0, error: "EBADCMD: not JSON" });
      return;
    }
    run(cmd).then(write, (err: unknown) =>
      write({ id: cmd.id ?? null, ok: false, ms: 0, error: `EHELPER: ${String(err)}` }),
    );
  });
  lines.on("close", () => {
    if (!args.stay) process.exit(0);
  });
}

await main();
