import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { newKubeConfig } from "./kubeconfig.js";

function load(server: string, token = "t") {
  const kc = newKubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server, skipTLSVerify: false, caData: "" }],
    users: [{ name: "u", token }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return kc;
}

describe("newKubeConfig", () => {
  it("gives every request to the same server and credentials one keep-alive agent", async () => {
    const kc = load("https://127.0.0.1:6443");
    const a: { agent?: unknown } = {};
    const b: { agent?: unknown } = {};
    await kc.applyToFetchOptions(a as never);
    await kc.applyToFetchOptions(b as never);
    assert.ok(a.agent, "an agent is set");
    assert.equal(a.agent, b.agent, "the same agent: connections are reused");
    assert.equal((a.agent as { keepAlive?: boolean }).keepAlive, true);
  });
  it("keeps agents apart per server", async () => {
    const one: { agent?: unknown } = {};
    const two: { agent?: unknown } = {};
    const kc = load("https://127.0.0.1:6443");
    await kc.applyToFetchOptions(one as never);
    kc.clusters[0] = { ...kc.clusters[0]!, server: "https://127.0.0.2:6443" };
    await kc.applyToFetchOptions(two as never);
    assert.notEqual(one.agent, two.agent);
  });
});
