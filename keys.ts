/**
 * Keys for kvcrypt: generate, import and export AES-GCM keys as JWKs, and
 * group them into a {@linkcode Keyring} for rotation (the first key writes,
 * every key reads).
 *
 * Keys travel as JSON Web Keys (RFC 7517) with `kty: "oct"`, so one key or a
 * whole JWK Set fits in an environment variable. Run this module to print a
 * fresh key:
 *
 * ```sh
 * deno run jsr:@kvcrypt/kvcrypt/keys [--bits 128|256] [--kid ID] [--add JWKS_FILE]
 * ```
 *
 * With `--add`, it prints a JWK Set whose first key is the new one, followed
 * by the keys already in the file: set that as the new environment variable to
 * rotate (new writes use the new key, old blobs still read).
 *
 * No function here ever puts key material into an error message, a
 * `toString()`, `JSON.stringify()` or `Deno.inspect()` output.
 *
 * @example Generate a key, store it as JSON, load it back
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateKey, importKey } from "@kvcrypt/kvcrypt/keys";
 *
 * const jwk = await generateKey({ kid: "2026-01" });
 * const ring = await importKey(JSON.stringify(jwk));
 * assert.equal(ring.current.kid, "2026-01");
 * assert.ok(!JSON.stringify(ring).includes(jwk.k!));
 * ```
 *
 * @module
 */

import { fromBase64, toBase64, toHex, utf8 } from "./_bytes.ts";
import { NotFoundError } from "./_errors.ts";
import { isRecord } from "./_guards.ts";
import { KID_MAX } from "./_limits.ts";
import { hasDeno, readEnv } from "./_runtime.ts";

export { NotFoundError } from "./_errors.ts";

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

/** A JSON Web Key Set (RFC 7517 section 5): the first key is the current one. */
export type JsonWebKeySet = { keys: JsonWebKey[] };

/** Key sizes kvcrypt supports: AES-128-GCM and AES-256-GCM. */
const KEY_BITS = [128, 256] as const;
/** Default key size for new keys. */
const DEFAULT_BITS = 256;
/** The JWK `alg` for each key length in bytes. */
const ALG_BY_BYTES: Readonly<Record<number, string>> = { 16: "A128GCM", 32: "A256GCM" };
/** Random bytes in a generated kid: 8 bytes give 16 hex characters, collisions negligible. */
const RANDOM_KID_BYTES = 8;
/** Usages every kvcrypt key needs: wrap and unwrap blob secrets, seal and open values. */
const KEY_USAGES: readonly KeyUsage[] = ["encrypt", "decrypt"];
/** Web Crypto's algorithm name for kvcrypt keys. */
const AES_GCM = "AES-GCM";
/** Characters of unpadded base64url. */
const BASE64URL_PATTERN = /^[A-Za-z0-9_-]*$/;
/** A bare run of hex or base64 characters: a raw key pasted where a JWK belongs. */
const RAW_KEY_PATTERN = /^\s*[A-Za-z0-9+/_-]{16,}={0,2}\s*$/;
/** What to pass instead of a string that is not JSON. */
const PASS_A_JWK = "pass a JWK or a JWK Set (generate one with generateKey())";
/** What to do with raw key bytes (kv-toolbox keys are hex strings). */
const PASS_RAW_KEY = "import the raw bytes as an AES-GCM CryptoKey " +
  '(crypto.subtle.importKey("raw", bytes, "AES-GCM", true, ["encrypt", "decrypt"])) and pass ' +
  "that, or turn it into a JWK with exportKey() and pass the JWK to importKey()";

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

