// Where zod and the API server's CEL must agree to the last digit: exact quantities and
// durations, CIDRs as isCIDR reads them, label keys as Kubernetes reads them, Secret refs.
// Each case was checked against a real kube-apiserver (test/integration/api.test.ts runs the
// invalid fixtures there).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bandwidthPolicy } from "./bandwidthpolicy.js";
import { hasHostBits, isCidr, isIPAddress, parseCidr } from "./cidr.js";
import { clusterMeshPeer } from "./clustermeshpeer.js";
import { isLabelKey, quantityWithin } from "./common.js";
import { encryptionProfile } from "./encryptionprofile.js";
import { durationNanos, parseQuantity, quantityIsWhole, quantityNanos } from "./quantity.js";

describe("quantityNanos: exact, as resource.ParseQuantity reads it", () => {
  it("holds every digit a float loses", () => {
    assert.equal(parseQuantity("100.0000000000000001G"), 100e9, "the float cannot tell");
    assert.equal(quantityNanos("100.0000000000000001G"), 100_000_000_000_000_000_100n);
    assert.equal(quantityNanos("100G"), 100_000_000_000_000_000_000n);
    assert.equal(quantityWithin("100.0000000000000001G", "1k", "100G"), false);
    assert.equal(quantityWithin("100G", "1k", "100G"), true);
    assert.equal(quantityWithin("99999999999.999999999", "1k", "100G"), true);
  });
  it("rounds what is finer than a nano-unit up, away from zero, as Kubernetes does", () => {
    assert.equal(quantityNanos("999.9999999999"), 1_000_000_000_000n);
    assert.equal(quantityWithin("999.9999999999", "1k", "100G"), true);
    assert.equal(quantityWithin("999.999999999", "1k", "100G"), false);
    assert.equal(quantityNanos("0.0000000001"), 1n);
    assert.equal(quantityNanos("-0.0000000001"), -1n);
    assert.equal(quantityNanos("1e-40"), 1n);
  });
  it("reads suffixes, exponents, signs and integers", () => {
    assert.equal(quantityNanos("1.5M"), 1_500_000n * 10n ** 9n);
    assert.equal(quantityNanos("1.5Mi"), 1_572_864n * 10n ** 9n);
    assert.equal(quantityNanos("64Ki"), 65_536n * 10n ** 9n);
    assert.equal(quantityNanos("1.5e3"), 1_500n * 10n ** 9n);
    assert.equal(quantityNanos("1E"), 10n ** 18n * 10n ** 9n, "E alone is exa");
    assert.equal(quantityNanos("+2k"), 2_000n * 10n ** 9n);
    assert.equal(quantityNanos(".5k"), 500n * 10n ** 9n);
    assert.equal(quantityNanos("1500."), 1_500n * 10n ** 9n);
    assert.equal(quantityNanos("500m"), 500_000_000n);
    assert.equal(quantityNanos(1000), 1_000n * 10n ** 9n);
    // resource.ParseQuantity keeps an exponent in 32 bits: 4294967299 is 3.
    assert.equal(quantityNanos("1e4294967299"), 1_000n * 10n ** 9n);
  });
  it("refuses what Kubernetes does not parse", () => {
    for (const bad of ["1K", "1e1.5", "50MB", "", ".", "1e", "1e99999999999999999999", " 1k"]) {
      assert.throws(() => quantityNanos(bad), /not a Kubernetes quantity/, bad);
    }
  });
  it("tells whole numbers by value, not by how they are written", () => {
    for (const whole of ["1.5M", "1.5Mi", "1500.0", "1000000m", "1.5e3", "999.9999999999", "64Ki"])
      assert.equal(quantityIsWhole(whole), true, whole);
    for (const fraction of ["1000.5", "1.0001Ki", "1.0005e3", "1536.00000000001", "0.1Ki", "1m"])
      assert.equal(quantityIsWhole(fraction), false, fraction);
  });
});

