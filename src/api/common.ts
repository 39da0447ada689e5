import { z } from "zod";
import { hasHostBits, isCidr, isIPAddress } from "./cidr.js";
import {
  DURATION_PATTERN,
  durationNanos,
  parseQuantity,
  QUANTITY_PATTERN,
  quantityIsWhole,
  quantityNanos,
} from "./quantity.js";

export const GROUP = "netloom.io";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;

/** A CEL rule as the API server evaluates it (x-kubernetes-validations). */
export interface CelRule<T = unknown> {
  rule: string;
  message: string;
  fieldPath?: string;
  reason?:
    | "FieldValueInvalid"
    | "FieldValueRequired"
    | "FieldValueForbidden"
    | "FieldValueDuplicate";
  /** The same rule in TypeScript, so that runtime validation refuses what the API server does. */
  check?: (value: T) => boolean;
}

/** Attaches CEL rules to a schema; they end up in the generated CRD unchanged. */
export function cel<T extends z.ZodType>(schema: T, ...rules: CelRule<z.output<T>>[]): T {
  const existing = (schema.meta()?.["x-kubernetes-validations"] as CelRule[] | undefined) ?? [];
  const forCRD = rules.map(({ check: _check, ...rule }) => rule);
  let checked: z.ZodType = schema;
  for (const r of rules) {
    const check = r.check;
    const path = r.fieldPath?.split(".").filter(Boolean) ?? [];
    if (check)
      checked = checked.refine((v) => check(v as z.output<T>), { message: r.message, path });
  }
  return checked.meta({ "x-kubernetes-validations": [...existing, ...forCRD] }) as T;
}

export const cidr = () =>
  cel(
    z.string().max(43),
    {
      // isCIDR refuses a zone (fe80::%eth0/64), an IPv4-mapped address (::ffff:10.0.0.0/104)
      // and a prefix length with a leading zero (/08); isCidr refuses them too.
      rule: "isCIDR(self)",
      message:
        "must be a CIDR such as 10.0.0.0/8 or fd00::/64 (no %zone, no IPv4-mapped ::ffff: address, no leading zeros)",
      check: isCidr,
    },
    {
      // Refused rather than silently rewritten to the network: "10.0.0.1/8" may mean a typo.
      rule: "!isCIDR(self) || cidr(self) == cidr(self).masked()",
      message:
        "has address bits set after the prefix length: write the network address, e.g. 10.0.0.0/8 instead of 10.0.0.1/8",
      check: (v) => !hasHostBits(v),
    },
  );

/** An IPv4 CIDR: for the maps that hold IPv4 only (strict mode), refused at apply time otherwise. */
export const ipv4Cidr = (why: string) =>
  cel(cidr(), {
    // Guarded so that a malformed value reports only the CIDR error.
    rule: "!isCIDR(self) || cidr(self).ip().family() == 4",
    message: why,
    check: (v) => !isCidr(v) || !v.includes(":"),
  });

export const port = () => z.int().min(1).max(65535);

/**
 * A list whose entries must be distinct (a set): `x-kubernetes-list-type: set`, so the API
 * server refuses a repeated entry naming it ("Duplicate value"), and the same check in zod.
 */
export const setOf = <T extends z.ZodType<string>>(item: T, max: number) =>
  z
    .array(item)
    .max(max)
    .meta({ "x-kubernetes-list-type": "set" })
    .superRefine((list, ctx) => {
      const seen = new Set<string>();
      list.forEach((v, i) => {
        if (seen.has(v as string))
          ctx.addIssue({ code: "custom", path: [i], message: `Duplicate value: "${v}"` });
        seen.add(v as string);
      });
    });

/** An IPv4 or IPv6 address (no zone, no prefix, not IPv4-mapped: what CEL's isIP accepts). */
export const ipAddress = () =>
  cel(z.string().max(45), {
    rule: "isIP(self)",
    message:
      "must be an IP address such as 10.0.0.1 or fd00::1 (no %zone, no IPv4-mapped ::ffff: form)",
    check: isIPAddress,
  });

/** A DNS label (RFC 1123): a namespace's name, at most 63 characters. */
export const DNS_LABEL_PATTERN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/** A DNS subdomain (RFC 1123): most objects' names, at most 253 characters. */
export const DNS_SUBDOMAIN_PATTERN =
  "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

export const dnsLabel = (message: string) =>
  cel(z.string().min(1).max(63), {
    rule: `self.matches(r'${DNS_LABEL_PATTERN}')`,
    message,
    check: (v) => new RegExp(DNS_LABEL_PATTERN).test(v),
  });
export const dnsSubdomain = (message: string) =>
  cel(z.string().min(1).max(253), {
    rule: `self.matches(r'${DNS_SUBDOMAIN_PATTERN}')`,
    message,
    check: (v) => new RegExp(DNS_SUBDOMAIN_PATTERN).test(v),
  });

/** A WireGuard public key: 32 bytes, base64 (44 characters, the last one "="). */
export const WIREGUARD_KEY_PATTERN = "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$";
export const wireguardKey = (description: string) =>
  z.string().regex(new RegExp(WIREGUARD_KEY_PATTERN)).meta({ description });

