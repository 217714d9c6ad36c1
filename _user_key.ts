/**
 * Validation of user keys and their canonical byte encoding (`encodeKey`),
 * which binds an encrypted blob to the key it lives at and lets `vacuum` find
 * the record a version entry belongs to.
 *
 * @module
 */

import { ByteReader, ByteWriter, concat, fromHex, fromUtf8, utf8Length } from "./_bytes.ts";
import { KV_KEY_MAX } from "./_limits.ts";

const TAG_BYTES = 0x01;
const TAG_STRING = 0x02;
const TAG_NUMBER = 0x03;
const TAG_BIGINT = 0x04;
const TAG_BOOLEAN = 0x05;

/** Describes a key for error messages without ever printing binary parts in full. */
export function describeKey(key: Deno.KvKey): string {
  const parts = key.map((part) => {
    if (part instanceof Uint8Array) return `<${part.length} bytes>`;
    if (typeof part === "string") return JSON.stringify(part);
    if (typeof part === "bigint") return `${part}n`;
    if (Object.is(part, -0)) return "-0";
    return String(part);
  });
  return `[${parts.join(", ")}]`;
}

/**
 * Checks that `key` is a Deno.KvKey kvcrypt can store a blob at.
 *
 * @throws {TypeError} if it is not a non-empty array of Uint8Array, string,
 * number (not NaN), bigint or boolean parts, or lies under kvcrypt's own prefix.
 */
export function assertUserKey(key: unknown, action: string): asserts key is Deno.KvKey {
  if (!Array.isArray(key) || key.length === 0) {
    throw new TypeError(`Cannot ${action}: the key must be a non-empty array of key parts`);
  }
  for (const part of key) {
    if (
      !(part instanceof Uint8Array) && typeof part !== "string" && typeof part !== "bigint" &&
      typeof part !== "boolean" && (typeof part !== "number" || Number.isNaN(part))
    ) {
      throw new TypeError(
        `Cannot ${action}: a key part must be a Uint8Array, string, number (not NaN), bigint or boolean`,
      );
    }
  }
  // Stops a caller's blob from overwriting kvcrypt's own chunk or version entries.
  if (key[0] === "__kvcrypt__") {
    throw new TypeError(`Cannot ${action}: keys starting with "__kvcrypt__" are reserved`);
  }
  // Checked before anything is written: Deno KV would refuse the record only
  // after the chunks were stored.
  const size = kvKeySize(key);
  if (size > KV_KEY_MAX) {
    throw new RangeError(
      `Cannot ${action}: the key takes ${size} bytes in Deno KV's encoding, more than ${KV_KEY_MAX}`,
    );
  }
}

/** Bytes of a bigint's magnitude. */
function magnitudeBytes(value: bigint): number {
  const magnitude = value < 0n ? -value : value;
  return magnitude === 0n ? 0 : Math.ceil(magnitude.toString(16).length / 2);
}

/** Zero bytes in `bytes`: Deno KV escapes each with a second byte. */
function zeroBytes(bytes: Uint8Array): number {
  let count = 0;
  for (const byte of bytes) if (byte === 0) count++;
  return count;
}

/**
 * Bytes of a string part in Deno KV's encoding before its tag and
 * terminator: its UTF-8 length plus one escape byte per U+0000, counted
 * without encoding it.
 */
function encodedStringBytes(text: string): number {
  let zeros = 0;
  for (let at = text.indexOf("\0"); at >= 0; at = text.indexOf("\0", at + 1)) zeros++;
  return utf8Length(text) + zeros;
}

/** Largest integer magnitude Deno KV writes with a one-byte tag and no length byte. */
const SHORT_INT_BYTES = 8;

/**
 * Size of a key in Deno KV's encoding (a tuple encoding): a tag per part;
 * bytes and strings escaped and terminated; numbers 8 bytes; bigints their
 * magnitude, with a length byte past 8 bytes; booleans the tag alone.
 */
export function kvKeySize(key: Deno.KvKey): number {
  let size = 0;
  for (const part of key) {
    if (part instanceof Uint8Array) size += 2 + part.length + zeroBytes(part);
    else if (typeof part === "string") size += 2 + encodedStringBytes(part);
    else if (typeof part === "number") size += 1 + 8;
    else if (typeof part === "bigint") {
      const bytes = magnitudeBytes(part);
      size += (bytes > SHORT_INT_BYTES ? 2 : 1) + bytes;
    } else size += 1;
  }
  return size;
}

