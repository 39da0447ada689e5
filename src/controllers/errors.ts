/** An error response (HTTP status or watch ERROR event) from the API server. */
export class KubeStatusError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly reason?: string,
  ) {
    super(message);
    this.name = "KubeStatusError";
  }
}

/**
 * The HTTP status an error carries, whichever client produced it: ApiException.code,
 * Watch's error.statusCode, or our KubeStatusError. Network errors (code "ECONNREFUSED") have none.
 */
export function statusCodeOf(err: unknown): number | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const { code, statusCode } = err as { code?: unknown; statusCode?: unknown };
  if (typeof code === "number") return code;
  if (typeof statusCode === "number") return statusCode;
  return undefined;
}

export const isConflict = (err: unknown): boolean => statusCodeOf(err) === 409;
export const isNotFound = (err: unknown): boolean => statusCodeOf(err) === 404;
/** 410 Gone: the resourceVersion we asked for was compacted away; only a relist helps. */
export const isGone = (err: unknown): boolean => statusCodeOf(err) === 410;

/** A short, loggable description (ApiException messages embed whole response bodies). */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = statusCodeOf(err);
    const first = err.message.split("\n")[0] ?? err.message;
    return code === undefined ? first : `${code}: ${first}`;
  }
  return String(err);
}
