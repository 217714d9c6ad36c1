/**
 * The one chunk writer every write path uses (`set`, `stage`): streams a
 * value into chunk atomics under a fresh version id, builds the record, and
 * cleans up after a failure (DESIGN section 4, steps 1 and 4).
 *
 * @module
 */

import type { KvLike } from "./_kv_like.ts";
import { bytesEqual } from "./_bytes.ts";
import { ConcurrentModificationError } from "./_errors.ts";
import type { WriteFormat } from "./_format.ts";
import { chunkKey, versionKey } from "./_kv_keys.ts";
import {
  CHUNK_GRACE_MS,
  CHUNKS_MAX,
  CHUNKS_PER_ATOMIC,
  ID_BYTES,
  WRITE_ATOMICS_IN_FLIGHT,
} from "./_limits.ts";
import { type BlobMetaFields, encodeVersion, VERSION_LIVE } from "./_record.ts";
import { recordId } from "./_summary.ts";
import { encodeKey } from "./_user_key.ts";
import { finishTombstone, tombstoneOf } from "./_versions.ts";

/** Where and how a write goes. */
export interface WriteTarget {
  /** The store. */
  kv: KvLike;
  /** The user key of the record. */
  key: Deno.KvKey;
  /** The key as printed in messages. */
  keyText: string;
  /** Expiry deadline of the record, ms since the epoch; 0 = none. */
  deadline: number;
  /** Aborts the write. */
  signal?: AbortSignal | undefined;
  /** Told the number of plaintext bytes committed so far. */
  onProgress?: ((bytesWritten: number) => void) | undefined;
}

/** `expireIn` options for an entry that should live until `deadline` (0 = forever). */
export function expiryOptions(deadline: number): { expireIn?: number } {
  if (deadline === 0) return {};
  return { expireIn: Math.max(1, deadline - Date.now()) };
}

/**
 * Throws a RangeError when the write's deadline has passed: committing would
 * publish a record that is already expired.
 */
export function assertBeforeDeadline(target: WriteTarget): void {
  if (target.deadline !== 0 && Date.now() >= target.deadline) {
    throw new RangeError(
      `Cannot store ${target.keyText}: its expireIn deadline passed during the write`,
    );
  }
}

/** One blob version being written: its id, chunks sent, and version entry. */
export class VersionWriter {
  readonly #target: WriteTarget;
  readonly #id: Uint8Array;
  readonly #versionKey: Deno.KvKey;
  readonly #encodedKey: Uint8Array;
  #versionstamp: string | null = null;
  #sent = 0;
  #committedBytes = 0;
  #size = 0;

  /** Starts a version with a fresh random id. */
  constructor(target: WriteTarget) {
    this.#target = target;
    this.#id = crypto.getRandomValues(new Uint8Array(ID_BYTES));
    this.#versionKey = versionKey(this.#id);
    this.#encodedKey = encodeKey(target.key);
  }

  /** The version id. */
  get id(): Uint8Array {
    return this.#id;
  }

  /** Key of the version entry. */
  get versionKey(): Deno.KvKey {
    return this.#versionKey;
  }

  /** Versionstamp of the version entry once written, null while the version has no chunks. */
  get versionstamp(): string | null {
    return this.#versionstamp;
  }

