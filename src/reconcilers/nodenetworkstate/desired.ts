import { EGRESS_BANDWIDTH_ANNOTATION, RATE_MAX, RATE_MIN } from "../../api/bandwidthpolicy.js";
import { formatCidr, parseCidr } from "../../api/cidr.js";
import { quantityWithin } from "../../api/common.js";
import type { NodeDatapath, NodeWireguard, PodBandwidth } from "../../api/nodenetworkstate.js";
import { parseDuration, parseQuantity, quantityIsWhole } from "../../api/quantity.js";
import type {
  BandwidthPolicy,
  EncryptionProfile,
  NetworkConfig,
  NodeInputs,
  PodView,
} from "../model.js";
import { podKey } from "../model.js";
import { ownerOfNode } from "../shared/ownership.js";
import { matchesSelector } from "../shared/selector.js";

export const DEFAULT_MTU = 1500;
/** wg-quick's figure: 80 bytes covers the IPv6 outer header + UDP + WireGuard framing. */
export const WIREGUARD_OVERHEAD = 80;
export const DEFAULT_DRIFT = { checkInterval: "30s", mode: "Heal" as const };
export const ANNOTATION_SOURCE = `annotation:${EGRESS_BANDWIDTH_ANNOTATION}`;

/** Why a pod's limit came out as it did, for BandwidthPolicy status. */
export interface PodBandwidthDecision {
  pod: string;
  /** Every source that asked for a limit, with its rate. */
  candidates: { source: string; bitsPerSecond: number }[];
  winner: string;
}

export interface RenderedNode {
  spec: NodeDatapath;
  /** NetworkConfigs/EncryptionProfiles that select the node but lost it to `winner`. */
  conflicts: { kind: "NetworkConfig" | "EncryptionProfile"; loser: string; winner: string }[];
  bandwidth: PodBandwidthDecision[];
  /** Pods whose egress-bandwidth annotation could not be read. */
  badAnnotations: { pod: string; value: string; error: string }[];
}

function ownerOf<T extends NetworkConfig | EncryptionProfile>(
  kind: "NetworkConfig" | "EncryptionProfile",
  objects: T[],
  labels: Record<string, string>,
  conflicts: RenderedNode["conflicts"],
): T | undefined {
  const { owner, selecting } = ownerOfNode(objects, labels);
  for (const o of selecting) {
    if (o !== owner)
      conflicts.push({ kind, loser: o.metadata.name ?? "", winner: owner?.metadata.name ?? "" });
  }
  return owner;
}

function seconds(duration: string | undefined): number | undefined {
  return duration === undefined ? undefined : Math.round(parseDuration(duration) / 1000);
}

/** The label kubeadm (and most installers) put on control-plane nodes. */
export const CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane";

/**
 * A node's WireGuard settings. Control-plane nodes stay out of node encryption (as in Cilium):
 * with a broken tunnel, agents must still reach the API server to repair it.
 */
function renderWireguard(p: EncryptionProfile, nodeLabels: Record<string, string>): NodeWireguard {
  const wg = p.spec.wireguard ?? {};
  const strict = p.spec.strictMode?.enabled ? (p.spec.strictMode.cidrs ?? []) : [];
  const keepalive = seconds(wg.persistentKeepalive);
  const rotation = seconds(wg.keyRotationInterval);
  return {
    profile: p.metadata.name ?? "",
    interfaceName: wg.interfaceName ?? "netloom-wg0",
    listenPort: wg.listenPort ?? 51871,
    ...(keepalive !== undefined ? { persistentKeepaliveSeconds: keepalive } : {}),
    ...(rotation !== undefined ? { keyRotationIntervalSeconds: rotation } : {}),
    ...(strict.length ? { strictCIDRs: strict.map((c) => formatCidr(parseCidr(c))).sort() } : {}),
    ...(p.spec.nodeEncryption && !(CONTROL_PLANE_LABEL in nodeLabels)
      ? { nodeEncryption: true }
      : {}),
  };
}

/**
 * The limits that apply to one pod: every BandwidthPolicy of its namespace that selects it, and
 * its egress-bandwidth annotation. The most restrictive rate wins (ties: source name order).
 */
