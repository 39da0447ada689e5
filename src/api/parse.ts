import type { z } from "zod";

/** An API object checked against its zod schema: the value, or what is wrong and where. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/** "spec.egressDeny[0].cidr" from a zod issue path. */
export function fieldPath(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === "number" ? `[${p}]` : `${i === 0 ? "" : "."}${String(p)}`))
    .join("");
}

/**
 * Parses an object the API server accepted. The CRD schema comes from the same zod schema, so a
 * failure means a stale CRD or a bug; the error names the object and the first fields, so it
 * can be reported as an Event and a condition rather than crash or misbehave.
 */
export function parseApiObject<S extends z.ZodType>(schema: S, obj: unknown): Parsed<z.infer<S>> {
  const r = schema.safeParse(obj);
  if (r.success) return { ok: true, value: r.data };
  const meta = (obj as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } })
    ?.metadata;
  const kind = String((obj as { kind?: unknown })?.kind ?? "object");
  const name = [meta?.namespace, meta?.name].filter((x) => typeof x === "string").join("/");
  const fields = r.error.issues
    .slice(0, 3)
    .map((i) => `${fieldPath(i.path) || "(root)"}: ${i.message}`)
    .join("; ");
  return { ok: false, error: `${kind} ${name || "(unnamed)"} is not usable: ${fields}` };
}
