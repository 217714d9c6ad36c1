/**
 * The error classes kvcrypt throws besides TypeError and RangeError. Defined
 * here once and re-exported by the public modules.
 *
 * @module
 */

/**
 * A stored plain blob is damaged (a chunk missing or of the wrong length, a
 * record that does not parse), or the entry at the key is not a kvcrypt
 * record at all.
 *
 * @example Telling a damaged blob from other failures
 * ```ts
 * import assert from "node:assert/strict";
 * import { CorruptBlobError, get } from "@kvcrypt/kvcrypt";
 *
 * const kv = await Deno.openKv(":memory:");
 * await kv.set(["not-a-blob"], "hello");
 * await assert.rejects(get(kv, ["not-a-blob"]), CorruptBlobError);
 * kv.close();
 * ```
 */
export class CorruptBlobError extends Error {
  /**
   * Creates the error.
   *
   * @param message What cannot be done and for which key.
   * @param options The underlying cause, if any.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CorruptBlobError";
  }
}

/**
 * The blob was replaced or removed by another writer while it was being read
 * (after bytes were already delivered), or a write lost its version to
 * `vacuum`.
 *
 * @example Recognising the error
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConcurrentModificationError } from "@kvcrypt/kvcrypt";
 *
 * const error = new ConcurrentModificationError("Cannot read [\"a\"]: it was replaced");
 * assert.equal(error.name, "ConcurrentModificationError");
 * ```
 */
export class ConcurrentModificationError extends Error {
  /**
   * Creates the error.
   *
   * @param message What cannot be done and for which key.
   * @param options The underlying cause, if any.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConcurrentModificationError";
  }
}

/**
 * An encrypted record or chunk cannot be opened: wrong key, a tampered or
 * moved record, a damaged chunk, or a plaintext record where an encrypted one
 * was expected. The message names the step that failed, never cryptographic
 * detail; the underlying error is attached as `cause`.
 *
 * @example Reading with the wrong key
 * ```ts
 * import assert from "node:assert/strict";
 * import { DecryptionError, generateKey, get, set } from "@kvcrypt/kvcrypt";
 *
 * const kv = await Deno.openKv(":memory:");
 * await set(kv, ["doc"], new Uint8Array([1, 2, 3]), { encryptionKey: await generateKey() });
 * await assert.rejects(get(kv, ["doc"], { encryptionKey: await generateKey() }), DecryptionError);
 * kv.close();
 * ```
 */
export class DecryptionError extends Error {
  /**
   * Creates the error.
   *
   * @param message What cannot be done and which step failed.
   * @param options The underlying cause, if any.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DecryptionError";
  }
}