/** Linux interface names: at most 15 bytes (IFNAMSIZ - 1). */
export const interfaceName = () =>
  z
    .string()
    .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$/)
    .meta({ description: "A Linux network interface name (at most 15 characters)." });

/**
 * A Go duration between `min` and `max`: the bound is what the value is passed on to (a timer
 * the agent must be able to schedule, WireGuard's 16-bit keepalive seconds). With
 * `wholeSeconds` (the message), a value the consumer keeps in whole seconds must be whole
 * seconds ("90s", "1.5m"), rather than be rounded silently ("1.5s").
 */
export const duration = (
  min: string,
  max: string,
  description: string,
  opts: { wholeSeconds?: string } = {},
) => {
  const pattern = new RegExp(DURATION_PATTERN);
  /** Durations are compared in exact nanoseconds, as Go parses them (no float rounding). */
  const nanos = (v: string, test: (ns: bigint) => boolean) => {
    if (!pattern.test(v)) return true;
    try {
      return test(durationNanos(v));
    } catch {
      return false; // beyond int64 nanoseconds: duration() fails on the API server too
    }
  };
  const rules: CelRule<string>[] = [
    {
      // Guarded so that a malformed value reports only the pattern error, not a CEL type error.
      rule: `!self.matches(r'${DURATION_PATTERN}') || (duration(self) >= duration('${min}') && duration(self) <= duration('${max}'))`,
      message: `must be between ${min} and ${max}`,
      check: (v) => nanos(v, (ns) => ns >= durationNanos(min) && ns <= durationNanos(max)),
    },
  ];
  if (opts.wholeSeconds)
    rules.push({
      // The duration equals its whole seconds (getSeconds() truncates), built back as the
      // difference of two timestamps: CEL has no duration from an int, and building a string
      // ("25" + "s") exceeds the API server's cost budget.
      rule: `!self.matches(r'${DURATION_PATTERN}') || duration(self) == timestamp(duration(self).getSeconds()) - timestamp(0)`,
      message: opts.wholeSeconds,
      check: (v) => nanos(v, (ns) => ns % 1_000_000_000n === 0n),
    });
  return cel(z.string().max(32).regex(pattern).meta({ description }), ...rules);
};

/**
 * A Kubernetes quantity, as an integer or a string ("50M", "1.5Gi"): int-or-string, with the
 * pattern on the node as controller-gen emits it for resource.Quantity. With `wholeMessage`,
 * the value must also be a whole number ("1.5M", "1.5Mi" are; "1000.5" is not).
 */
export const quantity = (
  what: string,
  bounds: { min: string; max: string; message: string; wholeMessage?: string },
) => {
  const within = `quantity(self).compareTo(quantity('${bounds.min}')) >= 0 && quantity(self).compareTo(quantity('${bounds.max}')) <= 0`;
  const rules: CelRule<string | number>[] = [
    {
      // Both ends: below `min` a rate rounds to 0 ("1m" is a thousandth), above `max` it no
      // longer fits what it is written into (an int64, a u32 burst) or loses precision.
      rule: `type(self) == int ? (self >= ${parseQuantity(bounds.min)} && self <= ${parseQuantity(bounds.max)}) : (isQuantity(self) && ${within})`,
      message: bounds.message,
      check: (v) => quantityWithin(v, bounds.min, bounds.max),
    },
  ];
  if (bounds.wholeMessage)
    rules.push({
      // Exact: the value minus its float approximation truncated to an int is zero. Not
      // quantity(self).isInteger(), which answers how the value is written, not what it is: it
      // refuses 1.5Mi (1572864) and 1500.0. Only within the bounds, where int() cannot
      // overflow; outside them the rule above reports.
      rule: `type(self) == int || !isQuantity(self) || !(${within}) || quantity(self).sub(int(quantity(self).asApproximateFloat())).compareTo(quantity('0')) == 0`,
      message: bounds.wholeMessage,
      check: (v) =>
        typeof v === "number" || !quantityWithin(v, bounds.min, bounds.max) || quantityIsWhole(v),
    });
  return cel(
    z
      .union([z.int(), z.string().max(32).regex(new RegExp(QUANTITY_PATTERN))])
      .meta({ description: what, "x-kubernetes-int-or-string": true }),
    ...rules,
  );
};

/**
 * Whether a quantity parses and lies within [min, max], compared exactly as the API server's
 * quantity() does (a float would take "100.0000000000000001G" for 100G).
 */
export function quantityWithin(v: string | number, min: string, max: string): boolean {
  try {
    const n = quantityNanos(v);
    return n >= quantityNanos(min) && n <= quantityNanos(max);
  } catch {
    return false;
  }
}

/**
 * A label key: an optional DNS-subdomain prefix of at most 253 characters and "/", then a name
 * of 1–63 characters. The pattern holds the name's length; the prefix's is a second condition,
 * labelKeyRule/isLabelKey (RE2 cannot bound it). As Kubernetes validates label keys, the
 * prefix's dot-separated parts are not held to 63 characters each ("due to historical reasons",
 * apimachinery's IsDNS1123Subdomain): a pod may carry such a key, so a selector may name it.
 */
