import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { terminate } from "../util/process.js";
import { type BoxPod, type BoxPodPort, type BoxState, saveBoxState } from "./box.js";
import type { HelperAnswer, HelperConnect } from "./pod-helper.js";

/** The compiled pod helper (dist/src/box/pod-helper.js), next to this module. */
export const POD_HELPER = fileURLToPath(new URL("./pod-helper.js", import.meta.url));

export type Protocol = "TCP" | "UDP";

export interface ProbeResult {
  /** TCP: the handshake completed; UDP: the echo came back. */
  ok: boolean;
  /** Milliseconds to the outcome, measured inside the source pod. */
  ms: number;
  /** errno code when not ok: ECONNREFUSED (reached, nothing listens), ETIMEDOUT (silence), … */
  error?: string;
  /** TCP with `read`: what the server sent (a helper's banner: "<ns>/<name> tcp/<port>"). */
  reply?: string;
}

/**
 * "allow": the packet reached the destination's kernel (connected, echoed, or refused — a closed
 * port answers with a RST or an ICMP port unreachable). "deny": silence until the timeout, as a
 * datapath that drops. "error": anything else (EHOSTUNREACH, ENETUNREACH, EPERM, a helper
 * failure): neither, so a test can fail on it rather than count it as either.
 *
 * This reading assumes a policy drops: a datapath that rejected with a RST or a port unreachable
 * would look like "allow" here.
 */
export type Verdict = "allow" | "deny" | "error";

export function probeVerdict(r: Pick<ProbeResult, "ok" | "error">): Verdict {
  if (r.ok || r.error === "ECONNREFUSED") return "allow";
  return r.error === "ETIMEDOUT" ? "deny" : "error";
}

/**
 * One pod helper process and its pipes: requests carry ids, so any number may be in flight.
 * Start one with PodHelper.start (addBoxPod does for the pods it adds).
 */
export class PodHelper {
  private nextId = 1;
  private readonly pending = new Map<number, (a: HelperAnswer) => void>();
  private exited = false;

  private constructor(
    readonly pod: BoxPod,
    private readonly child: ChildProcess,
  ) {
    child.on("exit", () => {
      this.exited = true;
      for (const [id, done] of this.pending)
        done({ id, ok: false, ms: 0, error: "EHELPER: the pod helper exited" });
      this.pending.clear();
    });
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  get alive(): boolean {
    return !this.exited;
  }

  /**
   * Starts a helper in the pod's namespace listening on `ports`, and waits (up to timeoutMs)
   * for its `{"ready":true}`. Its stderr goes to <box dir>/helper-<netns>.log.
   */
  static async start(
    s: BoxState,
    pod: BoxPod,
    ports: BoxPodPort[] = pod.ports ?? [],
    timeoutMs = 20_000,
  ): Promise<PodHelper> {
    const args = [`--name`, `${pod.namespace}/${pod.name}`];
    for (const p of ports) args.push(p.protocol === "UDP" ? "--udp" : "--tcp", String(p.port));
    const log = openSync(join(s.dir, `helper-${pod.netns}.log`), "a");
    // nsenter, not `ip netns exec` (which remounts /sys); nsenter execs, so its pid is node's.
    const child = spawn(
      "nsenter",
      [`--net=/run/netns/${pod.netns}`, process.execPath, POD_HELPER, ...args],
      { stdio: ["pipe", "pipe", log] },
    );
    closeSync(log);
    child.stdin?.on("error", () => {}); // EPIPE after it died: its "exit" answers what is pending
    const helper = new PodHelper(pod, child);
    const lines = createInterface({ input: child.stdout!, terminal: false });
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`pod helper in ${pod.netns}: not ready after ${timeoutMs} ms`)),
        timeoutMs,
      );
      child.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`pod helper in ${pod.netns} exited (${code}) before it was ready`));
      });
      lines.on("line", (line) => {
        let msg: HelperAnswer & { ready?: boolean; error?: string };
        try {
          msg = JSON.parse(line);
        } catch {
          return;
        }
        if (msg.ready !== undefined) {
          clearTimeout(timer);
          if (msg.ready) resolve();
          else reject(new Error(`pod helper in ${pod.netns}: ${msg.error}`));
          return;
        }
        const done = typeof msg.id === "number" ? helper.pending.get(msg.id) : undefined;
        if (done) {
          helper.pending.delete(msg.id as number);
          done(msg);
        }
      });
    });
    try {
      await ready;
    } catch (err) {
      child.kill("SIGKILL");
      throw err;
    }
    helpers.set(pod.netns, helper);
    pod.helperPid = helper.pid;
    // The pod object may be a copy (a test's); the one in the state is what boxDown reads.
    const inState = s.nodes.flatMap((n) => n.pods).find((p) => p.netns === pod.netns);
    if (inState) inState.helperPid = helper.pid;
    saveBoxState(s);
    return helper;
  }

  /** Asks the helper to connect to ip:port; resolves with its answer (never rejects). */
  connect(c: HelperConnect): Promise<ProbeResult> {
    if (this.exited)
      return Promise.resolve({ ok: false, ms: 0, error: "EHELPER: the pod helper exited" });
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, (a) => {
        const r: ProbeResult = { ok: a.ok, ms: a.ms };
        if (a.error !== undefined) r.error = a.error;
        if (a.reply !== undefined) r.reply = a.reply;
        resolve(r);
      });
      this.child.stdin!.write(`${JSON.stringify({ id, connect: c })}\n`);
    });
  }

  /** Closes its stdin (it exits), then makes sure it is gone. */
  async stop(): Promise<void> {
    if (helpers.get(this.pod.netns) === this) helpers.delete(this.pod.netns);
    this.child.stdin?.end();
    await terminate(this.pid, "SIGTERM", 2000);
  }
}

