/**
 * kvcrypt's encryption format, KVC1: every blob version gets a fresh 32-byte
 * secret wrapped for each recipient key; HKDF-SHA-256 derives the content
 * key, the chunk nonce base and a key commitment from it; every chunk is
 * sealed with AES-GCM under its own nonce, and the metadata's tag
 * authenticates the whole header and the key the blob lives at. The byte
 * layout is in the README.
 *
 * Encryption is used through the blob functions' `encryptionKey` option;
 * this module holds the error class and the format's public constants.
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

export { DecryptionError } from "./_errors.ts";
export type { EncryptionKey, KeyMaterial } from "./_key_input.ts";
export { SUITE_AES_128_GCM, SUITE_AES_256_GCM } from "./_kvc1.ts";
