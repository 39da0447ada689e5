import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

/** The repository root, from src/ or from dist/src/. */
export const REPO_ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!readdirSync(dir).includes("package.json")) dir = resolve(dir, "..");
  return dir;
})();

export interface Manifest {
  file: string;
  object: Record<string, unknown> & {
    apiVersion: string;
    kind: string;
    metadata: { name: string; namespace?: string };
  };
  /** From a leading "# expect-field: path" comment (invalid fixtures). */
  expectField?: string;
}

/** Every YAML object in a directory (kustomization.yaml excluded), in file-name order. */
export function readManifests(dir: string): Manifest[] {
  const abs = resolve(REPO_ROOT, dir);
  const out: Manifest[] = [];
  for (const name of readdirSync(abs).sort()) {
    if (!name.endsWith(".yaml") || name === "kustomization.yaml") continue;
    const text = readFileSync(join(abs, name), "utf8");
    const expectField = /^# expect-field: (\S+)/m.exec(text)?.[1];
    for (const doc of parseAllDocuments(text)) {
      const object = doc.toJS() as Manifest["object"] | null;
      if (object)
        out.push({ file: join(dir, name), object, ...(expectField ? { expectField } : {}) });
    }
  }
  return out;
}
