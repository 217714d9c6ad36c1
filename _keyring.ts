/**
 * The key ring model every layer shares: a key entry (a local AES-GCM key or
 * a {@linkcode KeyWrapper} held elsewhere), the {@linkcode Keyring} that
 * orders them, and the checks a key and a kid must pass. Importing and
 * exporting keys is in _key_import.ts and keys.ts; keys.ts re-exports these
 * types for users.
 *
 * @module
 */

import { utf8 } from "./_bytes.ts";
import { isRecord } from "./_guards.ts";
import { KID_MAX } from "./_limits.ts";

/** One key of a {@linkcode Keyring}: an AES-GCM key and its key id. */
export interface KeyEntry {
  /** The key id written next to everything this key encrypts; `""` when the key has none. */
  readonly kid: string;
  /** An AES-GCM key of 128 or 256 bits usable to encrypt and decrypt. */
  readonly key: CryptoKey;
}

/**
 * A key held elsewhere (a KMS, an HSM, a key service) that wraps and
 * unwraps blob secrets: the key itself never enters the process. Any object
 * with a string `kid` and `wrap` / `unwrap` functions is a KeyWrapper, and
 * it is accepted wherever a key is: `encryptionKey` of every blob function,
 * an entry of `recipients`, inside {@linkcode keyring}, and in `rewrap`'s
 * `add`.
 *
 * kvcrypt passes `context` = `"kvcrypt/1 wrap"` ‖ the blob version id (16
 * bytes) ‖ the kid (UTF-8). Bind it to the wrapped result (as AES-GCM
 * additional data, or a KMS encryption context), so a wrapped secret copied
 * into another blob's header does not open it.
 *
 * @example A wrapper around an AES-GCM key (in real use it lives in a key service)
 * ```ts
 * import assert from "node:assert/strict";
 * import { get, type KeyWrapper, set } from "@kvcrypt/kvcrypt";
 *
 * const kek = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, [
 *   "encrypt",
 *   "decrypt",
 * ]);
 * const wrapper: KeyWrapper = {
 *   kid: "service-key-1",
 *   async wrap(secret, context) {
 *     const iv = crypto.getRandomValues(new Uint8Array(12));
 *     const sealed = await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: context }, kek, secret);
 *     return new Uint8Array([...iv, ...new Uint8Array(sealed)]);
 *   },
 *   async unwrap(wrapped, context) {
 *     const iv = wrapped.subarray(0, 12);
 *     const opened = await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: context }, kek, wrapped.subarray(12));
 *     return new Uint8Array(opened);
 *   },
 * };
 * const kv = await Deno.openKv(":memory:");
 * await set(kv, ["doc"], new Uint8Array(100_000), { encryptionKey: wrapper });
 * assert.equal((await get(kv, ["doc"], { encryptionKey: wrapper })).value?.length, 100_000);
 * kv.close();
 * ```
 */
export interface KeyWrapper {
  /** Key id written in the stanza: 1–64 bytes of UTF-8. */
  readonly kid: string;
  /**
   * Wraps a version's 32-byte secret. `context` must be bound to the result
   * (AES-GCM AAD, a KMS encryption context).
   *
   * @param secret The blob version's secret (a copy: the wrapper may keep or wipe it).
   * @param context The bytes to bind: `"kvcrypt/1 wrap"` ‖ version id ‖ kid.
   * @returns 1 to 1,024 bytes.
   */
  wrap(secret: Uint8Array<ArrayBuffer>, context: Uint8Array<ArrayBuffer>): Promise<Uint8Array>;
  /**
   * Returns the secret; rejects when `wrapped` or `context` is not what `wrap` was given.
   *
   * @param wrapped What `wrap` returned.
   * @param context The same bytes `wrap` was given.
   * @returns The 32-byte secret.
   */
  unwrap(wrapped: Uint8Array<ArrayBuffer>, context: Uint8Array<ArrayBuffer>): Promise<Uint8Array>;
}

/** One entry of a {@linkcode Keyring}: a local AES-GCM key, or a key held elsewhere. */
export type KeyringEntry = KeyEntry | KeyWrapper;

