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

const NANOS_PER_UNIT = 10n ** 9n;
const DECIMAL_SUFFIX_EXPONENT: Record<string, number> = {
  n: -9,
  u: -6,
  m: -3,
  "": 0,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};
const BINARY_SUFFIX_SHIFT: Record<string, bigint> = {
  Ki: 10n,
  Mi: 20n,
  Gi: 30n,
  Ti: 40n,
  Pi: 50n,
  Ei: 60n,
};

/**
 * A quantity exactly as the API server's quantity() holds it, in nano-units: no float rounding
 * ("100.0000000000000001G" is more than 100G), and what is finer than a nano-unit rounded up,
 * away from zero, as resource.ParseQuantity does ("999.9999999999" is 1k). Throws naming the
 * text when Kubernetes would not parse it (e.g. "1K", "1e1.5").
 */
export function quantityNanos(value: string | number): bigint {
  if (typeof value === "number") {
    if (Number.isSafeInteger(value)) return BigInt(value) * NANOS_PER_UNIT;
    if (!Number.isFinite(value)) throw new Error(`quantity ${value} is not finite`);
    return quantityNanos(String(value));
  }
  const m =
    /^([+-]?)(?:([0-9]+)(?:\.([0-9]*))?|\.([0-9]+))(?:[eE]([+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$/.exec(
      value,
    );
  if (!m) throw new Error(`"${value}" is not a Kubernetes quantity (e.g. 50M, 1.5Gi, 64Ki)`);
  const [, sign, whole = "", dotted, bare, exponent, suffix = ""] = m;
  const fraction = dotted ?? bare ?? "";
  let digits = BigInt(`${whole}${fraction}` || "0");
  if (digits === 0n) return 0n;
  digits <<= BINARY_SUFFIX_SHIFT[suffix] ?? 0n;
  // value = digits × 10^(power - 9) units, i.e. digits × 10^power nano-units.
  const decimal =
    exponent !== undefined
      ? quantityExponent(value, exponent)
      : (DECIMAL_SUFFIX_EXPONENT[suffix] ?? 0);
  // Clamped so that "1e999999" stays cheap: past the clamp the value is beyond any bound
  // (above) or below one nano-unit (below, rounded up to 1n all the same).
  const power = Math.min(
    40,
    Math.max(-(whole.length + fraction.length + 2), decimal + 9 - fraction.length),
  );
  let nanos: bigint;
  if (power >= 0) nanos = digits * 10n ** BigInt(power);
  else {
    const divisor = 10n ** BigInt(-power);
    nanos = (digits + divisor - 1n) / divisor;
  }
  return sign === "-" ? -nanos : nanos;
}

/** An "e" exponent as resource.ParseQuantity reads it: an int64, then truncated to 32 bits. */
function quantityExponent(value: string, exponent: string): number {
  const e = BigInt(exponent);
  if (BigInt.asIntN(64, e) !== e)
    throw new Error(`"${value}" is not a Kubernetes quantity (exponent out of range)`);
  return Number(BigInt.asIntN(32, e));
}

/** Whether a quantity is a whole number of units (exactly, as quantityNanos reads it). */
export function quantityIsWhole(value: string | number): boolean {
  return quantityNanos(value) % NANOS_PER_UNIT === 0n;
}

const DURATION_UNIT_NS: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  µs: 1_000n,
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};
const MAX_DURATION_NS = 2n ** 63n - 1n;

/**
 * A Go duration in nanoseconds, exactly as time.ParseDuration (and so CEL's duration()) reads
 * it: fraction digits past the nanosecond are dropped, not rounded ("1.0000000001s" is 1s), and
 * a value beyond int64 nanoseconds (about 2562047h) is an error, as it is to the API server.
 */
export function durationNanos(value: string): bigint {
  if (!new RegExp(DURATION_PATTERN).test(value)) {
    throw new Error(`"${value}" is not a duration (e.g. 30s, 5m, 24h)`);
  }
  let total = 0n;
  for (const m of value.matchAll(/([0-9]+)(?:\.([0-9]+))?(ns|us|µs|ms|s|m|h)/g)) {
    const unit = DURATION_UNIT_NS[m[3]!]!;
    let v = BigInt(m[1]!) * unit;
    // Go's leadingFraction: digits while they fit in 63 bits, then the rest ignored; the
    // fraction is added through float64, truncated, as Go does.
    let f = 0n;
    let scale = 1;
    for (const c of m[2] ?? "") {
      if (f > MAX_DURATION_NS / 10n) break;
      const next = f * 10n + BigInt(c);
      if (next > MAX_DURATION_NS + 1n) break;
      f = next;
      scale *= 10;
    }
    if (f > 0n) v += BigInt(Math.trunc(Number(f) * (Number(unit) / scale)));
    total += v;
    if (total > MAX_DURATION_NS) throw new Error(`"${value}" is too long a duration`);
  }
  return total;
}
