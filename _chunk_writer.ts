/**
 * The one chunk writer every write path uses (`set`, `stage`): streams a
 * value into chunk atomics under a fresh version id, builds the record, and
 * cleans up after a failure (FORMAT.md, "Writing a blob", steps 1 and 4).
 *
 * @module
 */

import type { AtomicLike, KvLike } from "./_kv_like.ts";
import { bytesEqual } from "./_bytes.ts";
import { ConcurrentModificationError } from "./_errors.ts";
import { chunkKey, versionKey } from "./_kv_keys.ts";
import {
  CHUNK_GRACE_MS,
  CHUNKS_IN_RECORD_COMMIT,
  CHUNKS_MAX,
  CHUNKS_PER_ATOMIC,
  ID_BYTES,
  WRITE_ATOMICS_IN_FLIGHT,
} from "./_limits.ts";
import { encodeVersion, VERSION_LIVE, type WriteFormat } from "./_record.ts";
import { recordId } from "./_summary.ts";
import { encodeKey } from "./_user_key.ts";
import { finishTombstone, tombstoneOf } from "./_versions.ts";
import type { StoredMetadata } from "./_types.ts";

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
  /** The last sealed chunks, from index `start`, that wait for the record commit. */
  #held: { start: number; values: Uint8Array[] } | undefined;
  #sent = 0;
  #committedBytes = 0;
  #size = 0;
  /** Chunk entries the record names (0 for an empty or inline blob), once written. */
  #chunkEntries = 0;

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

  /** What the record names once written: the version id and how many chunk entries it has. */
  get chunked(): { readonly id: Uint8Array; readonly chunks: number; readonly inline: boolean } {
    return { id: this.#id, chunks: this.#chunkEntries, inline: this.#chunkEntries === 0 };
  }

  /** Versionstamp of the version entry once written, null while the version has no chunks. */
  get versionstamp(): string | null {
    return this.#versionstamp;
  }

  /**
   * Streams `pieces` into the store through `format` and returns the record
   * bytes. A blob within the format's inline limit is sealed into its record
   * and writes nothing else. With `oneCommit`, a last batch of at most
   * {@linkcode CHUNKS_IN_RECORD_COMMIT} chunks is sealed and held, to be
   * committed with the record (and, for a blob of no more chunks, with the
   * version entry: the whole blob in one atomic).
   */
  async write(
    pieces: AsyncIterator<Uint8Array>,
    format: WriteFormat,
    meta: StoredMetadata,
    oneCommit = false,
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
    const { size, chunks, held } = await this.#upload(first.value, pieces, format, oneCommit);
    this.#size = size;
    // The held chunks and the metadata are sealed together, awaited once.
    const [values, record] = await Promise.all([
      Promise.all(held.map((item) => item.sealed)),
      format.encodeRecord(layout(size, chunks), meta, this.#target.key),
    ]);
    if (values.length > 0) this.#held = { start: chunks - values.length, values };
    this.#chunkEntries = chunks;
    return record;
  }

  /**
   * Adds the held chunks and the version entry to `op`, the atomic that also
   * commits the record: the blob is then published or absent as a whole.
   */
  addHeldChunks<Op extends AtomicLike>(op: Op): Op {
    if (this.#held === undefined) return op;
    const { start, values } = this.#held;
    const expiry = this.#chunkExpiry();
    // No chunk atomic committed yet: the version entry is created here too.
    if (this.#versionstamp === null) this.#addVersionEntry(op, expiry);
    values.forEach((value, offset) => op.set(chunkKey(this.#id, start + offset), value, expiry));
    return op;
  }

  /** `expireIn` of chunks and the version entry: the record's deadline plus the grace period. */
  #chunkExpiry(): { expireIn?: number } {
    const { deadline } = this.#target;
    return expiryOptions(deadline === 0 ? 0 : deadline + CHUNK_GRACE_MS);
  }

  /** Creates the version entry in `op`, which fails if the entry already exists. */
  #addVersionEntry(op: AtomicLike, expiry: { expireIn?: number }): void {
    const version = encodeVersion({
      state: VERSION_LIVE,
      created: Date.now(),
      encodedKey: this.#encodedKey,
    });
    op.check({ key: this.#versionKey, versionstamp: null }).set(this.#versionKey, version, expiry);
  }

  /**
   * Sends the chunks in atomics; with `hold`, a last batch that fits the
   * record commit is returned (its seals pending) instead of sent.
   */
  async #upload(
    first: Uint8Array,
    rest: AsyncIterator<Uint8Array>,
    format: WriteFormat,
    hold: boolean,
  ): Promise<{ size: number; chunks: number; held: PendingChunk[] }> {
    const inFlight = new Set<Promise<void>>();
    let failure: { error: unknown } | undefined;
    let batch: PendingChunk[] = [];
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
      // Full batches went out in the loop; what is left may ride in the record commit.
      if (batch.length > 0 && (!hold || batch.length > CHUNKS_IN_RECORD_COMMIT)) await flush();
    } finally {
      // Let every atomic settle, so none lands after the caller's cleanup starts.
      await Promise.allSettled(inFlight);
    }
    if (failure) throw failure.error;
    this.#target.signal?.throwIfAborted();
    return { size, chunks: this.#sent + batch.length, held: batch };
  }

  async #commitBatch(
    start: number,
    batch: readonly PendingChunk[],
  ): Promise<void> {
    const values = await Promise.all(batch.map((item) => item.sealed));
    const expiry = this.#chunkExpiry();
    const op = this.#target.kv.atomic();
    if (this.#versionstamp === null) {
      this.#addVersionEntry(op, expiry);
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

/** A chunk being sealed, and its plaintext length. */
interface PendingChunk {
  sealed: Promise<Uint8Array>;
  bytes: number;
}
