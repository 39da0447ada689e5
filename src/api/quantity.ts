// Kubernetes resource quantities ("50M", "1.5Gi", "64Ki", 1000) and Go durations ("30s", "24h").

/** The regular expression Kubernetes uses for resource.Quantity (as controller-gen emits it). */
export const QUANTITY_PATTERN =
  "^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$";

const SUFFIX: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  "": 1,
  k: 1e3,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** Parses a quantity to a number; throws with the offending text when it is not one. */
export function parseQuantity(value: string | number): number {
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new Error(`quantity ${value} is not finite`);
    return value;
  }
  const m =
    /^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:([eE][+-]?[0-9]+(?:\.[0-9]*)?)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkKMGTPE]))?$/.exec(
      value.trim(),
    );
  if (!m) throw new Error(`"${value}" is not a Kubernetes quantity (e.g. 50M, 1.5Gi, 64Ki)`);
  const base = Number(m[1]);
  if (m[2]) return Number(`${m[1]}${m[2]}`);
  return base * (SUFFIX[m[3] ?? ""] ?? 1);
}

export const DURATION_PATTERN = "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

const DURATION_UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Parses a Go duration string ("1h30m", "10s") to milliseconds. */
export function parseDuration(value: string): number {
  if (!new RegExp(DURATION_PATTERN).test(value)) {
    throw new Error(`"${value}" is not a duration (e.g. 30s, 5m, 24h)`);
  }
  let total = 0;
  for (const m of value.matchAll(/([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)/g)) {
    total += Number(m[1]) * (DURATION_UNIT_MS[m[2] ?? "s"] ?? 0);
  }
  return total;
}
