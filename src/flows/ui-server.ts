/**
 * The flow page's server (`netloom observe --ui`): the page, and the recent flows the CLI has
 * gathered from every node as a service map and as table rows. Read-only; it listens on
 * 127.0.0.1 unless told otherwise, because it shows flow data with the CLI user's rights.
 */
import { createServer, type Server } from "node:http";
import type { Flow, FlowLine } from "./flow.js";
import { tableRow } from "./observe.js";
import { FLOW_PAGE_HTML } from "./page.js";
import { serviceMap } from "./servicemap.js";

export type FlowRecord = Extract<FlowLine, { flow: Flow }>;

/**
 * The most recent `capacity` flows of several nodes' streams, in time order. Streams interleave
 * as they arrive — one node's whole backlog may land after another's live flows — so the oldest
 * by time makes room, not the first to arrive.
 */
export class RecentFlows {
  private readonly flows: FlowRecord[] = [];

  constructor(private readonly capacity = 4095) {}

  add(r: FlowRecord): void {
    // Mostly appends: search back from the end for the place.
    let i = this.flows.length;
    while (i > 0 && this.flows[i - 1]!.flow.time > r.flow.time) i--;
    if (i === 0 && this.flows.length >= this.capacity) return; // older than all it keeps
    this.flows.splice(i, 0, r);
    if (this.flows.length > this.capacity) this.flows.shift();
  }

  /** Oldest first. */
  all(): readonly FlowRecord[] {
    return this.flows;
  }
}

/** Serves the page for the flows `recent` holds at each request; resolves once listening. */
export async function startFlowUi(
  host: string,
  port: number,
  recent: RecentFlows,
): Promise<{ server: Server; url: string }> {
  const inOrder = () => recent.all();
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const json = (body: unknown) =>
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
    if (url.pathname === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(FLOW_PAGE_HTML);
    } else if (url.pathname === "/api/map") {
      json(serviceMap(inOrder().map((r) => r.flow)));
    } else if (url.pathname === "/api/flows") {
      const limit = Math.min(Number(url.searchParams.get("limit") ?? 300) || 300, 5000);
      json(
        inOrder()
          .slice(-limit)
          .map((r) => ({ verdict: r.flow.verdict, cells: tableRow(r) })),
      );
    } else res.writeHead(404).end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
  const addr = server.address();
  const actual = typeof addr === "object" && addr ? addr.port : port;
  return { server, url: `http://${host.includes(":") ? `[${host}]` : host}:${actual}/` };
}
