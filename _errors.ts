/**
 * The error classes kvcrypt throws for states of the store or the environment
 * (besides TypeError for wrong types, RangeError for sizes and ranges, and
 * SyntaxError for text that does not parse). Defined here once and
 * re-exported by the public modules.
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

/**
 * What a call works on is not there: no blob is stored at the key (`rewrap`),
 * or the environment variable `keyringFromEnv` reads is not set or empty.
 *
 * @example Rewrapping a key that holds nothing
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateKey, NotFoundError, rewrap } from "@kvcrypt/kvcrypt";
 *
 * const kv = await Deno.openKv(":memory:");
 * const encryptionKey = await generateKey();
 * await assert.rejects(rewrap(kv, ["missing"], { encryptionKey, add: await generateKey() }), NotFoundError);
 * kv.close();
 * ```
 */
export class NotFoundError extends Error {
  /**
   * Creates the error.
   *
   * @param message What cannot be done and what is missing.
   * @param options The underlying cause, if any.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NotFoundError";
  }
}

/**
 * What a call would add is already there: `rewrap` was asked to add a key
 * whose kid already has a stanza in the blob (remove that kid in the same
 * call to replace it).
 *
 * @example Adding a recipient twice
 * ```ts
 * import assert from "node:assert/strict";
 * import { AlreadyExistsError, generateKey, rewrap, set } from "@kvcrypt/kvcrypt";
 *
 * const kv = await Deno.openKv(":memory:");
 * const alice = await generateKey({ kid: "alice" });
 * await set(kv, ["doc"], new Uint8Array(10), { encryptionKey: alice });
 * await assert.rejects(rewrap(kv, ["doc"], { encryptionKey: alice, add: alice }), AlreadyExistsError);
 * await rewrap(kv, ["doc"], { encryptionKey: alice, add: alice, remove: ["alice"] });
 * kv.close();
 * ```
 */
export class AlreadyExistsError extends Error {
  /**
   * Creates the error.
   *
   * @param message What cannot be done and what is already there.
   * @param options The underlying cause, if any.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "AlreadyExistsError";
  }
}