export function decidePodBandwidth(
  pod: PodView,
  policies: readonly BandwidthPolicy[],
): { decision?: PodBandwidthDecision; entry?: Omit<PodBandwidth, "ip">; badAnnotation?: string } {
  const candidates: { source: string; bitsPerSecond: number; burstBytes?: number }[] = [];
  for (const bp of policies) {
    if (bp.metadata.namespace !== pod.namespace || bp.metadata.deletionTimestamp) continue;
    if (!bp.spec.egress || !matchesSelector(bp.spec.podSelector, pod.labels)) continue;
    const burst = bp.spec.egress.burst;
    candidates.push({
      source: `${bp.metadata.namespace}/${bp.metadata.name}`,
      bitsPerSecond: Math.round(parseQuantity(bp.spec.egress.rate)),
      ...(burst !== undefined ? { burstBytes: Math.round(parseQuantity(burst)) } : {}),
    });
  }
  let badAnnotation: string | undefined;
  const annotation = pod.annotations[EGRESS_BANDWIDTH_ANNOTATION];
  if (annotation !== undefined) {
    try {
      // The same bounds the API server holds a BandwidthPolicy's rate to: anyone who may
      // create a pod sets this, and a rate that rounds to 0 or overflows must not reach a node.
      const bits = Math.round(parseQuantity(annotation));
      if (!quantityWithin(annotation, RATE_MIN, RATE_MAX) || !quantityIsWhole(annotation))
        throw new Error(
          `"${annotation}" is not a whole number of bits per second between ${RATE_MIN} and ${RATE_MAX}`,
        );
      candidates.push({ source: ANNOTATION_SOURCE, bitsPerSecond: bits });
    } catch (err) {
      badAnnotation = (err as Error).message;
    }
  }
  if (candidates.length === 0) return badAnnotation ? { badAnnotation } : {};
  candidates.sort((a, b) => a.bitsPerSecond - b.bitsPerSecond || (a.source < b.source ? -1 : 1));
  const win = candidates[0]!;
  return {
    decision: {
      pod: podKey(pod),
      candidates: candidates.map(({ source, bitsPerSecond }) => ({ source, bitsPerSecond })),
      winner: win.source,
    },
    entry: {
      pod: podKey(pod),
      egressBitsPerSecond: win.bitsPerSecond,
      ...(win.burstBytes !== undefined ? { burstBytes: win.burstBytes } : {}),
      source: win.source,
    },
    ...(badAnnotation ? { badAnnotation } : {}),
  };
}

/** Pure: the desired datapath of one node from everything that selects it. */
export function renderNodeState(inputs: NodeInputs): RenderedNode {
  const { node } = inputs;
  const conflicts: RenderedNode["conflicts"] = [];
  const nc = ownerOf("NetworkConfig", inputs.networkConfigs, node.labels, conflicts);
  const ep = ownerOf("EncryptionProfile", inputs.encryptionProfiles, node.labels, conflicts);

  const bandwidth: PodBandwidth[] = [];
  const decisions: PodBandwidthDecision[] = [];
  const badAnnotations: RenderedNode["badAnnotations"] = [];
  const usedPolicies = new Map<string, number>();
  const pods = inputs.pods
    .filter((p) => p.nodeName === node.name && p.ip)
    .sort((a, b) => (podKey(a) < podKey(b) ? -1 : 1));
  for (const pod of pods) {
    const r = decidePodBandwidth(pod, inputs.bandwidthPolicies);
    if (r.badAnnotation) {
      badAnnotations.push({
        pod: podKey(pod),
        value: pod.annotations[EGRESS_BANDWIDTH_ANNOTATION] ?? "",
        error: r.badAnnotation,
      });
    }
    if (!r.entry || !r.decision) continue;
    bandwidth.push({ ...r.entry, ip: pod.ip! });
    decisions.push(r.decision);
    for (const c of r.decision.candidates) {
      if (c.source === ANNOTATION_SOURCE) continue;
      const bp = inputs.bandwidthPolicies.find(
        (b) => `${b.metadata.namespace}/${b.metadata.name}` === c.source,
      );
      usedPolicies.set(c.source, bp?.metadata.generation ?? 0);
    }
  }

  const wireguard = ep ? renderWireguard(ep, node.labels) : undefined;
  const baseMtu = nc?.spec.mtu ?? DEFAULT_MTU;
  const egressDeny = (nc?.spec.egressDeny ?? [])
    .map((r) => ({ ...r, cidr: formatCidr(parseCidr(r.cidr)) }))
    .sort((a, b) => (a.cidr < b.cidr ? -1 : a.cidr > b.cidr ? 1 : 0));

  const spec: NodeDatapath = {
    nodeName: node.name,
    ...(node.podCIDRs.length ? { podCIDRs: [...node.podCIDRs] } : {}),
    mtu: wireguard ? baseMtu - WIREGUARD_OVERHEAD : baseMtu,
    ...(nc?.spec.devices?.length ? { devices: [...nc.spec.devices] } : {}),
    ...(egressDeny.length ? { egressDeny } : {}),
    ...(bandwidth.length ? { bandwidth } : {}),
    ...(wireguard ? { wireguard } : {}),
    drift: { ...DEFAULT_DRIFT, ...(nc?.spec.drift ?? {}) },
    ...(nc?.spec.policyEnforcement ? { policyEnforcement: nc.spec.policyEnforcement } : {}),
    sources: {
      ...(nc
        ? {
            networkConfig: {
              name: nc.metadata.name ?? "",
              generation: nc.metadata.generation ?? 0,
            },
          }
        : {}),
      ...(ep
        ? {
            encryptionProfile: {
              name: ep.metadata.name ?? "",
              generation: ep.metadata.generation ?? 0,
            },
          }
        : {}),
      ...(usedPolicies.size
        ? {
            bandwidthPolicies: [...usedPolicies.entries()]
              .sort(([a], [b]) => (a < b ? -1 : 1))
              .map(([name, generation]) => ({ name, generation })),
          }
        : {}),
    },
  };
  return { spec, conflicts, bandwidth: decisions, badAnnotations };
}
