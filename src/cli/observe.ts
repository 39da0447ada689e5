import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { Flow, FlowLine } from "../flows/flow.js";
import {
  compactLine,
  type FlowFilter,
  formatTable,
  matchesFilter,
  parseSince,
  TABLE_HEADER,
  tableRow,
} from "../flows/observe.js";
import { RecentFlows, startFlowUi } from "../flows/ui-server.js";
import { kubeRequest } from "../kube/raw.js";
import { flags, loadKubeConfig } from "./args.js";

const say = (line: string) => process.stderr.write(`${line}\n`);

/** Where the agents serve /v1/flows (their metrics port) unless --agent-port says otherwise. */
export const DEFAULT_AGENT_PORT = 9962;

interface NodeTarget {
  name: string;
  url: string;
}

/** The agents to ask: every Node's InternalIP (or only --node). */
async function targets(kc: KubeConfig, port: number, only?: string): Promise<NodeTarget[]> {
  const nodes = (await kc.makeApiClient(CoreV1Api).listNode()).items;
  return nodes
    .filter((n) => !only || n.metadata?.name === only)
    .flatMap((n) => {
      const ip = n.status?.addresses?.find((a) => a.type === "InternalIP")?.address;
      if (!ip || !n.metadata?.name) return [];
      const host = ip.includes(":") ? `[${ip}]` : ip;
      return [{ name: n.metadata.name, url: `http://${host}:${port}/v1/flows` }];
    });
}

/**
 * A bearer token the agents accept (they review it with the API server): --token, $NETLOOM_TOKEN,
 * the kubeconfig user's token, or one minted for --service-account NS/NAME (TokenRequest,
 * 1 hour) — for kubeconfigs that authenticate with client certificates.
 */
async function bearerToken(
  kc: KubeConfig,
  f: { token?: string | undefined; "service-account"?: string | undefined },
): Promise<string> {
  const given = f.token ?? process.env.NETLOOM_TOKEN ?? kc.getCurrentUser()?.token;
  if (given) return given;
  const sa = f["service-account"];
  if (!sa)
    throw new Error(
      "the agents need a bearer token: --token, $NETLOOM_TOKEN, a kubeconfig with a token, or --service-account NS/NAME to mint one (see docs/flows.md)",
    );
  const [ns, name] = sa.split("/");
  if (!ns || !name) throw new Error(`--service-account ${sa}: NAMESPACE/NAME`);
  const r = await kubeRequest(
    kc,
    "POST",
    `/api/v1/namespaces/${ns}/serviceaccounts/${name}/token`,
    {
      body: {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: { expirationSeconds: 3600 },
      },
    },
  );
  if (r.status !== 201 && r.status !== 200)
    throw new Error(`minting a token for ${sa}: ${r.status} ${r.body}`);
  return r.json<{ status: { token: string } }>().status.token;
}

/**
 * Streams one agent's flows, line by line, until the response ends or `signal` aborts. A
 * refused request (401, 403) is thrown with the agent's answer.
 */
async function streamNode(
  t: NodeTarget,
  token: string,
  query: URLSearchParams,
  onLine: (line: FlowLine) => void,
  signal: AbortSignal,
): Promise<void> {
  const res = await fetch(`${t.url}?${query}`, {
    headers: { authorization: `Bearer ${token}` },
    signal,
  });
  if (!res.ok) throw new Error(`${t.name}: ${res.status} ${(await res.text()).trim()}`);
  const reader = res.body?.getReader();
  if (!reader) return;
  const decoder = new TextDecoder();
  let rest = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    rest += decoder.decode(value, { stream: true });
    let nl = rest.indexOf("\n");
    while (nl >= 0) {
      const text = rest.slice(0, nl).trim();
      rest = rest.slice(nl + 1);
      if (text) onLine(JSON.parse(text) as FlowLine);
      nl = rest.indexOf("\n");
    }
  }
}

const byTime = (a: FlowLine, b: FlowLine) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0);