/** The helpers this process started, by pod netns. */
const helpers = new Map<string, PodHelper>();

/** The running helper of `pod` started by this process, if any. */
export function helperOf(pod: Pick<BoxPod, "netns">): PodHelper | undefined {
  const h = helpers.get(pod.netns);
  return h?.alive ? h : undefined;
}

/** Stops the helper of `pod` (this process's, or any by the pid in the state). */
export async function stopPodHelper(pod: BoxPod): Promise<void> {
  const h = helpers.get(pod.netns);
  if (h) await h.stop();
  else if (pod.helperPid) await terminate(pod.helperPid, "SIGTERM", 2000);
  delete pod.helperPid;
}

/** Stops every helper this process started (boxDown also kills them: they run in the box). */
export async function stopAllPodHelpers(): Promise<void> {
  await Promise.all([...helpers.values()].map((h) => h.stop()));
}

export interface ProbeOptions {
  /** The first attempt's timeout (default 500 ms). */
  timeoutMs?: number;
  /**
   * A "deny" is probed again this many times before it counts (default 1): on a loaded machine
   * a slow answer must not read as a drop. An "allow" is never retried.
   */
  retries?: number;
  /** Timeout of each retry (default 2,000 ms). */
  retryTimeoutMs?: number;
}

export interface ProbeCase {
  from: BoxPod;
  to: { ip: string };
  port: number;
  protocol: Protocol;
}

export interface VerdictResult {
  verdict: Verdict;
  /** The deciding attempt. */
  result: ProbeResult;
  /** Every attempt, first first. */
  attempts: ProbeResult[];
}

/**
 * Connection probes between box pods through their helpers. Every probe runs in the source
 * pod's helper (started by addBoxPod, or PodHelper.start for the fixed pods); any number may be
 * in flight at once.
 */
export class PodProbes {
  readonly timeoutMs: number;
  readonly retries: number;
  readonly retryTimeoutMs: number;

  constructor(opts: ProbeOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 500;
    this.retries = opts.retries ?? 1;
    this.retryTimeoutMs = opts.retryTimeoutMs ?? 2000;
  }

  private helper(from: BoxPod): PodHelper {
    const h = helperOf(from);
    if (!h)
      throw new Error(
        `no pod helper runs for ${from.namespace}/${from.name} (${from.netns}) in this process: addBoxPod starts one, PodHelper.start for other pods`,
      );
    return h;
  }

  /** One attempt, no retry. */
  async connect(
    from: BoxPod,
    to: { ip: string },
    port: number,
    protocol: Protocol = "TCP",
    timeoutMs = this.timeoutMs,
    read = false,
  ): Promise<ProbeResult> {
    return this.helper(from).connect({
      ip: to.ip,
      port,
      protocol,
      timeoutMs,
      ...(read ? { read } : {}),
    });
  }

  /** A verdict with the retry rule: a "deny" is re-probed (longer timeout) before it counts. */
  async verdict(
    from: BoxPod,
    to: { ip: string },
    port: number,
    protocol: Protocol = "TCP",
  ): Promise<VerdictResult> {
    const attempts = [await this.connect(from, to, port, protocol)];
    for (let i = 0; i < this.retries && probeVerdict(attempts.at(-1)!) === "deny"; i++)
      attempts.push(await this.connect(from, to, port, protocol, this.retryTimeoutMs));
    const result = attempts.at(-1)!;
    return { verdict: probeVerdict(result), result, attempts };
  }

  /** Verdicts for many cases, at most `concurrency` in flight; results in the cases' order. */
  async verdicts(cases: ProbeCase[], concurrency = 32): Promise<VerdictResult[]> {
    const out: VerdictResult[] = new Array(cases.length);
    let next = 0;
    const worker = async () => {
      while (next < cases.length) {
        const i = next++;
        const c = cases[i]!;
        out[i] = await this.verdict(c.from, c.to, c.port, c.protocol);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, cases.length) }, worker));
    return out;
  }
}

/** The number of a pod's named port (as a NetworkPolicy's named port resolves on that pod). */
export function portOf(pod: BoxPod, name: string, protocol: Protocol = "TCP"): number | undefined {
  return pod.ports?.find((p) => p.name === name && p.protocol === protocol)?.port;
}
