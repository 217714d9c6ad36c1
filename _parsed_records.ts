/**
 * Records parsed before, each kept with a private copy of the bytes it was
 * parsed from (or written as). Parsing is a function of the bytes alone, so
 * a record byte-identical to one kept parses to the same result; a record
 * that differs in any byte is parsed afresh (and fails there if damaged).
 * Bounded like the version cache, least recently used dropped first.
 *
 * @module
 */

import { bytesEqual } from "./_bytes.ts";
import { ID_BYTES } from "./_limits.ts";
import { Lru } from "./_lru.ts";
import { idName, VERSION_CACHE_MAX } from "./_version_cache.ts";

/** Parse results by exact record bytes, found through the version id they hold at a fixed offset. */
export class ParsedRecords<T> {
  readonly #idStart: number;
  readonly #entries: Lru<string, { bytes: Uint8Array; parsed: T }>;

  /**
   * A store for records holding their version id at byte `idStart`, of at
   * most `max` entries.
   */
  constructor(idStart: number, max: number = VERSION_CACHE_MAX) {
    this.#idStart = idStart;
    this.#entries = new Lru(max);
  }

  /** What `bytes` parsed to before, if these very bytes were kept. */
  find(bytes: Uint8Array): T | undefined {
    if (bytes.length < this.#idStart + ID_BYTES) return undefined;
    const name = idName(bytes.subarray(this.#idStart, this.#idStart + ID_BYTES));
    const known = this.#entries.peek(name);
    // Only the very same bytes: a record edited anywhere must be parsed (and fail) again.
    if (known === undefined || !bytesEqual(known.bytes, bytes)) return undefined;
    this.#entries.set(name, known);
    return known.parsed;
  }

  /** Number of records kept. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Keeps `parsed` as the parse of `bytes`, which must be a private copy
   * that nothing changes afterwards.
   */
  add(bytes: Uint8Array, parsed: T): void {
    if (bytes.length < this.#idStart + ID_BYTES) return;
    this.#entries.set(idName(bytes.subarray(this.#idStart, this.#idStart + ID_BYTES)), {
      bytes,
      parsed,
    });
  }
}
