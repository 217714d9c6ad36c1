/**
 * Importing keys into a {@linkcode Keyring}: JWKs, JWK Sets and their JSON
 * text, checked field by field, and the keyring built from keys in every
 * form kvcrypt accepts (CryptoKeys, JWKs, keyrings, key wrappers). The
 * public functions are in keys.ts; _key_input.ts caches what this imports
 * for the `encryptionKey` option.
 *
 * @module
 */

import { fromBase64, toBase64 } from "./_bytes.ts";
import { isRecord } from "./_guards.ts";
import {
  AES_GCM,
  checkAesKey,
  checkUniqueKids,
  isKeyWrapper,
  KEY_USAGES,
  type KeyEntry,
  Keyring,
  type KeyringEntry,
  kidProblem,
} from "./_keyring.ts";

/** A JSON Web Key Set (RFC 7517 section 5): the first key is the current one. */
export type JsonWebKeySet = { keys: JsonWebKey[] };

/** The JWK `alg` for each key length in bytes. */
export const ALG_BY_BYTES: Readonly<Record<number, string>> = { 16: "A128GCM", 32: "A256GCM" };
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

/** Throws a TypeError with the message `${prefix}: ${detail}`. */
type Fail = (detail: string) => never;

/** Makes a {@linkcode Fail} for one error prefix. */
function failWith(prefix: string): Fail {
  return (detail) => {
    throw new TypeError(`${prefix}: ${detail}`);
  };
}

/** Imports a JWK, a JWK Set or JSON text of either; errors start with `prefix`. */
export async function importKeys(
  input: unknown,
  prefix: string = "Cannot import key",
): Promise<Keyring<KeyEntry>> {
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
// Keys in any form.

/**
 * The keyring of keys in any accepted form, current first: keyrings and JWK
 * Sets are flattened in order; a bare CryptoKey gets the empty kid.
 *
 * @throws {TypeError} As `keyring` in keys.ts.
 */
export async function keyringOf(keys: readonly unknown[]): Promise<Keyring> {
  if (keys.length === 0) throw new TypeError("Cannot make a keyring: no key given");
  const entries: KeyringEntry[] = [];
  for (const input of keys) entries.push(...await entriesOf(input));
  return new Keyring(entries);
}

/** The entries of one key in any accepted form. */
async function entriesOf(input: unknown): Promise<readonly KeyringEntry[]> {
  if (input instanceof Keyring) return [...input];
  if (isKeyWrapper(input)) return [input];
  if (input instanceof CryptoKey) {
    return [{ kid: "", key: checkAesKey(input, "Cannot use key") }];
  }
  if (typeof input === "string" || isRecord(input)) {
    return [...await importKeys(input)];
  }
  throw new TypeError(
    "Cannot use key: expected a CryptoKey, a JWK, a JWK Set, a JSON string of one, a Keyring or a KeyWrapper",
  );
}
