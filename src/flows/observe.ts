/**
 * `netloom observe`, the pure half: which flows a person asked for (filters as `hubble
 * observe` spells them) and how they are printed (compact, json, table). The I/O — finding the
 * nodes, a token, streaming every agent's /v1/flows — is in src/cli/observe.ts.
 */
import type { Flow, FlowEndpoint, FlowLine } from "./flow.js";

export interface FlowFilter {
  /** namespace/name, or a name in `namespace` (either end for --pod). */
  fromPod?: string;
  toPod?: string;
  pod?: string;
  namespace?: string;
  verdict?: Flow["verdict"];
  /** A drop reason as Netloom names it (policy_denied, egress_denied, unencrypted) or Hubble's. */
  reason?: string;
  port?: number;
  protocol?: "TCP" | "UDP" | "SCTP" | "ICMPv4" | "ICMPv6";
  /** Only flows at or after this time (ms since the epoch). */
  sinceMs?: number;
}

const podOf = (e: FlowEndpoint) =>
  e.namespace && e.pod_name ? `${e.namespace}/${e.pod_name}` : undefined;

function podMatches(e: FlowEndpoint, want: string, namespace: string | undefined): boolean {
  const full = want.includes("/") ? want : `${namespace ?? "default"}/${want}`;
  return podOf(e) === full;
}

export function protocolOf(f: Flow): FlowFilter["protocol"] | undefined {
  const l4 = f.l4;
  if (!l4) return undefined;
  return Object.keys(l4)[0] as FlowFilter["protocol"];
}

export function portsOf(f: Flow): { source?: number; destination?: number } {
  const l4 = f.l4 as
    | Record<string, { source_port?: number; destination_port?: number }>
    | undefined;
  const v = l4 ? Object.values(l4)[0] : undefined;
  return { source: v?.source_port, destination: v?.destination_port };
}

/** Pure: whether a flow is one the filter asks for (every given field must match). */
export function matchesFilter(f: Flow, q: FlowFilter): boolean {
  if (q.fromPod && !podMatches(f.source, q.fromPod, q.namespace)) return false;
  if (q.toPod && !podMatches(f.destination, q.toPod, q.namespace)) return false;
  if (
    q.pod &&
    !podMatches(f.source, q.pod, q.namespace) &&
    !podMatches(f.destination, q.pod, q.namespace)
  )
    return false;
  if (
    q.namespace &&
    !q.fromPod &&
    !q.toPod &&
    !q.pod &&
    f.source.namespace !== q.namespace &&
    f.destination.namespace !== q.namespace
  )
    return false;
  if (q.verdict && f.verdict !== q.verdict) return false;
  if (q.reason) {
    const want = q.reason.toUpperCase().replace(/-/g, "_");
    if ((f.drop_reason_desc ?? "") !== want) return false;
  }
  if (q.port !== undefined) {
    const p = portsOf(f);
    if (p.source !== q.port && p.destination !== q.port) return false;
  }
  if (q.protocol && protocolOf(f) !== q.protocol) return false;
  if (q.sinceMs !== undefined && Date.parse(f.time) < q.sinceMs) return false;
  return true;
}

/** Pure: "10m", "30s", "1h", or an RFC 3339 time → ms since the epoch. */
export function parseSince(text: string, nowMs: number): number {
  const d = /^(\d+)(ms|s|m|h)$/.exec(text);
  if (d) {
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[d[2] as "ms" | "s" | "m" | "h"];
    return nowMs - Number(d[1]) * unit;
  }
  const t = Date.parse(text);
  if (Number.isNaN(t))
    throw new Error(`--since ${text}: a duration (30s, 10m, 1h) or an RFC 3339 time`);
  return t;
}

function endpointText(e: FlowEndpoint, ip: string, port: number | undefined): string {
  const who = podOf(e) ?? ip;
  const at = port !== undefined ? `${who}:${port}` : who;
  return `${at} (ID:${e.identity})`;
}

const clock = (iso: string) => {
  const d = new Date(iso);
  const month = d.toLocaleString("en-US", { month: "short", timeZone: "UTC" });
  return `${month} ${String(d.getUTCDate()).padStart(2, "0")} ${iso.slice(11, 23)}`;
};

/** Pure: one line as `hubble observe` prints it (compact). */
export function compactLine(line: Extract<FlowLine, { flow: Flow }>): string {
  const f = line.flow;
  const p = portsOf(f);
  const what =
    f.verdict === "DROPPED"
      ? `DROPPED (${protocolOf(f) ?? "IP"}) ${f.drop_reason_desc ?? ""}`
      : f.verdict === "AUDIT"
        ? `AUDIT (${protocolOf(f) ?? "IP"}) would be ${f.drop_reason_desc ?? "dropped"}`
        : `${f.event_kind === "end" ? "closed" : "new"} (${protocolOf(f) ?? "IP"})`;
  const denied = [...(f.ingress_denied_by ?? []), ...(f.egress_denied_by ?? [])]
    .map((r) => `${r.kind} ${r.namespace ? `${r.namespace}/` : ""}${r.name}`)
    .join(", ");
  return `${clock(f.time)} [${line.node_name}] ${endpointText(f.source, f.IP.source, p.source)} -> ${endpointText(f.destination, f.IP.destination, p.destination)} ${f.traffic_direction.toLowerCase()} ${what.trim()}${denied ? ` denied by ${denied}` : ""}`;
}

export const TABLE_HEADER = ["TIME", "NODE", "SOURCE", "DESTINATION", "VERDICT", "REASON"];

/** Pure: one flow's cells for `-o table`. */
export function tableRow(line: Extract<FlowLine, { flow: Flow }>): string[] {
  const f = line.flow;
  const p = portsOf(f);
  const end = (e: FlowEndpoint, ip: string, port?: number) =>
    `${podOf(e) ?? ip}${port !== undefined ? `:${port}` : ""}`;
  return [
    clock(f.time),
    line.node_name,
    end(f.source, f.IP.source, p.source),
    `${end(f.destination, f.IP.destination, p.destination)}/${protocolOf(f) ?? "IP"}`,
    f.verdict,
    f.drop_reason_desc ?? "",
  ];
}

/** Pure: rows padded into columns. */
export function formatTable(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]! + 2))
        .join("")
        .trimEnd(),
    )
    .join("\n");
}
