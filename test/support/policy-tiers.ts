/**
 * Compiled NetworkPolicy tiers written by hand, for the real-kernel tests that fill the policy
 * maps directly (policy-datapath, flow-events).
 */

import type { BpfDatapath } from "../../src/datapath-driver/linux/bpf-datapath.js";
import { endpointMaps, type PolicyTiers } from "../../src/datapath-driver/maps/policy.js";
import type { DirectionPolicy, EndpointPolicy, PolicyEntry } from "../../src/policy/compile.js";

export const open: DirectionPolicy = { isolated: false, entries: [] };
export const isolated = (...entries: PolicyEntry[]): DirectionPolicy => ({
  isolated: true,
  entries,
});
export const endpoint = (
  ingress: DirectionPolicy,
  egress: DirectionPolicy = open,
): EndpointPolicy => ({ ingress, egress });
/** The same policy in both tiers (no audit-mode policy). */
export const both = (p: EndpointPolicy): PolicyTiers => ({ full: p, enforced: p });
export const NOT_ISOLATED = both(endpoint(open));
export const tcp = (peer: number | "any", lo: number, hi = lo): PolicyEntry => ({
  peer,
  protocol: "TCP",
  ports: [lo, hi],
});

/**
 * Writes endpoints' policy into the maps as the agent does: their policy entries first, then
 * the endpoint values whose new revisions make tracked connections be decided again.
 */
export function syncEndpointPolicies(
  dp: Pick<BpfDatapath, "syncPolicy" | "syncEndpoints">,
  endpoints: readonly { ifindex: number; identity: number; tiers: PolicyTiers }[],
  opts = { allowHost: true },
): void {
  const maps = endpoints.map((e) => ({
    ifindex: e.ifindex,
    ...endpointMaps(e.ifindex, e.identity, e.tiers, opts),
  }));
  dp.syncPolicy(maps.flatMap((m) => m.entries));
  dp.syncEndpoints(new Map(maps.map((m) => [m.ifindex, m.value])));
}
