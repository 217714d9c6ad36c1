/**
 * Turns the key options into keyrings: a write's `encryptionKey` (one
 * recipient) or `recipients` (one keyring each), and a read's `encryptionKey`
 * (every key of every keyring). Resolved keyrings are cached, so passing the
 * same key (or the same environment variable string) on every call imports
 * it once.
 *
 * @module
 */

import { isRecord } from "./_guards.ts";
import { type JsonWebKeySet, keyringOf } from "./_key_import.ts";
import { isKeyWrapper, Keyring, type KeyringEntry, type KeyWrapper } from "./_keyring.ts";
import { STANZAS_MAX } from "./_limits.ts";
import { Lru } from "./_lru.ts";
import type { EncryptionKey, KeyMaterial } from "./_types.ts";

/** The options of a write that say whom the blob is encrypted for. */
export interface WriteKeyOptions {
  /** One key ring: its current key gets the blob's one stanza. */
  encryptionKey?: KeyMaterial | undefined;
  /** Several recipients: one stanza for each entry's current key. */
  recipients?: readonly KeyMaterial[] | undefined;
}

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
const stringCache = new Lru<string, Promise<Keyring>>(STRING_CACHE_MAX);
/** The read keys of each key ring read with (rings are immutable). */
const readKeysByRing = new WeakMap<Keyring, readonly KeyringEntry[]>();

/**
 * Resolves a write's `encryptionKey` or `recipients` into one keyring per
 * recipient, so the option's name, never the shape of its value, says how
 * many stanzas the blob gets.
 *
 * @param options The write's options.
 * @param action What the write does, for messages ("store [\"k\"]").
 * @returns The recipients' keyrings, in order, or undefined for a plain write.
 * @throws {TypeError} When `encryptionKey` is an array, both options are
 * given, `recipients` is not an array, or an entry is not a key.
 * @throws {RangeError} When `recipients` lists no key.
 * @throws {SyntaxError} When a key given as JSON text does not parse.
 */
export async function resolveWriteRecipients(
  options: WriteKeyOptions,
  action: string,
): Promise<readonly Keyring[] | undefined> {
  const { encryptionKey, recipients } = options;
  // One meaning per option: an array here would silently mean several stanzas, not one key ring.
  if (Array.isArray(encryptionKey)) {
    throw new TypeError(
      `Cannot ${action}: encryptionKey is one key or key ring; pass several recipients as \`recipients\``,
    );
  }
  if (recipients === undefined) {
    return encryptionKey === undefined ? undefined : await resolveRecipients(encryptionKey);
  }
  // Either option alone says whom the blob is for; together they would leave it open which comes first.
  if (encryptionKey !== undefined) {
    throw new TypeError(`Cannot ${action}: pass encryptionKey or recipients, not both`);
  }
  if (!Array.isArray(recipients)) {
    throw new TypeError(`Cannot ${action}: recipients must be an array of keys`);
  }
  // An empty list must not fall back to a plain write: the caller asked for encryption.
  if (recipients.length === 0) {
    throw new RangeError(`Cannot ${action}: recipients must list 1 to ${STANZAS_MAX} keys`);
  }
  const rings = await resolveRecipients(recipients);
  assertDistinctKids(rings, action);
  return rings;
}

/** Refuses two recipients under one non-empty kid, as `rewrap` does for an added kid. */
function assertDistinctKids(rings: readonly Keyring[], action: string): void {
  const seen = new Set<string>();
  for (const { current: { kid } } of rings) {
    // Two stanzas under one kid: which one a kid names would be ambiguous, and rewrap could not tell them apart.
    if (kid !== "" && seen.has(kid)) {
      throw new TypeError(`Cannot ${action}: two recipients have the kid ${JSON.stringify(kid)}`);
    }
    seen.add(kid);
  }
}

/**
 * Resolves a list of key rings: one keyring for a single
 * {@linkcode KeyMaterial}, one keyring per element for an array.
 *
 * @param input A read's `encryptionKey`, the recipients of a write, or `rewrap`'s `add`.
 * @returns The keyrings, in order; writes use each one's current key.
 * @throws {TypeError} When the array is empty, an element is not a key in an
 * accepted form, or a key does not import.
 * @throws {SyntaxError} When a key given as JSON text does not parse.
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
 * @throws {SyntaxError} As {@linkcode resolveRecipients}.
 */
export async function resolveReadKeys(input: EncryptionKey): Promise<readonly KeyringEntry[]> {
  if (Array.isArray(input)) return distinctEntries(await resolveRecipients(input));
  // One key or key ring: its entries never change, so they are worked out once.
  const ring = await resolveKeyring(input);
  let keys = readKeysByRing.get(ring);
  if (keys === undefined) {
    keys = distinctEntries([ring]);
    readKeysByRing.set(ring, keys);
  }
  return keys;
}

/** Every entry of the rings, in order, each key (or wrapper) under each kid once. */
function distinctEntries(rings: readonly Keyring[]): readonly KeyringEntry[] {
  const seen = new Map<CryptoKey | KeyWrapper, Set<string>>();
  const keys: KeyringEntry[] = [];
  for (const ring of rings) {
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
  const cached = stringCache.use(input);
  if (cached !== undefined) return cached;
  const resolved = keyringOf([input]);
  // Bounded: strings are key material, and a caller building them per request must not grow memory.
  stringCache.set(input, resolved);
  // A failed import is not cached, so a bad string is not kept in memory.
  resolved.catch(() => {
    if (stringCache.peek(input) === resolved) stringCache.delete(input);
  });
  return resolved;
}
