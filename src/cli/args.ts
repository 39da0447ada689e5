import { parseArgs } from "node:util";
import type { KubeConfig } from "@kubernetes/client-node";
import { newKubeConfig } from "../kube/kubeconfig.js";

/** --flag value parsing with a clear error naming the flag. */
export function flags<
  T extends Record<
    string,
    { type: "string" | "boolean"; default?: string | boolean; short?: string }
  >,
>(
  command: string,
  argv: string[],
  options: T,
): { [K in keyof T]: T[K]["type"] extends "boolean" ? boolean : string | undefined } {
  try {
    const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
    return values as never;
  } catch (err) {
    throw new Error(`${command}: ${(err as Error).message}`);
  }
}

/** --kubeconfig, else $KUBECONFIG, else in-cluster (service account), else ~/.kube/config. */
export function loadKubeConfig(path: string | undefined): KubeConfig {
  const kc = newKubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  return kc;
}
