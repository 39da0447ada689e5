/**
 * GET /v1/flows on the agent: the node's recent flows as NDJSON, and with follow=1 every new
 * one as it arrives; only for clients the API server authenticates and authorizes (auth.ts).
 * docs/flows.md is the reference for the parameters and the lines.
 *
 * A follower that reads more slowly than flows arrive is never waited for: past its backlog, at
 * most FOLLOWER_QUEUE_BYTES of live lines wait for its socket; more are dropped and it then gets
 * a lost_events line (source CLIENT_STREAM) with the count. Losses in the kernel's ring reach
 * every follower the same way (BPF_RING_BUFFER).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import type { FlowVerdict } from "../datapath-driver/maps/flow-events.js";
import type { Clock } from "../util/clock.js";
import type { FlowAuthorizer } from "./auth.js";
import type { FlowBuffer, FlowQuery, StreamEvent } from "./buffer.js";
import { matches } from "./buffer.js";
import { parseTimeNs } from "./flow.js";
import { lostLine } from "./observer.js";

export const FLOWS_PATH = "/v1/flows";
export const MAX_FOLLOWERS = 32;
/**
 * Live lines that may wait for one follower's socket beyond its backlog: a burst (a new
 * follower's backlog still in flight, a flood's first second) is delivered, not dropped;
 * 32 followers cost at most 32 MiB.
 */
export const FOLLOWER_QUEUE_BYTES = 1 << 20;

const VERDICTS: readonly FlowVerdict[] = ["FORWARDED", "DROPPED", "AUDIT"];
const PARAMS = new Set(["since", "until", "limit", "follow", "verdict"]);

export interface FlowsRequest {
  query: FlowQuery;
  follow: boolean;
}

/**
 * Pure: the request's parameters, or what is wrong with them. limit defaults to every buffered
 * flow, or when following to none (only new flows) unless since is given.
 */
export function parseFlowsRequest(
  params: URLSearchParams,
): { ok: true; request: FlowsRequest } | { ok: false; error: string } {
  for (const k of params.keys())
    if (!PARAMS.has(k))
      return { ok: false, error: `unknown parameter ${k} (known: ${[...PARAMS].join(", ")})` };
  const one = (k: string): { ok: true; value?: string } | { ok: false; error: string } => {
    const all = params.getAll(k);
    return all.length > 1
      ? { ok: false, error: `${k} given ${all.length} times` }
      : { ok: true, ...(all[0] !== undefined ? { value: all[0] } : {}) };
  };
  const follow = one("follow");
  if (!follow.ok) return follow;
  const followText = follow.value ?? "0";
  if (!["0", "1", "true", "false"].includes(followText))
    return { ok: false, error: `follow must be 1 or 0, not ${JSON.stringify(followText)}` };
  const following = followText === "1" || followText === "true";
  if (following && params.has("until"))
    return { ok: false, error: "until cannot be used with follow (a stream has no end)" };
  const query: FlowQuery = {};
  for (const k of ["since", "until"] as const) {
    const v = one(k);
    if (!v.ok) return v;
    if (v.value === undefined) continue;
    const ns = parseTimeNs(v.value);
    if (ns === undefined)
      return { ok: false, error: `${k} must be an RFC 3339 time, not ${JSON.stringify(v.value)}` };
    query[k === "since" ? "sinceNs" : "untilNs"] = ns;
  }
  const limit = one("limit");
  if (!limit.ok) return limit;
  if (limit.value !== undefined) {
    if (!/^\d{1,9}$/.test(limit.value))
      return {
        ok: false,
        error: `limit must be a whole number, not ${JSON.stringify(limit.value)}`,
      };
    query.limit = Number(limit.value);
  } else if (following && query.sinceNs === undefined) query.limit = 0;
  const verdicts = new Set<FlowVerdict>();
  for (const v of params.getAll("verdict").flatMap((x) => x.split(","))) {
    const verdict = VERDICTS.find((x) => x === v.trim().toUpperCase());
    if (!verdict)
      return {
        ok: false,
        error: `verdict must be one of ${VERDICTS.join(", ")}, not ${JSON.stringify(v)}`,
      };
    verdicts.add(verdict);
  }
  if (verdicts.size) query.verdicts = verdicts;
  return { ok: true, request: { query, follow: following } };
}