describe("durationNanos: exact, as Go's time.ParseDuration reads it", () => {
  it("reads every unit and sums the parts", () => {
    assert.equal(durationNanos("1.5s"), 1_500_000_000n);
    assert.equal(durationNanos("1h0.5s"), 3_600_500_000_000n);
    assert.equal(durationNanos("0.5m"), 30_000_000_000n);
    assert.equal(durationNanos("1000000µs"), 1_000_000_000n);
    assert.equal(durationNanos("1.1h"), 3_960_000_000_000n);
  });
  it("drops fraction digits past the nanosecond, as Go does", () => {
    assert.equal(durationNanos("1.0000000001s"), 1_000_000_000n);
    assert.equal(durationNanos("1.000000001s"), 1_000_000_001n);
    assert.equal(durationNanos("65535.0000000001s"), 65_535_000_000_000n);
  });
  it("refuses what overflows int64 nanoseconds, and what is not a duration", () => {
    assert.throws(() => durationNanos("99999999999999999999s"), /too long/);
    assert.throws(() => durationNanos("2562048h"), /too long/);
    assert.equal(durationNanos("2562047h"), 2_562_047n * 3_600_000_000_000n);
    assert.throws(() => durationNanos("1.5"), /not a duration/);
  });
});

describe("CIDRs and addresses as the API server's isCIDR/isIP read them", () => {
  it("refuses zones, IPv4-mapped addresses and leading zeros in the prefix length", () => {
    for (const bad of [
      "fe80::%eth0/64",
      "fe80::1%25eth0/64",
      "::ffff:169.254.169.254/128",
      "::ffff:a9fe:a9fe/128",
      "0:0:0:0:0:ffff:0:0/96",
      "::ffff:0.0.0.0/0",
      "10.0.0.0/08",
      "10.0.0.0/00",
      "fd00::/064",
    ]) {
      assert.equal(isCidr(bad), false, bad);
      assert.equal(hasHostBits(bad), false, bad);
    }
    assert.throws(() => parseCidr("fe80::%eth0/64"), /zone/);
    assert.throws(() => parseCidr("::ffff:169.254.169.254/128"), /IPv4-mapped/);
    assert.throws(() => parseCidr("10.0.0.0/08"), /leading zero/);
  });
  it("keeps what isCIDR accepts", () => {
    for (const good of [
      "10.0.0.0/8",
      "0.0.0.0/0",
      "10.0.0.0/0",
      "::/0",
      "FD00::/64",
      "::1.2.3.4/128",
      "64:ff9b::1.2.3.4/128",
      "::0001/128",
      "1:2:3:4:5:6:7::/128",
      "::fffe:0:0/96",
    ]) {
      assert.equal(isCidr(good), true, good);
    }
  });
  it("isIPAddress refuses zones and IPv4-mapped addresses", () => {
    for (const bad of ["fe80::1%eth0", "::ffff:1.2.3.4", "::ffff:102:304", "010.0.0.1", ""])
      assert.equal(isIPAddress(bad), false, bad);
    for (const good of ["10.0.0.1", "::1", "FD00::1", "::1.2.3.4", "1:2:3:4:5:6:7:8"])
      assert.equal(isIPAddress(good), true, good);
  });
});

describe("label keys as Kubernetes reads them", () => {
  const a = (n: number) => "a".repeat(n);
  it("holds the prefix to 253 characters and the name to 63", () => {
    assert.equal(isLabelKey(`${a(253)}/x`), true);
    assert.equal(isLabelKey(`${a(254)}/x`), false);
    assert.equal(isLabelKey(`${a(253)}/${a(63)}`), true);
    assert.equal(isLabelKey(`${a(253)}/${a(64)}`), false);
    assert.equal(isLabelKey("app.kubernetes.io/name"), true);
    assert.equal(isLabelKey("Example.com/x"), false);
  });
  it("does not hold each part of the prefix to 63 characters: Kubernetes does not either", () => {
    // The API server accepts this key in metadata.labels, so a pod may carry it.
    assert.equal(isLabelKey(`${a(64)}.example.com/x`), true);
  });
});

