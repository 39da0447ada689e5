/**
 * The agent's flow pipeline: every POLL_MS, read what the programs wrote into the ring buffer
 * (at most POLL_BUDGET records), decode, name both ends (renderFlow), keep the line in the
 * FlowBuffer (followers get it at once) and count it in the metrics. Never blocks: a poll is
 * one non-blocking ring_buffer__consume; between polls the kernel's ring absorbs bursts, and
 * what it cannot hold it counts as lost (announced to followers as lost_events).
 *
 * Why a timer and not a wakeup: libbpf's ring_buffer__poll blocks in epoll_wait, which would
 * stall Node's event loop (or pin a libuv worker thread for good), and Node cannot watch a raw
 * epoll fd. A 100 ms consume costs one system call at idle and bounds the work per second by
 * what the ring can hold per poll (FLOW_RING_RECORDS × 10/s); records arrive within 100 ms.
 */
import type { Logger } from "pino";
import {
  decodeFlowEvent,
  FLOW_RING_RECORDS,
  type FlowEventHead,
  peekFlowEvent,
} from "../datapath-driver/maps/flow-events.js";
import type { Clock } from "../util/clock.js";
import type { FlowBuffer, StoredFlow } from "./buffer.js";
import type { FlowContext } from "./context.js";
import { type Flow, type FlowLine, formatTimeNs, renderFlow } from "./flow.js";
import type { FlowCounts, FlowMetrics } from "./metrics.js";

export const POLL_MS = 100;
export const BUSY_POLL_MS = 20;
/** Views of the cluster that unnamed flows may keep alive (see settle). */
const MAX_VIEWS = 4;
/** Polls between two reads of the kernel's lost counter when the ring is quiet. */
const LOST_CHECK_EVERY = 10;
/** Records handled per poll at most; the rest wait in the ring for the next poll. */
export const POLL_BUDGET = 8192;
/**
 * Records read per second at most (a burst of one second's worth): the bound on the agent's
 * CPU under a flood (10-13 µs of CPU each, all in, measured here: about a third of one CPU at
 * the cap; docs/flows.md has the measurements).
 */
export const DEFAULT_MAX_EVENTS_PER_SECOND = 30_000;

/** Where records come from: the pinned ring on a node (PinnedFlowEvents), or a test's queue. */
export interface FlowEventSource {
  /**
   * Hands at most max records to sink; the number read, or undefined when there is no ring
   * (yet): the datapath has not been loaded.
   */
  read(max: number, sink: (record: Buffer) => void): number | undefined;
  /** Records the programs could not write (ring full), as the kernel counts them. */
  lost(): number;
  close(): void;
}

export interface FlowObserverOptions {
  source: FlowEventSource;
  buffer: FlowBuffer;
  /** The current names (called once per poll; cheap: the caller memoizes). */
  context(): FlowContext;
  metrics?: FlowMetrics;
  clock: Clock;
  /** CLOCK_MONOTONIC now in ns (bpf_ktime_get_ns's clock): process.hrtime.bigint by default. */
  monotonicNs?: () => bigint;
  pollMs?: number;
  budget?: number;
  maxEventsPerSecond?: number;
  log?: Logger;
}

const TIMER = "flows/poll";

export class FlowObserver {
  private readonly counts: FlowCounts = {
    read: 0,
    lostInRing: 0,
    undecodable: 0,
    lostToClients: 0,
  };
  private lostSeen: number | undefined;
  private running = false;
  private reportedDecodeError = false;
  private offsetNs: bigint | undefined;
  private tokens = 0;
  private lastPollAt: number | undefined;
  private lastRead = 0;
  private polls = 0;
  /** The views (contexts) flows were read under, oldest first: the first and last flow of each. */
  private pending: { ctx: FlowContext; first: number; last?: StoredFlow }[] = [];

  constructor(private readonly opts: FlowObserverOptions) {}

  /** The counters the metrics report. */
  flowCounts(): FlowCounts {
    return this.counts;
  }

  /** A follower could not take this many lines (it read too slowly). */
  noteLostToClient(n: number): void {
    this.counts.lostToClients += n;
  }

  start(): void {
    this.running = true;
    this.schedule();
  }

  stop(): void {
    this.running = false;
    this.opts.clock.cancel(TIMER);
    this.opts.source.close();
  }

  /** 100 ms; 20 ms while a poll reads a quarter of the ring or more (catching up on a burst). */
  private schedule(): void {
    if (!this.running) return;
    const busy = this.lastRead >= FLOW_RING_RECORDS / 4;
    const wait = busy ? BUSY_POLL_MS : (this.opts.pollMs ?? POLL_MS);
    const at = new Date(this.opts.clock.now().getTime() + wait);
    this.opts.clock.schedule(TIMER, at, () => {
      try {
        this.poll();
      } catch (err) {
        this.opts.log?.warn({ err }, "reading flow events failed");
      } finally {
        this.schedule();
      }
    });
  }