  /**
   * Streams `pieces` into the store through `format` and returns the record
   * bytes. A blob within the format's inline limit is sealed into its record
   * and writes nothing else.
   */
  async write(
    pieces: AsyncIterator<Uint8Array>,
    format: WriteFormat,
    meta: BlobMetaFields,
  ): Promise<Uint8Array> {
    const first = await pieces.next();
    this.#target.signal?.throwIfAborted();
    const layout = (size: number, chunks: number) => ({
      id: this.#id,
      chunkSize: format.chunkSize,
      size,
      chunks,
      expiresAt: this.#target.deadline,
    });
    if (first.done) return format.encodeRecord(layout(0, 0), meta, this.#target.key);
    if (first.value.length <= format.inlineMax) {
      // A piece shorter than a full chunk is the last one: the whole blob is here.
      await pieces.next();
      this.#size = first.value.length;
      const inline = await format.sealChunk(0, first.value);
      return format.encodeRecord(layout(this.#size, 1), meta, this.#target.key, inline);
    }
    const { size, chunks } = await this.#upload(first.value, pieces, format);
    this.#size = size;
    return format.encodeRecord(layout(size, chunks), meta, this.#target.key);
  }

  async #upload(
    first: Uint8Array,
    rest: AsyncIterator<Uint8Array>,
    format: WriteFormat,
  ): Promise<{ size: number; chunks: number }> {
    const inFlight = new Set<Promise<void>>();
    let failure: { error: unknown } | undefined;
    let batch: { sealed: Promise<Uint8Array>; bytes: number }[] = [];
    let size = 0;
    const flush = async () => {
      const start = this.#sent;
      const pending = batch;
      batch = [];
      this.#sent += pending.length;
      if (this.#versionstamp === null) return await this.#commitBatch(start, pending);
      while (inFlight.size >= WRITE_ATOMICS_IN_FLIGHT) await Promise.race(inFlight);
      if (failure) throw failure.error;
      const running: Promise<void> = this.#commitBatch(start, pending).catch((error) => {
        failure ??= { error };
      }).finally(() => inFlight.delete(running));
      inFlight.add(running);
    };
    try {
      for (let piece: IteratorResult<Uint8Array> = { done: false, value: first }; !piece.done;) {
        this.#target.signal?.throwIfAborted();
        if (failure) throw failure.error;
        const index = this.#sent + batch.length;
        if (index >= CHUNKS_MAX) {
          throw new RangeError(
            `Cannot store ${this.#target.keyText}: it has more than ${CHUNKS_MAX} chunks`,
          );
        }
        batch.push({ sealed: format.sealChunk(index, piece.value), bytes: piece.value.length });
        size += piece.value.length;
        if (batch.length === CHUNKS_PER_ATOMIC) await flush();
        piece = await rest.next();
      }
      if (batch.length > 0) await flush();
    } finally {
      // Let every atomic settle, so none lands after the caller's cleanup starts.
      await Promise.allSettled(inFlight);
    }
    if (failure) throw failure.error;
    this.#target.signal?.throwIfAborted();
    return { size, chunks: this.#sent };
  }

  async #commitBatch(
    start: number,
    batch: readonly { sealed: Promise<Uint8Array>; bytes: number }[],
  ): Promise<void> {
    const values = await Promise.all(batch.map((item) => item.sealed));
    const { kv, deadline } = this.#target;
    const expiry = expiryOptions(deadline === 0 ? 0 : deadline + CHUNK_GRACE_MS);
    const op = kv.atomic();
    if (this.#versionstamp === null) {
      const version = encodeVersion({
        state: VERSION_LIVE,
        created: Date.now(),
        encodedKey: this.#encodedKey,
      });
      op.check({ key: this.#versionKey, versionstamp: null }).set(
        this.#versionKey,
        version,
        expiry,
      );
    } else {
      // Once vacuum tombstoned the version, no chunk of it may land.
      op.check({ key: this.#versionKey, versionstamp: this.#versionstamp });
    }
    values.forEach((value, offset) => op.set(chunkKey(this.#id, start + offset), value, expiry));
    const result = await op.commit();
    if (!result.ok) {
      throw new ConcurrentModificationError(
        `Cannot store ${this.#target.keyText}: its version was removed by vacuum during the write`,
      );
    }
    this.#versionstamp ??= result.versionstamp;
    this.#committedBytes += batch.reduce((sum, item) => sum + item.bytes, 0);
    this.#report(this.#committedBytes);
  }

  /** Reports the whole size once the record is committed. */
  reportDone(): void {
    if (this.#committedBytes !== this.#size) this.#report(this.#size);
  }

  /** Tells the caller's progress callback; what it throws must not fail a committed write. */
  #report(bytesWritten: number): void {
    try {
      this.#target.onProgress?.(bytesWritten);
    } catch {
      // The caller's bug: the write goes on.
    }
  }

  /**
   * Whether the record at the key holds this version (after a commit whose
   * reply was lost); also returns the entry read.
   */
  async isPublished(): Promise<{ published: boolean; entry: Deno.KvEntryMaybe<unknown> }> {
    const entry = await this.#target.kv.get(this.#target.key);
    const id = recordId(entry.value);
    return { published: id !== undefined && bytesEqual(id, this.#id), entry };
  }

  /**
   * Removes everything this version wrote, unless the record turns out to
   * hold it (a commit whose reply was lost). Returns the published entry in
   * that case, else undefined.
   */
  async abandon(): Promise<Deno.KvEntryMaybe<unknown> | undefined> {
    if (this.#sent === 0) {
      const { published, entry } = await this.isPublished();
      return published ? entry : undefined;
    }
    for (;;) {
      const { published, entry } = await this.isPublished();
      if (published) return entry;
      // Checks the record just read: a delayed record commit of this version
      // then fails, and a delayed chunk batch fails its version check.
      const result = await this.#target.kv.atomic().check(entry)
        .set(this.#versionKey, tombstoneOf(this.#encodedKey)).commit();
      if (result.ok) break;
    }
    await finishTombstone(this.#target.kv, this.#id, this.#sent);
    return undefined;
  }
}
