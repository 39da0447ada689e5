/**
 * Prometheus metrics of flows, counted from the same events the endpoint serves (so the two
 * agree), with bounded label cardinality:
 *
 *   netloom_agent_flows_total{verdict, reason, direction}            new connections and drops
 *   netloom_agent_flow_drops_total{reason, source_workload, destination_workload}
 *   netloom_agent_flow_events_total                                   records read from the ring
 *   netloom_agent_flow_events_lost_total{source}                      bpf_ring_buffer, decode,
 *                                                                     client_stream
 *
 * Workload labels: the top N workloads by drops (TopWorkloads) keep their names, every other
 * is "other"; reserved ends (host, world, ...) are always named. A workload displaced from the
 * top N, or whose last pod is gone, has its series removed (cilium/cilium#23162, #31889: a
 * label set that only grows is a memory leak for Prometheus and the agent alike).
 */
import { Counter, type Registry } from "prom-client";
import type { FlowEventHead } from "../datapath-driver/maps/flow-events.js";
import type { Flow } from "./flow.js";
import { workloadLabel } from "./flow.js";

export const DEFAULT_TOP_WORKLOADS = 20;
export const OTHER = "other";

/** Labels that name no pod workload and are never aggregated: a small fixed set. */
const FIXED = new Set(["host", "world", "unmanaged", "remote-node", "unknown"]);

/**
 * Pure bookkeeping of which workloads get their own label: the n with the most drops, counted
 * since the agent started (or since the workload was last seen gone). A workload enters when a
 * slot is free or when its count passes the smallest count holding one; that one is evicted.
 */
export class TopWorkloads {
  private readonly counts = new Map<string, number>();
  private readonly slots = new Set<string>();

  constructor(readonly n: number = DEFAULT_TOP_WORKLOADS) {
    if (!Number.isInteger(n) || n < 0) throw new Error(`top workloads must be ≥ 0, not ${n}`);
  }

  /**
   * Counts one drop for w; the label to use for it, and the workload evicted to make room (its
   * series must go).
   */
  observe(w: string): { label: string; evicted?: string } {
    if (FIXED.has(w)) return { label: w };
    const count = (this.counts.get(w) ?? 0) + 1;
    this.counts.set(w, count);
    if (this.slots.has(w)) return { label: w };
    if (this.slots.size < this.n) {
      this.slots.add(w);
      return { label: w };
    }
    let weakest: string | undefined;
    let least = Number.POSITIVE_INFINITY;
    for (const s of this.slots) {
      const c = this.counts.get(s) ?? 0;
      if (c < least) {
        least = c;
        weakest = s;
      }
    }
    if (weakest === undefined || count <= least) return { label: OTHER };
    this.slots.delete(weakest);
    this.slots.add(w);
    return { label: w, evicted: weakest };
  }

  /** Forgets the workloads `present` says are gone; those that held a slot are returned. */
  retain(present: (w: string) => boolean): string[] {
    const gone: string[] = [];
    for (const w of [...this.counts.keys()]) {
      if (present(w)) continue;
      this.counts.delete(w);
      if (this.slots.delete(w)) gone.push(w);
    }
    return gone;
  }

  labelled(): string[] {
    return [...this.slots].sort();
  }
}

export type LostSource = "bpf_ring_buffer" | "decode" | "client_stream";

export interface FlowCounts {
  /** Records read from the ring since the agent started. */
  read: number;
  /** The kernel's count of records that found the ring full (since the map was created). */
  lostInRing: number;
  /** Records that did not decode (another object version). */
  undecodable: number;
  /** Lines not sent to followers that read too slowly. */
  lostToClients: number;
}

export class FlowMetrics {
  private readonly flows: Counter<"verdict" | "reason" | "direction">;
  /** At most 3 verdicts × 4 reasons × 2 directions. */
  private readonly flowChildren = new Map<string, { inc(): void }>();
  private readonly drops: Counter<"reason" | "source_workload" | "destination_workload">;
  private readonly top: TopWorkloads;
  /** Every drop series made, by workload in it: what to remove when one goes. */
  private readonly series = new Map<string, Set<string>>();
  private readonly labelsOf = new Map<
    string,
    { reason: string; source_workload: string; destination_workload: string }
  >();

