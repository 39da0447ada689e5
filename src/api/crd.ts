import { z } from "zod";
import { CATEGORY, crdName, GROUP, type KindDefinition, VERSION } from "./kinds.js";

export type JSONSchema = { [key: string]: unknown };

const SAFE_INT_BOUNDS = new Set([Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER]);

function isObject(v: unknown): v is JSONSchema {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Rewrites zod's OpenAPI 3.0 output into a Kubernetes structural schema: no $schema, no
 * additionalProperties:false (the API server prunes unknown fields instead), zod's safe-integer
 * bounds dropped, and int-or-string in the one shape Kubernetes accepts, with the string
 * branch's pattern moved onto the node (as controller-gen does for resource.Quantity).
 */
export function toStructural(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(toStructural);
  if (!isObject(node)) return node;
  const out: JSONSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === "$schema") continue;
    if (key === "additionalProperties" && value === false) continue;
    if ((key === "minimum" || key === "maximum") && SAFE_INT_BOUNDS.has(value as number)) continue;
    out[key] =
      key === "properties" && isObject(value)
        ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toStructural(v)]))
        : toStructural(value);
  }
  if (out["x-kubernetes-int-or-string"] === true && Array.isArray(out.anyOf)) {
    const branches = out.anyOf as JSONSchema[];
    const pattern = branches.find((b) => b.type === "string")?.pattern;
    out.anyOf = [{ type: "integer" }, { type: "string" }];
    if (pattern !== undefined) out.pattern = pattern;
  }
  return out;
}

export function openAPISchema(schema: z.ZodType): JSONSchema {
  const raw = z.toJSONSchema(schema, {
    target: "openapi-3.0",
    io: "input",
    reused: "inline",
    unrepresentable: "throw",
  });
  return toStructural(raw) as JSONSchema;
}

export interface CustomResourceDefinition {
  apiVersion: "apiextensions.k8s.io/v1";
  kind: "CustomResourceDefinition";
  metadata: { name: string; labels: Record<string, string> };
  spec: JSONSchema;
}

/** Pure: one kind's definition in, its CustomResourceDefinition out. */
export function renderCRD(k: KindDefinition): CustomResourceDefinition {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: crdName(k),
      labels: { "app.kubernetes.io/name": "netloom", "app.kubernetes.io/part-of": "netloom" },
    },
    spec: {
      group: GROUP,
      names: {
        kind: k.kind,
        listKind: `${k.kind}List`,
        plural: k.plural,
        singular: k.singular,
        shortNames: k.shortNames,
        categories: [CATEGORY],
      },
      scope: k.scope,
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: k.printerColumns,
          schema: {
            openAPIV3Schema: {
              type: "object",
              description: k.description,
              required: ["spec"],
              properties: {
                apiVersion: { type: "string" },
                kind: { type: "string" },
                metadata: { type: "object" },
                spec: openAPISchema(k.spec),
                // observedGeneration 0 until the first reconcile, so kstatus (Flux, kpt) reads a
                // new object as InProgress rather than Current. Internal kinds are reported by
                // agents, not reconciled: no observedGeneration.
                status: k.internal
                  ? openAPISchema(k.status)
                  : { ...openAPISchema(k.status), default: { observedGeneration: 0 } },
              },
            },
          },
        },
      ],
    },
  };
}
