import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { renderCRD } from "./crd.js";
import { REPO_ROOT, readManifests } from "./fixtures.js";
import { renderCRDFiles } from "./generate-crds.js";
import { KINDS, kindByName } from "./kinds.js";
import { structuralViolations } from "./structural.js";

describe("generated CRDs", () => {
  it("crds/ holds exactly what `make crds` generates", () => {
    const expected = renderCRDFiles();
    const committed = readdirSync(join(REPO_ROOT, "crds")).sort();
    assert.deepEqual(committed, [...expected.keys()].sort(), "run `make crds` and commit crds/");
    for (const [name, content] of expected) {
      assert.equal(
        readFileSync(join(REPO_ROOT, "crds", name), "utf8"),
        content,
        `crds/${name} is stale: run \`make crds\``,
      );
    }
  });

  for (const k of KINDS) {
    it(`${k.kind}: the schema is structural`, () => {
      const crd = renderCRD(k);
      const version = (crd.spec.versions as { schema: { openAPIV3Schema: object } }[])[0]!;
      assert.deepEqual(structuralViolations(version.schema.openAPIV3Schema as never), []);
    });
  }

  it("every kind has status, printer columns READY/NODES-or-APPLIED/AGE, a short name and the netloom category", () => {
    for (const k of KINDS) {
      const spec = renderCRD(k).spec as {
        names: { shortNames: string[]; categories: string[] };
        versions: {
          subresources: { status: object };
          additionalPrinterColumns: { name: string }[];
        }[];
      };
      assert.deepEqual(spec.versions[0]!.subresources, { status: {} });
      const cols = spec.versions[0]!.additionalPrinterColumns.map((c) => c.name);
      assert.ok(cols.includes("Age"), `${k.kind}: ${cols}`);
      if (!k.internal) {
        assert.ok(cols.includes("Ready"), `${k.kind}: ${cols}`);
        // A mesh peer's nodes are the remote cluster's: connected and how many are mirrored.
        const counts =
          k.kind === "ClusterMeshPeer" ? ["Connected", "Remote-Nodes"] : ["Nodes", "Drifted"];
        for (const c of counts) assert.ok(cols.includes(c), `${k.kind}: ${cols}`);
      }
      assert.ok(spec.names.shortNames.length > 0);
      assert.deepEqual(spec.names.categories, ["netloom"]);
    }
  });
});

describe("structural schema checker", () => {
  const cases: [string, object, RegExp][] = [
    ["missing type", { type: "object", properties: { a: {} } }, /properties\.a: type must be set/],
    ["$ref", { type: "object", properties: { a: { $ref: "#/x", type: "string" } } }, /\$ref/],
    [
      "additionalProperties false",
      { type: "object", additionalProperties: false },
      /additionalProperties must be a schema/,
    ],
    [
      "type inside anyOf",
      { type: "object", properties: { a: { type: "string", anyOf: [{ type: "string" }] } } },
      /type is not allowed inside anyOf/,
    ],
    [
      "int-or-string with a type",
      { type: "object", properties: { a: { type: "string", "x-kubernetes-int-or-string": true } } },
      /must not set type/,
    ],
    [
      "list map key neither required nor defaulted",
      {
        type: "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["k"],
        items: { type: "object", properties: { k: { type: "string" } } },
      },
      /map key k must be required/,
    ],
    [
      "metadata restricting labels",
      {
        type: "object",
        properties: { metadata: { type: "object", properties: { labels: { type: "object" } } } },
      },
      /metadata may only restrict/,
    ],
    [
      "CEL rule without message",
      { type: "string", "x-kubernetes-validations": [{ rule: "true" }] },
      /message/,
    ],
  ];
  for (const [name, schema, pattern] of cases) {
    it(`refuses ${name}`, () => {
      const errors = structuralViolations(schema as never);
      assert.ok(
        errors.some((e) => pattern.test(e)),
        `expected ${pattern} in ${JSON.stringify(errors)}`,
      );
    });
  }
});

describe("samples and invalid fixtures against the zod schemas", () => {
  const samples = readManifests("config/samples");
  it("config/samples holds one object of every user-facing kind", () => {
    assert.deepEqual(
      samples.map((s) => s.object.kind).sort(),
      KINDS.filter((k) => !k.internal && !k.operatorCreated)
        .map((k) => k.kind)
        .sort(),
    );
  });
  for (const s of samples) {
    it(`${s.file} is valid`, () => {
      const r = kindByName(s.object.kind).object.safeParse(s.object);
      assert.ok(r.success, r.success ? "" : JSON.stringify(r.error.issues));
    });
  }
  const invalid = readManifests("test/fixtures/invalid");
  it("there are at least 20 invalid fixtures, each naming the field it gets wrong", () => {
    assert.ok(invalid.length >= 20, `${invalid.length}`);
    for (const f of invalid) assert.ok(f.expectField, `${f.file} lacks # expect-field`);
  });
  for (const f of invalid) {
    it(`${f.file} is refused at ${f.expectField}`, () => {
      const r = kindByName(f.object.kind).object.safeParse(f.object);
      assert.equal(r.success, false, `${f.file} was accepted`);
      if (!r.success) {
        const paths = r.error.issues.map((i) => {
          const p = i.path
            .map((s) => (typeof s === "number" ? `[${s}]` : `.${String(s)}`))
            .join("");
          return (
            (p.startsWith(".") ? p.slice(1) : p) +
            (i.code === "unrecognized_keys" ? `.${i.keys.join(",")}` : "")
          );
        });
        assert.ok(
          paths.some((p) => p.startsWith(f.expectField!)),
          `${f.file}: issues at ${JSON.stringify(paths)}, expected ${f.expectField}`,
        );
      }
    });
  }
});