describe("the probe's gaps, through the schemas", () => {
  const bp = (egress: object) => ({
    apiVersion: "netloom.io/v1alpha1",
    kind: "BandwidthPolicy",
    metadata: { name: "x", namespace: "default" },
    spec: { podSelector: {}, egress },
  });
  const ep = (wireguard: object) => ({
    apiVersion: "netloom.io/v1alpha1",
    kind: "EncryptionProfile",
    metadata: { name: "x" },
    spec: { wireguard },
  });
  const cmp = (ref: object) => ({
    apiVersion: "netloom.io/v1alpha1",
    kind: "ClusterMeshPeer",
    metadata: { name: "x" },
    spec: {
      clusterName: "west",
      clusterID: 2,
      kubeconfigSecretRef: { name: "west", namespace: "netloom-system", ...ref },
    },
  });
  const cases: [string, { safeParse(v: unknown): { success: boolean } }, object, boolean][] = [
    ["rate 1.5M", bandwidthPolicy, bp({ rate: "1.5M" }), true],
    ["rate 1000.5", bandwidthPolicy, bp({ rate: "1000.5" }), false],
    ["rate 1500.0", bandwidthPolicy, bp({ rate: "1500.0" }), true],
    ["rate 100G", bandwidthPolicy, bp({ rate: "100G" }), true],
    ["rate 100.0000000000000001G", bandwidthPolicy, bp({ rate: "100.0000000000000001G" }), false],
    ["rate 999.9999999999 (1k)", bandwidthPolicy, bp({ rate: "999.9999999999" }), true],
    ["burst 1.5Mi", bandwidthPolicy, bp({ rate: "50M", burst: "1.5Mi" }), true],
    ["burst 1500.5", bandwidthPolicy, bp({ rate: "50M", burst: "1500.5" }), false],
    ["burst 1536", bandwidthPolicy, bp({ rate: "50M", burst: 1536 }), true],
    ["keepalive 25s", encryptionProfile, ep({ persistentKeepalive: "25s" }), true],
    ["keepalive 0.5m", encryptionProfile, ep({ persistentKeepalive: "0.5m" }), true],
    ["keepalive 2000ms", encryptionProfile, ep({ persistentKeepalive: "2000ms" }), true],
    ["keepalive 1.5s", encryptionProfile, ep({ persistentKeepalive: "1.5s" }), false],
    [
      "keepalive 1.0000000001s (1s)",
      encryptionProfile,
      ep({ persistentKeepalive: "1.0000000001s" }),
      true,
    ],
    [
      "keepalive 65535.0000000001s",
      encryptionProfile,
      ep({ persistentKeepalive: "65535.0000000001s" }),
      true,
    ],
    ["rotation 24h", encryptionProfile, ep({ keyRotationInterval: "24h" }), true],
    ["rotation 1.5h", encryptionProfile, ep({ keyRotationInterval: "1.5h" }), true],
    ["rotation 90500ms", encryptionProfile, ep({ keyRotationInterval: "90500ms" }), false],
    ["secret west-kubeconfig.v2", clusterMeshPeer, cmp({ name: "west-kubeconfig.v2" }), true],
    ["secret West_Kubeconfig", clusterMeshPeer, cmp({ name: "West_Kubeconfig" }), false],
    ["namespace Netloom_System", clusterMeshPeer, cmp({ namespace: "Netloom_System" }), false],
    ["namespace of 64", clusterMeshPeer, cmp({ namespace: "a".repeat(64) }), false],
    ["key KUBE_CONFIG.yaml", clusterMeshPeer, cmp({ key: "KUBE_CONFIG.yaml" }), true],
    ["key .kubeconfig", clusterMeshPeer, cmp({ key: ".kubeconfig" }), true],
    ["key kube/config", clusterMeshPeer, cmp({ key: "kube/config" }), false],
    ["key ..data", clusterMeshPeer, cmp({ key: "..data" }), false],
    ["key .", clusterMeshPeer, cmp({ key: "." }), false],
  ];
  for (const [name, schema, object, ok] of cases) {
    it(`${name}: ${ok ? "valid" : "refused"}`, () => {
      assert.equal(schema.safeParse(object).success, ok);
    });
  }
});
