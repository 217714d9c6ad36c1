/**
 * kvcrypt's encryption format, KVC1: every blob version gets a fresh 32-byte
 * secret wrapped for each recipient key; HKDF-SHA-256 derives the content
 * key, the chunk nonce base and a key commitment from it; every chunk is
 * sealed with AES-GCM under its own nonce, and the metadata's tag
 * authenticates the whole header and the key the blob lives at. The byte
 * layout is in FORMAT.md.
 *
 * Encryption is used through the blob functions' `encryptionKey` option;
 * this module holds the error class, the format's public constants, and
 * {@linkcode cryptoKv} for small encrypted structured values (format KVV1).
 *
 * @example Encrypt, read back, and fail with another key
 * ```ts
 * import assert from "node:assert/strict";
 * import { get, set } from "@kvcrypt/kvcrypt/blob";
 * import { DecryptionError } from "@kvcrypt/kvcrypt/crypto";
 * import { generateKey } from "@kvcrypt/kvcrypt/keys";
 *
 * const kv = await Deno.openKv(":memory:");
 * const key = await generateKey();
 * await set(kv, ["secret"], new Uint8Array(100_000).fill(7), { encryptionKey: key });
 * assert.equal((await get(kv, ["secret"], { encryptionKey: key })).value?.[0], 7);
 * await assert.rejects(get(kv, ["secret"], { encryptionKey: await generateKey() }), DecryptionError);
 * kv.close();
 * ```
 *
 * @module
 */

import type { KvLike } from "./_kv_like.ts";
import { type CryptoKv, SealedKv } from "./_crypto_kv.ts";

export { DecryptionError } from "./_errors.ts";
export type { AtomicLike, KvLike, KvListIteratorLike } from "./_kv_like.ts";
export { SUITE_AES_128_GCM, SUITE_AES_256_GCM } from "./_aes_gcm.ts";
export type {
  CryptoAtomicOperation,
  CryptoKv,
  CryptoKvGetOptions,
  CryptoKvListIterator,
  CryptoKvRotateOptions,
  CryptoKvSetOptions,
} from "./_crypto_kv.ts";
import type { EncryptionKey } from "./_types.ts";
export type { EncryptionKey, KeyMaterial, RotateResult } from "./_types.ts";

/**
 * Encrypted structured values in Deno KV: a `Deno.Kv` look-alike (`get`,
 * `getMany`, `set`, `delete`, `list`, `watch`, `atomic`) whose values are
 * serialized with V8's structured clone, as Deno KV does, and sealed with
 * AES-GCM in one KV entry each (format KVV1, in FORMAT.md). Each value is
 * authenticated together with its KV key, its key id and its expiry
 * deadline: a wrong key, an edited or truncated value, a value copied to
 * another key, or a plain value at the key all fail with
 * {@linkcode DecryptionError}, and a value past its deadline reads as absent.
 *
 * Keys: one key ring. Writes use its current (first) key, reads try every
 * key whose kid matches the value's (an empty kid on either side matches
 * all), so `keyring(newKey, oldKey)` rotates without rewriting: old values
 * keep reading, and each `set` re-encrypts under the new key. Every value
 * gets a random 96-bit IV, so stay below 2^32 encryptions per key (NIST SP
 * 800-38D) and rotate before then. Several recipients (the blob
 * functions' `recipients`) do not apply to values: values have no
 * per-recipient wrapping.
 *
 * Expiry: `expireIn` sets Deno KV's `expireIn` and the sealed deadline. A
 * value re-set without `expireIn` no longer expires (and an attacker cannot
 * strip the deadline: it is authenticated).
 *
 * Limits: a value must fit one KV entry (65,536 bytes, minus 42 bytes and
 * the kid); larger ones throw a `RangeError`: store them as blobs with
 * `set()` from the blob module. Values are cloned as by `structuredClone`
 * (class instances come back as plain objects); `Deno.KvU64` is refused,
 * since `sum`, `min` and `max` cannot work on encrypted values. Keys whose
 * last part is `kv.commitVersionstamp()` are not supported: the key is
 * authenticated before the commit assigns it.
 *
 * @param kv The Deno KV database.
 * @param encryptionKey One key ring: a `CryptoKey` (AES-GCM, 128 or 256
 * bits), a JWK, a JWK Set, the JSON text of either, or a `Keyring`. It is
 * imported on first use and cached.
 * @returns The encrypted view of `kv`. Nothing is read or imported until
 * the first call.
 * @throws {TypeError} When `kv` is not a store (`Deno.Kv` or `@deno/kv`'s `Kv`). An unusable
 * `encryptionKey` (not a key, a failed import, or an array of several
 * recipients) rejects every call of the returned object with a `TypeError`,
 * or a `SyntaxError` for JSON text that does not parse (`watch` errors its
 * stream with it).
 *
 * @example Store, read, rotate, and fail with another key
 * ```ts
 * import assert from "node:assert/strict";
 * import { cryptoKv, DecryptionError } from "@kvcrypt/kvcrypt/crypto";
 * import { generateKey, keyring } from "@kvcrypt/kvcrypt/keys";
 *
 * const kv = await Deno.openKv(":memory:");
 * const oldKey = await generateKey({ kid: "2025" });
 * await cryptoKv(kv, oldKey).set(["users", 1], { name: "Ada", roles: new Set(["admin"]) });
 *
 * // Rotation: the new key writes, the old one still reads.
 * const users = cryptoKv(kv, await keyring(await generateKey({ kid: "2026" }), oldKey));
 * const entry = await users.get<{ name: string; roles: Set<string> }>(["users", 1]);
 * assert.equal(entry.value?.name, "Ada");
 * assert.ok(entry.value?.roles.has("admin"));
 *
 * const result = await users.atomic()
 *   .check({ key: ["users", 2], versionstamp: null })
 *   .set(["users", 2], { name: "Grace" }, { expireIn: 60_000 })
 *   .commit();
 * assert.ok(result.ok);
 * assert.equal((await kv.get(["users", 2])).value instanceof Uint8Array, true); // sealed bytes
 *
 * await assert.rejects(cryptoKv(kv, await generateKey()).get(["users", 1]), DecryptionError);
 * kv.close();
 * ```
 */
export function cryptoKv(kv: KvLike, encryptionKey: EncryptionKey): CryptoKv {
  return new SealedKv(kv, encryptionKey);
}
