/**
 * Turns the `encryptionKey` option into keyrings: one keyring per recipient
 * for writes, and every key of every keyring for reads. Resolved keyrings are
 * cached, so passing the same key (or the same environment variable string)
 * on every call imports it once.
 *
 * @module
 */

import { isRecord } from "./_guards.ts";
import { type JsonWebKeySet, keyringOf } from "./_key_import.ts";
import { isKeyWrapper, Keyring, type KeyringEntry, type KeyWrapper } from "./_keyring.ts";
import type { EncryptionKey } from "./_types.ts";

/** Most strings (JWK JSON, typically from an environment variable) whose keyrings stay cached. */
const STRING_CACHE_MAX = 16;

/** The message for a value that is not a key in any accepted form. */
const NOT_A_KEY =
  "Cannot use encryptionKey: expected a CryptoKey, a JWK, a JWK Set, a JSON string of one, a Keyring, a KeyWrapper, or an array of them";

/**
 * Keyrings resolved from CryptoKeys and JWK or JWK Set objects, dropped with
 * their key. A JWK object is mutable, so its entry also keeps the JSON it was
 * imported from and is used only while the object still serializes to it.
 */
const objectCache = new WeakMap<object, { json: string | undefined; ring: Promise<Keyring> }>();
/** Keyrings resolved from JSON strings, least recently used first. */
const stringCache = new Map<string, Promise<Keyring>>();

/**
 * Resolves `encryptionKey` into recipients: one keyring for a single
 * {@linkcode KeyMaterial}, one keyring per element for an array.
 *
 * @param input The `encryptionKey` option.
 * @returns The recipients' keyrings, in order; writes use each one's current key.
 * @throws {TypeError} When the array is empty, an element is not a key in an
 * accepted form, or a key does not import.
 */
export async function resolveRecipients(input: EncryptionKey): Promise<readonly Keyring[]> {
  if (!Array.isArray(input)) return Object.freeze([await resolveKeyring(input)]);
  const list = input as readonly unknown[];
  if (list.length === 0) throw new TypeError("Cannot use encryptionKey: the array is empty");
  // The array itself is not cached: a caller may change it between calls. Its elements are.
  return Object.freeze(await Promise.all(list.map(resolveKeyring)));
}

/**
 * Resolves `encryptionKey` into every key a reader may try: all keys of all
 * recipients' keyrings, in order, each (kid, key) pair once.
 *
 * @param input The `encryptionKey` option.
 * @returns The keys, current key of the first recipient first.
 * @throws {TypeError} As {@linkcode resolveRecipients}.
 */
export async function resolveReadKeys(input: EncryptionKey): Promise<readonly KeyringEntry[]> {
  const seen = new Map<CryptoKey | KeyWrapper, Set<string>>();
  const keys: KeyringEntry[] = [];
  for (const ring of await resolveRecipients(input)) {
    for (const entry of ring) {
      const handle = isKeyWrapper(entry) ? entry : entry.key;
      const kids = seen.get(handle) ?? new Set<string>();
      if (kids.has(entry.kid)) continue;
      seen.set(handle, kids.add(entry.kid));
      keys.push(entry);
    }
  }
  return Object.freeze(keys);
}

/** Resolves one key ring, through the caches. */
function resolveKeyring(input: unknown): Promise<Keyring> {
  if (input instanceof Keyring) return Promise.resolve(input);
  // A wrapper holds no key material to import: a keyring of it costs nothing.
  if (isKeyWrapper(input)) return Promise.resolve().then(() => new Keyring([input]));
  if (typeof input === "string") return cachedByString(input);
  if (input instanceof CryptoKey || isRecord(input)) return cachedByObject(input);
  return Promise.reject(new TypeError(NOT_A_KEY));
}

/** The keyring of a CryptoKey or JWK object, imported once per object. */
function cachedByObject(input: CryptoKey | JsonWebKey | JsonWebKeySet): Promise<Keyring> {
  // Stops a JWK changed in place from being used as the key it was before.
  const json = input instanceof CryptoKey ? undefined : JSON.stringify(input);
  const cached = objectCache.get(input);
  if (cached !== undefined && cached.json === json) return cached.ring;
  const resolved = keyringOf([input]);
  const entry = { json, ring: resolved };
  objectCache.set(input, entry);
  // A failed import is not cached: the next call reports the error afresh.
  resolved.catch(() => {
    if (objectCache.get(input) === entry) objectCache.delete(input);
  });
  return resolved;
}

/** The keyring of a JSON string, from a small LRU cache. */
function cachedByString(input: string): Promise<Keyring> {
  const cached = stringCache.get(input);
  if (cached !== undefined) {
    stringCache.delete(input);
    stringCache.set(input, cached);
    return cached;
  }
  const resolved = keyringOf([input]);
  stringCache.set(input, resolved);
  // A failed import is not cached, so a bad string is not kept in memory.
  resolved.catch(() => {
    if (stringCache.get(input) === resolved) stringCache.delete(input);
  });
  // Bounded: strings are key material, and a caller building them per request must not grow memory.
  for (const oldest of stringCache.keys()) {
    if (stringCache.size <= STRING_CACHE_MAX) break;
    stringCache.delete(oldest);
  }
  return resolved;
}
