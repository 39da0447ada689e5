import type { KubeConfig } from "@kubernetes/client-node";
import type { Manifest } from "../api/fixtures.js";
import { GROUP, kindByName, VERSION } from "../api/kinds.js";
import { kubeRequest, resourcePath } from "./raw.js";

/** Server-side-applies manifests as `kubectl apply --server-side` would; throws naming the file. */
export async function applyManifests(
  kc: KubeConfig,
  manifests: Manifest[],
  fieldManager: string,
): Promise<void> {
  for (const m of manifests) {
    const k = kindByName(m.object.kind);
    const path = resourcePath(
      GROUP,
      VERSION,
      k.plural,
      m.object.metadata.namespace,
      m.object.metadata.name,
    );
    const res = await kubeRequest(
      kc,
      "PATCH",
      `${path}?fieldManager=${fieldManager}&fieldValidation=Strict&force=true`,
      {
        body: m.object,
        contentType: "application/apply-patch+yaml",
      },
    );
    if (res.status >= 300) {
      const message = res.json<{ message?: string }>().message ?? res.body;
      throw new Error(`${m.file}: ${message}`);
    }
  }
}
