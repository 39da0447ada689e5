import type { Logger } from "pino";
import { pino } from "pino";
import type {
  NodeNetworkState,
  NodeNetworkStateSpec,
  NodeNetworkStateStatus,
} from "../api/nodenetworkstate.js";
import { parseDuration } from "../api/quantity.js";
import { formatTime } from "../controllers/conditions.js";
import type { Capabilities, DatapathDriver } from "../datapath-driver/driver.js";
import { type DriftItem, desiredDatapath, diffDatapath } from "../datapath-driver/driver.js";
import { SPEC_HASH_ANNOTATION } from "../reconcilers/nodenetworkstate/names.js";
import { statusAfterApply, statusAfterDriftCheck } from "./status.js";

export interface NodeAgentOptions {
  node: string;
  driver: DatapathDriver;
  /** Writes the whole status of this node's NodeNetworkState (through /status). */
  writeStatus(status: NodeNetworkStateStatus): Promise<void>;
  /** Each apply's duration in seconds (a metric in the real agent). */
  onApply?(seconds: number, ok: boolean): void;
  /** Reported on drift: an Event and a metric in the real agent. */
  onDrift?(items: DriftItem[], healed: boolean): void;
  heartbeatMs?: number;
  /** First retry after a failed apply; doubles up to 30 s. */
  retryMs?: number;
  nodeIP?: string;
  now?: () => Date;
  log?: Logger;
}

/**
 * The node agent's core, shared by `netloom agent` (linux driver) and the simulator (memory
 * driver): converge on every new spec, re-check drift every drift.checkInterval, heartbeat.
 * Work is serialised: an apply and a drift check never overlap.
 */
export class NodeAgent {
  private state: NodeNetworkState | undefined;
  private status: NodeNetworkStateStatus | undefined;
  private appliedKey: string | undefined;
  private caps: Capabilities | undefined;
  private chain: Promise<void> = Promise.resolve();
  private driftTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;
  private readonly now: () => Date;
  private readonly log: Logger;

  constructor(private readonly opts: NodeAgentOptions) {
    this.now = opts.now ?? (() => new Date());
    this.log = (opts.log ?? pino({ level: "silent" })).child({ node: opts.node });
  }

  get node(): string {
    return this.opts.node;
  }

  /** Feed the current NodeNetworkState of this node (undefined when it was deleted). */
  observe(nns: NodeNetworkState | undefined): Promise<void> {
    this.state = nns;
    if (nns?.status) this.status ??= nns.status;
    return this.serial(() => this.converge());
  }

  /** Re-read the kernel now (the real agent calls this on SIGHUP too). */
  checkDrift(): Promise<void> {
    return this.serial(() => this.driftCheck());
  }

  start(): void {
    const heartbeatMs = this.opts.heartbeatMs ?? 15_000;
    this.heartbeatTimer = setInterval(() => void this.serial(() => this.heartbeat()), heartbeatMs);
    this.heartbeatTimer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.driftTimer);
    clearTimeout(this.retryTimer);
  }

  private serial(fn: () => Promise<void>): Promise<void> {
    const next = this.chain.then(fn).catch((err: unknown) => {
      this.log.error({ err }, "agent step failed");
    });
    this.chain = next;
    return next;
  }

  private async capabilities(): Promise<Capabilities> {
    this.caps ??= await this.opts.driver.capabilities();
    return this.caps;
  }

  private async converge(): Promise<void> {
    const nns = this.state;
    if (!nns || nns.metadata.deletionTimestamp) {
      if (this.appliedKey !== undefined) {
        await this.opts.driver.teardown();
        this.appliedKey = undefined;
      }
      return;
    }
    const generation = nns.metadata.generation ?? 0;
    const specHash = nns.metadata.annotations?.[SPEC_HASH_ANNOTATION];
    const key = `${generation}/${specHash ?? ""}`;
    if (key === this.appliedKey && this.status?.observedGeneration === generation) return;
    let result: Parameters<typeof statusAfterApply>[1]["result"];
    const started = performance.now();
    try {
      result = { ok: true, report: await this.opts.driver.apply(nns.spec) };
      this.appliedKey = key;
      this.failures = 0;
      this.log.info({ generation }, "applied");
    } catch (err) {
      result = { ok: false, error: err instanceof Error ? err.message : String(err) };
      this.appliedKey = undefined;
      this.log.warn({ generation, error: result.error }, "apply failed");
      this.scheduleRetry();
    }
    this.opts.onApply?.((performance.now() - started) / 1000, result.ok);
    const status = statusAfterApply(
      this.status,
      { generation, specHash, result },
      {
        now: this.now(),
        capabilities: await this.capabilities(),
        driver: this.opts.driver.kind,
        ...(this.opts.nodeIP ? { nodeIP: this.opts.nodeIP } : {}),
      },
    );
    await this.publish(status);
    this.scheduleDrift(nns.spec);
  }

  private scheduleRetry(): void {
    clearTimeout(this.retryTimer);
    if (this.stopped) return;
    const delay = Math.min((this.opts.retryMs ?? 1000) * 2 ** this.failures++, 30_000);
    this.retryTimer = setTimeout(() => void this.serial(() => this.converge()), delay);
    this.retryTimer.unref();
  }

  private scheduleDrift(spec: NodeNetworkStateSpec): void {
    clearTimeout(this.driftTimer);
    if (this.stopped) return;
    const ms = parseDuration(spec.drift?.checkInterval ?? "30s");
    this.driftTimer = setTimeout(() => void this.checkDrift(), ms);
    this.driftTimer.unref();
  }

  private async driftCheck(): Promise<void> {
    const nns = this.state;
    if (!nns || this.appliedKey === undefined) return;
    const desired = desiredDatapath(nns.spec, this.opts.driver.devicesFor(nns.spec));
    const actual = await this.opts.driver.read();
    const items = diffDatapath(desired, actual);
    let healed = false;
    if (items.length > 0) {
      const mode = nns.spec.drift?.mode ?? "Heal";
      this.log.warn({ drift: items.map((i) => i.detail), mode }, "drift detected");
      if (mode === "Heal") {
        await this.opts.driver.apply(nns.spec);
        healed = true;
      }
      this.opts.onDrift?.(items, healed);
    }
    const status = statusAfterDriftCheck(this.status, { items, healed }, this.now());
    if (items.length > 0 || status.drift?.drifted !== this.status?.drift?.drifted)
      await this.publish(status);
    else this.status = status;
    this.scheduleDrift(nns.spec);
  }

  private async heartbeat(): Promise<void> {
    if (!this.status || !this.state) return;
    await this.publish({ ...this.status, heartbeatTime: formatTime(this.now()) });
  }

  private async publish(status: NodeNetworkStateStatus): Promise<void> {
    this.status = status;
    await this.opts.writeStatus(status);
  }
}
