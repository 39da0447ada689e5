import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import type { KubeConfig } from "@kubernetes/client-node";
import { type Logger, pino } from "pino";
import type { Registry } from "prom-client";
import { type Controller, ControllerBuilder, type WatchSelector } from "./controller.js";
import { Informer } from "./informer.js";
import { LeaderElector } from "./leader-election.js";
import { RuntimeMetrics } from "./metrics.js";
import type { KubeObject, ResourceKind } from "./resource.js";

export interface ManagerOptions {
  kubeconfig: KubeConfig;
  logger?: Logger;
  /** Run controllers only while holding this Lease; omit to always run them. */
  leaderElection?: {
    namespace: string;
    name: string;
    /** Default: hostname_uuid. */
    identity?: string;
    leaseDurationMs?: number;
    renewDeadlineMs?: number;
    retryPeriodMs?: number;
  };
  /** /healthz, /readyz, /metrics; port 0 picks a free port (see `port`); false: no server. */
  server?: { port?: number; host?: string } | false;
  /** Informer resync period (default 10 h). */
  resyncPeriodMs?: number;
  /** Informer restart backoff (default 1 s → 30 s). */
  informerBackoff?: { initialMs: number; maxMs: number };
  /** start() fails if caches have not synced by then (default 2 min). */
  cacheSyncTimeoutMs?: number;
  /** stop() gives in-flight reconciles this long in total (default 30 s). */
  gracefulShutdownTimeoutMs?: number;
  /** Observers of leadership changes (controllers are started/stopped by the manager). */
  onStartedLeading?: () => void;
  onStoppedLeading?: () => void;
}

type State = "new" | "starting" | "started" | "stopping" | "stopped";

/**
 * Owns the shared informers, the controllers, leader election and the health/metrics server.
 * start(): server up → informers started → caches synced (ready) → controllers run while
 * leader. stop() (or SIGTERM): controllers drain within the deadline, the lease is released,
 * informers and server stop.
 */
export class Manager {
  readonly metrics: RuntimeMetrics;
  readonly log: Logger;
  private readonly opts: ManagerOptions;
  private readonly informers = new Map<string, Informer>();
  private readonly controllers: Controller[] = [];
  private elector: LeaderElector | undefined;
  private server: Server | undefined;
  private boundPort = 0;
  private state: State = "new";
  private cachesSynced = false;
  private stopping: Promise<void> | undefined;
  private readonly stoppedSignal: Promise<void>;
  private markStopped: () => void = () => {};

  constructor(opts: ManagerOptions) {
    this.opts = opts;
    this.log = opts.logger ?? pino({ level: "info" });
    this.metrics = new RuntimeMetrics();
    this.stoppedSignal = new Promise((resolve) => {
      this.markStopped = resolve;
    });
  }

  get registry(): Registry {
    return this.metrics.registry;
  }

  /** The bound port of the health/metrics server (after start). */
  get port(): number {
    return this.boundPort;
  }

  isLeader(): boolean {
    return this.opts.leaderElection
      ? (this.elector?.isLeader() ?? false)
      : this.state === "started";
  }

  isReady(): boolean {
    return this.cachesSynced && this.state === "started";
  }

  /** The shared informer for kind + selector, created on first use. */
  informer<T extends KubeObject = KubeObject>(
    kind: ResourceKind,
    selector: WatchSelector = {},
    /** Applies when this call creates the informer: call it before anything else shares it. */
    transform?: (obj: T) => T,
  ): Informer<T> {
    const key = JSON.stringify([
      kind.group,
      kind.version,
      kind.plural,
      selector.namespace ?? "",
      selector.labelSelector ?? "",
      selector.fieldSelector ?? "",
    ]);
    let informer = this.informers.get(key);
    if (!informer) {
      informer = new Informer<T>({
        kubeconfig: this.opts.kubeconfig,
        kind,
        ...selector,
        ...(transform ? { transform } : {}),
        resyncPeriodMs: this.opts.resyncPeriodMs,
        backoff: this.opts.informerBackoff,
        logger: this.log,
      }) as unknown as Informer;
      this.informers.set(key, informer);
      if (this.state === "starting" || this.state === "started") informer.start();
    }
    return informer as unknown as Informer<T>;
  }

  /** Builder for a controller that is registered with this manager on complete(). */
  controller(name: string): ControllerBuilder {
    return new ControllerBuilder(
      name,
      (kind, selector) => this.informer(kind, selector),
      (c) => this.add(c),
      { metrics: this.metrics, logger: this.log },
    );
  }