/**
 * Generates a new random AES-GCM key as an extractable JWK, ready to be
 * stored as JSON (for example in an environment variable).
 *
 * @param options `bits`: 128 or 256 (default 256). `kid`: the key id (default:
 * 16 random hex characters); it is written in the clear next to every blob the
 * key encrypts, so it should not be secret.
 * @returns `{ kty: "oct", k, alg: "A128GCM" | "A256GCM", kid, key_ops: ["encrypt", "decrypt"], ext: true }`.
 * @throws {RangeError} When `bits` is not 128 or 256, or `kid` is longer than 64 UTF-8 bytes.
 * @throws {TypeError} When `kid` is not a string or not well-formed Unicode.
 *
 * @example Generate a 128-bit key
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateKey } from "@kvcrypt/kvcrypt/keys";
 *
 * const jwk = await generateKey({ bits: 128, kid: "k1" });
 * assert.equal(jwk.kty, "oct");
 * assert.equal(jwk.alg, "A128GCM");
 * assert.equal(jwk.kid, "k1");
 * assert.equal(Uint8Array.fromBase64(jwk.k!, { alphabet: "base64url" }).length, 16);
 * ```
 */
export async function generateKey(
  options: { bits?: 128 | 256; kid?: string } = {},
): Promise<JsonWebKey & { kid: string }> {
  const prefix = "Cannot generate key";
  const bits = options.bits === undefined ? DEFAULT_BITS : options.bits;
  if (!(KEY_BITS as readonly unknown[]).includes(bits)) {
    throw new RangeError(`${prefix}: bits must be 128 or 256`);
  }
  const kid = checkKid(options.kid === undefined ? randomKid() : options.kid, prefix, RangeError);
  const key = await crypto.subtle.generateKey({ name: AES_GCM, length: bits }, true, [
    ...KEY_USAGES,
  ]);
  return toJwk(new Uint8Array(await crypto.subtle.exportKey("raw", key)), kid);
}

/**
 * Imports a JWK, a JWK Set, or a JSON string of either, as a {@linkcode Keyring}
 * (a set's first key is the current one). Imported keys are not extractable.
 *
 * @param jwk A JWK `{ kty: "oct", k, alg?, kid? }` of 16 or 32 bytes, a JWK Set
 * `{ keys: [...] }`, or the JSON text of either. A JWK without `kid` gets the
 * empty kid.
 * @returns A keyring of the imported keys, in order.
 * @throws {SyntaxError} When the text is not JSON (a raw hex or base64 key
 * among it: the message says how to import one). Never quotes the text.
 * @throws {TypeError} When the input is not a JWK or JWK Set, `kty`
 * is not `"oct"`, `alg` is not `"A128GCM"`/`"A256GCM"` or does not match the
 * key length, `k` is missing, not base64url or not 16 or 32 bytes, a kid is
 * not a string or longer than 64 UTF-8 bytes, the set is empty, or two keys
 * share a kid. Messages start with "Cannot import key: " and never contain
 * key material.
 *
 * @example Import a JWK Set: the first key is current
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateKey, importKey } from "@kvcrypt/kvcrypt/keys";
 *
 * const set = { keys: [await generateKey({ kid: "b" }), await generateKey({ kid: "a" })] };
 * const ring = await importKey(set);
 * assert.equal(ring.current.kid, "b");
 * assert.equal(ring.current.key.extractable, false);
 * await assert.rejects(importKey("not json"), SyntaxError);
 * ```
 */
export function importKey(jwk: JsonWebKey | JsonWebKeySet | string): Promise<Keyring<KeyEntry>> {
  return importKeyAs(jwk, "Cannot import key");
}

/**
 * Exports an extractable AES-GCM CryptoKey as a JWK.
 *
 * @param key An extractable AES-GCM key of 128 or 256 bits with encrypt and decrypt usages.
 * @param kid The key id to put in the JWK (default `""`).
 * @returns `{ kty: "oct", k, alg, kid, key_ops: ["encrypt", "decrypt"], ext: true }`.
 * @throws {TypeError} When `key` is not such an AES-GCM CryptoKey, is not
 * extractable, or `kid` is not a string.
 * @throws {RangeError} When `kid` is longer than 64 UTF-8 bytes.
 *
 * @example Export a key made with Web Crypto
 * ```ts
 * import assert from "node:assert/strict";
 * import { exportKey } from "@kvcrypt/kvcrypt/keys";
 *
 * const key = await crypto.subtle.generateKey(
 *   { name: "AES-GCM", length: 256 },
 *   true,
 *   ["encrypt", "decrypt"],
 * );
 * const jwk = await exportKey(key, "web");
 * assert.equal(jwk.alg, "A256GCM");
 * assert.equal(jwk.kid, "web");
 * ```
 */
