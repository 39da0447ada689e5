import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { networkConfig } from "./networkconfig.js";
import { fieldPath, parseApiObject } from "./parse.js";

describe("parseApiObject", () => {
  const base = {
    apiVersion: "netloom.io/v1alpha1",
    kind: "NetworkConfig",
    metadata: { name: "default", managedFields: [{ manager: "kubectl" }] },
    spec: { egressDeny: [{ cidr: "169.254.169.254/32" }] },
  };

  it("accepts what the API server stores (unknown metadata kept) and fills defaults", () => {
    const r = parseApiObject(networkConfig, base);
    assert.equal(r.ok, true);
  });

  it("names the object and the field that does not parse", () => {
    const bad = { ...base, spec: { egressDeny: [{ cidr: "not-a-cidr" }] } };
    const r = parseApiObject(networkConfig, bad);
    assert.equal(r.ok, false);
    assert.match(
      !r.ok ? r.error : "",
      /^NetworkConfig default is not usable: spec\.egressDeny\[0\]\.cidr: /,
    );
  });

  it("formats paths as kubectl does", () => {
    assert.equal(fieldPath(["spec", "ports", 3, "port"]), "spec.ports[3].port");
    assert.equal(fieldPath([]), "");
  });
});