/**
 * Whether a value is a {@linkcode KeyWrapper}: an object with a string `kid`
 * and `wrap` and `unwrap` functions.
 *
 * @param value Anything.
 * @returns True for a key wrapper.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateKey, isKeyWrapper } from "@kvcrypt/kvcrypt/keys";
 *
 * const wrapper = { kid: "kms", wrap: async (s: Uint8Array) => s, unwrap: async (w: Uint8Array) => w };
 * assert.ok(isKeyWrapper(wrapper));
 * assert.ok(!isKeyWrapper(await generateKey()));
 * ```
 */
export function isKeyWrapper(value: unknown): value is KeyWrapper {
  return isRecord(value) && typeof value.kid === "string" && typeof value.wrap === "function" &&
    typeof value.unwrap === "function";
}

/** Key sizes kvcrypt supports: AES-128-GCM and AES-256-GCM. */
export const KEY_BITS = [128, 256] as const;
/** Usages every kvcrypt key needs: wrap and unwrap blob secrets, seal and open values. */
export const KEY_USAGES: readonly KeyUsage[] = ["encrypt", "decrypt"];
/** Web Crypto's algorithm name for kvcrypt keys. */
export const AES_GCM = "AES-GCM";

/**
 * An ordered, non-empty list of AES-GCM keys: the first key ({@linkcode Keyring.current})
 * encrypts, every key decrypts. Get one from {@linkcode importKey},
 * {@linkcode keyring} or {@linkcode keyringFromEnv}.
 *
 * A keyring never shows its key material: `JSON.stringify()`, `String()` and
 * `Deno.inspect()` show the key ids only.
 *
 * @example Rotate: a new key first, the old one still reads
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateKey, keyring } from "@kvcrypt/kvcrypt/keys";
 *
 * const ring = await keyring(
 *   await generateKey({ kid: "new" }),
 *   await generateKey({ kid: "old" }),
 * );
 * assert.equal(ring.current.kid, "new");
 * assert.deepEqual(ring.kids, ["new", "old"]);
 * assert.equal(ring.find("old")?.kid, "old");
 * assert.equal(JSON.stringify(ring), '{"kids":["new","old"]}');
 * ```
 */
export class Keyring<E extends KeyringEntry = KeyringEntry> implements Iterable<E> {
  readonly #entries: readonly E[];
  readonly #current: E;

  /**
   * Makes a keyring from entries, the current (writing) key first.
   *
   * @param entries The keys, current first: `{ kid, key }` entries of local
   * AES-GCM keys, or {@linkcode KeyWrapper}s. A kid may appear once, except
   * the empty kid: bare keys cannot be told apart, so readers try each of
   * them.
   * @throws {TypeError} When there is no entry, an entry is not an AES-GCM
   * CryptoKey of 128 or 256 bits with encrypt and decrypt usages nor a key
   * wrapper, a kid is not a string, a wrapper's kid is empty, or two entries
   * share a non-empty kid.
   * @throws {RangeError} When a kid is longer than 64 UTF-8 bytes.
   */
  constructor(entries: Iterable<E>) {
    const list = [...entries].map((entry) => checkEntry(entry, "Cannot create a keyring"));
    const current = list[0];
    if (current === undefined) {
      throw new TypeError("Cannot create a keyring: it needs at least one key");
    }
    checkUniqueKids(list.map((entry) => entry.kid), "Cannot create a keyring");
    this.#entries = Object.freeze(list);
    this.#current = current;
  }

  /**
   * The key that encrypts: the first one.
   *
   * @returns The first entry.
   */
  get current(): E {
    return this.#current;
  }

  /**
   * The key ids, in order.
   *
   * @returns A fresh array of the kids, current first.
   */
  get kids(): string[] {
    return this.#entries.map((entry) => entry.kid);
  }

  /**
   * The number of keys.
   *
   * @returns At least 1.
   */
  get size(): number {
    return this.#entries.length;
  }

  /**
   * Finds the key with a key id.
   *
   * @param kid The key id to look for.
   * @returns The first entry with that kid, or `undefined`.
   */
  find(kid: string): E | undefined {
    return this.#entries.find((entry) => entry.kid === kid);
  }

  /**
   * Iterates over the keys, current first.
   *
   * @returns An iterator of the entries.
   */
  [Symbol.iterator](): IterableIterator<E> {
    return this.#entries.values();
  }

