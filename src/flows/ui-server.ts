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

/** Serves the page for whatever `recent()` returns at each request; resolves once listening. */
export async function startFlowUi(
  host: string,
  port: number,
  recent: () => readonly FlowRecord[],
): Promise<{ server: Server; url: string }> {
  // Several nodes' streams interleave as they arrive: the page shows them in time order.
  const inOrder = () =>
    [...recent()].sort((a, b) =>
      a.flow.time < b.flow.time ? -1 : a.flow.time > b.flow.time ? 1 : 0,
    );
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
