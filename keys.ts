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

import { toBase64, toHex } from "./_bytes.ts";
import { NotFoundError } from "./_errors.ts";
import { ALG_BY_BYTES, importKeys, type JsonWebKeySet, keyringOf } from "./_key_import.ts";
import {
  AES_GCM,
  checkAesKey,
  checkKid,
  KEY_BITS,
  KEY_USAGES,
  type KeyEntry,
  type Keyring,
  type KeyWrapper,
} from "./_keyring.ts";
import { hasDeno, readEnv } from "./_runtime.ts";

export { NotFoundError } from "./_errors.ts";
export type { JsonWebKeySet } from "./_key_import.ts";
export {
  isKeyWrapper,
  type KeyEntry,
  Keyring,
  type KeyringEntry,
  type KeyWrapper,
} from "./_keyring.ts";

/** Default key size for new keys. */
const DEFAULT_BITS = 256;
/** Random bytes in a generated kid: 8 bytes give 16 hex characters, collisions negligible. */
const RANDOM_KID_BYTES = 8;

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
  options: {
    /**
     * The key size: AES-128-GCM or AES-256-GCM.
     *
     * @default {256}
     */
    bits?: 128 | 256;
    /** The key id, written in the clear next to every blob the key encrypts. Without it: 16 random hex characters. */
    kid?: string;
  } = {},
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
  return importKeys(jwk);
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
  return await keyringOf(keys);
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
  return await importKeys(value, `Cannot import key from environment variable ${name}`);
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
