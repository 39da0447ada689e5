/**
 * Counters read straight from a node's pinned maps, without loading the object (no programs are
 * created): for diagnostics and the box's probe harness, which read while the agent runs.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { u32 } from "../maps/bytes.js";
import {
  decodePolicyDropKey,
  ENDPOINT_VALUE_SIZE,
  ENDPOINTS_MAP,
  encodeEndpointKey,
  POLICY_DROP_KEY_SIZE,
  POLICY_DROPS_MAP,
  type PolicyDropCount,
  sumPerCpu,
} from "../maps/policy.js";
import { possibleCpuCount } from "./bpf-datapath.js";
import { closeFd, linkInfo, mapKeys, mapLookup, objGet } from "./libbpf.js";

function withPinnedMap<T>(pinDir: string, name: string, read: (fd: number) => T, empty: T): T {
  const path = join(pinDir, "maps", name);
  if (!existsSync(path)) return empty;
  const fd = objGet(path);
  try {
    return read(fd);
  } finally {
    closeFd(fd);
  }
}

/** NetworkPolicy drops per (local identity, peer identity, direction) on one node. */
export function pinnedPolicyDrops(pinDir: string): PolicyDropCount[] {
  return withPinnedMap(
    pinDir,
    POLICY_DROPS_MAP,
    (fd) => {
      const valueSize = 8 * possibleCpuCount();
      return mapKeys(fd, POLICY_DROP_KEY_SIZE).flatMap((key) => {
        const v = mapLookup(fd, key, valueSize);
        return v ? [{ ...decodePolicyDropKey(key), packets: sumPerCpu(v) }] : [];
      });
    },
    [],
  );
}

/** The drop counter of one reason index (the `drops` per-CPU array) on one node. */
export function pinnedDropCount(pinDir: string, reason: number): number {
  return withPinnedMap(
    pinDir,
    "drops",
    (fd) => {
      const v = mapLookup(fd, u32(reason), 8 * possibleCpuCount());
      return v ? sumPerCpu(v) : 0;
    },
    0,
  );
}

/**
 * Whether a pod interface is enforced on one node: its ifindex in the endpoints map and both
 * pod programs' pinned links on that same ifindex (a restarted pod's new veth, not the old).
 */
export function pinnedEndpointEnforced(pinDir: string, ifname: string, ifindex: number): boolean {
  const inMap = withPinnedMap(
    pinDir,
    ENDPOINTS_MAP,
    (fd) => mapLookup(fd, encodeEndpointKey(ifindex), ENDPOINT_VALUE_SIZE) !== undefined,
    false,
  );
  if (!inMap) return false;
  return ["ingress", "egress"].every((hook) => {
    const pin = join(pinDir, "links", `${ifname}-${hook}`);
    if (!existsSync(pin)) return false;
    const fd = objGet(pin);
    try {
      return linkInfo(fd).ifindex === ifindex;
    } finally {
      closeFd(fd);
    }
  });
}
