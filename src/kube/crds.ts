import { setTimeout as sleep } from "node:timers/promises";
import type { KubeConfig } from "@kubernetes/client-node";
import { renderCRD } from "../api/crd.js";
import { crdName, KINDS } from "../api/kinds.js";
import { kubeRequest } from "./raw.js";

export const CRD_FIELD_MANAGER = "netloom-crds";

/** Server-side-applies every Netloom CRD and waits until each is Established. */
export async function installCRDs(kc: KubeConfig, timeoutMs = 30_000): Promise<void> {
  for (const k of KINDS) {
    const res = await kubeRequest(
      kc,
      "PATCH",
      `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crdName(k)}?fieldManager=${CRD_FIELD_MANAGER}&force=true&fieldValidation=Strict`,
      { body: renderCRD(k), contentType: "application/apply-patch+yaml" },
    );
    if (res.status >= 300) throw new Error(`applying CRD ${crdName(k)}: ${res.status} ${res.body}`);
  }
  const deadline = Date.now() + timeoutMs;
  for (const k of KINDS) {
    for (;;) {
      const res = await kubeRequest(
        kc,
        "GET",
        `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crdName(k)}`,
      );
      const conds =
        res.json<{ status?: { conditions?: { type: string; status: string }[] } }>().status
          ?.conditions ?? [];
      if (conds.some((c) => c.type === "Established" && c.status === "True")) break;
      if (Date.now() > deadline) throw new Error(`CRD ${crdName(k)} not Established: ${res.body}`);
      await sleep(100);
    }
  }
}
