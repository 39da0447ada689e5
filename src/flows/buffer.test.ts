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
  it("a follower gets the whole backlog, however long, before live flows", async () => {
    const { createServer } = await import("node:http");
    const { flowsEndpoint } = await import("./server.js");
    const { FakeClock } = await import("../util/clock.js");
    const b = new FlowBuffer(4095);
    // 3,000 lines of 1 KiB: far past a socket's high-water mark.
    for (let t = 1; t <= 3000; t++)
      b.add({
        timeNs: BigInt(t),
        verdict: "FORWARDED",
        render: () => `{"n":${t},"pad":"${"x".repeat(1000)}"}`,
      });
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
    const reader = res.body!.getReader();
    let text = "";
    try {
      while ((text.match(/\n/g) ?? []).length < 3000) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
    } catch {
      // timed out: the count below says how far it got
    }
    ac.abort();
    server.close();
    const lines = text.trim().split("\n");
    assert.equal(lines.length, 3000);
    assert.equal((JSON.parse(lines.at(-1)!) as { n: number }).n, 3000);
  });
});
