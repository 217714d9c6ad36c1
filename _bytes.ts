/**
 * Big-endian binary writing and strict reading for kvcrypt's byte formats.
 *
 * @module
 */

const encoder = new TextEncoder();
// ignoreBOM: a leading U+FEFF is part of the text (a key part, a kid, a file
// name), not a byte-order mark to strip; stripping it made decodeKey lose it.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** UTF-8 bytes of `text`. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/**
 * Bytes of `text` in UTF-8, counted without encoding it (a lone surrogate
 * counts as U+FFFD, three bytes, as TextEncoder writes it).
 */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit < 0xdc00 && isLowSurrogate(text.charCodeAt(i + 1))) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/** Whether a UTF-16 code unit is the second half of a surrogate pair (NaN past the end is not). */
function isLowSurrogate(unit: number): boolean {
  return unit >= 0xdc00 && unit < 0xe000;
}

/** Longest input {@linkcode fromUtf8} first tries to read as ASCII (kids, key parts, file names). */
const ASCII_SCAN_MAX = 256;

/** Text of UTF-8 `bytes`, every code point kept (a leading U+FEFF too); throws a TypeError on invalid UTF-8. */
export function fromUtf8(bytes: Uint8Array): string {
  // Short ASCII, the common case, is read in JS: valid UTF-8 that TextDecoder would read the same.
  if (bytes.length <= ASCII_SCAN_MAX) {
    let text = "";
    for (let i = 0; i < bytes.length; i++) {
      const byte = bytes[i]!;
      if (byte >= 0x80) return decoder.decode(bytes);
      text += String.fromCharCode(byte);
    }
    return text;
  }
  return decoder.decode(bytes);
}

/** Concatenates byte arrays into a new one. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Whether two byte arrays hold the same bytes (not constant time). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Whether two byte arrays hold the same bytes, in time independent of where they differ. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** Lower-case hex digit pairs of every byte value, built once. */
const HEX_PAIRS: readonly string[] = Array.from(
  { length: 256 },
  (_, byte) => byte.toString(16).padStart(2, "0"),
);

/** Lower-case hex of bytes (`Uint8Array.prototype.toHex` is missing on Node 20). */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += HEX_PAIRS[byte];
  return out;
}

/** Bytes of a hex string (either case); throws a SyntaxError on anything else. */
export function fromHex(text: string): Uint8Array<ArrayBuffer> {
  if (text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) {
    throw new SyntaxError("Cannot decode hex: expected an even number of hex digits");
  }
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Base64 alphabets: `base64` (RFC 4648 §4, padded) and `base64url` (§5, unpadded, as in JWKs). */
export type Base64Alphabet = "base64" | "base64url";

/** The 64 digits of each alphabet, in value order. */
const BASE64_DIGITS: Readonly<Record<Base64Alphabet, string>> = {
  base64: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
  base64url: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
};

/** Text of each alphabet: digits only, then (base64 only) the `=` padding. */
const BASE64_PATTERN: Readonly<Record<Base64Alphabet, RegExp>> = {
  base64: /^[A-Za-z0-9+/]*={0,2}$/,
  base64url: /^[A-Za-z0-9_-]*$/,
};

/**
 * Base64 of bytes: padded in `base64`, unpadded in `base64url`
 * (`Uint8Array.prototype.toBase64` is missing on Node 20).
 */
export function toBase64(bytes: Uint8Array, alphabet: Base64Alphabet = "base64"): string {
  const digits = BASE64_DIGITS[alphabet];
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const group = (bytes[i]! << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    // n bytes (1 to 3) fill n + 1 six-bit digits.
    const count = Math.min(3, bytes.length - i) + 1;
    for (let j = 0; j < count; j++) out += digits[(group >> (18 - 6 * j)) & 63];
  }
  return alphabet === "base64" ? out + "=".repeat((3 - (bytes.length % 3)) % 3) : out;
}

/**
 * Bytes of base64 text in `alphabet`, padding optional; the unused low bits of
 * the last digit are ignored (compare `toBase64` of the result to insist on the
 * canonical spelling). Throws a SyntaxError on anything else.
 */
export function fromBase64(
  text: string,
  alphabet: Base64Alphabet = "base64",
): Uint8Array<ArrayBuffer> {
  const digits = text.replace(/={1,2}$/, "");
  // A single digit left over holds 6 bits, less than a byte: the text was cut.
  if (
    !BASE64_PATTERN[alphabet].test(text) || digits.length % 4 === 1 ||
    (digits.length !== text.length && text.length % 4 !== 0)
  ) {
    throw new SyntaxError(`Cannot decode ${alphabet}: the text is not ${alphabet}`);
  }
  const values = BASE64_DIGITS[alphabet];
  const out = new Uint8Array(Math.floor((digits.length * 6) / 8));
  let buffer = 0;
  let bits = 0;
  let offset = 0;
  for (const digit of digits) {
    buffer = ((buffer << 6) | values.indexOf(digit)) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[offset++] = (buffer >> bits) & 0xff;
    }
  }
  return out;
}

/** 2^32, to split a u64 into the two u32 halves DataView writes without a BigInt. */
const U32_RANGE = 2 ** 32;
/** Largest high half of a u64 that is a safe integer: 2^53 − 1 = (2^21 − 1) · 2^32 + (2^32 − 1). */
const SAFE_HIGH_MAX = 2 ** 21 - 1;

