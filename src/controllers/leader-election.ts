import { performance } from "node:perf_hooks";
import {
  CoordinationV1Api,
  type KubeConfig,
  type V1Lease,
  type V1LeaseSpec,
  V1MicroTime,
} from "@kubernetes/client-node";
import { type Logger, pino } from "pino";
import { describeError, isConflict, isNotFound } from "./errors.js";
import type { RuntimeMetrics } from "./metrics.js";

export interface LeaderElectionOptions {
  kubeconfig: KubeConfig;
  /** Namespace and name of the coordination.k8s.io/v1 Lease. */
  namespace: string;
  name: string;
  /** Unique per replica (pod name + random suffix). */
  identity: string;
  /** How long others wait after the last observed renewal before taking over (15 s). */
  leaseDurationMs?: number;
  /** The leader steps down if it cannot renew for this long (10 s). */
  renewDeadlineMs?: number;
  /** Interval between attempts to acquire or renew (2 s). */
  retryPeriodMs?: number;
  onStartedLeading: () => void;
  /** Called when leadership ends, lost or released; stop all leader-only work at once. */
  onStoppedLeading: () => void;
  logger?: Logger;
  metrics?: RuntimeMetrics;
}

export type LeaseDecision = "renew" | "acquire" | "wait";

/**
 * May `identity` write the lease now? Expiry is measured on the local monotonic clock from the
 * moment this replica last saw the record change (client-go's rule), so clock skew between
 * replicas cannot shorten a lease.
 */
export function leaseDecision(input: {
  holder: string;
  identity: string;
  leaseDurationSeconds: number;
  observedAtMs: number;
  nowMs: number;
}): LeaseDecision {
  if (input.holder === input.identity) return "renew";
  if (input.holder === "") return "acquire";
  const expired = input.observedAtMs + input.leaseDurationSeconds * 1000 <= input.nowMs;
  return expired ? "acquire" : "wait";
}

/** The spec identity writes to acquire or renew: acquireTime and transitions move on takeover. */
export function nextLeaseSpec(
  current: V1LeaseSpec,
  identity: string,
  leaseDurationSeconds: number,
  now: Date,
): V1LeaseSpec {
  const holding = current.holderIdentity === identity;
  const transitions = current.leaseTransitions ?? 0;
  const stamp = new V1MicroTime(now.getTime());
  return {
    ...current,
    holderIdentity: identity,
    leaseDurationSeconds,
    acquireTime: holding && current.acquireTime ? current.acquireTime : stamp,
    renewTime: stamp,
    leaseTransitions: holding ? transitions : transitions + 1,
  };
}

/** What client-go writes on release: no holder, 1 s duration, so a successor need not wait. */
export function releasedLeaseSpec(current: V1LeaseSpec, now: Date): V1LeaseSpec {
  const stamp = new V1MicroTime(now.getTime());
  return {
    ...current,
    holderIdentity: "",
    leaseDurationSeconds: 1,
    acquireTime: stamp,
    renewTime: stamp,
  };
}

type Attempt = { ok: true } | { ok: false; holder: string };

class TimeoutError extends Error {}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * client-go's LeaderElector on a Lease: acquire (create, or replace with the read
 * resourceVersion so that a concurrent writer gets 409 and loses), renew every retryPeriod,
 * step down when no renewal succeeds within renewDeadline or another holder appears, and
 * release on stop() so a successor starts within one retryPeriod instead of a leaseDuration.
 */
