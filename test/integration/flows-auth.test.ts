// The agent's flow endpoint against a real API server: it runs with the agent's own service
// account (config/rbac/agent-role.yaml, nothing more), and a client gets flows only with a token
// the API server accepts and RBAC lets read them (config/rbac/flows-reader-role.yaml).
import assert from "node:assert/strict";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import type { KubeConfig } from "@kubernetes/client-node";
import { Registry } from "prom-client";
import { parseIP } from "../../src/api/cidr.js";
import { readManifests } from "../../src/api/fixtures.js";
import { encodeFlowEvent, type FlowEvent } from "../../src/datapath-driver/maps/flow-events.js";
import type { FlowLine } from "../../src/flows/flow.js";
import { type NodeFlows, nodeFlows } from "../../src/flows/node-flows.js";
import type { FlowEventSource } from "../../src/flows/observer.js";
import { newKubeConfig } from "../../src/kube/kubeconfig.js";
import { ensureNamespace } from "../../src/kube/namespace.js";
import { kubeRequest } from "../../src/kube/raw.js";
import { RealClock } from "../../src/util/clock.js";
import { startTestCluster, type TestCluster } from "../support/cluster.js";

const NODE = "node-1";

/** Records handed to the agent's pipeline as the kernel's ring would. */
class QueueSource implements FlowEventSource {
  queue: Buffer[] = [];
  read(max: number, sink: (r: Buffer) => void): number {
    const batch = this.queue.splice(0, max);
    for (const r of batch) sink(r);
    return batch.length;
  }
  lost(): number {
    return 0;
  }
  close(): void {}
  push(e: FlowEvent): void {
    this.queue.push(encodeFlowEvent(e, (ip) => parseIP(ip).bytes));
  }
}

