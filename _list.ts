/**
 * The blob listing behind `list`: walks a `Deno.Kv.list` selector and yields
 * the kvcrypt records among its entries. kvcrypt's own entries (chunks,
 * versions), values that are not blobs and expired blobs are skipped without
 * counting against `limit`; the cursor continues after the last blob yielded.
 *
 * @module
 */

import type { KvLike, KvListIteratorLike } from "./_kv_like.ts";
import type { KeyringEntry } from "./_keyring.ts";
import { INTERNAL_PREFIX } from "./_kv_keys.ts";
import { readKeysOf, type ReadTarget } from "./_chunk_reader.ts";
import { metaOfEntry, targetAt } from "./_read_protocol.ts";
import { recordMagic } from "./_record.ts";
import type { BlobListIterator, BlobMeta, ListOptions, ReadOptions } from "./_types.ts";

/** Checks a `limit` option: undefined, or a whole number of blobs of at least 1. */
function checkedLimit(limit: unknown): number | undefined {
  if (limit === undefined) return undefined;
  if (typeof limit !== "number") throw new TypeError("Cannot list blobs: limit must be a number");
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new RangeError(`Cannot list blobs: limit must be a positive integer, got ${limit}`);
  }
  return limit;
}

/** The `Deno.Kv.list` options of a blob listing: no limit (blobs are counted here), the rest as given. */
function entryListOptions(options: ListOptions): Deno.KvListOptions {
  const { cursor, reverse, batchSize, consistency } = options;
  const given = Object.entries({ cursor, reverse, batchSize, consistency });
  return Object.fromEntries(given.filter(([, value]) => value !== undefined));
}

/** Whether a listed entry may be a blob record (its metadata then tells). */
function mayBeRecord(entry: Deno.KvEntry<unknown>): boolean {
  // A chunk's bytes may look like a record: kvcrypt's own entries are never blobs.
  return entry.key[0] !== INTERNAL_PREFIX && recordMagic(entry.value) !== undefined;
}

/** {@linkcode BlobListIterator} over one `Deno.Kv.list`. */
export class BlobListing implements BlobListIterator {
  #kv: KvLike;
  #entries: KvListIteratorLike<unknown>;
  #limit: number | undefined;
  #readOptions: ReadOptions;
  #readKeys: Promise<readonly KeyringEntry[] | undefined> | undefined;
  #yielded = 0;
  #cursor: string | undefined;
  #done = false;

  /**
   * @param kv The store.
   * @param selector As for `Deno.Kv.list`.
   * @param options Listing and read options.
   * @throws {TypeError} if `limit` is not a number.
   * @throws {RangeError} if `limit` is not a positive integer.
   */
  constructor(kv: KvLike, selector: Deno.KvListSelector, options: ListOptions) {
    const { encryptionKey, allowPlaintext } = options;
    this.#kv = kv;
    this.#limit = checkedLimit(options.limit);
    this.#readOptions = { encryptionKey, allowPlaintext };
    this.#entries = kv.list(selector, entryListOptions(options));
    // As Deno.KvListIterator: a given cursor is the position before the first entry.
    this.#cursor = options.cursor || undefined;
  }

  get cursor(): string {
    if (this.#cursor === undefined) {
      throw new Error("Cannot get the cursor of a blob listing before its first blob");
    }
    return this.#cursor;
  }

  async next(): Promise<IteratorResult<Deno.KvEntry<BlobMeta>, undefined>> {
    if (this.#done || (this.#limit !== undefined && this.#yielded >= this.#limit)) {
      return { done: true, value: undefined };
    }
    this.#readKeys ??= readKeysOf(this.#readOptions);
    const readKeys = await this.#readKeys;
    for (;;) {
      const next = await this.#entries.next();
      if (next.done) return this.#finish();
      const entry = next.value;
      if (!mayBeRecord(entry)) continue;
      // Every record is opened as a read would: a tampered one throws, never vanishes.
      const meta = await metaOfEntry(this.#target(entry.key), entry, readKeys);
      if (meta === null) continue;
      this.#yielded++;
      this.#cursor = this.#entries.cursor;
      return {
        done: false,
        value: { key: entry.key, value: meta, versionstamp: entry.versionstamp },
      };
    }
  }

  /** Ends the listing early (a `break` out of `for await`). */
  return(): Promise<IteratorResult<Deno.KvEntry<BlobMeta>, undefined>> {
    this.#done = true;
    return Promise.resolve({ done: true, value: undefined });
  }

  [Symbol.asyncIterator](): BlobListIterator {
    return this;
  }

  #finish(): IteratorResult<Deno.KvEntry<BlobMeta>, undefined> {
    this.#done = true;
    // As Deno.KvListIterator: the empty cursor says nothing is left.
    this.#cursor = "";
    return { done: true, value: undefined };
  }

  #target(key: Deno.KvKey): ReadTarget {
    return targetAt(this.#kv, key, this.#readOptions);
  }
}
