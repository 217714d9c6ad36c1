/**
 * AES-GCM as kvcrypt's formats use it (KVC1, KVC2 and KVV1): the suite bytes
 * and their key lengths, key import, seal and open, each once, and the
 * HKDF-SHA-256 of the key schedule. Web Crypto takes views of an
 * ArrayBuffer only: every input passes through `owned`.
 *
 * @module
 */

import { hkdfSync } from "node:crypto";
import { owned } from "./_bytes.ts";

/** Suite byte of AES-128-GCM. */
export const SUITE_AES_128_GCM = 0x01;
/** Suite byte of AES-256-GCM. */
export const SUITE_AES_256_GCM = 0x02;

/** AES key bytes of each suite. */
export const SUITE_KEY_BYTES: Readonly<Record<number, number>> = {
  [SUITE_AES_128_GCM]: 128 / 8,
  [SUITE_AES_256_GCM]: 256 / 8,
};

/** Suite byte for an AES-GCM key, by its length. */
export function suiteOf(key: CryptoKey): number {
  const length = (key.algorithm as AesKeyAlgorithm).length;
  return length === 128 ? SUITE_AES_128_GCM : SUITE_AES_256_GCM;
}

/** Whether an AES-GCM key has the length of `suite`'s keys. */
export function keyFitsSuite(key: CryptoKey, suite: number): boolean {
  const bytes = SUITE_KEY_BYTES[suite];
  return bytes !== undefined && (key.algorithm as AesKeyAlgorithm).length === bytes * 8;
}

/** Imports raw key bytes as a non-extractable AES-GCM key for `usages`. */
export function importAesGcmKey(
  raw: Uint8Array,
  usages: readonly ("encrypt" | "decrypt")[],
): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", owned(raw), "AES-GCM", false, [...usages]);
}

function gcmParams(iv: Uint8Array, aad: Uint8Array | undefined): AesGcmParams {
  const params: AesGcmParams = { name: "AES-GCM", iv: owned(iv) };
  if (aad !== undefined) params.additionalData = owned(aad);
  return params;
}

/** AES-GCM encryption: the ciphertext followed by its 16-byte tag. */
export async function gcmSeal(
  key: CryptoKey,
  iv: Uint8Array,
  plaintext: Uint8Array,
  aad?: Uint8Array,
): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.encrypt(gcmParams(iv, aad), key, owned(plaintext)));
}

/** AES-GCM decryption; rejects (an OperationError) when the tag does not verify. */
export async function gcmOpen(
  key: CryptoKey,
  iv: Uint8Array,
  sealed: Uint8Array,
  aad?: Uint8Array,
): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.decrypt(gcmParams(iv, aad), key, owned(sealed)));
}

/**
 * HKDF-SHA-256 of `length` bytes (RFC 5869), by `node:crypto` (in Deno,
 * Deno Deploy and Node alike): synchronous, where Web Crypto needs two calls
 * (import, then derive) whose fixed cost in Deno 2.9.6 is about 100 µs,
 * on the path of every encrypted write and every first read of a version.
 */
export function hkdfSha256(
  ikm: Uint8Array,
  salt: Uint8Array,
  info: Uint8Array,
  length: number,
): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", ikm, salt, info, length));
}
