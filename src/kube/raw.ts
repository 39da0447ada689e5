import { request } from "node:https";
import type { KubeConfig } from "@kubernetes/client-node";

export interface RawResponse {
  status: number;
  body: string;
  json<T = unknown>(): T;
}

/**
 * One HTTP request to the API server with the kubeconfig's credentials. For what the generated
 * client does not expose: fieldValidation=Strict, the Table format kubectl uses, raw paths.
 */
export async function kubeRequest(
  kc: KubeConfig,
  method: string,
  path: string,
  opts: { body?: unknown; contentType?: string; accept?: string; timeoutMs?: number } = {},
): Promise<RawResponse> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("kubeconfig has no current cluster");
  const url = new URL(path, cluster.server);
  const options: Parameters<typeof request>[1] = {
    method,
    headers: {
      accept: opts.accept ?? "application/json",
      ...(opts.body !== undefined
        ? { "content-type": opts.contentType ?? "application/json" }
        : {}),
    },
  };
  await kc.applyToHTTPSOptions(options);
  const payload =
    opts.body === undefined
      ? undefined
      : typeof opts.body === "string"
        ? opts.body
        : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const req = request(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        resolve({
          status: res.statusCode ?? 0,
          body,
          json: <T>() => JSON.parse(body) as T,
        });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    if (opts.timeoutMs !== undefined) {
      req.setTimeout(opts.timeoutMs, () =>
        req.destroy(new Error(`${method} ${url.pathname}: no answer within ${opts.timeoutMs} ms`)),
      );
    }
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** The REST path of a netloom.io object (collection path when name is undefined). */
export function resourcePath(
  group: string,
  version: string,
  plural: string,
  namespace: string | undefined,
  name?: string,
): string {
  const ns = namespace ? `/namespaces/${namespace}` : "";
  return `/apis/${group}/${version}${ns}/${plural}${name ? `/${name}` : ""}`;
}
