import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NodeDatapath } from "../api/nodenetworkstate.js";
import { type ApplyContext, mapEntryCounts, peerNodeIPs, planDatapath } from "./driver.js";
import { canonicalPrefix } from "./maps/policy.js";

const spec = (strictCIDRs: string[]): NodeDatapath => ({
  nodeName: "n1",
  wireguard: {
    profile: "p",
    interfaceName: "wg0",
    listenPort: 51871,
    strictCIDRs,
  },
});
const ctx = (endpoints: string[]): ApplyContext => ({
  wireguard: {
    ifname: "wg0",
    privateKey: "k",
    peers: endpoints.map((endpoint, i) => ({
      publicKey: `p${i}`,
      endpoint,
      allowedIPs: [`10.244.${i + 2}.0/24`],
    })),
  },
});

describe("planDatapath: strict networks that would cut the nodes off", () => {
  it("finds the peers' node addresses from nodeIP or the endpoint's host (IPv6 in brackets)", () => {
    const c = ctx(["192.168.1.12:51871", "[fd00::12]:51871"]);
    c.wireguard?.peers.push({ publicKey: "p9", nodeIP: "192.168.1.19", allowedIPs: [] });
    assert.deepEqual(peerNodeIPs(c), ["192.168.1.12", "fd00::12", "192.168.1.19"]);
  });

  it("leaves out, and names, a strict network that covers a node address; keeps the others", () => {
    const plan = planDatapath(
      spec(["10.244.0.0/16", "192.168.0.0/16"]),
      ["eth0"],
      ctx(["192.168.1.12:51871"]),
    );
    assert.deepEqual(plan.strictCidrs, ["10.244.0.0/16"]);
    assert.deepEqual(plan.notEnforced, [
      "strict mode for 192.168.0.0/16: it covers the node address 192.168.1.12, and would drop the tunnel's own packets",
    ]);
  });

  it("enforces every strict network when none covers a node", () => {
    const plan = planDatapath(spec(["10.244.0.0/16"]), ["eth0"], ctx(["192.168.1.12:51871"]));
    assert.deepEqual(plan.strictCidrs, ["10.244.0.0/16"]);
    assert.deepEqual(plan.notEnforced, []);
  });
});

describe("mapEntryCounts: what the status reports", () => {
  it("leaves the ipcache out: a pod elsewhere changes no node's status", () => {
    const withIpcache = (ips: string[]) =>
      mapEntryCounts(
        planDatapath({ nodeName: "n1" }, ["eth0"], {
          policy: {
            enforcement: "Default",
            endpoints: [],
            ipcache: {
              entries: new Map(ips.map((ip, i) => [canonicalPrefix(ip), 256 + i])),
              epoch: ips.length,
            },
            sources: [],
          },
        }),
      );
    const before = withIpcache(["10.244.1.5"]);
    assert.deepEqual(before, withIpcache(["10.244.1.5", "10.244.2.7", "fd00::7"]));
    assert.equal(before.endpoints, 0);
    assert.ok(!Object.keys(before).some((k) => k.startsWith("ipcache")));
  });
});