const denied = (port: number): FlowEvent => ({
  monotonicNs: process.hrtime.bigint(),
  family: 4,
  source: "10.244.2.5",
  destination: "10.244.1.7",
  sourcePort: 40000,
  destinationPort: port,
  protocol: 6,
  kind: "drop",
  verdict: "DROPPED",
  reason: "policy_denied",
  direction: "ingress",
  l4Flags: 2,
  ifindex: 17,
  localIdentity: 2000,
  peerIdentity: 1000,
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(port: number, path: string, token?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path,
        headers: token ? { authorization: `Bearer ${token}` } : {},
      },
      (res) => {
        let body = "";
        res.on("data", (d: Buffer) => {
          body += d.toString();
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

const lines = (body: string): FlowLine[] =>
  body
    .split("\n")
    .filter((l) => l)
    .map((l) => JSON.parse(l) as FlowLine);

describe("GET /v1/flows: TokenReview and SubjectAccessReview on a real API server", () => {
  let cluster: TestCluster;
  let server: Server;
  let port = 0;
  let flows: NodeFlows;
  const source = new QueueSource();
  const tokens: Record<string, string> = {};

  const create = async (kc: KubeConfig, path: string, body: unknown) => {
    const r = await kubeRequest(kc, "POST", path, { body });
    assert.ok(r.status === 201 || r.status === 409, `${path}: ${r.status} ${r.body}`);
  };
  const tokenFor = async (kc: KubeConfig, ns: string, sa: string) => {
    await create(kc, `/api/v1/namespaces/${ns}/serviceaccounts`, {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: sa, namespace: ns },
    });
    const r = await kubeRequest(
      kc,
      "POST",
      `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`,
      {
        body: {
          apiVersion: "authentication.k8s.io/v1",
          kind: "TokenRequest",
          spec: { expirationSeconds: 3600 },
        },
      },
    );
    assert.equal(r.status, 201, r.body);
    return r.json<{ status: { token: string } }>().status.token;
  };
  const bind = (kc: KubeConfig, name: string, role: string, ns: string, sa: string) =>
    create(kc, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
      subjects: [{ kind: "ServiceAccount", name: sa, namespace: ns }],
    });

  before(async () => {
    cluster = await startTestCluster();
    const admin = cluster.kubeconfig;
    for (const ns of ["netloom-system", "flows-test"]) await ensureNamespace(admin, ns);
    // The ClusterRoles as shipped: the agent's, and the flow reader's.
    for (const m of readManifests("config/rbac")) {
      if (m.object.kind !== "ClusterRole") continue;
      const name = m.object.metadata?.name;
      if (name !== "netloom-agent" && name !== "netloom-flows-reader") continue;
      await create(admin, "/apis/rbac.authorization.k8s.io/v1/clusterroles", m.object);
    }
    await bind(admin, "netloom-agent", "netloom-agent", "netloom-system", "netloom-agent");
    await bind(admin, "flows-reader", "netloom-flows-reader", "flows-test", "reader");
    // A reader of another node's flows only.
    await create(admin, "/apis/rbac.authorization.k8s.io/v1/clusterroles", {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "node-2-flows" },
      rules: [
        {
          apiGroups: ["netloom.io"],
          resources: ["nodenetworkstates/flows"],
          resourceNames: ["node-2"],
          verbs: ["get"],
        },
      ],
    });
    await bind(admin, "node-2-flows", "node-2-flows", "flows-test", "node-2-reader");
    tokens.agent = await tokenFor(admin, "netloom-system", "netloom-agent");
    tokens.reader = await tokenFor(admin, "flows-test", "reader");
    tokens.nobody = await tokenFor(admin, "flows-test", "nobody");
    tokens.node2 = await tokenFor(admin, "flows-test", "node-2-reader");

    // The agent's kubeconfig: the same API server, the agent's token.
    const cl = admin.getCurrentCluster();
    assert.ok(cl);
    const agentKc = newKubeConfig();
    agentKc.loadFromOptions({
      clusters: [cl],
      users: [{ name: "agent", token: tokens.agent }],
      contexts: [{ name: "agent", cluster: cl.name, user: "agent" }],
      currentContext: "agent",
    });
    flows = nodeFlows({
      node: NODE,
      inputs: {
        policy: () => undefined,
        directory: () => undefined,
        desired: () => undefined,
        interfaces: () => new Map(),
      },
      source,
      registry: new Registry(),
      kubeconfig: agentKc,
      clock: new RealClock(),
    });
    server = createServer((req, res) => {
      if (!flows.handle(req, res)) res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
    source.push(denied(9090));
    source.push({ ...denied(8080), kind: "new", verdict: "FORWARDED" });
    flows.observer?.poll();
  });

  after(async () => {
    flows?.stop();
    server?.closeAllConnections();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    await cluster?.stop();
  });

  it("no token: 401 with a Bearer challenge, and no flow", async () => {
    const r = await get(port, "/v1/flows");
    assert.equal(r.status, 401);
    assert.equal(r.headers["www-authenticate"], 'Bearer realm="netloom-agent"');
    assert.doesNotMatch(r.body, /10\.244/);
  });

  it("a token the API server does not accept: 401", async () => {
    const r = await get(port, "/v1/flows", "not-a-token");
    assert.equal(r.status, 401, r.body);
    assert.match(r.body, /not valid/);
  });

  it("a valid token without the RBAC rule: 403, naming what is missing", async () => {
    const r = await get(port, "/v1/flows", tokens.nobody);
    assert.equal(r.status, 403, r.body);
    assert.match(
      r.body,
      /system:serviceaccount:flows-test:nobody may not get nodenetworkstates\/flows of node node-1/,
    );
    assert.doesNotMatch(r.body, /10\.244/);
  });

  it("RBAC limited to another node by resourceNames: 403 here", async () => {
    const r = await get(port, "/v1/flows", tokens.node2);
    assert.equal(r.status, 403, r.body);
  });

  it("with the flows-reader role: 200 and the flows as NDJSON", async () => {
    const r = await get(port, "/v1/flows", tokens.reader);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.headers["content-type"], "application/x-ndjson; charset=utf-8");
    const got = lines(r.body);
    assert.equal(got.length, 2);
    const first = got[0];
    assert.ok(first && "flow" in first);
    assert.equal(first.node_name, NODE);
    assert.equal(first.flow.verdict, "DROPPED");
    assert.equal(first.flow.drop_reason_desc, "POLICY_DENIED");
    assert.deepEqual(first.flow.IP, {
      source: "10.244.2.5",
      destination: "10.244.1.7",
      ipVersion: "IPv4",
    });
    const dropped = lines((await get(port, "/v1/flows?verdict=DROPPED", tokens.reader)).body);
    assert.equal(dropped.length, 1);
    const bad = await get(port, "/v1/flows?verdict=NOPE", tokens.reader);
    assert.equal(bad.status, 400);
  });

  it("follow=1 streams new flows as they are read, to an authorized client only", async () => {
    const streamed = await new Promise<FlowLine>((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port,
          path: "/v1/flows?follow=1&verdict=DROPPED",
          headers: { authorization: `Bearer ${tokens.reader}` },
        },
        (res) => {
          assert.equal(res.statusCode, 200);
          let buf = "";
          res.on("data", (d: Buffer) => {
            buf += d.toString();
            const nl = buf.indexOf("\n");
            if (nl >= 0) {
              resolve(JSON.parse(buf.slice(0, nl)) as FlowLine);
              req.destroy();
            }
          });
          // The stream is open (headers sent): a new drop arrives.
          source.push({ ...denied(7070), kind: "new", verdict: "FORWARDED" });
          source.push(denied(6060));
          flows.observer?.poll();
        },
      );
      req.on("error", (e) => {
        if (!("code" in e && e.code === "ECONNRESET")) reject(e);
      });
      req.end();
    });
    assert.ok("flow" in streamed);
    assert.equal(
      streamed.flow.l4 && "TCP" in streamed.flow.l4 && streamed.flow.l4.TCP.destination_port,
      6060,
    );
    assert.equal((await get(port, "/v1/flows?follow=1", tokens.nobody)).status, 403);
  });
});
