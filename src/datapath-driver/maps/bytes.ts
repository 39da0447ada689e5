import { endianness } from "node:os";

/** Map keys and values hold host-order integers where the C struct says so (prefixlen, ids). */
export const LE = endianness() === "LE";

export function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  if (LE) b.writeUInt32LE(value);
  else b.writeUInt32BE(value);
  return b;
}

export function readU32(b: Buffer, offset = 0): number {
  return LE ? b.readUInt32LE(offset) : b.readUInt32BE(offset);
}
