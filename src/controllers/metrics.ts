import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** controller-runtime's reconcile_time_seconds buckets, so dashboards built for Go operators fit. */
const RECONCILE_TIME_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9,
  1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
];

export type ReconcileOutcome = "success" | "error" | "requeue" | "requeue_after";
const OUTCOMES: ReconcileOutcome[] = ["success", "error", "requeue", "requeue_after"];

/**
 * Every metric the runtime exports, registered on one Registry. One instance per manager: a
 * per-manager registry lets several managers (tests, or two replicas in one process) coexist.
 */
export class RuntimeMetrics {
  readonly reconcileTotal: Counter<"controller" | "result">;
  readonly reconcileErrors: Counter<"controller">;
  readonly reconcileTime: Histogram<"controller">;
  readonly workqueueDepth: Gauge<"name">;
  readonly workqueueAdds: Counter<"name">;
  readonly workqueueRetries: Counter<"name">;
  readonly leaderStatus: Gauge<"name">;

  constructor(readonly registry: Registry = new Registry()) {
    const registers = [registry];
    this.reconcileTotal = new Counter({
      name: "controller_runtime_reconcile_total",
      help: "Total number of reconciliations per controller",
      labelNames: ["controller", "result"],
      registers,
    });
    this.reconcileErrors = new Counter({
      name: "controller_runtime_reconcile_errors_total",
      help: "Total number of reconciliation errors per controller",
      labelNames: ["controller"],
      registers,
    });
    this.reconcileTime = new Histogram({
      name: "controller_runtime_reconcile_time_seconds",
      help: "Length of time per reconciliation per controller",
      labelNames: ["controller"],
      buckets: RECONCILE_TIME_BUCKETS,
      registers,
    });
    this.workqueueDepth = new Gauge({
      name: "workqueue_depth",
      help: "Current depth of workqueue",
      labelNames: ["name"],
      registers,
    });
    this.workqueueAdds = new Counter({
      name: "workqueue_adds_total",
      help: "Total number of adds handled by workqueue",
      labelNames: ["name"],
      registers,
    });
    this.workqueueRetries = new Counter({
      name: "workqueue_retries_total",
      help: "Total number of retries handled by workqueue",
      labelNames: ["name"],
      registers,
    });
    this.leaderStatus = new Gauge({
      name: "leader_election_master_status",
      help: "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master.",
      labelNames: ["name"],
      registers,
    });
  }

  /** Zero series exist from start-up, so rate() and alerts work before the first event. */
  initController(controller: string): void {
    for (const result of OUTCOMES) this.reconcileTotal.inc({ controller, result }, 0);
    this.reconcileErrors.inc({ controller }, 0);
  }

  initQueue(name: string): void {
    this.workqueueDepth.set({ name }, 0);
    this.workqueueAdds.inc({ name }, 0);
    this.workqueueRetries.inc({ name }, 0);
  }
}