/** Appends big-endian fields to one buffer that doubles as it fills. */
export class ByteWriter {
  #buffer: Uint8Array;
  #view: DataView;
  #length = 0;

  /**
   * A writer whose buffer starts at `capacity` bytes (a writer that knows its
   * output's size allocates once).
   *
   * @default {128}
   */
  constructor(capacity = 128) {
    this.#buffer = new Uint8Array(capacity);
    this.#view = new DataView(this.#buffer.buffer);
  }

  /**
   * Makes room for `length` more bytes; returns where they go. Callers read
   * `#buffer` and `#view` after it, as it may replace them.
   */
  #reserve(length: number): number {
    const at = this.#length;
    const needed = at + length;
    if (needed > this.#buffer.length) {
      const grown = new Uint8Array(Math.max(needed, 2 * this.#buffer.length));
      grown.set(this.#buffer.subarray(0, at));
      this.#buffer = grown;
      this.#view = new DataView(grown.buffer);
    }
    this.#length = needed;
    return at;
  }

  /** Appends raw bytes. */
  bytes(value: Uint8Array): this {
    const at = this.#reserve(value.length);
    this.#buffer.set(value, at);
    return this;
  }

  /** Appends one byte. */
  u8(value: number): this {
    const at = this.#reserve(1);
    this.#view.setUint8(at, value);
    return this;
  }

  /** Appends the UTF-8 bytes of `text`, whose length {@linkcode utf8Length} gave as `length`. */
  utf8(text: string, length: number): this {
    const at = this.#reserve(length);
    // ASCII (one byte per code unit) is copied as is; anything else goes through TextEncoder.
    if (length === text.length) {
      for (let i = 0; i < length; i++) this.#buffer[at + i] = text.charCodeAt(i);
    } else {
      encoder.encodeInto(text, this.#buffer.subarray(at, at + length));
    }
    return this;
  }

  /** Appends a big-endian u16. */
  u16(value: number): this {
    const at = this.#reserve(2);
    this.#view.setUint16(at, value);
    return this;
  }

  /** Appends a big-endian u32. */
  u32(value: number): this {
    const at = this.#reserve(4);
    this.#view.setUint32(at, value);
    return this;
  }

  /** Appends a big-endian u64 (a safe integer). */
  u64(value: number): this {
    const at = this.#reserve(8);
    this.#view.setUint32(at, Math.floor(value / U32_RANGE));
    this.#view.setUint32(at + 4, value % U32_RANGE);
    return this;
  }

  /** Appends a big-endian float64. */
  f64(value: number): this {
    const at = this.#reserve(8);
    this.#view.setFloat64(at, value);
    return this;
  }

  /**
   * All bytes appended: the buffer itself when they fill it exactly, else a
   * copy. Nothing may be appended after it.
   */
  finish(): Uint8Array {
    return this.#length === this.#buffer.length
      ? this.#buffer
      : this.#buffer.slice(0, this.#length);
  }
}

/** Thrown by {@linkcode ByteReader} when a field does not fit the input. */
export class TruncatedError extends Error {
  constructor(what: string) {
    super(`Cannot read ${what}: the input ends early`);
    this.name = "TruncatedError";
  }
}

/** Reads big-endian fields, refusing to read past the end. */
export class ByteReader {
  #bytes: Uint8Array;
  #view: DataView;
  #offset = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Bytes read so far. */
  get offset(): number {
    return this.#offset;
  }

  /** Bytes not read yet. */
  get remaining(): number {
    return this.#bytes.length - this.#offset;
  }

  #take(length: number, what: string): number {
    if (length > this.remaining) throw new TruncatedError(what);
    const start = this.#offset;
    this.#offset += length;
    return start;
  }

  /** Reads `length` bytes (a view into the input). */
  bytes(length: number, what: string): Uint8Array {
    const start = this.#take(length, what);
    return this.#bytes.subarray(start, start + length);
  }

  /** Reads one byte. */
  u8(what: string): number {
    return this.#view.getUint8(this.#take(1, what));
  }

  /** Reads a big-endian u16. */
  u16(what: string): number {
    return this.#view.getUint16(this.#take(2, what));
  }

  /** Reads a big-endian u32. */
  u32(what: string): number {
    return this.#view.getUint32(this.#take(4, what));
  }

  /** Reads a big-endian u64; values beyond Number.MAX_SAFE_INTEGER are refused. */
  u64(what: string): number {
    const at = this.#take(8, what);
    const high = this.#view.getUint32(at);
    if (high > SAFE_HIGH_MAX) throw new RangeError(`Cannot read ${what}: too large`);
    return high * U32_RANGE + this.#view.getUint32(at + 4);
  }

  /** Reads a big-endian float64. */
  f64(what: string): number {
    return this.#view.getFloat64(this.#take(8, what));
  }

  /** The rest of the input (a view). */
  rest(): Uint8Array {
    return this.bytes(this.remaining, "rest");
  }
}

/** The same bytes typed for Web Crypto and Blob: copied only if they live in shared memory. */
export function owned(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer
    ? bytes as Uint8Array<ArrayBuffer>
    : new Uint8Array(bytes) as Uint8Array<ArrayBuffer>;
}
