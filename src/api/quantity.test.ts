import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { cidrContains, formatCidr, isCidr, parseCidr } from "./cidr.js";
import { parseDuration, parseQuantity } from "./quantity.js";

describe("parseQuantity", () => {
  it("reads decimal and binary suffixes, exponents and plain numbers", () => {
    assert.equal(parseQuantity("50M"), 50_000_000);
    assert.equal(parseQuantity("1G"), 1e9);
    assert.equal(parseQuantity("64Ki"), 65_536);
    assert.equal(parseQuantity("1.5Mi"), 1.5 * 1024 * 1024);
    assert.equal(parseQuantity("2e3"), 2000);
    assert.equal(parseQuantity("500m"), 0.5);
    assert.equal(parseQuantity(1000), 1000);
  });
  it("refuses what is not a quantity", () => {
    for (const bad of ["fast", "50MB", "", "1.2.3", "M"]) {
      assert.throws(() => parseQuantity(bad), /not a Kubernetes quantity/, bad);
    }
  });
});

describe("parseDuration", () => {
  it("reads Go durations", () => {
    assert.equal(parseDuration("30s"), 30_000);
    assert.equal(parseDuration("1h30m"), 5_400_000);
    assert.equal(parseDuration("250ms"), 250);
    assert.equal(parseDuration("24h"), 86_400_000);
  });
  it("refuses words", () => assert.throws(() => parseDuration("soon"), /not a duration/));
});

describe("CIDRs", () => {
  it("parses IPv4 and IPv6 and clears host bits", () => {
    assert.equal(formatCidr(parseCidr("10.1.2.3/8")), "10.0.0.0/8");
    assert.equal(formatCidr(parseCidr("169.254.169.254/32")), "169.254.169.254/32");
    assert.equal(formatCidr(parseCidr("fd00:1::5/64")), "fd00:1::/64");
  });
  it("refuses prefixes out of range and non-addresses", () => {
    for (const bad of [
      "10.0.0.0/33",
      "10.0.0.0",
      "metadata/32",
      "fd00::/129",
      "10.0.0.0/-1",
      "300.0.0.0/8",
    ]) {
      assert.equal(isCidr(bad), false, bad);
    }
  });
  it("tests membership", () => {
    assert.ok(cidrContains(parseCidr("10.244.0.0/16"), "10.244.3.7"));
    assert.ok(!cidrContains(parseCidr("10.244.0.0/16"), "10.245.0.1"));
    assert.ok(!cidrContains(parseCidr("10.244.0.0/16"), "fd00::1"));
  });
});