  constructor(registry: Registry, counts: () => FlowCounts, topWorkloads = DEFAULT_TOP_WORKLOADS) {
    this.top = new TopWorkloads(topWorkloads);
    this.flows = new Counter({
      name: "netloom_agent_flows_total",
      help: "Flow events by verdict, drop reason (none for forwarded) and direction relative to the pod: new connections (FORWARDED or AUDIT) and dropped packets; connection ends are not counted.",
      labelNames: ["verdict", "reason", "direction"],
      registers: [registry],
    });
    this.drops = new Counter({
      name: "netloom_agent_flow_drops_total",
      help: `Dropped packets by reason and by source and destination workload (namespace/name, host, world); workloads outside the top ${topWorkloads} by drops are "other".`,
      labelNames: ["reason", "source_workload", "destination_workload"],
      registers: [registry],
    });
    new Counter({
      name: "netloom_agent_flow_events_total",
      help: "Flow event records read from the eBPF ring buffer.",
      registers: [registry],
      collect() {
        this.reset();
        this.inc(counts().read);
      },
    });
    new Counter({
      name: "netloom_agent_flow_events_lost_total",
      help: "Flow events lost: bpf_ring_buffer (the programs found the ring full; counted by the kernel since the map was created), decode (records of another layout), client_stream (lines not sent to /v1/flows followers that read too slowly).",
      labelNames: ["source"],
      registers: [registry],
      collect() {
        const c = counts();
        this.reset();
        this.labels("bpf_ring_buffer").inc(c.lostInRing);
        this.labels("decode").inc(c.undecodable);
        this.labels("client_stream").inc(c.lostToClients);
      },
    });
  }

  /**
   * Counts one flow event; `flow` names its ends, and is called for drops only (the workload
   * labels), so that forwarded connections cost no naming here.
   */
  record(head: FlowEventHead, flow: () => Flow): void {
    if (head.kind === "end") return;
    const reason = head.reason ?? "none";
    // prom-client hashes the label values on every labels(): keep the few children at hand.
    const key = `${head.verdict}/${reason}/${head.direction}`;
    let child = this.flowChildren.get(key);
    if (!child) {
      child = this.flows.labels(head.verdict, reason, head.direction);
      this.flowChildren.set(key, child);
    }
    child.inc();
    if (head.verdict !== "DROPPED") return;
    const f = flow();
    const src = this.label(workloadLabel(f.source));
    const dst = this.label(workloadLabel(f.destination));
    const labels = { reason, source_workload: src, destination_workload: dst };
    const series = `${reason}\u0000${src}\u0000${dst}`;
    if (!this.labelsOf.has(series)) {
      this.labelsOf.set(series, labels);
      for (const w of new Set([src, dst])) {
        if (!this.series.has(w)) this.series.set(w, new Set());
        this.series.get(w)!.add(series);
      }
    }
    this.drops.inc(labels);
  }

  /** Removes the series of workloads with no pod left (`present` says which remain). */
  retain(present: (workload: string) => boolean): void {
    for (const w of this.top.retain(present)) this.removeSeries(w);
  }

  /** The workloads with labels of their own now. */
  labelledWorkloads(): string[] {
    return this.top.labelled();
  }

  private label(w: string): string {
    const { label, evicted } = this.top.observe(w);
    if (evicted) this.removeSeries(evicted);
    return label;
  }

  private removeSeries(w: string): void {
    for (const key of this.series.get(w) ?? []) {
      const labels = this.labelsOf.get(key);
      if (labels) this.drops.remove(labels);
      this.labelsOf.delete(key);
      for (const other of [labels?.source_workload, labels?.destination_workload])
        if (other && other !== w) this.series.get(other)?.delete(key);
    }
    this.series.delete(w);
  }
}