function bigintBytes(value: bigint): Uint8Array {
  const magnitude = value < 0n ? -value : value;
  const digits = magnitude === 0n ? "" : magnitude.toString(16);
  // Whole bytes, big-endian: an odd number of digits takes a leading zero.
  const bytes = fromHex(digits.length % 2 ? `0${digits}` : digits);
  return concat([Uint8Array.of(value < 0n ? 1 : 0), bytes]);
}

/**
 * Bytes of a part's payload in {@linkcode encodeKey} (a bigint's, already
 * encoded, given).
 *
 * @throws {TypeError} for a part that is not a key part (a symbol, NaN).
 */
function payloadLength(part: Deno.KvKeyPart, bigint: Uint8Array | undefined): number {
  if (part instanceof Uint8Array) return part.length;
  if (typeof part === "string") return utf8Length(part);
  if (bigint !== undefined) return bigint.length;
  if (typeof part === "boolean") return 1;
  if (typeof part === "number" && !Number.isNaN(part)) return 8;
  throw new TypeError("Cannot encode key: a part is a symbol, NaN or of an unknown type");
}

/** Appends one part: its tag byte, its payload's u32 length and the payload. */
function writePart(
  writer: ByteWriter,
  part: Deno.KvKeyPart,
  length: number,
  bigint: Uint8Array | undefined,
): ByteWriter {
  if (part instanceof Uint8Array) return writer.u8(TAG_BYTES).u32(length).bytes(part);
  if (typeof part === "string") return writer.u8(TAG_STRING).u32(length).utf8(part, length);
  if (bigint !== undefined) return writer.u8(TAG_BIGINT).u32(length).bytes(bigint);
  if (typeof part === "boolean") return writer.u8(TAG_BOOLEAN).u32(1).u8(part ? 1 : 0);
  // DataView writes −0 as 0x80 00 …, keeping it apart from 0 as Deno KV does.
  return writer.u8(TAG_NUMBER).u32(8).f64(part as number);
}

/** Per-part tag and length bytes in {@linkcode encodeKey}. */
const PART_PREFIX_BYTES = 1 + 4;

/**
 * The canonical bytes of a user key: for each part a tag byte, a u32 length
 * and the payload (FORMAT.md, "encodeKey"), written into one buffer of the
 * exact size.
 */
export function encodeKey(key: Deno.KvKey): Uint8Array {
  const bigints = key.map((part) => typeof part === "bigint" ? bigintBytes(part) : undefined);
  const lengths = key.map((part, i) => payloadLength(part, bigints[i]));
  const size = lengths.reduce((sum, length) => sum + PART_PREFIX_BYTES + length, 0);
  const writer = new ByteWriter(size);
  key.forEach((part, i) => writePart(writer, part, lengths[i]!, bigints[i]));
  return writer.finish();
}

function decodeBigint(payload: Uint8Array): bigint {
  let value = 0n;
  for (const byte of payload.subarray(1)) value = (value << 8n) | BigInt(byte);
  return payload[0] === 1 ? -value : value;
}

function decodePart(tag: number, payload: Uint8Array): Deno.KvKeyPart {
  switch (tag) {
    case TAG_BYTES:
      return payload.slice();
    case TAG_STRING:
      return fromUtf8(payload);
    case TAG_NUMBER:
      return new ByteReader(payload).f64("number");
    case TAG_BIGINT:
      return decodeBigint(payload);
    case TAG_BOOLEAN:
      return payload[0] === 1;
  }
  throw new TypeError(`Cannot decode key: unknown part tag ${tag}`);
}

/** The inverse of {@linkcode encodeKey}. */
export function decodeKey(bytes: Uint8Array): Deno.KvKey {
  const reader = new ByteReader(bytes);
  const key: Deno.KvKeyPart[] = [];
  while (reader.remaining > 0) {
    const tag = reader.u8("key part tag");
    const payload = reader.bytes(reader.u32("key part length"), "key part");
    key.push(decodePart(tag, payload));
  }
  return key;
}
