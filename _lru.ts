/**
 * The one bounded least-recently-used map behind kvcrypt's in-memory caches
 * (opened versions, parsed records, version hints, key text): a `Map` keeps
 * insertion order, so the most recently used entry is the last one.
 *
 * @module
 */

/** A map of at most `max` entries that drops the least recently used first. */
export class Lru<K, V> {
  readonly #max: number;
  readonly #entries = new Map<K, V>();

  /** A map of at most `max` entries. */
  constructor(max: number) {
    this.#max = max;
  }

  /** The value at `key`, leaving the order as it is (see {@linkcode Lru.use}). */
  peek(key: K): V | undefined {
    return this.#entries.get(key);
  }

  /** The value at `key`, marked most recently used. */
  use(key: K): V | undefined {
    const value = this.#entries.get(key);
    if (value !== undefined) this.set(key, value);
    return value;
  }

  /** Sets `key` as the most recently used entry, dropping the least recently used beyond the bound. */
  set(key: K, value: V): void {
    this.#entries.delete(key);
    this.#entries.set(key, value);
    if (this.#entries.size > this.#max) this.#entries.delete(this.#entries.keys().next().value!);
  }

  /** Forgets `key`. */
  delete(key: K): void {
    this.#entries.delete(key);
  }

  /** Number of entries. */
  get size(): number {
    return this.#entries.size;
  }
}
