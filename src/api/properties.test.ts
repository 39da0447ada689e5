// Property-based tests (fast-check) for every parser of user input and for rendering: whatever
// the input, a parser returns a usable value or throws an Error naming the input, and rendering
// never throws and produces what its own schema accepts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { decidePodBandwidth, renderNodeState } from "../reconcilers/nodenetworkstate/desired.js";
import { matchesSelector } from "../reconcilers/shared/selector.js";
import { formatCidr, hasHostBits, parseCidr } from "./cidr.js";
import { networkConfig } from "./networkconfig.js";
import { nodeDatapath } from "./nodenetworkstate.js";
import { parseDuration, parseQuantity } from "./quantity.js";

const RUNS = { numRuns: 500 };

/** A parser's contract: a value, or an Error whose message quotes the input. */
function valueOrNamedError<T>(parse: (s: string) => T, ok: (v: T) => boolean) {
  return (s: string) => {
    let v: T;
    try {
      v = parse(s);
    } catch (err) {
      assert.ok(err instanceof Error);
      return;
    }
    assert.ok(ok(v), `${JSON.stringify(s)} → ${String(v)}`);
  };
}

const quantityText = fc
  .tuple(
    fc.constantFrom("", "+", "-"),
    fc.oneof(fc.nat(), fc.double({ min: 0, max: 1e6, noNaN: true })),
    fc.constantFrom("", "m", "k", "M", "G", "T", "Ki", "Mi", "Gi", "e3", "e-2", "E", "x"),
  )
  .map(([sign, n, suffix]) => `${sign}${n}${suffix}`);

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join("."));
const ipv4Cidr = fc.tuple(ipv4, fc.nat(32)).map(([ip, p]) => `${ip}/${p}`);
const ipv6Cidr = fc
  .tuple(fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 }), fc.nat(128))
  .map(([g, p]) => `${g.map((x) => x.toString(16)).join(":")}/${p}`);

describe("parsers never return garbage (fast-check)", () => {
  it("parseQuantity: a finite number or an Error, for any text", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string(), quantityText),
        valueOrNamedError(parseQuantity, (v) => Number.isFinite(v)),
      ),
      RUNS,
    );
  });

  it("parseDuration: a finite, non-negative number of ms or an Error; sums its parts", () => {
    fc.assert(
      fc.property(
        fc.string(),
        valueOrNamedError(parseDuration, (v) => Number.isFinite(v) && v >= 0),
      ),
      RUNS,
    );
    fc.assert(
      fc.property(fc.nat(1000), fc.nat(59), fc.nat(59), (h, m, s) => {
        assert.equal(parseDuration(`${h}h${m}m${s}s`), ((h * 60 + m) * 60 + s) * 1000);
      }),
      RUNS,
    );
  });

  it("parseCidr: masks, round-trips through formatCidr, and says when bits were dropped", () => {
    fc.assert(
      fc.property(fc.oneof(ipv4Cidr, ipv6Cidr), (text) => {
        const c = parseCidr(text);
        const formatted = formatCidr(c);
        assert.deepEqual(parseCidr(formatted), c, `${text} → ${formatted}`);
        assert.equal(hasHostBits(formatted), false, "the network address has no host bits");
      }),
      RUNS,
    );
    fc.assert(
      fc.property(
        fc.string(),
        valueOrNamedError(parseCidr, (c) => c.prefixLength >= 0),
      ),
      RUNS,
    );
  });

  it("hasHostBits agrees with integer arithmetic on IPv4", () => {
    fc.assert(
      fc.property(fc.nat(0xffffffff), fc.nat(32), (ip, prefix) => {
        const text = `${[24, 16, 8, 0].map((s) => (ip >>> s) & 255).join(".")}/${prefix}`;
        const hostMask = prefix === 32 ? 0 : 0xffffffff >>> prefix;
        assert.equal(hasHostBits(text), (ip & hostMask) !== 0, text);
      }),
      RUNS,
    );
  });

  it("matchesSelector never throws, whatever the labels and the selector", () => {
    const labels = fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }));
    const requirement = fc.record({
      key: fc.string({ maxLength: 8 }),
      operator: fc.constantFrom("In", "NotIn", "Exists", "DoesNotExist") as fc.Arbitrary<
        "In" | "NotIn" | "Exists" | "DoesNotExist"
      >,
      values: fc.option(fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }), {
        nil: undefined,
      }),
    });
    fc.assert(
      fc.property(
        labels,
        fc.record({
          matchLabels: fc.option(labels, { nil: undefined }),
          matchExpressions: fc.option(fc.array(requirement, { maxLength: 3 }), { nil: undefined }),
        }),
        (l, sel) => {
          assert.equal(typeof matchesSelector(sel, l), "boolean");
        },
      ),
      RUNS,
    );
  });
});

describe("rendering never throws and its output passes its schema (fast-check)", () => {
  // NetworkConfigs as the API server would admit them: the generator's output is run through
  // the schema, and only what it accepts is rendered.
  const port = fc.record({
    port: fc.integer({ min: 1, max: 65535 }),
    protocol: fc.option(fc.constantFrom("TCP", "UDP") as fc.Arbitrary<"TCP" | "UDP">, {
      nil: undefined,
    }),
  });
  const rule = fc.record({
    cidr: fc.oneof(ipv4Cidr, ipv6Cidr).map((t) => formatCidr(parseCidr(t))),
    ports: fc.option(fc.array(port, { minLength: 1, maxLength: 4 }), { nil: undefined }),
  });
  const config = fc.record({
    mtu: fc.option(fc.integer({ min: 1280, max: 9000 }), { nil: undefined }),
    egressDeny: fc.array(rule, { maxLength: 12 }),
    checkInterval: fc.constantFrom("1s", "30s", "5m", "24h"),
  });
  const annotation = fc.oneof(fc.string({ maxLength: 12 }), quantityText);

  it("for any admitted NetworkConfig and any pod annotation", () => {
    fc.assert(
      fc.property(config, fc.array(annotation, { maxLength: 5 }), (c, annotations) => {
        const nc = networkConfig.safeParse({
          apiVersion: "netloom.io/v1alpha1",
          kind: "NetworkConfig",
          metadata: { name: "p", generation: 1, creationTimestamp: "2026-11-01T00:00:00Z" },
          spec: {
            ...(c.mtu ? { mtu: c.mtu } : {}),
            egressDeny: c.egressDeny.map((r) => (r.ports ? r : { cidr: r.cidr })),
            drift: { checkInterval: c.checkInterval, mode: "Heal" },
          },
        });
        fc.pre(nc.success);
        const pods = annotations.map((a, i) => ({
          namespace: "ns",
          name: `p${i}`,
          labels: {},
          annotations: { "kubernetes.io/egress-bandwidth": a },
          nodeName: "n1",
          ip: `10.244.1.${i + 2}`,
        }));
        for (const p of pods) decidePodBandwidth(p, []);
        const r = renderNodeState({
          node: { name: "n1", uid: "u", labels: {}, podCIDRs: ["10.244.1.0/24"] },
          networkConfigs: nc.success ? [nc.data] : [],
          encryptionProfiles: [],
          bandwidthPolicies: [],
          pods,
        });
        const checked = nodeDatapath.safeParse(r.spec);
        assert.ok(checked.success, JSON.stringify(checked.error?.issues));
      }),
      { numRuns: 300 },
    );
  });
});
