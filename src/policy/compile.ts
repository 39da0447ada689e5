/**
 * NetworkPolicy compiled into what a datapath can look up per packet, pure:
 *
 *   - every address resolves to an identity: a pod's IP to its label set's identity, any other
 *     address, through a longest-prefix match over the policies' ipBlock CIDRs and excepts, to
 *     a "CIDR identity" standing for the set of ipBlocks it falls in (`worldIdentities`);
 *   - each local endpoint gets, per direction, whether it is isolated and the (peer identity,
 *     protocol, port range) entries that allow traffic (`compileEndpoint`).
 *
 * A connection is allowed in a direction when the endpoint is not isolated or an entry matches
 * (`allowedByEntries`). property tests check this against policyVerdict on random input: the
 * compiled form and the semantics cannot disagree.
 */
import { type Cidr, cidrContains, formatCidr, parseCidr } from "../api/cidr.js";
import { matchesSelector } from "../reconcilers/shared/selector.js";
import type { NetworkPolicy, PolicyPeer, PolicyPort } from "./networkpolicy.js";
import { type Protocol, policyTypesOf } from "./verdict.js";

/** What a pod identity stands for: the labels policies select on. */
export interface IdentityLabels {
  namespace: string;
  labels: Record<string, string>;
  namespaceLabels: Record<string, string>;
}

/** A local endpoint: its identity's labels, and its named container ports. */
export interface LocalEndpoint extends IdentityLabels {
  namedPorts?: Record<string, { port: number; protocol: Protocol }>;
}

export interface PolicyEntry {
  /** The peer's identity; "any" for a rule without peers. */
  peer: number | "any";
  /** "any" for a rule without ports (every protocol, every port). */
  protocol: Protocol | "any";
  /** Inclusive port range; [0, 65535] for every port of the protocol. */
  ports: [number, number];
}

export interface DirectionPolicy {
  isolated: boolean;
  entries: PolicyEntry[];
}

export interface EndpointPolicy {
  ingress: DirectionPolicy;
  egress: DirectionPolicy;
}

/** One ipBlock as it appears in policies: a network minus its exceptions. */
interface Block {
  cidr: Cidr;
  except: Cidr[];
}

const blockKey = (b: Block) => `${formatCidr(b.cidr)}-${b.except.map(formatCidr).sort().join(",")}`;

function blocksOf(policies: readonly NetworkPolicy[]): Block[] {
  const out = new Map<string, Block>();
  for (const p of policies)
    for (const r of [
      ...(p.spec.ingress ?? []).map((x) => x.from),
      ...(p.spec.egress ?? []).map((x) => x.to),
    ])
      for (const peer of r ?? [])
        if (peer.ipBlock) {
          const b = {
            cidr: parseCidr(peer.ipBlock.cidr),
            except: (peer.ipBlock.except ?? []).map(parseCidr),
          };
          out.set(blockKey(b), b);
        }
  return [...out.values()].sort((a, b) => (blockKey(a) < blockKey(b) ? -1 : 1));
}

function within(inner: Cidr, outer: Cidr): boolean {
  if (inner.family !== outer.family || inner.prefixLength < outer.prefixLength) return false;
  return cidrContains(outer, formatCidr(inner).split("/")[0]!);
}

export interface WorldIdentities {
  /** The prefixes an LPM map holds (both families' defaults included) → identity. */
  prefixes: { cidr: string; identity: number }[];
  /** identity → the ipBlocks (keys) its addresses are in. */
  blocks: Map<number, Set<string>>;
}

/**
 * Pure: identities for addresses outside the cluster. Every address's longest match among the
 * policies' CIDRs and excepts (plus 0.0.0.0/0 and ::/0) decides which ipBlocks it is in, so one
 * LPM entry per such prefix suffices; prefixes in the same ipBlocks share an identity, numbered
 * from `first`.
 */
export function worldIdentities(
  policies: readonly NetworkPolicy[],
  first: number,
): WorldIdentities {
  const blocks = blocksOf(policies);
  const prefixes = new Map<string, Cidr>();
  for (const c of [parseCidr("0.0.0.0/0"), parseCidr("::/0")]) prefixes.set(formatCidr(c), c);
  for (const b of blocks) for (const c of [b.cidr, ...b.except]) prefixes.set(formatCidr(c), c);
  const bySet = new Map<string, number>();
  const out: WorldIdentities = { prefixes: [], blocks: new Map() };
  for (const [text, c] of [...prefixes].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const member = blocks.filter((b) => within(c, b.cidr) && !b.except.some((x) => within(c, x)));
    const key = member.map(blockKey).join("|");
    let id = bySet.get(key);
    if (id === undefined) {
      id = first + bySet.size;
      bySet.set(key, id);
      out.blocks.set(id, new Set(member.map(blockKey)));
    }
    out.prefixes.push({ cidr: text, identity: id });
  }
  return out;
}