export async function exportKey(
  key: CryptoKey,
  kid: string = "",
): Promise<JsonWebKey & { kid: string }> {
  const prefix = "Cannot export key";
  checkAesKey(key, prefix);
  // Refuse a key its owner marked non-extractable instead of failing inside Web Crypto.
  if (!key.extractable) throw new TypeError(`${prefix}: it is not extractable`);
  checkKid(kid, prefix, RangeError);
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", key));
  return toJwk(raw, kid);
}

/**
 * Builds a keyring from keys in any supported form: the first argument's
 * current key encrypts, all keys decrypt. Keyrings and JWK Sets are flattened
 * in order; a bare CryptoKey gets the empty kid.
 *
 * @param keys The keys, current first: CryptoKeys, JWKs, JWK Sets, JSON
 * strings of either, keyrings, or {@linkcode KeyWrapper}s (keys held in a
 * KMS or key service).
 * @returns One keyring holding every key, in order.
 * @throws {TypeError} When no key is given, a CryptoKey is not AES-GCM of 128
 * or 256 bits with encrypt and decrypt usages, an argument is not a key, an
 * import fails (see {@linkcode importKey}), or two keys share a non-empty kid.
 * @throws {SyntaxError} When a JSON string does not parse.
 *
 * @example Add a new key in front of an existing keyring
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateKey, importKey, keyring } from "@kvcrypt/kvcrypt/keys";
 *
 * const old = await importKey({ keys: [await generateKey({ kid: "v2" }), await generateKey({ kid: "v1" })] });
 * const ring = await keyring(await generateKey({ kid: "v3" }), old);
 * assert.deepEqual(ring.kids, ["v3", "v2", "v1"]);
 * ```
 */
export async function keyring(
  ...keys: Array<CryptoKey | JsonWebKey | JsonWebKeySet | string | Keyring | KeyWrapper>
): Promise<Keyring> {
  if (keys.length === 0) throw new TypeError("Cannot make a keyring: no key given");
  const entries: KeyringEntry[] = [];
  for (const input of keys) entries.push(...await entriesOf(input));
  return new Keyring(entries);
}

/**
 * Reads a JWK, or a JWK Set, from an environment variable (as JSON) and
 * imports it like {@linkcode importKey}. Deno and Deno Deploy read it with
 * `Deno.env`; where the `Deno` global is absent (Node) it comes from
 * `process.env`.
 *
 * @param name The variable's name (default `"KVCRYPT_KEY"`).
 * @returns The imported keyring.
 * @throws {NotFoundError} When the variable is not set or empty.
 * @throws {SyntaxError} When its value is not JSON.
 * @throws {TypeError} When its value is not a JWK or JWK Set that imports.
 * Messages name the variable and never contain its value.
 * @throws {Deno.errors.NotCapable} On Deno, without `--allow-env` for the variable.
 *
 * @example Load keys from an environment variable
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateKey, keyringFromEnv } from "@kvcrypt/kvcrypt/keys";
 *
 * // In production the variable is set outside the program (e.g. on Deno Deploy),
 * // and `keyringFromEnv()` with no argument reads KVCRYPT_KEY.
 * Deno.env.set("MY_APP_KEY", JSON.stringify(await generateKey({ kid: "env" })));
 * const ring = await keyringFromEnv("MY_APP_KEY");
 * assert.equal(ring.current.kid, "env");
 * Deno.env.delete("MY_APP_KEY");
 * ```
 */
export async function keyringFromEnv(
  name: string = "KVCRYPT_KEY",
): Promise<Keyring<KeyEntry>> {
  const value = readEnv(name);
  if (value === undefined) {
    throw new NotFoundError(`Cannot read key: environment variable ${name} is not set`);
  }
  if (value.trim() === "") {
    throw new NotFoundError(`Cannot read key: environment variable ${name} is empty`);
  }
  return await importKeyAs(value, `Cannot import key from environment variable ${name}`);
}

// ---------------------------------------------------------------------------
// Importing.