  /**
   * The JSON form: key ids only, never key material.
   *
   * @returns `{ kids }`.
   */
  toJSON(): { kids: string[] } {
    return { kids: this.kids };
  }

  /**
   * The tag `Object.prototype.toString` shows.
   *
   * @returns `"Keyring"`.
   */
  get [Symbol.toStringTag](): string {
    return "Keyring";
  }

  /**
   * What `Deno.inspect()` and `console.log()` show: key ids only.
   *
   * @param inspect Deno's inspect function.
   * @param options Deno's inspect options.
   * @returns `Keyring { kids: [...] }`.
   */
  [Symbol.for("Deno.customInspect")](
    inspect: (value: unknown, options?: unknown) => string,
    options?: unknown,
  ): string {
    return `Keyring ${inspect(this.toJSON(), options)}`;
  }
}

// ---------------------------------------------------------------------------
// Checks of keys and kids.

/** Checks a keyring entry and returns a frozen copy (a key wrapper is kept as it is). */
export function checkEntry<E extends KeyringEntry>(entry: E, prefix: string): E {
  if (isKeyWrapper(entry)) {
    const kid = checkKid(entry.kid, prefix, RangeError);
    // A wrapper's stanza is matched by kid alone: an empty kid would match nothing.
    if (kid === "") throw new TypeError(`${prefix}: a KeyWrapper needs a non-empty kid`);
    return entry;
  }
  if (!isRecord(entry)) throw new TypeError(`${prefix}: an entry is not { kid, key }`);
  const kid = checkKid(entry.kid, prefix, RangeError);
  return Object.freeze({ kid, key: checkAesKey(entry.key, prefix) }) as E;
}

/** Checks a value is an AES-GCM secret key of 128 or 256 bits that can encrypt and decrypt. */
export function checkAesKey(key: unknown, prefix: string): CryptoKey {
  // Only AES-GCM: a key for another algorithm would fail late or mean something else.
  if (!(key instanceof CryptoKey) || key.algorithm.name !== AES_GCM) {
    throw new TypeError(`${prefix}: expected an AES-GCM CryptoKey`);
  }
  // The suite byte only names AES-128-GCM and AES-256-GCM.
  const bits = (key.algorithm as AesKeyAlgorithm).length;
  if (!(KEY_BITS as readonly number[]).includes(bits)) {
    throw new TypeError(`${prefix}: the AES-GCM key must be 128 or 256 bits, not ${bits}`);
  }
  // Writers encrypt and readers decrypt with the same key; catch a one-way key early.
  if (!KEY_USAGES.every((usage) => key.usages.includes(usage))) {
    throw new TypeError(`${prefix}: the key needs the "encrypt" and "decrypt" usages`);
  }
  return key;
}

/** What is wrong with a kid, or `undefined` when it is usable. */
export function kidProblem(kid: unknown): { detail: string; tooLong: boolean } | undefined {
  if (typeof kid !== "string") return { detail: "kid must be a string", tooLong: false };
  // A lone surrogate would be stored as U+FFFD and never match its key again.
  if (!kid.isWellFormed()) return { detail: "kid is not well-formed Unicode", tooLong: false };
  // The header keeps a kid in at most KID_MAX bytes (its length is one byte).
  if (utf8(kid).length > KID_MAX) {
    return { detail: `kid is longer than ${KID_MAX} UTF-8 bytes`, tooLong: true };
  }
  return undefined;
}

/** Checks a kid and returns it: a too-long kid throws `TooLong`, anything else a TypeError. */
export function checkKid(
  kid: unknown,
  prefix: string,
  TooLong: typeof RangeError | typeof TypeError,
): string {
  const problem = kidProblem(kid);
  if (problem === undefined) return kid as string;
  const ErrorClass = problem.tooLong ? TooLong : TypeError;
  throw new ErrorClass(`${prefix}: ${problem.detail}`);
}

/** Throws when a non-empty kid appears twice; repeated empty kids are allowed. */
export function checkUniqueKids(kids: readonly string[], prefix: string): void {
  const seen = new Set<string>();
  for (const kid of kids) {
    // Two keys under one kid: a reader would try the wrong one and call good data corrupt.
    if (kid !== "" && seen.has(kid)) {
      throw new TypeError(`${prefix}: kid ${JSON.stringify(kid)} appears twice`);
    }
    seen.add(kid);
  }
}
