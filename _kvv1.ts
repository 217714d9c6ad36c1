/**
 * The KVV1 format (FORMAT.md, "Encrypted value, KVV1"): one KV
 * value holding a V8-serialized structured value sealed with AES-GCM under
 * the key-encryption key itself.
 *
 * ```text
 * "KVV1" || suite (1) || kidLen (1) || kid (UTF-8) || expiresAt (u64 BE) || iv (12) || sealed
 * sealed = AES-GCM(KEK, iv, V8-serialized value, AAD = "kvcrypt/1 value" || bytes before iv || encodeKey(K))
 * ```
 *
 * Everything here is byte exact; the public surface is `cryptoKv` in crypto.ts.
 *
 * @module
 */

import { deserialize, Serializer } from "node:v8";
import { ByteReader, ByteWriter, concat, fromUtf8, utf8 } from "./_bytes.ts";
import { DecryptionError } from "./_errors.ts";
import { gcmOpen, gcmSeal, keyFitsSuite, SUITE_KEY_BYTES, suiteOf } from "./_aes_gcm.ts";
import { GCM_IV_BYTES, GCM_TAG_BYTES, KID_MAX, KV_VALUE_MAX, MAGIC_BYTES } from "./_limits.ts";
import { encodeKey } from "./_user_key.ts";
import type { KeyEntry } from "./_keyring.ts";

/** Magic bytes that start every KVV1 value. */
export const VALUE_MAGIC: Uint8Array = utf8("KVV1");
/** Domain separation: a KVV1 tag can never be confused with a KVC1 wrap or metadata tag. */
const VALUE_AAD_LABEL = utf8("kvcrypt/1 value");
/** Bytes of the `expiresAt` field (u64, ms since the epoch). */
const EXPIRES_AT_BYTES = 8;
/** Fixed bytes of a KVV1 value: magic, suite, kidLen, expiresAt, iv, tag (the kid and the serialized value vary). */
export const VALUE_OVERHEAD = MAGIC_BYTES + 1 + 1 + EXPIRES_AT_BYTES + GCM_IV_BYTES + GCM_TAG_BYTES;

/** First byte of a V8 serializer payload (kVersionTag). */
const V8_VERSION_TAG = 0xff;
/** V8 serializer format Node's V8 reads and writes. */
const V8_FORMAT_NODE = 15;
/** V8 serializer format Deno 2.9's KV writes; identical to 15 apart from this byte. */
const V8_FORMAT_DENO = 16;
/** The only serializer formats KVV1 allows, so values stay readable in Deno and in Node. */
const V8_FORMATS: ReadonlySet<number> = new Set([V8_FORMAT_NODE, V8_FORMAT_DENO]);

/** Source of fresh IVs; tests inject fixed bytes to rebuild vectors. */
export type IvSource = () => Uint8Array;

/** Web Crypto's randomness: a fresh random 96-bit IV. */
export const randomIv: IvSource = () => crypto.getRandomValues(new Uint8Array(GCM_IV_BYTES));

/** The authenticated fields before the IV. */
export interface ValueHeader {
  /** Suite byte: {@linkcode SUITE_AES_128_GCM} or {@linkcode SUITE_AES_256_GCM}. */
  suite: number;
  /** Key id of the writing key ("" for a bare CryptoKey). */
  kid: string;
  /** Deadline in ms since the epoch, 0 = none. */
  expiresAt: number;
}

/** A KVV1 value split into its fields. */
export interface ParsedValue extends ValueHeader {
  /** Every byte before the IV: the AAD's middle part. */
  prefix: Uint8Array;
  /** The GCM nonce. */
  iv: Uint8Array;
  /** Ciphertext and tag. */
  sealed: Uint8Array;
}

/** Bytes a KVV1 value takes for a kid and a serialized value of these lengths. */
export function valueLength(kidBytes: number, plaintextBytes: number): number {
  return VALUE_OVERHEAD + kidBytes + plaintextBytes;
}

/** `"KVV1" || suite || kidLen || kid || expiresAt`: the bytes before the IV. */
export function encodeValuePrefix(header: ValueHeader): Uint8Array {
  const kid = utf8(header.kid);
  return new ByteWriter().bytes(VALUE_MAGIC).u8(header.suite).u8(kid.length).bytes(kid)
    .u64(header.expiresAt).finish();
}