  add(controller: Controller): void {
    if (this.state !== "new") throw new Error("add controllers before start()");
    if (this.controllers.some((c) => c.name === controller.name)) {
      throw new Error(`controller ${controller.name} registered twice`);
    }
    this.controllers.push(controller);
  }

  /** Resolves once caches are synced and leader election (or the controllers) started. */
  async start(): Promise<void> {
    if (this.state !== "new") throw new Error(`manager already ${this.state}`);
    this.state = "starting";
    if (this.opts.server !== false) await this.listen(this.opts.server ?? {});
    for (const informer of this.informers.values()) informer.start();
    try {
      await this.waitForCacheSync();
    } catch (err) {
      await this.stop(); // do not leave a half-started manager behind
      throw err;
    }
    if (this.state !== "starting") return; // stop() came first
    this.cachesSynced = true;
    this.state = "started";
    this.log.info({ informers: this.informers.size }, "caches synced");
    const le = this.opts.leaderElection;
    if (!le) {
      this.startControllers();
      return;
    }
    this.elector = new LeaderElector({
      kubeconfig: this.opts.kubeconfig,
      namespace: le.namespace,
      name: le.name,
      identity: le.identity ?? `${hostname()}_${randomUUID()}`,
      leaseDurationMs: le.leaseDurationMs,
      renewDeadlineMs: le.renewDeadlineMs,
      retryPeriodMs: le.retryPeriodMs,
      logger: this.log,
      metrics: this.metrics,
      onStartedLeading: () => {
        this.startControllers();
        this.opts.onStartedLeading?.();
      },
      onStoppedLeading: () => {
        this.stopControllersNow();
        this.opts.onStoppedLeading?.();
      },
    });
    this.elector.run();
  }

  /** Graceful stop within gracefulShutdownTimeoutMs; safe to call more than once. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  /** Resolves when the manager has stopped. */
  wait(): Promise<void> {
    return this.stoppedSignal;
  }

  /** SIGTERM/SIGINT → stop(); a second signal exits at once. Returns an uninstaller. */
  installSignalHandlers(): () => void {
    let signalled = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (signalled) process.exit(1);
      signalled = true;
      this.log.info({ signal }, "shutting down");
      void this.stop();
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
    return () => {
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
    };
  }

  private async shutdown(): Promise<void> {
    const deadline = Date.now() + (this.opts.gracefulShutdownTimeoutMs ?? 30_000);
    const left = () => Math.max(0, deadline - Date.now());
    this.state = "stopping";
    // Controllers first, lease second: the next leader must not overlap our in-flight work.
    const drained = await Promise.all(this.controllers.map((c) => c.stop({ timeoutMs: left() })));
    if (drained.includes(false)) this.log.warn("shutdown deadline passed with reconciles running");
    await Promise.race([this.elector?.stop(), sleep(left())]);
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
    await this.closeServer();
    this.state = "stopped";
    this.log.info("manager stopped");
    this.markStopped();
  }

  private startControllers(): void {
    if (this.state !== "started") return;
    for (const c of this.controllers) c.start();
  }

  /** Lost the lease: no new reconcile may start, running ones are told to abort. */
  private stopControllersNow(): void {
    const timeoutMs = this.opts.gracefulShutdownTimeoutMs ?? 30_000;
    for (const c of this.controllers) void c.stop({ timeoutMs, abortInFlight: true });
  }

  private async waitForCacheSync(): Promise<void> {
    const timeoutMs = this.opts.cacheSyncTimeoutMs ?? 120_000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`caches not synced after ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      await Promise.race([
        Promise.all([...this.informers.values()].map((i) => i.synced())),
        timeout,
      ]);
    } catch (err) {
      if (this.state !== "starting") return; // stopped while waiting
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private listen(cfg: { port?: number; host?: string }): Promise<void> {
    const server = createServer((req, res) => void this.serve(req, res));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(cfg.port ?? 8080, cfg.host ?? "0.0.0.0", () => {
        this.boundPort = (server.address() as AddressInfo).port;
        this.log.info({ port: this.boundPort }, "serving /healthz, /readyz, /metrics");
        resolve();
      });
    });
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    try {
      if (path === "/healthz") return reply(res, 200, "ok");
      if (path === "/readyz") {
        return this.isReady() ? reply(res, 200, "ok") : reply(res, 503, "caches not synced");
      }
      if (path === "/metrics") {
        const body = await this.registry.metrics();
        res.writeHead(200, { "Content-Type": this.registry.contentType });
        res.end(body);
        return;
      }
      reply(res, 404, "not found");
    } catch (err) {
      reply(res, 500, String(err));
    }
  }

  private async closeServer(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}

function reply(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8" });
  res.end(`${text}\n`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
