// Liveness by Lease on a real API server: each simulated agent renews its own Lease; the
// operator names a node whose agent went silent, without flapping while renewals arrive.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { readManifests } from "../../src/api/fixtures.js";
import type { NetworkConfig } from "../../src/api/networkconfig.js";
import { applyManifests } from "../../src/kube/apply.js";
import { kubeRequest } from "../../src/kube/raw.js";
import { eventually, nodeName, type SimCluster, startSimCluster } from "../support/sim-cluster.js";

const NC = "/apis/netloom.io/v1alpha1/networkconfigs/default";

describe("liveness by Lease (3 simulated agents, renewals every 1 s, stale after 4 s)", () => {
  let env: SimCluster;
  before(async () => {
    env = await startSimCluster(3, {
      staleAfterMs: 4_000,
      leaseRenewMs: 1_000,
      heartbeatMs: 60_000,
    });
    await applyManifests(
      env.kc,
      readManifests("config/samples").filter((m) => m.object.kind === "NetworkConfig"),
      "test",
    );
  });
  after(async () => env?.stop());

  const nc = async () => (await kubeRequest(env.kc, "GET", NC)).json<NetworkConfig>();
  const ready = (o: NetworkConfig) => o.status?.conditions?.find((c) => c.type === "Ready");

  it("stays Ready while every agent renews, though no agent writes its status at rest", async () => {
    await eventually("Ready", async () =>
      ready(await nc())?.status === "True" ? true : undefined,
    );
    const since = ready(await nc())?.lastTransitionTime;
    // Three stale windows: a node judged by its last status write would have failed by now.
    const end = Date.now() + 12_000;
    while (Date.now() < end) {
      const r = ready(await nc());
      assert.equal(r?.status, "True", `flapped: ${r?.message}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(ready(await nc())?.lastTransitionTime, since, "no transition at all");
  });

  it("names the node whose agent stopped renewing, and recovers when it is back", async () => {
    const silent = nodeName(1);
    env.sim.removeNode(silent);
    const failed = await eventually(
      "Ready=False naming the silent node",
      async () => {
        const r = ready(await nc());
        return r?.status === "False" && r.message.includes(silent) ? r : undefined;
      },
      20_000,
    );
    assert.match(failed.message, new RegExp(`${silent} \\(no report for \\d+s\\)`));
    env.sim.addNode(silent);
    await eventually(
      "Ready again",
      async () => (ready(await nc())?.status === "True" ? true : undefined),
      20_000,
    );
  });
});
