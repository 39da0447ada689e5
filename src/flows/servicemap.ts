/**
 * The service map, pure: workloads as nodes, who-talks-to-whom as edges with counts by verdict
 * and the drop reasons seen. What the flow page draws (src/flows/page.ts) and what its test
 * checks in the DOM.
 */
import type { Flow, FlowEndpoint } from "./flow.js";

export interface MapNode {
  /** namespace/workload, or the reserved name or address for what is not a pod. */
  id: string;
  namespace?: string;
  kind: "workload" | "reserved" | "external";
}

export interface MapEdge {
  from: string;
  to: string;
  forwarded: number;
  dropped: number;
  audit: number;
  /** Drop reasons with counts, and who denied (NetworkPolicy namespace/name). */
  reasons: Record<string, number>;
  deniedBy: string[];
}

export interface ServiceMap {
  nodes: MapNode[];
  edges: MapEdge[];
}

/** Pure: the node a flow endpoint belongs to. */
export function mapNodeOf(e: FlowEndpoint, ip: string): MapNode {
  if (e.namespace && e.pod_name) {
    const workload = e.workloads?.[0]?.name ?? e.pod_name;
    return { id: `${e.namespace}/${workload}`, namespace: e.namespace, kind: "workload" };
  }
  const reserved = e.labels.find((l) => l.startsWith("reserved:"))?.slice("reserved:".length);
  if (reserved && reserved !== "world") return { id: reserved, kind: "reserved" };
  return { id: ip, kind: "external" };
}

/**
 * Pure: traffic that is not between workloads — IPv6 link-local and multicast (neighbour
 * discovery, MLD reports) and IPv4 multicast — which every pod sends and which would crowd the
 * map. The flow table still lists it.
 */
export function isLinkTraffic(f: Flow): boolean {
  const link = (ip: string) => /^(fe80:|ff[0-9a-f]{2}:)/i.test(ip) || /^(22[4-9]|23\d)\./.test(ip);
  return link(f.IP.source) || link(f.IP.destination);
}

/** Pure: the map of a set of flows (the edge direction is the connection's, client → server). */
export function serviceMap(flows: readonly Flow[]): ServiceMap {
  const nodes = new Map<string, MapNode>();
  const edges = new Map<string, MapEdge>();
  for (const f of flows) {
    if (isLinkTraffic(f)) continue;
    const from = mapNodeOf(f.source, f.IP.source);
    const to = mapNodeOf(f.destination, f.IP.destination);
    nodes.set(from.id, from);
    nodes.set(to.id, to);
    const key = `${from.id}\u0000${to.id}`;
    let e = edges.get(key);
    if (!e) {
      e = {
        from: from.id,
        to: to.id,
        forwarded: 0,
        dropped: 0,
        audit: 0,
        reasons: {},
        deniedBy: [],
      };
      edges.set(key, e);
    }
    if (f.verdict === "DROPPED") e.dropped++;
    else if (f.verdict === "AUDIT") e.audit++;
    else if (f.event_kind !== "end") e.forwarded++;
    if (f.drop_reason_desc)
      e.reasons[f.drop_reason_desc] = (e.reasons[f.drop_reason_desc] ?? 0) + 1;
    for (const r of [...(f.ingress_denied_by ?? []), ...(f.egress_denied_by ?? [])]) {
      const name = `${r.kind} ${r.namespace ? `${r.namespace}/` : ""}${r.name}`;
      if (!e.deniedBy.includes(name)) e.deniedBy.push(name);
    }
  }
  return {
    nodes: [...nodes.values()].sort((a, b) => (a.id < b.id ? -1 : 1)),
    edges: [...edges.values()].sort((a, b) =>
      a.from === b.from ? (a.to < b.to ? -1 : 1) : a.from < b.from ? -1 : 1,
    ),
  };
}

/** Pure: an edge's colour class: dropped wins over audit over forwarded. */
export function edgeVerdict(e: MapEdge): "dropped" | "audit" | "forwarded" {
  return e.dropped > 0 ? "dropped" : e.audit > 0 ? "audit" : "forwarded";
}
