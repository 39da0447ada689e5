import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { readManifests } from "../../src/api/fixtures.js";
import { GROUP, KINDS, kindByName, VERSION } from "../../src/api/kinds.js";
import { installCRDs } from "../../src/kube/crds.js";
import { kubeRequest, resourcePath } from "../../src/kube/raw.js";
import { startTestCluster, type TestCluster } from "../support/cluster.js";

function pathOf(
  obj: { kind: string; metadata: { name: string; namespace?: string } },
  name = true,
) {
  const k = kindByName(obj.kind);
  return resourcePath(
    GROUP,
    VERSION,
    k.plural,
    obj.metadata.namespace,
    name ? obj.metadata.name : undefined,
  );
}

describe("the API against a real kube-apiserver", () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startTestCluster();
    await installCRDs(cluster.kubeconfig);
  });
  after(async () => cluster?.stop());

  it("every CRD is Established and served", async () => {
    for (const k of KINDS) {
      const res = await kubeRequest(
        cluster.kubeconfig,
        "GET",
        resourcePath(GROUP, VERSION, k.plural, undefined),
      );
      assert.equal(res.status, 200, `${k.plural}: ${res.body}`);
    }
  });

  it("accepts every sample", async () => {
    for (const s of readManifests("config/samples")) {
      const res = await kubeRequest(
        cluster.kubeconfig,
        "POST",
        `${pathOf(s.object, false)}?fieldValidation=Strict`,
        {
          body: s.object,
        },
      );
      assert.equal(res.status, 201, `${s.file}: ${res.body}`);
    }
  });

  it("refuses every invalid fixture with a message naming the field", async () => {
    const fixtures = readManifests("test/fixtures/invalid");
    assert.ok(fixtures.length >= 20);
    for (const f of fixtures) {
      const res = await kubeRequest(
        cluster.kubeconfig,
        "POST",
        `${pathOf(f.object, false)}?fieldValidation=Strict`,
        {
          body: f.object,
        },
      );
      assert.ok(res.status === 422 || res.status === 400, `${f.file} accepted (${res.status})`);
      const message = res.json<{ message: string }>().message;
      assert.ok(
        message.includes(f.expectField!),
        `${f.file}: "${message}" does not name ${f.expectField}`,
      );
    }
  });

  it("kubectl get shows the printer columns", () => {
    assert.ok(cluster.state.kubectl, "kubectl is built beside kube-apiserver");
    for (const plural of [
      "networkconfigs",
      "encryptionprofiles",
      "bandwidthpolicies",
      "clustermeshpeers",
    ]) {
      const out = execFileSync(
        cluster.state.kubectl!,
        ["--kubeconfig", cluster.state.kubeconfigPath, "get", plural, "-A"],
        {
          encoding: "utf8",
        },
      );
      const header = out.split("\n")[0]!.split(/\s+/);
      const counts =
        plural === "clustermeshpeers"
          ? ["CONNECTED", "REMOTE-NODES", "LAST-SYNC"]
          : ["NODES", "DRIFTED"];
      for (const col of ["NAME", "READY", ...counts, "AGE"]) {
        assert.ok(header.includes(col), `${plural}: ${col} missing in "${out.split("\n")[0]}"`);
      }
      assert.ok(out.split("\n").length >= 2, `${plural}: no rows`);
    }
    const byCategory = execFileSync(
      cluster.state.kubectl!,
      ["--kubeconfig", cluster.state.kubeconfigPath, "get", "netloom", "-A"],
      {
        encoding: "utf8",
      },
    );
    assert.match(byCategory, /networkconfig\.netloom\.io\/default/);
    assert.match(byCategory, /bandwidthpolicy\.netloom\.io\/landing-page/);
  });

  it("a status written through /status survives spec writes, and spec writes cannot set status", async () => {
    const kc = cluster.kubeconfig;
    const path = resourcePath(GROUP, VERSION, "networkconfigs", undefined, "default");
    const merge = "application/merge-patch+json";
    const status = {
      observedGeneration: 1,
      desiredNodes: 3,
      readyNodes: 2,
      driftedNodes: 1,
      nodes: "2/3",
    };
    const st = await kubeRequest(kc, "PATCH", `${path}/status`, {
      body: { status },
      contentType: merge,
    });
    assert.equal(st.status, 200, st.body);

    const spec = await kubeRequest(kc, "PATCH", path, {
      body: { spec: { mtu: 1400 }, status: { nodes: "9/9" } },
      contentType: merge,
    });
    assert.equal(spec.status, 200, spec.body);
    const got = (await kubeRequest(kc, "GET", path)).json<{
      metadata: { generation: number };
      spec: { mtu: number };
      status: typeof status;
    }>();
    assert.equal(got.spec.mtu, 1400);
    assert.equal(got.metadata.generation, 2, "a spec change bumps the generation");
    assert.deepEqual(got.status, status, "the spec write left status alone");

    const statusWrite = await kubeRequest(kc, "PATCH", `${path}/status`, {
      body: { spec: { mtu: 9000 }, status: { readyNodes: 3, nodes: "3/3" } },
      contentType: merge,
    });
    assert.equal(statusWrite.status, 200, statusWrite.body);
    const after = (await kubeRequest(kc, "GET", path)).json<typeof got>();
    assert.equal(after.spec.mtu, 1400, "a /status write cannot change spec");
    assert.equal(after.status.nodes, "3/3");
    assert.equal(after.metadata.generation, 2, "a status write does not bump the generation");
  });

  it("applies defaults from the schema", async () => {
    const got = (
      await kubeRequest(
        cluster.kubeconfig,
        "GET",
        resourcePath(GROUP, VERSION, "encryptionprofiles", undefined, "default"),
      )
    ).json<{ spec: { nodeEncryption: boolean; wireguard: { listenPort: number } } }>();
    assert.equal(got.spec.nodeEncryption, false);
    assert.equal(got.spec.wireguard.listenPort, 51871);
  });
});
