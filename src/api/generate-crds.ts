import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { renderCRD } from "./crd.js";
import { crdName, KINDS } from "./kinds.js";

const HEADER = "# Generated from src/api by `make crds`. Do not edit.\n";

/** Pure: file name → content of every generated file under crds/. */
export function renderCRDFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const k of KINDS) {
    files.set(`${crdName(k)}.yaml`, HEADER + stringify(renderCRD(k), { lineWidth: 0 }));
  }
  return files;
}

/** Rewrites crds/ so that it holds exactly what renderCRDFiles returns. */
export function writeCRDFiles(dir: string): string[] {
  mkdirSync(dir, { recursive: true });
  const files = renderCRDFiles();
  for (const name of readdirSync(dir)) {
    if (!files.has(name)) rmSync(join(dir, name));
  }
  for (const [name, content] of files) writeFileSync(join(dir, name), content);
  return [...files.keys()];
}
