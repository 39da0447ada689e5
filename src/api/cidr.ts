import { isIPv4, isIPv6 } from "node:net";

export interface Cidr {
  family: 4 | 6;
  /** Network address bytes (host bits cleared). */
  address: Uint8Array;
  prefixLength: number;
}

function ipv4Bytes(ip: string): Uint8Array {
  return Uint8Array.from(ip.split(".").map(Number));
}

function ipv6Bytes(ip: string): Uint8Array {
  let text = ip;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4?.[1]) {
    const b = ipv4Bytes(v4[1]);
    text = `${text.slice(0, -v4[1].length)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head = "", tail] = text.split("::");
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = Number.parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

export function parseIP(ip: string): { family: 4 | 6; bytes: Uint8Array } {
  if (isIPv4(ip)) return { family: 4, bytes: ipv4Bytes(ip) };
  if (isIPv6(ip)) return { family: 6, bytes: ipv6Bytes(ip) };
  throw new Error(`"${ip}" is not an IP address`);
}

/** An IPv4 address written as IPv6 (::ffff:a.b.c.d, in any spelling): Go's Is4In6. */
function isIPv4Mapped(bytes: Uint8Array): boolean {
  return bytes.length === 16 && bytes.every((b, i) => (i < 10 ? b === 0 : i > 11 || b === 0xff));
}

/**
 * Why Kubernetes' CEL isIP/isCIDR refuses an address node:net accepts, or undefined: a zone
 * ("fe80::1%eth0") and an IPv4-mapped IPv6 address ("::ffff:169.254.169.254", which the
 * datapath would match against IPv6 packets only).
 */
function kubernetesRefusal(ipText: string, ip: { family: 4 | 6; bytes: Uint8Array }) {
  if (ipText.includes("%")) return "a zone (%...) is not allowed";
  if (ip.family === 6 && isIPv4Mapped(ip.bytes))
    return "an IPv4-mapped IPv6 address is not allowed: write the IPv4 address";
  return undefined;
}

/** Whether text is an IP address as the API server's isIP() reads it (no zone, not mapped). */
export function isIPAddress(text: string): boolean {
  try {
    return kubernetesRefusal(text, parseIP(text)) === undefined;
  } catch {
    return false;
  }
}

/**
 * Parses "10.0.0.0/8" or "fd00::/64"; throws naming the text when it is not a CIDR, refusing
 * what the API server's isCIDR() refuses: a zone, an IPv4-mapped address, a prefix length with
 * a leading zero ("/08").
 */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf("/");
  if (slash < 0) throw new Error(`"${text}" is not a CIDR (missing /prefix, e.g. 10.0.0.0/8)`);
  const ipText = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  let ip: { family: 4 | 6; bytes: Uint8Array };
  try {
    ip = parseIP(ipText);
  } catch {
    throw new Error(`"${text}" is not a CIDR ("${ipText}" is not an IP address)`);
  }
  const refusal = kubernetesRefusal(ipText, ip);
  if (refusal) throw new Error(`"${text}" is not a CIDR (${refusal})`);
  const max = ip.family === 4 ? 32 : 128;
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText) || Number(prefixText) > max) {
    throw new Error(`"${text}" is not a CIDR (prefix length must be 0-${max}, no leading zero)`);
  }
  const prefixLength = Number(prefixText);
  const address = Uint8Array.from(ip.bytes);
  for (let bit = prefixLength; bit < max; bit++) {
    address[bit >> 3]! &= ~(0x80 >> (bit & 7));
  }
  return { family: ip.family, address, prefixLength };
}

/** Whether a CIDR's address has bits set after its prefix ("10.0.0.1/8"): false if not a CIDR. */
export function hasHostBits(text: string): boolean {
  try {
    const c = parseCidr(text);
    const ip = parseIP(text.slice(0, text.indexOf("/")));
    return c.address.some((b, i) => b !== ip.bytes[i]);
  } catch {
    return false;
  }
}

export function isCidr(text: string): boolean {
  try {
    parseCidr(text);
    return true;
  } catch {
    return false;
  }
}

export function formatCidr(c: Cidr): string {
  if (c.family === 4) return `${Array.from(c.address).join(".")}/${c.prefixLength}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2)
    groups.push(((c.address[i]! << 8) | c.address[i + 1]!).toString(16));
  return `${groups.join(":").replace(/(^|:)0(:0)+(:|$)/, "::")}/${c.prefixLength}`;
}

/** True when ip lies inside cidr (same family). */
export function cidrContains(cidr: Cidr, ip: string): boolean {
  const p = parseIP(ip);
  if (p.family !== cidr.family) return false;
  for (let bit = 0; bit < cidr.prefixLength; bit++) {
    const mask = 0x80 >> (bit & 7);
    if ((p.bytes[bit >> 3]! & mask) !== (cidr.address[bit >> 3]! & mask)) return false;
  }
  return true;
}