/** Pure: an external address's identity (the longest matching prefix), as the LPM map answers. */
export function worldIdentityOf(world: WorldIdentities, ip: string): number {
  let best: { len: number; id: number } | undefined;
  for (const { cidr, identity } of world.prefixes) {
    const c = parseCidr(cidr);
    if (cidrContains(c, ip) && (!best || c.prefixLength > best.len))
      best = { len: c.prefixLength, id: identity };
  }
  if (!best) throw new Error(`no world prefix covers ${ip}`);
  return best.id;
}

function peerIdentities(
  p: NetworkPolicy,
  peer: PolicyPeer,
  pods: ReadonlyMap<number, IdentityLabels>,
  world: WorldIdentities,
): number[] {
  if (peer.ipBlock) {
    const key = blockKey({
      cidr: parseCidr(peer.ipBlock.cidr),
      except: (peer.ipBlock.except ?? []).map(parseCidr),
    });
    return [...world.blocks].filter(([, set]) => set.has(key)).map(([id]) => id);
  }
  return [...pods]
    .filter(
      ([, e]) =>
        (peer.namespaceSelector
          ? matchesSelector(peer.namespaceSelector, e.namespaceLabels)
          : e.namespace === p.metadata.namespace) && matchesSelector(peer.podSelector, e.labels),
    )
    .map(([id]) => id);
}

/**
 * A rule's ports as (protocol, range) pairs. A named port resolves against the destination:
 * the local endpoint for ingress; for egress, against each peer pod identity's named ports
 * (`namedPortsOf`), which a caller gives when it knows them.
 */
function portRanges(
  ports: readonly PolicyPort[] | undefined,
  named: (name: string) => { port: number; protocol: Protocol }[],
): { protocol: Protocol | "any"; ports: [number, number] }[] {
  if (!ports?.length) return [{ protocol: "any", ports: [0, 65535] }];
  return ports.flatMap((p) => {
    const protocol = p.protocol ?? "TCP";
    if (p.port === undefined) return [{ protocol, ports: [0, 65535] as [number, number] }];
    if (typeof p.port === "number")
      return [{ protocol, ports: [p.port, p.endPort ?? p.port] as [number, number] }];
    return named(p.port)
      .filter((n) => n.protocol === protocol)
      .map((n) => ({ protocol, ports: [n.port, n.port] as [number, number] }));
  });
}

const entryKey = (e: PolicyEntry) => `${e.peer}/${e.protocol}/${e.ports[0]}-${e.ports[1]}`;

/**
 * Pure: what the datapath enforces for one local endpoint. `namedPortsOf(identity)` gives the
 * named ports of the pods of a peer identity (egress to a named port).
 */
export function compileEndpoint(
  policies: readonly NetworkPolicy[],
  local: LocalEndpoint,
  pods: ReadonlyMap<number, IdentityLabels>,
  world: WorldIdentities,
  namedPortsOf: (identity: number) => Record<string, { port: number; protocol: Protocol }>,
): EndpointPolicy {
  const compileDir = (dir: "Ingress" | "Egress"): DirectionPolicy => {
    const selecting = policies.filter(
      (p) =>
        policyTypesOf(p).includes(dir) &&
        p.metadata.namespace === local.namespace &&
        matchesSelector(p.spec.podSelector, local.labels),
    );
    const entries = new Map<string, PolicyEntry>();
    for (const p of selecting) {
      const rules =
        dir === "Ingress"
          ? (p.spec.ingress ?? []).map((r) => ({ peers: r.from, ports: r.ports }))
          : (p.spec.egress ?? []).map((r) => ({ peers: r.to, ports: r.ports }));
      for (const r of rules) {
        const peers: (number | "any")[] = r.peers?.length
          ? [...new Set(r.peers.flatMap((peer) => peerIdentities(p, peer, pods, world)))]
          : ["any"];
        for (const peer of peers) {
          const named = (name: string) => {
            const ports =
              dir === "Ingress"
                ? local.namedPorts
                : peer === "any"
                  ? undefined
                  : namedPortsOf(peer);
            const hit = ports?.[name];
            return hit ? [hit] : [];
          };
          for (const pr of portRanges(r.ports, named)) {
            const e: PolicyEntry = { peer, ...pr };
            entries.set(entryKey(e), e);
          }
        }
      }
    }
    return {
      isolated: selecting.length > 0,
      entries: [...entries.values()].sort((a, b) => (entryKey(a) < entryKey(b) ? -1 : 1)),
    };
  };
  return { ingress: compileDir("Ingress"), egress: compileDir("Egress") };
}

/** Pure: the datapath's per-packet decision over compiled entries. */
export function allowedByEntries(
  d: DirectionPolicy,
  peer: number,
  protocol: Protocol,
  port: number,
): boolean {
  if (!d.isolated) return true;
  return d.entries.some(
    (e) =>
      (e.peer === "any" || e.peer === peer) &&
      (e.protocol === "any" || e.protocol === protocol) &&
      port >= e.ports[0] &&
      port <= e.ports[1],
  );
}