/** Throws a TypeError with the message `${prefix}: ${detail}`. */
type Fail = (detail: string) => never;

/** Makes a {@linkcode Fail} for one error prefix. */
function failWith(prefix: string): Fail {
  return (detail) => {
    throw new TypeError(`${prefix}: ${detail}`);
  };
}

/** Imports a JWK, a JWK Set or JSON text of either; errors start with `prefix`. */
async function importKeyAs(input: unknown, prefix: string): Promise<Keyring<KeyEntry>> {
  const fail = failWith(prefix);
  const value = typeof input === "string" ? parseKeyJson(input, prefix) : input;
  const jwks = jwkList(value, fail);
  const entries: KeyEntry[] = [];
  for (const [index, jwk] of jwks.entries()) {
    const label = isKeySet(value) ? `${prefix}: keys[${index}]` : prefix;
    entries.push(await importJwk(jwk, failWith(label)));
  }
  checkUniqueKids(entries.map((entry) => entry.kid), prefix);
  return new Keyring(entries);
}

/** Parses key JSON without ever quoting the text in an error; text that does not parse is a SyntaxError. */
function parseKeyJson(text: string, prefix: string): unknown {
  // A raw hex or base64 key is not a JWK: say what to pass instead of a JSON error.
  if (RAW_KEY_PATTERN.test(text)) {
    throw new SyntaxError(
      `${prefix}: the text looks like a raw hex or base64 key, which is not JSON; ${PASS_RAW_KEY}`,
    );
  }
  try {
    return JSON.parse(text);
  } catch {
    // JSON.parse's own message quotes the input, which may be key material: drop it.
    throw new SyntaxError(`${prefix}: the text is not JSON; ${PASS_A_JWK}`);
  }
}

/** Whether a parsed value has the shape of a JWK Set. */
function isKeySet(value: unknown): boolean {
  return isRecord(value) && "keys" in value;
}

/** The JWKs of a JWK or JWK Set, checked to be objects. */
function jwkList(value: unknown, fail: Fail): Record<string, unknown>[] {
  if (!isRecord(value)) fail("expected a JWK or a JWK Set");
  if (!("keys" in value)) return [value];
  const keys = value.keys;
  if (!Array.isArray(keys)) fail("keys must be an array of JWKs");
  if (keys.length === 0) fail("the key set is empty");
  return keys.map((jwk: unknown, index) => {
    if (!isRecord(jwk)) fail(`keys[${index}]: expected a JWK`);
    return jwk;
  });
}

/** Checks one JWK field by field and imports it as a non-extractable key. */
async function importJwk(jwk: Record<string, unknown>, fail: Fail): Promise<KeyEntry> {
  // Only symmetric keys: an RSA or EC JWK here is a mistake, never an AES key.
  if (jwk.kty !== "oct") fail('kty must be "oct"');
  const kid = jwk.kid === undefined ? "" : jwkKid(jwk.kid, fail);
  const raw = decodeK(jwk.k, fail);
  try {
    checkAlg(jwk.alg, raw.length, fail);
    checkUse(jwk, fail);
    const key = await crypto.subtle.importKey("raw", raw, AES_GCM, false, [...KEY_USAGES]);
    return Object.freeze({ kid, key });
  } finally {
    raw.fill(0);
  }
}

/** Checks a JWK's kid; every problem is a TypeError, since the whole document is malformed. */
function jwkKid(kid: unknown, fail: Fail): string {
  const problem = kidProblem(kid);
  if (problem !== undefined) fail(problem.detail);
  return kid as string;
}

/** Decodes `k`, refusing anything that is not a 16- or 32-byte unpadded base64url string. */
function decodeK(k: unknown, fail: Fail): Uint8Array<ArrayBuffer> {
  if (k === undefined) fail('"k" is missing');
  if (typeof k !== "string") fail('"k" must be a string');
  // Strict, canonical base64url: two spellings of one key could otherwise compare unequal.
  if (!BASE64URL_PATTERN.test(k) || k.length % 4 === 1) fail('"k" is not unpadded base64url');
  const raw = fromBase64(k, "base64url");
  if (toBase64(raw, "base64url") !== k) {
    raw.fill(0);
    fail('"k" is not canonical base64url');
  }
  // AES-GCM keys are 16 or 32 bytes here; anything else is a truncated or wrong value.
  if (ALG_BY_BYTES[raw.length] === undefined) {
    const length = raw.length;
    raw.fill(0);
    fail(`"k" must be 16 or 32 bytes, got ${length}`);
  }
  return raw;
}