export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private readonly log: Logger;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private stopped = false;
  private leading = false;
  private loop: Promise<void> | undefined;
  private observed: { resourceVersion: string; atMs: number } | undefined;
  private readonly wakers = new Set<() => void>();

  constructor(private readonly opts: LeaderElectionOptions) {
    this.leaseDurationMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = opts.retryPeriodMs ?? 2_000;
    if (this.leaseDurationMs <= this.renewDeadlineMs) {
      throw new Error("leaseDuration must be greater than renewDeadline");
    }
    if (this.renewDeadlineMs <= this.retryPeriodMs * 1.2) {
      throw new Error("renewDeadline must be greater than retryPeriod*1.2");
    }
    this.api = opts.kubeconfig.makeApiClient(CoordinationV1Api);
    this.log = (opts.logger ?? pino({ level: "silent" })).child({
      lease: `${opts.namespace}/${opts.name}`,
      identity: opts.identity,
    });
    opts.metrics?.leaderStatus.set({ name: opts.name }, 0);
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** Starts campaigning in the background; after a loss it campaigns again. */
  run(): void {
    if (this.loop) return;
    this.stopped = false;
    this.loop = this.campaign();
  }

  /** Stops campaigning; a leader releases the lease, then onStoppedLeading runs. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const wake of [...this.wakers]) wake();
    await this.loop;
    this.loop = undefined;
    if (this.leading) {
      await this.release();
      this.setLeading(false);
    }
  }

  private async campaign(): Promise<void> {
    while (!this.stopped) {
      if (!(await this.acquire())) return;
      this.setLeading(true);
      const reason = await this.renewUntilLost();
      if (this.stopped) return; // stop() releases and reports
      this.log.warn({ reason }, "leadership lost");
      this.setLeading(false);
    }
  }

  private async acquire(): Promise<boolean> {
    this.log.info("attempting to acquire leader lease");
    while (!this.stopped) {
      try {
        const attempt = await withTimeout(
          this.tryAcquireOrRenew(),
          this.renewDeadlineMs,
          "acquire",
        );
        if (attempt.ok) {
          this.log.info("acquired leader lease");
          return true;
        }
      } catch (err) {
        this.log.warn({ err: describeError(err) }, "error acquiring leader lease");
      }
      // Jitter so that candidates started together do not keep colliding.
      await this.sleep(this.retryPeriodMs * (1 + 0.2 * Math.random()));
    }
    return false;
  }

  /** Renews every retryPeriod; returns why leadership ended (or "stopped"). */
  private async renewUntilLost(): Promise<string> {
    let lastRenew = performance.now();
    while (!this.stopped) {
      await this.sleep(this.retryPeriodMs);
      for (;;) {
        if (this.stopped) return "stopped";
        const remaining = lastRenew + this.renewDeadlineMs - performance.now();
        if (remaining <= 0) return `no renewal within ${this.renewDeadlineMs} ms`;
        try {
          const attempt = await withTimeout(this.tryAcquireOrRenew(), remaining, "renew");
          if (attempt.ok) {
            lastRenew = performance.now();
            break;
          }
          if (attempt.holder !== "" && attempt.holder !== this.opts.identity) {
            return `lease now held by ${attempt.holder}`;
          }
        } catch (err) {
          this.log.warn({ err: describeError(err) }, "error renewing leader lease");
        }
        const left = lastRenew + this.renewDeadlineMs - performance.now();
        await this.sleep(Math.max(0, Math.min(this.retryPeriodMs / 4, left)));
      }
    }
    return "stopped";
  }

  private async tryAcquireOrRenew(): Promise<Attempt> {
    const { namespace, name, identity } = this.opts;
    const leaseDurationSeconds = Math.ceil(this.leaseDurationMs / 1000);
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (!isNotFound(err)) throw err;
      // A new lease starts at 0 transitions (client-go); takeovers count from there.
      const spec = {
        ...nextLeaseSpec({}, identity, leaseDurationSeconds, new Date()),
        leaseTransitions: 0,
      };
      try {
        const created = await this.api.createNamespacedLease({
          namespace,
          body: {
            apiVersion: "coordination.k8s.io/v1",
            kind: "Lease",
            metadata: { name, namespace },
            spec,
          },
        });
        this.observe(created);
        return { ok: true };
      } catch (createErr) {
        if (isConflict(createErr)) return { ok: false, holder: "" };
        throw createErr;
      }
    }
    this.observe(lease);
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? "";
    const decision = leaseDecision({
      holder,
      identity,
      leaseDurationSeconds: spec.leaseDurationSeconds ?? leaseDurationSeconds,
      observedAtMs: this.observed?.atMs ?? performance.now(),
      nowMs: performance.now(),
    });
    if (decision === "wait") return { ok: false, holder };
    try {
      const updated = await this.replace(
        lease,
        nextLeaseSpec(spec, identity, leaseDurationSeconds, new Date()),
      );
      this.observe(updated);
      return { ok: true };
    } catch (err) {
      // Someone wrote the lease after our read: we lost that race.
      if (isConflict(err)) return { ok: false, holder };
      throw err;
    }
  }

  private async release(): Promise<void> {
    const { namespace, name, identity } = this.opts;
    try {
      const lease = await withTimeout(
        this.api.readNamespacedLease({ name, namespace }),
        this.renewDeadlineMs,
        "read lease",
      );
      if (lease.spec?.holderIdentity !== identity) return;
      await withTimeout(
        this.replace(lease, releasedLeaseSpec(lease.spec ?? {}, new Date())),
        this.renewDeadlineMs,
        "release",
      );
      this.log.info("released leader lease");
    } catch (err) {
      this.log.warn({ err: describeError(err) }, "failed to release leader lease");
    }
  }

  /** Replace with the read resourceVersion: the API server refuses it (409) if anyone wrote since. */
  private replace(lease: V1Lease, spec: V1LeaseSpec): Promise<V1Lease> {
    const { managedFields: _drop, ...metadata } = lease.metadata ?? {};
    return this.api.replaceNamespacedLease({
      name: this.opts.name,
      namespace: this.opts.namespace,
      body: { apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata, spec },
    });
  }

  private observe(lease: V1Lease): void {
    const resourceVersion = lease.metadata?.resourceVersion ?? "";
    if (this.observed?.resourceVersion !== resourceVersion) {
      this.observed = { resourceVersion, atMs: performance.now() };
    }
  }

  private setLeading(leading: boolean): void {
    if (this.leading === leading) return;
    this.leading = leading;
    this.opts.metrics?.leaderStatus.set({ name: this.opts.name }, leading ? 1 : 0);
    try {
      if (leading) this.opts.onStartedLeading();
      else this.opts.onStoppedLeading();
    } catch (err) {
      this.log.error({ err: describeError(err) }, "leadership callback threw");
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakers.add(done);
    });
  }
}
