import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseIP } from "../api/cidr.js";
import { encodeFlowEvent, type FlowEvent } from "../datapath-driver/maps/flow-events.js";
import { FakeClock } from "../util/clock.js";
import { FlowBuffer, type StreamEvent } from "./buffer.js";
import { emptyContext } from "./context.js";
import type { FlowLine } from "./flow.js";
import { BUSY_POLL_MS, type FlowEventSource, FlowObserver, POLL_MS } from "./observer.js";

const event = (i: number): FlowEvent => ({
  monotonicNs: 1_000_000_000n + BigInt(i),
  family: 4,
  source: "10.0.0.1",
  destination: "10.0.0.2",
  sourcePort: 1000 + i,
  destinationPort: 80,
  protocol: 6,
  kind: "new",
  verdict: "FORWARDED",
  direction: "egress",
  l4Flags: 2,
  ifindex: 5,
  localIdentity: 1000,
  peerIdentity: 2000,
});

/** A ring in memory: records queued by the test, a lost counter it sets. */
class QueueSource implements FlowEventSource {
  queue: Buffer[] = [];
  lostCount = 0;
  reads: number[] = [];
  read(max: number, sink: (r: Buffer) => void): number {
    const n = Math.min(max, this.queue.length);
    for (const r of this.queue.splice(0, n)) sink(r);
    this.reads.push(n);
    return n;
  }
  lost(): number {
    return this.lostCount;
  }
  close(): void {}
  push(...events: FlowEvent[]): void {
    for (const e of events) this.queue.push(encodeFlowEvent(e, (ip) => parseIP(ip).bytes));
  }
}

const setup = (opts: { maxEventsPerSecond?: number } = {}) => {
  const clock = new FakeClock("2026-01-01T00:00:00Z");
  const source = new QueueSource();
  const buffer = new FlowBuffer(100);
  const observer = new FlowObserver({
    source,
    buffer,
    clock,
    context: () => emptyContext("node-1"),
    // CLOCK_MONOTONIC reads 2 s when the wall clock reads 2026-01-01T00:00:00Z.
    monotonicNs: () =>
      2_000_000_000n +
      BigInt(clock.now().getTime() - Date.parse("2026-01-01T00:00:00Z")) * 1_000_000n,
    ...opts,
  });
  return { clock, source, buffer, observer };
};

describe("FlowObserver", () => {
  it("turns records into NDJSON lines with wall-clock times, in order", () => {
    const { source, buffer, observer } = setup();
    source.push(event(0), event(1));
    assert.equal(observer.poll(), 2);
    const lines = buffer.query().map((f) => JSON.parse(f.line()) as FlowLine);
    assert.deepEqual(
      lines.map((l) => ("flow" in l ? [l.time, l.node_name, l.flow.l4] : l)),
      [
        [
          "2025-12-31T23:59:59.000000000Z",
          "node-1",
          { TCP: { source_port: 1000, destination_port: 80, flags: { SYN: true } } },
        ],
        [
          "2025-12-31T23:59:59.000000001Z",
          "node-1",
          { TCP: { source_port: 1001, destination_port: 80, flags: { SYN: true } } },
        ],
      ],
    );
    assert.deepEqual(observer.flowCounts(), {
      read: 2,
      lostInRing: 0,
      undecodable: 0,
      lostToClients: 0,
    });
  });

  it("names a flow with the names it was read under, even after the agent renders again", () => {
    const clock = new FakeClock("2026-01-01T00:00:00Z");
    const source = new QueueSource();
    const buffer = new FlowBuffer(10);
    let ctx = emptyContext("before");
    const observer = new FlowObserver({ source, buffer, clock, context: () => ctx });
    source.push(event(0));
    observer.poll();
    const [stored] = buffer.query();
    assert.equal(stored?.isRendered, false, "not named until read, while the names hold");
    // Views that hold flows stay alive, four at most: a fifth with flows names the oldest's.
    for (let i = 1; i <= 3; i++) {
      ctx = emptyContext(`after-${i}`);
      source.push(event(i));
      observer.poll();
    }
    assert.equal(stored?.isRendered, false, "four views may stay alive");
    ctx = emptyContext("after-4");
    source.push(event(4));
    observer.poll();
    assert.equal(stored?.isRendered, true, "named once a fifth view would stay alive");
    assert.equal(buffer.query().filter((f) => f.isRendered).length, 1, "only the oldest view's");
    assert.equal((JSON.parse(stored!.line()) as FlowLine).node_name, "before");
  });

  it("counts records that do not decode and leaves them out", () => {
    const { source, buffer, observer } = setup();
    source.queue.push(Buffer.alloc(40));
    source.push(event(0));
    observer.poll();
    assert.equal(buffer.size(), 1);
    assert.equal(observer.flowCounts().undecodable, 1);
  });

  it("announces the kernel's new losses to followers (not those from before it started)", () => {
    const { source, buffer, observer } = setup();
    source.lostCount = 50;
    const got: StreamEvent[] = [];
    buffer.follow((e) => got.push(e));
    observer.poll();
    assert.equal(got.length, 0, "a baseline");
    source.lostCount = 57;
    // A quiet ring: the counter is read once a second (every 10th poll).
    for (let i = 0; i < 9; i++) observer.poll();
    assert.equal(got.length, 0, "not read yet");
    observer.poll();
    assert.deepEqual(
      got.map((e) => ("lostInRing" in e ? e.lostInRing : "flow")),
      [7],
    );
    assert.equal(observer.flowCounts().lostInRing, 57);
    // After a busy poll (a quarter of the ring or more) at once.
    source.lostCount = 60;
    for (let i = 0; i < 1000; i++) source.push(event(i));
    observer.poll();
    assert.deepEqual(
      got.filter((e) => "lostInRing" in e).map((e) => ("lostInRing" in e ? e.lostInRing : 0)),
      [7, 3],
    );
  });

  it("reads at most maxEventsPerSecond: the rest waits in the ring", async () => {
    const { clock, source, observer } = setup({ maxEventsPerSecond: 1000 });
    for (let i = 0; i < 3000; i++) source.push(event(i));
    observer.start();
    await clock.advance(1000);
    observer.stop();
    const read = source.reads.reduce((a, b) => a + b, 0);
    // A full bucket at the first poll (1,000), then 1,000/s for the 0.9 s after it.
    assert.ok(read >= 1700 && read <= 1900, `${read} read in 1 s`);
    assert.equal(source.queue.length, 3000 - read);
  });

  it("polls every 100 ms, every 20 ms while the ring is busy", async () => {
    const { clock, source, observer } = setup();
    observer.start();
    await clock.advance(POLL_MS);
    assert.equal(source.reads.length, 1);
    for (let i = 0; i < 2000; i++) source.push(event(i));
    await clock.advance(POLL_MS);
    assert.deepEqual(source.reads, [0, 2000]);
    await clock.advance(BUSY_POLL_MS);
    assert.deepEqual(source.reads, [0, 2000, 0], "a busy ring is read again after 20 ms");
    await clock.advance(BUSY_POLL_MS);
    assert.deepEqual(source.reads, [0, 2000, 0], "then back to 100 ms");
    observer.stop();
  });
});