/** AAD = "kvcrypt/1 value" || prefix || encodeKey(K). */
export function valueAad(prefix: Uint8Array, key: Deno.KvKey): Uint8Array {
  return concat([VALUE_AAD_LABEL, prefix, encodeKey(key)]);
}

/**
 * Seals serialized bytes into a KVV1 value at `key` under the writing key.
 *
 * @param writer The writing key and its kid.
 * @param key The user key the value will live at (bound through the AAD).
 * @param plaintext The V8-serialized value.
 * @param expiresAt Deadline in ms since the epoch, 0 = none.
 * @param iv Source of the IV (random unless a test injects one).
 */
export async function sealValue(
  writer: KeyEntry,
  key: Deno.KvKey,
  plaintext: Uint8Array,
  expiresAt: number,
  iv: IvSource = randomIv,
): Promise<Uint8Array> {
  const prefix = encodeValuePrefix({ suite: suiteOf(writer.key), kid: writer.kid, expiresAt });
  const nonce = iv();
  const sealed = await gcmSeal(writer.key, nonce, plaintext, valueAad(prefix, key));
  return concat([prefix, nonce, sealed]);
}

function fail(what: string, step: string, cause?: unknown): never {
  throw new DecryptionError(`Cannot decrypt ${what}: ${step}`, { cause });
}

/**
 * Splits a KV value into KVV1 fields, strictly; the byte fields are views of
 * `value`, which must not change afterwards.
 *
 * @throws {DecryptionError} when the value is not a well-formed KVV1 value.
 */
export function parseValue(value: unknown, what: string): ParsedValue {
  // A plain value, or a blob record, at the key is never read as if it were encrypted (no downgrade).
  if (!(value instanceof Uint8Array)) {
    fail(what, "the entry is not an encrypted value (not a KVV1 byte string)");
  }
  try {
    const reader = new ByteReader(value);
    const magic = reader.bytes(VALUE_MAGIC.length, "magic");
    // Stops a blob record or other bytes from being taken for a value.
    if (!magic.every((byte, i) => byte === VALUE_MAGIC[i])) {
      throw new TypeError("not a KVV1 value");
    }
    const suite = reader.u8("suite");
    // Only suites this version knows; anything else was not written by kvcrypt.
    if (SUITE_KEY_BYTES[suite] === undefined) throw new RangeError("unknown suite");
    const kidLen = reader.u8("kid length");
    // Same bound as the writer's, so no reader accepts what no writer makes.
    if (kidLen > KID_MAX) throw new RangeError("kid too long");
    const kid = fromUtf8(reader.bytes(kidLen, "kid"));
    const expiresAt = reader.u64("expiry");
    const prefix = value.subarray(0, reader.offset);
    const iv = reader.bytes(GCM_IV_BYTES, "iv");
    const sealed = reader.rest();
    // A sealed value has at least its tag; shorter is truncation.
    if (sealed.length < GCM_TAG_BYTES) throw new RangeError("no authentication tag");
    return { suite, kid, expiresAt, prefix, iv, sealed };
  } catch (cause) {
    fail(what, "the value does not parse as KVV1", cause);
  }
}

/**
 * Whether a reader key may open a value: the suite's key length (a key of the
 * other length cannot have written it), and equal kids or either kid empty.
 */
function keyMatchesValue(entry: KeyEntry, parsed: ParsedValue): boolean {
  if (!keyFitsSuite(entry.key, parsed.suite)) return false;
  return entry.kid === "" || parsed.kid === "" || entry.kid === parsed.kid;
}

/**
 * Opens a parsed KVV1 value at `key` with the first matching reader key.
 *
 * @returns The serialized value (still to be checked and deserialized).
 * @throws {DecryptionError} when no key matches the value's suite and kid, or none opens it.
 */
export async function openValue(
  parsed: ParsedValue,
  key: Deno.KvKey,
  readKeys: readonly KeyEntry[],
  what: string,
): Promise<Uint8Array> {
  const candidates = readKeys.filter((entry) => keyMatchesValue(entry, parsed));
  // Only the keys the value names: a value is never opened by a key it was not written for.
  if (candidates.length === 0) {
    fail(what, "no key given matches the value's key id and suite");
  }
  // The AAD binds suite, kid, expiresAt and the user key: an edited field, a
  // value moved to another key or a stripped expiry fails here.
  const aad = valueAad(parsed.prefix, key);
  let lastError: unknown = undefined;
  for (const entry of candidates) {
    try {
      return await gcmOpen(entry.key, parsed.iv, parsed.sealed, aad);
    } catch (error) {
      lastError = error;
    }
  }
  fail(
    what,
    "no key given opens the value (wrong key, or the value was changed or moved)",
    lastError,
  );
}

