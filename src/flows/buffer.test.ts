import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { FlowVerdict } from "../datapath-driver/maps/flow-events.js";
import { FlowBuffer, type StreamEvent } from "./buffer.js";
import { parseFlowsRequest } from "./server.js";

const add = (b: FlowBuffer, t: number, verdict: FlowVerdict = "FORWARDED") => {
  let renders = 0;
  const stored = b.add({
    timeNs: BigInt(t),
    verdict,
    render: () => {
      renders++;
      return `line ${t}`;
    },
  });
  return { stored, renders: () => renders };
};

describe("FlowBuffer", () => {
  it("keeps the most recent `capacity` flows, oldest first", () => {
    const b = new FlowBuffer(3);
    for (let t = 1; t <= 5; t++) add(b, t);
    assert.equal(b.size(), 3);
    assert.deepEqual(
      b.query().map((f) => f.line()),
      ["line 3", "line 4", "line 5"],
    );
    assert.deepEqual(
      b.query().map((f) => f.seq),
      [3, 4, 5],
    );
  });

  it("filters by time and verdict; a limit keeps the most recent matches", () => {
    const b = new FlowBuffer(10);
    for (let t = 1; t <= 6; t++) add(b, t, t % 2 ? "DROPPED" : "FORWARDED");
    const times = (q: Parameters<FlowBuffer["query"]>[0]) =>
      b.query(q).map((f) => Number(f.timeNs));
    assert.deepEqual(times({ sinceNs: 4n }), [4, 5, 6]);
    assert.deepEqual(times({ untilNs: 3n }), [1, 2]);
    assert.deepEqual(times({ verdicts: new Set<FlowVerdict>(["DROPPED"]) }), [1, 3, 5]);
    assert.deepEqual(times({ verdicts: new Set<FlowVerdict>(["DROPPED"]), limit: 2 }), [3, 5]);
    assert.deepEqual(times({ limit: 0 }), []);
  });

  it("renders a flow once, when first read", () => {
    const b = new FlowBuffer(2);
    const a = add(b, 1);
    assert.equal(a.renders(), 0, "nobody read it yet");
    b.query()[0]?.line();
    b.query()[0]?.line();
    assert.equal(a.renders(), 1);
  });

  it("followers get every new flow and every announced loss, until they stop", () => {
    const b = new FlowBuffer(2);
    const got: StreamEvent[] = [];
    const stop = b.follow((e) => got.push(e));
    assert.equal(b.followerCount(), 1);
    add(b, 1);
    b.announceLost(7, 2n);
    stop();
    add(b, 3);
    assert.equal(got.length, 2);
    assert.ok("flow" in got[0]! && got[0].flow.seq === 1);
    assert.deepEqual(got[1], { lostInRing: 7, timeNs: 2n });
    assert.equal(b.followerCount(), 0);
  });

  it("refuses a capacity that is not a positive integer", () => {
    assert.throws(() => new FlowBuffer(0), /positive integer/);
  });
});

describe("GET /v1/flows parameters", () => {
  const parse = (q: string) => parseFlowsRequest(new URLSearchParams(q));

  it("defaults: every buffered flow; following, only new ones unless since or limit says", () => {
    assert.deepEqual(parse(""), { ok: true, request: { query: {}, follow: false } });
    assert.deepEqual(parse("follow=1"), {
      ok: true,
      request: { query: { limit: 0 }, follow: true },
    });
    assert.deepEqual(parse("follow=true&limit=20"), {
      ok: true,
      request: { query: { limit: 20 }, follow: true },
    });
    assert.deepEqual(parse("follow=1&since=2026-01-01T00:00:00Z"), {
      ok: true,
      request: { query: { sinceNs: 1_767_225_600_000_000_000n }, follow: true },
    });
  });

  it("since, until, limit and verdicts (repeated or comma-separated, any case)", () => {
    const r = parse(
      "since=2026-01-01T00:00:00.5Z&until=2026-01-01T00:01:00Z&limit=5&verdict=dropped&verdict=AUDIT,FORWARDED",
    );
    assert.ok(r.ok);
    assert.equal(r.request.query.sinceNs, 1_767_225_600_500_000_000n);
    assert.equal(r.request.query.untilNs, 1_767_225_660_000_000_000n);
    assert.equal(r.request.query.limit, 5);
    assert.deepEqual([...(r.request.query.verdicts ?? [])], ["DROPPED", "AUDIT", "FORWARDED"]);
  });

  it("refuses what it does not understand, saying what", () => {
    const error = (q: string) => {
      const r = parse(q);
      return r.ok ? "ok" : r.error;
    };
    assert.match(error("sinec=x"), /unknown parameter sinec/);
    assert.match(error("since=yesterday"), /since must be an RFC 3339 time/);
    assert.match(error("limit=-1"), /limit must be a whole number/);
    assert.match(error("limit=1&limit=2"), /limit given 2 times/);
    assert.match(error("follow=yes"), /follow must be 1 or 0/);
    assert.match(error("verdict=DENIED"), /verdict must be one of FORWARDED, DROPPED, AUDIT/);
    assert.match(error("follow=1&until=2026-01-01T00:00:00Z"), /until cannot be used with follow/);
  });
});

