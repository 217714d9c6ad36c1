/**
 * A bounded cache of the keys derived for encrypted blob versions read
 * recently, so serving one blob again and again pays one unwrap and one
 * HKDF (FORMAT.md, "Decrypting a blob", steps 2 and 3) instead of one per read.
 *
 * An entry is found only by the exact authenticated header bytes (magic
 * through `metaLen`: id, suite, commitment, layout, every stanza, `metaIv`)
 * together with the very key-encryption key that unwrapped the secret, given
 * again by the reader with a kid that may open that stanza. The metadata tag
 * (step 4, which binds the user key) and every chunk are still checked on
 * every read; an edited header, another key or a moved record never hit.
 *
 * @module
 */

import { bytesEqual } from "./_bytes.ts";
import { Lru } from "./_lru.ts";
import type { KeyEntry } from "./_keyring.ts";

/**
 * Versions kept: enough for a server's working set of hot files; an entry
 * holds at most one header's authenticated bytes (about 2.2 KiB with 16
 * recipients), so the cache stays under about 300 KiB.
 */
export const VERSION_CACHE_MAX = 128;

/** What a cached version holds: the unwrapped secret and the keys derived from it. */
export interface CachedVersion<Keys> {
  /** The authenticated header bytes it was opened from. */
  authenticated: Uint8Array;
  /** The key-encryption key that unwrapped the secret. */
  kek: CryptoKey;
  /** Index of the stanza it unwrapped. */
  stanza: number;
  /** The secret S. */
  secret: Uint8Array;
  /** The keys derived from S (content key, base nonce, commitment). */
  keys: Keys;
}

/**
 * A least-recently-used map from version ids to the version last opened
 * under each (a rewrap or another reader's key replaces it).
 */
export class VersionCache<Keys> {
  readonly #entries: Lru<string, CachedVersion<Keys>>;

  /** A cache of at most `max` versions. */
  constructor(max: number = VERSION_CACHE_MAX) {
    this.#entries = new Lru(max);
  }

  /**
   * The cached version of exactly these header bytes, if one of `readKeys`
   * is the key that unwrapped it and `mayOpen` lets that reader key open the
   * stanza it unwrapped.
   */
  find(
    id: Uint8Array,
    authenticated: Uint8Array,
    readKeys: readonly KeyEntry[],
    mayOpen: (entry: KeyEntry, stanza: number) => boolean,
  ): CachedVersion<Keys> | undefined {
    const name = idName(id);
    const version = this.#entries.peek(name);
    if (
      version === undefined || !bytesEqual(version.authenticated, authenticated) ||
      !readKeys.some((entry) => entry.key === version.kek && mayOpen(entry, version.stanza))
    ) {
      return undefined;
    }
    this.#entries.set(name, version);
    return version;
  }

  /** Remembers an opened version, dropping the least recently used beyond the bound. */
  add(id: Uint8Array, version: CachedVersion<Keys>): void {
    this.#entries.set(idName(id), version);
  }

  /** Number of versions cached. */
  get size(): number {
    return this.#entries.size;
  }
}

/** A Map key for a version id (each byte one UTF-16 code unit: distinct ids stay distinct). */
export function idName(id: Uint8Array): string {
  return String.fromCharCode(...id);
}
