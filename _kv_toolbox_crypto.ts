/**
 * kv-toolbox 0.30's CryptoKv blob encryption, opened for the migration: the
 * whole value is one AES-GCM message under the caller's raw key (128, 192 or
 * 256 bits, usually as hex), stored as a random 12-byte IV followed by the
 * ciphertext and its 16-byte tag, then cut into parts. Nothing binds it to
 * its key, its metadata or its size; the tag covers the bytes alone.
 *
 * @module
 */

import { gcmOpen, importAesGcmKey } from "./_aes_gcm.ts";
import { fromHex } from "./_bytes.ts";
import { DecryptionError } from "./_errors.ts";
import { GCM_IV_BYTES, GCM_TAG_BYTES } from "./_limits.ts";
import { describeKey } from "./_user_key.ts";

/** Raw AES key lengths kv-toolbox accepts, in bytes: 128, 192 and 256 bits. */
const KEY_BYTES = [128 / 8, 192 / 8, 256 / 8];

/** The raw key bytes of a `kvToolboxKey` option, checked; never echoes the key. */
function rawKeyOf(input: unknown): Uint8Array<ArrayBuffer> {
  const prefix = "Cannot use kvToolboxKey";
  let bytes: Uint8Array<ArrayBuffer>;
  if (typeof input === "string") {
    try {
      bytes = fromHex(input.trim());
    } catch {
      // Said in this option's words; fromHex's message never quotes the key either.
      throw new SyntaxError(
        `${prefix}: it is not a hex string (kv-toolbox's generateKey() output)`,
      );
    }
  } else if (input instanceof Uint8Array) {
    bytes = new Uint8Array(input);
  } else {
    throw new TypeError(`${prefix}: expected a hex string or a Uint8Array`);
  }
  if (!KEY_BYTES.includes(bytes.length)) {
    throw new RangeError(`${prefix}: it has ${bytes.length * 8} bits, expected 128, 192 or 256`);
  }
  return bytes;
}

/**
 * Imports a kv-toolbox key (its hex string or raw bytes) for decryption only.
 *
 * @throws {TypeError} for a value that is neither a string nor a Uint8Array.
 * @throws {SyntaxError} for a string that is not hex.
 * @throws {RangeError} for a key that is not 128, 192 or 256 bits long.
 */
export function importKvToolboxKey(input: unknown): Promise<CryptoKey> {
  const raw = rawKeyOf(input);
  return importAesGcmKey(raw, ["decrypt"]).finally(() => raw.fill(0));
}

/**
 * Opens a CryptoKv blob's stored bytes (IV, ciphertext, tag).
 *
 * @throws {DecryptionError} for a wrong key or altered bytes.
 */
export async function openKvToolboxBlob(
  cryptoKey: CryptoKey,
  stored: Uint8Array,
  key: Deno.KvKey,
): Promise<Uint8Array> {
  const fail = (cause?: unknown) =>
    new DecryptionError(
      `Cannot migrate ${
        describeKey(key)
      }: the kv-toolbox blob does not decrypt with kvToolboxKey (wrong key or altered parts)`,
      { cause },
    );
  if (stored.length < GCM_IV_BYTES + GCM_TAG_BYTES) throw fail();
  try {
    return await gcmOpen(
      cryptoKey,
      stored.subarray(0, GCM_IV_BYTES),
      stored.subarray(GCM_IV_BYTES),
    );
  } catch (error) {
    throw fail(error);
  }
}