const LABEL_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]";
export const LABEL_KEY_PATTERN = `^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?${LABEL_NAME}$`;
/** The CEL condition that `key` (an expression) is a label key. */
const labelKeyRule = (key: string) =>
  `${key}.matches(r'${LABEL_KEY_PATTERN}') && ${key}.indexOf('/') <= 253`;
export const isLabelKey = (key: string) =>
  new RegExp(LABEL_KEY_PATTERN).test(key) && key.indexOf("/") <= 253;
/** A label value: empty, or 1–63 characters, alphanumeric at both ends. */
export const LABEL_VALUE_PATTERN = `^(${LABEL_NAME})?$`;
const LABEL_KEY_MESSAGE =
  "label keys are an optional DNS subdomain prefix of at most 253 characters and '/', then 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit (e.g. app.kubernetes.io/name)";
const LABEL_VALUE_MESSAGE =
  "label values are empty or 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit";

const labelKey = () =>
  cel(z.string().min(1).max(317), {
    rule: labelKeyRule("self"),
    message: LABEL_KEY_MESSAGE,
    check: isLabelKey,
  });
const labelValue = () =>
  cel(z.string().max(63), {
    rule: `self.matches(r'${LABEL_VALUE_PATTERN}')`,
    message: LABEL_VALUE_MESSAGE,
    check: (v) => new RegExp(LABEL_VALUE_PATTERN).test(v),
  });

const labelSelectorRequirement = cel(
  z
    .object({
      key: labelKey(),
      operator: z.enum(["In", "NotIn", "Exists", "DoesNotExist"]),
      values: setOf(labelValue(), 64).optional(),
    })
    .strict(),
  {
    rule: "self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0 : !has(self.values) || size(self.values) == 0",
    message: "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist",
    check: (r) =>
      r.operator === "In" || r.operator === "NotIn"
        ? (r.values?.length ?? 0) > 0
        : (r.values?.length ?? 0) === 0,
  },
);

/** metav1.LabelSelector; an empty selector selects everything. */
export const labelSelector = () =>
  z
    .object({
      // The keys' length is in the rule, not on the key schema: a CRD cannot bound map keys,
      // and zod refusing what the API server admits is a disagreement.
      matchLabels: cel(z.record(z.string(), labelValue()).meta({ maxProperties: 64 }), {
        rule: `self.all(k, ${labelKeyRule("k")})`,
        message: LABEL_KEY_MESSAGE,
        check: (m) => Object.keys(m).every(isLabelKey),
      }).optional(),
      matchExpressions: z.array(labelSelectorRequirement).max(32).optional(),
    })
    .strict();

export type LabelSelector = z.infer<ReturnType<typeof labelSelector>>;

/** metav1.Condition. */
export const condition = z
  .object({
    type: z.string().min(1).max(316),
    status: z.enum(["True", "False", "Unknown"]),
    observedGeneration: z.int().min(0).optional(),
    lastTransitionTime: z.string().meta({ format: "date-time" }),
    reason: z
      .string()
      .min(1)
      .max(1024)
      .regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/),
    message: z.string().max(32768),
  })
  .strict();

export type Condition = z.infer<typeof condition>;

export const conditions = () =>
  z
    .array(condition)
    .max(16)
    .optional()
    .meta({
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["type"],
      description: "Ready, Reconciling and Stalled (kstatus: abnormal-true).",
    });

/** What every user-facing kind reports: kstatus conditions and node counts, never node lists. */
export const nodeCountsStatus = {
  observedGeneration: z.int().min(0).optional(),
  conditions: conditions(),
  desiredNodes: z.int().min(0).optional().meta({ description: "Nodes this object selects." }),
  readyNodes: z
    .int()
    .min(0)
    .optional()
    .meta({ description: "Selected nodes that applied the current generation." }),
  driftedNodes: z
    .int()
    .min(0)
    .optional()
    .meta({ description: "Selected nodes whose kernel state differs from the desired state." }),
  nodes: z.string().max(32).optional().meta({ description: "ready/desired, for kubectl get." }),
};

/** ObjectMeta is validated by the API server itself; the schema only says it is an object. */
export const objectMeta = z
  .object({
    name: z.string().optional(),
    namespace: z.string().optional(),
    generation: z.int().optional(),
    resourceVersion: z.string().optional(),
    uid: z.string().optional(),
    creationTimestamp: z.string().optional(),
    deletionTimestamp: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
    finalizers: z.array(z.string()).optional(),
    ownerReferences: z
      .array(
        z.object({
          apiVersion: z.string(),
          kind: z.string(),
          name: z.string(),
          uid: z.string(),
          controller: z.boolean().optional(),
          blockOwnerDeletion: z.boolean().optional(),
        }),
      )
      .optional(),
  })
  .loose();

export type ObjectMeta = z.infer<typeof objectMeta>;