/** Checks that an `alg`, when present, names AES-GCM of the key's length. */
function checkAlg(alg: unknown, bytes: number, fail: Fail): void {
  if (alg === undefined) return;
  // Only the two AES-GCM algorithms: a key meant for another algorithm must not be reused here.
  if (alg !== "A128GCM" && alg !== "A256GCM") fail('alg must be "A128GCM" or "A256GCM"');
  // The declared length must match k, or the key was truncated or mislabelled.
  if (ALG_BY_BYTES[bytes] !== alg) fail(`alg "${alg}" does not match a ${bytes}-byte key`);
}

/** Checks `use` and `key_ops`, when present, allow encryption. */
function checkUse(jwk: Record<string, unknown>, fail: Fail): void {
  // A key its owner restricted to signing or to one direction must not encrypt here.
  if (jwk.use !== undefined && jwk.use !== "enc") fail('use must be "enc"');
  const ops = jwk.key_ops;
  if (ops === undefined) return;
  if (!Array.isArray(ops) || !KEY_USAGES.every((usage) => ops.includes(usage))) {
    fail('key_ops must include "encrypt" and "decrypt"');
  }
}

// ---------------------------------------------------------------------------
// Shared checks.

/** The entries of one {@linkcode keyring} argument. */
async function entriesOf(input: unknown): Promise<readonly KeyringEntry[]> {
  if (input instanceof Keyring) return [...input];
  if (isKeyWrapper(input)) return [input];
  if (input instanceof CryptoKey) {
    return [{ kid: "", key: checkAesKey(input, "Cannot use key") }];
  }
  if (typeof input === "string" || isRecord(input)) {
    return [...await importKeyAs(input, "Cannot import key")];
  }
  throw new TypeError(
    "Cannot use key: expected a CryptoKey, a JWK, a JWK Set, a JSON string of one, a Keyring or a KeyWrapper",
  );
}

/** Checks a keyring entry and returns a frozen copy (a key wrapper is kept as it is). */
function checkEntry<E extends KeyringEntry>(entry: E, prefix: string): E {
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
function checkAesKey(key: unknown, prefix: string): CryptoKey {
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
function kidProblem(kid: unknown): { detail: string; tooLong: boolean } | undefined {
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
function checkKid(
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
function checkUniqueKids(kids: readonly string[], prefix: string): void {
  const seen = new Set<string>();
  for (const kid of kids) {
    // Two keys under one kid: a reader would try the wrong one and call good data corrupt.
    if (kid !== "" && seen.has(kid)) {
      throw new TypeError(`${prefix}: kid ${JSON.stringify(kid)} appears twice`);
    }
    seen.add(kid);
  }
}

// ---------------------------------------------------------------------------
// Exporting.

/** A random kid: RANDOM_KID_BYTES random bytes as lowercase hex. */
function randomKid(): string {
  return toHex(crypto.getRandomValues(new Uint8Array(RANDOM_KID_BYTES)));
}

/** Encodes raw key bytes as a JWK, then wipes the bytes. */
function toJwk(raw: Uint8Array, kid: string): JsonWebKey & { kid: string } {
  const alg = ALG_BY_BYTES[raw.length] ?? "";
  const k = toBase64(raw, "base64url");
  raw.fill(0);
  return { kty: "oct", k, alg, kid, key_ops: [...KEY_USAGES], ext: true };
}

// The CLI is Deno's (`deno run jsr:@kvcrypt/kvcrypt/keys`); elsewhere this module is a library only.
if (import.meta.main && hasDeno()) {
  // No top-level await: the CLI imports this module, which must finish evaluating first.
  import("./_keys_cli.ts")
    .then(({ main }) => main(Deno.args))
    .then((code) => Deno.exit(code));
}