export interface FlowsEndpointOptions {
  node: string;
  buffer: FlowBuffer;
  authorizer: FlowAuthorizer;
  clock: Clock;
  /** Lines a follower could not take (counted in the lost-events metric). */
  onClientLost?(count: number): void;
  maxFollowers?: number;
  log?: Logger;
}

function fail(res: ServerResponse, status: number, message: string, headers = {}): void {
  res
    .writeHead(status, {
      "content-type": "application/json",
      "cache-control": "no-store",
      ...headers,
    })
    .end(`${JSON.stringify({ error: message })}\n`);
}

/**
 * The handler: true when it took the request (its path is /v1/flows), false for the caller's
 * other routes.
 */
export function flowsEndpoint(
  opts: FlowsEndpointOptions,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    const url = new URL(req.url ?? "/", "http://agent");
    if (url.pathname !== FLOWS_PATH) return false;
    void serve(opts, req, res, url).catch((err: unknown) => {
      opts.log?.warn({ err }, "serving flows failed");
      if (!res.headersSent) fail(res, 500, "internal error");
      else res.destroy();
    });
    return true;
  };
}

async function serve(
  opts: FlowsEndpointOptions,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<void> {
  if (req.method !== "GET") return fail(res, 405, "only GET", { allow: "GET" });
  const auth = await opts.authorizer.authorize(req.headers.authorization);
  if (!auth.allowed) {
    opts.log?.debug({ status: auth.status, reason: auth.message }, "flows request refused");
    return fail(
      res,
      auth.status,
      auth.message,
      auth.status === 401 ? { "www-authenticate": 'Bearer realm="netloom-agent"' } : {},
    );
  }
  const parsed = parseFlowsRequest(url.searchParams);
  if (!parsed.ok) return fail(res, 400, parsed.error);
  const { query, follow } = parsed.request;
  if (follow && opts.buffer.followerCount() >= (opts.maxFollowers ?? MAX_FOLLOWERS))
    return fail(res, 429, `at most ${opts.maxFollowers ?? MAX_FOLLOWERS} followers per agent`);
  res.writeHead(200, {
    "content-type": "application/x-ndjson; charset=utf-8",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
  });
  const backlog = opts.buffer.query(query);
  if (!follow) {
    for (const f of backlog) res.write(`${f.line()}\n`);
    res.end();
    return;
  }
  // A follower sees the stream open at once, not at its first flow.
  res.flushHeaders();
  req.socket.setKeepAlive(true, 30_000);
  // Bytes queued for the socket may reach the backlog's size plus FOLLOWER_QUEUE_BYTES.
  let ceiling = FOLLOWER_QUEUE_BYTES;
  let dropped = 0;
  const reportDropped = () => {
    if (dropped === 0) return;
    opts.onClientLost?.(dropped);
    const now = BigInt(opts.clock.now().getTime()) * 1_000_000n;
    res.write(`${lostLine(opts.node, "CLIENT_STREAM", dropped, now)}\n`);
    dropped = 0;
  };
  const send = (line: string) => {
    if (res.writableLength > ceiling) {
      dropped++;
      return;
    }
    reportDropped();
    res.write(`${line}\n`);
  };
  // The count reaches the follower as soon as its socket takes data again, not at the next flow.
  res.on("drain", reportDropped);
  // Live filter: the verdicts; since and limit bound the backlog only.
  const live: FlowQuery = query.verdicts ? { verdicts: query.verdicts } : {};
  const stop = opts.buffer.follow((e: StreamEvent) => {
    if ("flow" in e) {
      if (matches(e.flow, live)) send(e.flow.line());
    } else send(lostLine(opts.node, "BPF_RING_BUFFER", e.lostInRing, e.timeNs));
  });
  // The backlog is bounded (the buffer's size): written whole, whatever the socket's pace; only
  // live lines are dropped for a follower that cannot keep up.
  for (const f of backlog) res.write(`${f.line()}\n`);
  ceiling = res.writableLength + FOLLOWER_QUEUE_BYTES;
  await new Promise<void>((resolve) => res.on("close", resolve));
  stop();
  if (dropped > 0) opts.onClientLost?.(dropped);
}
