/**
 * The node's recent flows: a bounded ring (Hubble's default of 4,095) and the followers that
 * receive each flow as it is added. A flow is rendered to its NDJSON line only when a client
 * reads it, once (most flows are overwritten unread: naming and serialising them all would
 * triple the agent's cost per event under a flood).
 */
import type { FlowVerdict } from "../datapath-driver/maps/flow-events.js";

export const DEFAULT_FLOW_BUFFER = 4095;

export interface NewFlow {
  /** Wall-clock time of the event, nanoseconds since the epoch. */
  timeNs: bigint;
  verdict: FlowVerdict;
  /** The whole NDJSON line, without its newline (called once, when first read). */
  render(): string;
}

export class StoredFlow {
  readonly timeNs: bigint;
  readonly verdict: FlowVerdict;
  private render: (() => string) | undefined;
  private rendered: string | undefined;

  constructor(
    /** Position in the stream (1, 2, ...). */
    readonly seq: number,
    flow: NewFlow,
  ) {
    this.timeNs = flow.timeNs;
    this.verdict = flow.verdict;
    this.render = flow.render;
  }

  /** The NDJSON line (rendered on first use; what rendering needed is let go then). */
  line(): string {
    if (this.rendered === undefined) {
      this.rendered = this.render?.() ?? "";
      this.render = undefined;
    }
    return this.rendered;
  }

  /** Whether the line was rendered already. */
  get isRendered(): boolean {
    return this.rendered !== undefined;
  }
}

export interface FlowQuery {
  /** Only flows at or after this time (ns since the epoch). */
  sinceNs?: bigint;
  /** Only flows before this time. */
  untilNs?: bigint;
  /** Only these verdicts (empty or absent: every verdict). */
  verdicts?: ReadonlySet<FlowVerdict>;
  /** At most this many, the most recent. */
  limit?: number;
  /** Only flows numbered from this one (inclusive) to untilSeq (inclusive). */
  sinceSeq?: number;
  untilSeq?: number;
}

/** What followers receive: each new flow, and how many events the kernel could not record. */
export type StreamEvent = { flow: StoredFlow } | { lostInRing: number; timeNs: bigint };

/** Pure: whether a stored flow passes a query's filters (not its limit). */
export function matches(f: StoredFlow, q: FlowQuery): boolean {
  if (q.sinceNs !== undefined && f.timeNs < q.sinceNs) return false;
  if (q.untilNs !== undefined && f.timeNs >= q.untilNs) return false;
  if (q.verdicts?.size && !q.verdicts.has(f.verdict)) return false;
  if (q.sinceSeq !== undefined && f.seq < q.sinceSeq) return false;
  if (q.untilSeq !== undefined && f.seq > q.untilSeq) return false;
  return true;
}

export class FlowBuffer {
  private readonly ring: (StoredFlow | undefined)[];
  private next = 0;
  private seq = 0;
  private readonly followers = new Set<(e: StreamEvent) => void>();

  constructor(readonly capacity: number = DEFAULT_FLOW_BUFFER) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new Error(`flow buffer capacity must be a positive integer, not ${capacity}`);
    this.ring = new Array(capacity);
  }

  /** Adds a flow (the oldest goes when full) and hands it to every follower. */
  add(flow: NewFlow): StoredFlow {
    const stored = new StoredFlow(++this.seq, flow);
    this.ring[this.next] = stored;
    this.next = (this.next + 1) % this.capacity;
    for (const f of this.followers) f({ flow: stored });
    return stored;
  }

  /** Tells every follower that the kernel lost `count` events (its ring was full). */
  announceLost(count: number, timeNs: bigint): void {
    for (const f of this.followers) f({ lostInRing: count, timeNs });
  }

  /** The number the next flow will get. */
  nextSeq(): number {
    return this.seq + 1;
  }

  /** Whether the flow numbered seq is still kept. */
  holds(seq: number): boolean {
    return seq > this.seq - this.capacity && seq <= this.seq;
  }

  /** Flows kept now. */
  size(): number {
    return Math.min(this.seq, this.capacity);
  }

  /** The flows matching q, oldest first (the `limit` most recent of them). */
  query(q: FlowQuery = {}): StoredFlow[] {
    const out: StoredFlow[] = [];
    const n = this.size();
    const limit = q.limit ?? Number.POSITIVE_INFINITY;
    // Newest to oldest, so a limit stops early; reversed at the end.
    for (let i = 1; i <= n && out.length < limit; i++) {
      const f = this.ring[(this.next - i + this.capacity) % this.capacity];
      if (f && matches(f, q)) out.push(f);
    }
    return out.reverse();
  }

  /** Calls fn with every flow added (and every loss announced) from now on; returns the unsubscribe. */
  follow(fn: (e: StreamEvent) => void): () => void {
    this.followers.add(fn);
    return () => this.followers.delete(fn);
  }

  followerCount(): number {
    return this.followers.size;
  }
}
