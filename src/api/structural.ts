import type { JSONSchema } from "./crd.js";

// The rules Kubernetes enforces on CRD schemas (apiextensions "structural schema" and the
// OpenAPI subset it supports), checked before the API server sees them so that a generated
// CRD that would be refused, or silently lose fields, fails a unit test with a path.

const UNSUPPORTED = [
  "$ref",
  "$schema",
  "$defs",
  "definitions",
  "dependencies",
  "patternProperties",
  "additionalItems",
  "const",
  "id",
  "$id",
];
/** Only value validations may appear inside anyOf/allOf/oneOf/not. */
const FORBIDDEN_IN_JUNCTOR = [
  "type",
  "description",
  "default",
  "additionalProperties",
  "nullable",
  "title",
  "x-kubernetes-preserve-unknown-fields",
  "x-kubernetes-embedded-resource",
  "x-kubernetes-int-or-string",
  "x-kubernetes-validations",
  "x-kubernetes-list-type",
  "x-kubernetes-map-type",
];
const TYPES = new Set(["object", "array", "string", "integer", "number", "boolean"]);
const FORMATS = new Set([
  "bsonobjectid",
  "uri",
  "email",
  "hostname",
  "ipv4",
  "ipv6",
  "cidr",
  "mac",
  "uuid",
  "uuid3",
  "uuid4",
  "uuid5",
  "isbn",
  "isbn10",
  "isbn13",
  "creditcard",
  "ssn",
  "hexcolor",
  "rgbcolor",
  "byte",
  "password",
  "date",
  "duration",
  "datetime",
  "date-time",
  "int32",
  "int64",
  "float",
  "double",
]);

function isObject(v: unknown): v is JSONSchema {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const INT_OR_STRING = JSON.stringify([{ type: "integer" }, { type: "string" }]);

/** Returns every violation with its path; empty when the schema is structural. */
export function structuralViolations(schema: JSONSchema, path = "openAPIV3Schema"): string[] {
  const errors: string[] = [];
  walk(schema, path, false, errors);
  return errors;
}

function walk(node: JSONSchema, path: string, inJunctor: boolean, errors: string[]): void {
  for (const key of UNSUPPORTED) {
    if (key in node) errors.push(`${path}: ${key} is not supported in a CRD schema`);
  }
  if (node.uniqueItems === true) errors.push(`${path}: uniqueItems must not be true`);
  if (typeof node.exclusiveMinimum === "number" || typeof node.exclusiveMaximum === "number") {
    errors.push(`${path}: exclusiveMinimum/exclusiveMaximum must be booleans in OpenAPI v3.0`);
  }
  if (node.format !== undefined && !FORMATS.has(String(node.format))) {
    errors.push(`${path}: format ${String(node.format)} is not supported`);
  }
  const intOrString = node["x-kubernetes-int-or-string"] === true;
  const preserve = node["x-kubernetes-preserve-unknown-fields"] === true;

  if (inJunctor) {
    for (const key of FORBIDDEN_IN_JUNCTOR) {
      if (key in node) errors.push(`${path}: ${key} is not allowed inside anyOf/allOf/oneOf/not`);
    }
  } else if (intOrString) {
    if ("type" in node) errors.push(`${path}: an int-or-string node must not set type`);
    if (node.anyOf !== undefined && JSON.stringify(node.anyOf) !== INT_OR_STRING) {
      errors.push(`${path}: int-or-string anyOf must be exactly [{type: integer}, {type: string}]`);
    }
  } else if (!preserve) {
    if (typeof node.type !== "string" || !TYPES.has(node.type)) {
      errors.push(`${path}: type must be set to one of ${[...TYPES].join(", ")}`);
    }
  }

  if (node.type === "object" || isObject(node.properties)) {
    if (node.properties !== undefined && node.additionalProperties !== undefined) {
      errors.push(`${path}: properties and additionalProperties are mutually exclusive`);
    }
    if (node.additionalProperties !== undefined && !isObject(node.additionalProperties)) {
      errors.push(`${path}: additionalProperties must be a schema (false is not allowed)`);
    }
  }
  if (Array.isArray(node.required) && isObject(node.properties)) {
    for (const r of node.required as string[]) {
      if (!(r in node.properties)) errors.push(`${path}: required field ${r} has no schema`);
    }
  }
  if (node.type === "array" && !inJunctor) {
    if (!isObject(node.items)) errors.push(`${path}: an array needs one items schema`);
  }
  if (Array.isArray(node.enum) && typeof node.type === "string") {
    for (const v of node.enum) {
      const t = Number.isInteger(v) ? "integer" : typeof v;
      if (t !== node.type && !(t === "integer" && node.type === "number")) {
        errors.push(`${path}: enum value ${JSON.stringify(v)} is not of type ${node.type}`);
      }
    }
  }
  if (node["x-kubernetes-list-type"] === "map") {
    const keys = node["x-kubernetes-list-map-keys"];
    const items = node.items;
    if (!Array.isArray(keys) || keys.length === 0) {
      errors.push(`${path}: list-type map needs x-kubernetes-list-map-keys`);
    } else if (isObject(items)) {
      const req = new Set((items.required as string[] | undefined) ?? []);
      const props = isObject(items.properties) ? items.properties : {};
      for (const k of keys as string[]) {
        const p = props[k];
        if (!req.has(k) && !(isObject(p) && "default" in p)) {
          errors.push(`${path}: map key ${k} must be required or defaulted`);
        }
      }
    }
  }
  const rules = node["x-kubernetes-validations"];
  if (rules !== undefined) {
    if (!Array.isArray(rules)) errors.push(`${path}: x-kubernetes-validations must be a list`);
    else {
      for (const [i, r] of rules.entries()) {
        if (!isObject(r) || typeof r.rule !== "string" || r.rule.length === 0) {
          errors.push(`${path}: x-kubernetes-validations[${i}] needs a rule`);
        } else if (typeof r.message !== "string" || r.message.length === 0) {
          errors.push(`${path}: x-kubernetes-validations[${i}] needs a human message`);
        }
      }
    }
  }
  if (isObject(node.properties)) {
    for (const [name, child] of Object.entries(node.properties)) {
      if (isObject(child)) walk(child, `${path}.properties.${name}`, inJunctor, errors);
      else errors.push(`${path}.properties.${name}: not a schema`);
    }
    if (path === "openAPIV3Schema.properties.metadata") {
      for (const name of Object.keys(node.properties)) {
        if (name !== "name" && name !== "generateName") {
          errors.push(`${path}: metadata may only restrict name and generateName`);
        }
      }
    }
  }
  if (isObject(node.items)) walk(node.items, `${path}.items`, inJunctor, errors);
  if (isObject(node.additionalProperties)) {
    walk(node.additionalProperties, `${path}.additionalProperties`, inJunctor, errors);
  }
  for (const junctor of ["anyOf", "allOf", "oneOf"]) {
    const list = node[junctor];
    if (list === undefined) continue;
    if (!Array.isArray(list)) {
      errors.push(`${path}.${junctor}: must be a list`);
      continue;
    }
    // The int-or-string pair is the one place a junctor may carry types.
    if (intOrString && junctor === "anyOf" && JSON.stringify(list) === INT_OR_STRING) continue;
    list.forEach((b, i) => {
      if (isObject(b)) walk(b, `${path}.${junctor}[${i}]`, true, errors);
    });
  }
  if (isObject(node.not)) walk(node.not, `${path}.not`, true, errors);
}