  /** One read of the ring (the timer calls it; tests too): the number of records read. */
  poll(): number {
    const { source, buffer } = this.opts;
    const budget = Math.min(this.opts.budget ?? POLL_BUDGET, this.takeTokens());
    const records: { record: Buffer; head: FlowEventHead }[] = [];
    const read =
      source.read(budget, (record) => {
        const p = peekFlowEvent(record);
        if (p.ok) records.push({ record, head: p.head });
        else this.undecodable(p.error);
      }) ?? 0;
    this.counts.read += read;
    this.tokens -= read;
    this.lastRead = read;
    // Every poll, events or not: the context's owner prunes what went with it (metrics).
    const ctx = this.opts.context();
    if (ctx !== this.pending.at(-1)?.ctx) this.settle(ctx);
    if (records.length > 0) {
      const wallOffsetNs = this.wallOffsetNs();
      for (const { record, head } of records) this.add(record, head, ctx, wallOffsetNs);
    }
    // The kernel's count moves only when the ring was full: read it after a busy poll, else
    // once a second (each read is a system call).
    if (read >= FLOW_RING_RECORDS / 4 || this.polls++ % LOST_CHECK_EVERY === 0) {
      const lost = source.lost();
      // The first reading is a baseline: losses from before this agent started are not news.
      if (this.lostSeen !== undefined && lost > this.lostSeen)
        buffer.announceLost(
          lost - this.lostSeen,
          BigInt(this.opts.clock.now().getTime()) * 1_000_000n,
        );
      this.lostSeen = lost;
      this.counts.lostInRing = lost;
    }
    return read;
  }

  /** Keeps one event: named and serialised only when read (or counted as a drop). */
  private add(record: Buffer, head: FlowEventHead, ctx: FlowContext, wallOffsetNs: bigint): void {
    const timeNs = head.monotonicNs + wallOffsetNs;
    let flow: Flow | undefined;
    const named = (): Flow => {
      if (!flow) {
        const d = decodeFlowEvent(record);
        // peekFlowEvent accepted the record: it decodes.
        if (!d.ok) throw new Error(`flow event: ${d.error}`);
        flow = renderFlow(d.event, ctx, timeNs);
      }
      return flow;
    };
    const stored = this.opts.buffer.add({
      timeNs,
      verdict: head.verdict,
      render: () => {
        const f = named();
        const line: FlowLine = { flow: f, node_name: ctx.node, time: f.time };
        return JSON.stringify(line);
      },
    });
    const group = this.pending.at(-1);
    if (group) group.last = stored;
    this.opts.metrics?.record(head, named);
  }

  /**
   * The names changed (the agent rendered again). Flows not named yet keep the names they were
   * read under, so each keeps its view of the cluster alive until it is named or leaves the
   * buffer: beyond MAX_VIEWS views, the flows of the oldest still in the buffer are named now
   * (each flow is named at most once, so this costs no more than naming every flow as read).
   * Under a flood the buffer turns over within a fraction of a second and nothing is named.
   */
  private settle(ctx: FlowContext): void {
    const { buffer } = this.opts;
    this.pending = this.pending.filter((g) => g.last !== undefined && buffer.holds(g.last.seq));
    while (this.pending.length >= MAX_VIEWS) {
      const oldest = this.pending.shift();
      for (const f of buffer.query({ sinceSeq: oldest?.first ?? 0, untilSeq: oldest?.last?.seq }))
        f.line();
    }
    this.pending.push({ ctx, first: buffer.nextSeq() });
  }

  private undecodable(error: string): void {
    this.counts.undecodable++;
    if (this.reportedDecodeError) return;
    this.reportedDecodeError = true;
    this.opts.log?.warn({ error }, "a flow event does not decode (left out)");
  }

  /**
   * The rate limit: a token bucket of maxEventsPerSecond (one second's worth at most), refilled
   * by the time since the last poll. What is not read stays in the ring; when the ring fills,
   * the kernel counts the rest as lost.
   */
  private takeTokens(): number {
    const rate = this.opts.maxEventsPerSecond ?? DEFAULT_MAX_EVENTS_PER_SECOND;
    const now = this.opts.clock.now().getTime();
    const elapsed = this.lastPollAt === undefined ? 1000 : Math.max(0, now - this.lastPollAt);
    this.lastPollAt = now;
    this.tokens = Math.min(rate, this.tokens + (elapsed * rate) / 1000);
    return Math.max(0, Math.floor(this.tokens));
  }

  /**
   * Wall clock minus the monotonic clock, in ns. Date has millisecond precision: the offset is
   * kept until the wall clock moves by more than that (NTP steps), so that consecutive events
   * keep their order.
   */
  private wallOffsetNs(): bigint {
    const mono = this.opts.monotonicNs?.() ?? process.hrtime.bigint();
    const offset = BigInt(this.opts.clock.now().getTime()) * 1_000_000n - mono;
    const kept = this.offsetNs;
    if (kept === undefined || offset - kept > 2_000_000n || kept - offset > 2_000_000n)
      this.offsetNs = offset;
    return this.offsetNs ?? offset;
  }
}

/** Pure: a lost-events line for followers. */
export function lostLine(
  node: string,
  source: "BPF_RING_BUFFER" | "CLIENT_STREAM",
  count: number,
  timeNs: bigint,
): string {
  const line: FlowLine = {
    lost_events: { source, num_events_lost: count },
    node_name: node,
    time: formatTimeNs(timeNs),
  };
  return JSON.stringify(line);
}