/** `netloom observe`: flows from every node, filtered, printed or drawn. */
export async function runObserve(rest: string[]): Promise<number> {
  const argv = rest;
  const f = flags("netloom observe", argv, {
    kubeconfig: { type: "string" },
    node: { type: "string" },
    "agent-port": { type: "string", default: String(DEFAULT_AGENT_PORT) },
    token: { type: "string" },
    "service-account": { type: "string" },
    "from-pod": { type: "string" },
    "to-pod": { type: "string" },
    pod: { type: "string" },
    namespace: { type: "string" },
    verdict: { type: "string" },
    reason: { type: "string" },
    port: { type: "string" },
    protocol: { type: "string" },
    since: { type: "string" },
    last: { type: "string", default: "20" },
    follow: { type: "boolean", default: false },
    output: { type: "string", default: "compact", short: "o" },
    ui: { type: "boolean", default: false },
    listen: { type: "string", default: "127.0.0.1:0" },
  });
  const output = f.output ?? "compact";
  if (!["compact", "json", "table"].includes(output))
    throw new Error(`--output ${output}: compact, json or table`);
  const verdict = f.verdict?.toUpperCase();
  if (verdict && !["FORWARDED", "DROPPED", "AUDIT"].includes(verdict))
    throw new Error(`--verdict ${f.verdict}: FORWARDED, DROPPED or AUDIT`);
  const protocol = f.protocol?.toUpperCase().replace("ICMPV", "ICMPv");
  if (protocol && !["TCP", "UDP", "SCTP", "ICMPv4", "ICMPv6"].includes(protocol))
    throw new Error(`--protocol ${f.protocol}: TCP, UDP, SCTP, ICMPv4 or ICMPv6`);
  const port = f.port !== undefined ? Number(f.port) : undefined;
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65535))
    throw new Error(`--port ${f.port}: a port number`);
  const last = Number(f.last ?? 20);
  if (!Number.isInteger(last) || last < 0) throw new Error(`--last ${f.last}: a count`);
  const filter: FlowFilter = {
    ...(f["from-pod"] ? { fromPod: f["from-pod"] } : {}),
    ...(f["to-pod"] ? { toPod: f["to-pod"] } : {}),
    ...(f.pod ? { pod: f.pod } : {}),
    ...(f.namespace ? { namespace: f.namespace } : {}),
    ...(verdict ? { verdict: verdict as Flow["verdict"] } : {}),
    ...(f.reason ? { reason: f.reason } : {}),
    ...(port !== undefined ? { port } : {}),
    ...(protocol ? { protocol: protocol as FlowFilter["protocol"] } : {}),
    ...(f.since ? { sinceMs: parseSince(f.since, Date.now()) } : {}),
  };

  const kc = loadKubeConfig(f.kubeconfig);
  const nodes = await targets(kc, Number(f["agent-port"]), f.node);
  if (nodes.length === 0) throw new Error(f.node ? `no node ${f.node}` : "no nodes");
  const token = await bearerToken(kc, f);
  const follow = f.follow || f.ui;
  // Agents filter by time, verdict and count (docs/flows.md); pods, ports and protocols are
  // filtered here, so a count is asked of the agents only when nothing else is filtered.
  const onlyServerSide = Object.keys(filter).every((k) => k === "verdict" || k === "sinceMs");
  const query = new URLSearchParams({
    ...(follow ? { follow: "1" } : {}),
    ...(filter.sinceMs !== undefined ? { since: new Date(filter.sinceMs).toISOString() } : {}),
    ...(filter.verdict ? { verdict: filter.verdict } : {}),
    ...(!follow && onlyServerSide && last > 0 ? { limit: String(last) } : {}),
  });

  const kept = new RecentFlows();
  const print = (line: FlowLine) => {
    if ("lost_events" in line) {
      say(
        `[${line.node_name}] ${line.lost_events.num_events_lost} events lost (${line.lost_events.source})`,
      );
      return;
    }
    if (!matchesFilter(line.flow, filter)) return;
    if (f.ui) return kept.add(line);
    if (output === "json") process.stdout.write(`${JSON.stringify(line)}\n`);
    else if (output === "table") process.stdout.write(`${formatTable([tableRow(line)])}\n`);
    else process.stdout.write(`${compactLine(line)}\n`);
  };

  const abort = new AbortController();
  process.once("SIGINT", () => abort.abort());
  process.once("SIGTERM", () => abort.abort());
  if (f.ui) {
    const [host = "127.0.0.1", portText = "0"] = (f.listen ?? "127.0.0.1:0").split(/:(?=\d+$)/);
    const ui = await startFlowUi(host.replace(/^\[|\]$/g, ""), Number(portText), kept);
    say(`flows from ${nodes.length} node(s): open ${ui.url}`);
    abort.signal.addEventListener("abort", () => ui.server.close());
  }

  if (!follow) {
    // The last N of every node, merged by time, the last N of those printed.
    const lines: FlowLine[] = [];
    const errors: string[] = [];
    await Promise.all(
      nodes.map((t) =>
        streamNode(t, token, query, (l) => lines.push(l), abort.signal).catch((e: unknown) =>
          errors.push(e instanceof Error ? e.message : String(e)),
        ),
      ),
    );
    for (const e of errors) say(`netloom observe: ${e}`);
    const matching = lines
      .sort(byTime)
      .filter((l) => "lost_events" in l || matchesFilter(l.flow, filter));
    const shown = last > 0 ? matching.slice(-last) : matching;
    if (output === "table") {
      const rows = shown.flatMap((l) => ("flow" in l ? [tableRow(l)] : []));
      process.stdout.write(`${formatTable([TABLE_HEADER, ...rows])}\n`);
    } else for (const l of shown) print(l);
    return errors.length === nodes.length ? 1 : 0;
  }
  if (output === "table" && !f.ui) process.stdout.write(`${formatTable([TABLE_HEADER])}\n`);
  await Promise.all(
    nodes.map(async (t) => {
      // Follow: reconnect after an agent restart until interrupted.
      while (!abort.signal.aborted) {
        try {
          await streamNode(t, token, query, print, abort.signal);
        } catch (e) {
          if (abort.signal.aborted) break;
          say(`netloom observe: ${e instanceof Error ? e.message : String(e)} (retrying)`);
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
    }),
  );
  return 0;
}