/**
 * Refuses values V8's serializer would turn into `{}` without a word: a Blob
 * or File (store those with the blob API) and a CryptoKey (never store key
 * material).
 */
function assertNoPlatformObjects(value: unknown, what: string): void {
  const seen = new Set<object>();
  const visit = (item: unknown): void => {
    if (typeof item !== "object" || item === null || seen.has(item)) return;
    seen.add(item);
    if (item instanceof Blob) {
      throw new TypeError(`Cannot store ${what}: it holds a Blob or File; store those with set()`);
    }
    if (item instanceof CryptoKey) {
      throw new TypeError(
        `Cannot store ${what}: it holds a CryptoKey; key material is never stored`,
      );
    }
    if (ArrayBuffer.isView(item) || item instanceof ArrayBuffer) return;
    if (item instanceof Map) {
      for (const [key, entry] of item) {
        visit(key);
        visit(entry);
      }
    } else if (item instanceof Set || Array.isArray(item)) {
      for (const entry of item) visit(entry);
    } else {
      for (const entry of Object.values(item)) visit(entry);
    }
  };
  visit(value);
}

/**
 * Serializes a structured value with V8's serializer (format 15 in Deno 2.9).
 *
 * @throws {TypeError} when the value cannot be cloned (functions, symbols, …).
 */
export function serializeValue(value: unknown, what: string): Uint8Array {
  assertNoPlatformObjects(value, what);
  let bytes: Uint8Array;
  try {
    // The plain serializer writes typed arrays as V8's own views, which any V8
    // deserializer reads (node:v8's serialize() would use Node's host-object form).
    const serializer = new Serializer();
    serializer.writeHeader();
    serializer.writeValue(value);
    bytes = serializer.releaseBuffer();
  } catch {
    // No cause attached: V8's message quotes the value (a function's source, say).
    throw new TypeError(
      `Cannot store ${what}: the value cannot be serialized (functions, symbols and similar cannot be cloned)`,
    );
  }
  // Keeps the format promise: every value kvcrypt writes is readable by Deno and Node.
  if (bytes[0] !== V8_VERSION_TAG || !V8_FORMATS.has(bytes[1] ?? -1)) {
    throw new TypeError(
      `Cannot store ${what}: this runtime writes V8 serializer format ${
        bytes[1]
      }, KVV1 allows 15 and 16`,
    );
  }
  return bytes;
}

/**
 * Checks the serializer format of opened bytes and deserializes them.
 *
 * @throws {DecryptionError} when the format is not 15 or 16, or the bytes do not deserialize.
 */
export function deserializeValue(plaintext: Uint8Array, what: string): unknown {
  const format = plaintext[1];
  // Only formats 15 and 16: a value that only a newer V8 can read would break Node readers.
  if (plaintext[0] !== V8_VERSION_TAG || format === undefined || !V8_FORMATS.has(format)) {
    fail(what, "the decrypted value is not V8 serializer format 15 or 16");
  }
  try {
    return deserialize(plaintext);
  } catch (cause) {
    // A V8 that reads only 15 (Node's): format 16 is the same bytes under another version number.
    if (format !== V8_FORMAT_DENO) fail(what, "the decrypted value does not deserialize", cause);
    const copy = plaintext.slice();
    copy[1] = V8_FORMAT_NODE;
    try {
      return deserialize(copy);
    } catch {
      fail(what, "the decrypted value does not deserialize", cause);
    }
  }
}

/**
 * The largest record a value may make, checked before sealing.
 *
 * @throws {RangeError} when the record would not fit one KV value.
 */
export function assertValueFits(kid: string, plaintext: Uint8Array, what: string): void {
  const length = valueLength(utf8(kid).length, plaintext.length);
  if (length > KV_VALUE_MAX) {
    throw new RangeError(
      `Cannot store ${what}: the encrypted value takes ${length} bytes, more than one KV entry holds; store it as a blob with set()`,
    );
  }
}
