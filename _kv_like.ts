/**
 * The shape of a KV store that kvcrypt uses: the part of `Deno.Kv` it calls,
 * which `@deno/kv`'s `Kv` (Node) has as well. Functions take this instead of
 * `Deno.Kv`, so either store goes in without a cast.
 *
 * @module
 */

/** An atomic operation on a {@linkcode KvLike} store: `Deno.AtomicOperation`'s shape. */
export interface AtomicLike {
  /** Makes the commit fail unless each key still has the versionstamp given. */
  check(...checks: Deno.AtomicCheck[]): this;
  /** Sets a key when the operation commits. */
  set(key: Deno.KvKey, value: unknown, options?: { expireIn?: number }): this;
  /** Deletes a key when the operation commits. */
  delete(key: Deno.KvKey): this;
  /** Applies every mutation, or none when a check fails. */
  commit(): Promise<Deno.KvCommitResult | Deno.KvCommitError>;
}

/** The iterator a {@linkcode KvLike} store's `list` returns: `Deno.KvListIterator`'s shape. */
export interface KvListIteratorLike<T> extends AsyncIterableIterator<Deno.KvEntry<T>> {
  /** Continues a listing after the last entry returned. */
  readonly cursor: string;
}

/** A KV store: `Deno.Kv`, or `@deno/kv`'s `Kv` on Node. */
export interface KvLike {
  /** Reads one key. */
  get(
    key: Deno.KvKey,
    options?: { consistency?: Deno.KvConsistencyLevel },
  ): Promise<Deno.KvEntryMaybe<unknown>>;
  /** Reads several keys at once. */
  getMany<T extends readonly unknown[]>(
    keys: readonly [...{ [K in keyof T]: Deno.KvKey }],
    options?: { consistency?: Deno.KvConsistencyLevel },
  ): Promise<{ [K in keyof T]: Deno.KvEntryMaybe<T[K]> }>;
  /** Writes one key. */
  set(
    key: Deno.KvKey,
    value: unknown,
    options?: { expireIn?: number },
  ): Promise<Deno.KvCommitResult>;
  /** Deletes one key. */
  delete(key: Deno.KvKey): Promise<void>;
  /** Lists the entries a selector matches. */
  list<T = unknown>(
    selector: Deno.KvListSelector,
    options?: Deno.KvListOptions,
  ): KvListIteratorLike<T>;
  /** Starts an atomic operation. */
  atomic(): AtomicLike;
  /** Streams the entries of keys each time one of them changes. */
  watch<T extends readonly unknown[]>(
    keys: readonly [...{ [K in keyof T]: Deno.KvKey }],
    options?: { raw?: boolean },
  ): ReadableStream<{ [K in keyof T]: Deno.KvEntryMaybe<T[K]> }>;
}