describe("GET /v1/flows?follow=1&since=… (a real HTTP server)", () => {
  const line = (n: number) => `{"n":${n},"pad":"${"x".repeat(1000)}"}`;
  const addFlow = (b: FlowBuffer, n: number) =>
    b.add({ timeNs: BigInt(n), verdict: "FORWARDED", render: () => line(n) });

  /** A server over `b`, and a follower's lines until `until` says enough (or 10 s pass). */
  async function follow(
    b: FlowBuffer,
    until: (lines: string[]) => boolean,
    beforeReading: () => Promise<void> | void = () => {},
  ): Promise<string[]> {
    const { createServer } = await import("node:http");
    const { flowsEndpoint } = await import("./server.js");
    const { FakeClock } = await import("../util/clock.js");
    const handle = flowsEndpoint({
      node: "n1",
      buffer: b,
      clock: new FakeClock(),
      authorizer: { authorize: async () => ({ allowed: true, user: "test" }) },
    });
    const server = createServer((req, res) => void handle(req, res));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    const ac = new AbortController();
    // A stream that stalls fails the test in 10 s instead of hanging it.
    const signal = AbortSignal.any([ac.signal, AbortSignal.timeout(10_000)]);
    const res = await fetch(
      `http://127.0.0.1:${port}/v1/flows?follow=1&since=1970-01-01T00:00:00Z`,
      { signal },
    );
    await beforeReading();
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    const lines: string[] = [];
    let partial = "";
    try {
      while (!until(lines)) {
        const { value, done } = await reader.read();
        if (done) break;
        const parts = (partial + value).split("\n");
        partial = parts.pop()!;
        lines.push(...parts);
      }
    } catch {
      // timed out: the caller's counts say how far it got
    }
    ac.abort();
    server.close();
    return lines;
  }

  it("a follower gets the whole backlog, however long, and the live flows behind it", async () => {
    const b = new FlowBuffer(4095);
    // 3,000 lines of 1 KiB: far past a socket's high-water mark.
    for (let n = 1; n <= 3000; n++) addFlow(b, n);
    // Live flows while the backlog is still on its way: delivered, not dropped.
    const lines = await follow(
      b,
      (l) => l.length >= 3010,
      () => {
        for (let n = 3001; n <= 3010; n++) addFlow(b, n);
      },
    );
    assert.equal(lines.length, 3010);
    assert.deepEqual(
      lines.map((l) => (JSON.parse(l) as { n: number }).n),
      Array.from({ length: 3010 }, (_, i) => i + 1),
    );
  });

  it("a follower that cannot keep up loses live lines, and is told how many", async () => {
    const b = new FlowBuffer(10);
    const live = 20_000; // 20 MiB in one go: far past what may wait for one follower
    type Lost = { lost_events: { source: string; num_events_lost: number } };
    const count = (lines: string[]) => {
      const lost = lines
        .filter((l) => l.includes("lost_events"))
        .map((l) => (JSON.parse(l) as Lost).lost_events);
      return { flows: lines.length - lost.length, lost };
    };
    const lines = await follow(
      b,
      // The loss is reported once the socket drains, after the lines it kept: stop there.
      (l) => l.at(-1)?.includes("lost_events") ?? false,
      () => {
        for (let n = 1; n <= live; n++) addFlow(b, n);
      },
    );
    const { flows, lost } = count(lines);
    assert.ok(lost.length > 0, "a lost_events line");
    assert.ok(lost.every((l) => l.source === "CLIENT_STREAM"));
    assert.ok(flows < live, "some lines were dropped");
    assert.equal(flows + lost.reduce((a, l) => a + l.num_events_lost, 0), live);
  });
});
