/**
 * Whole-value, Blob and stream reads built on the one chunk reader, and
 * metadata without a key.
 *
 * @module
 */

import type { KvLike } from "./_kv_like.ts";
import { concat, owned } from "./_bytes.ts";
import type { KeyringEntry } from "./_keyring.ts";
import { READ_RESTARTS_MAX } from "./_limits.ts";
import { parseHeader } from "./_kvc1.ts";
import { metaOfRecord, metaOfSummary } from "./_meta.ts";
import {
  type ChunkSink,
  type ChunkSpan,
  explainMissing,
  openEntry,
  openRecord,
  readAllChunks,
  readChunks,
  type ReadTarget,
  replacedError,
} from "./_chunk_reader.ts";
import { type OpenedRecord, recordMagic } from "./_record.ts";
import { isExpired, summarizeHeader } from "./_summary.ts";
import { assertUserKey, describeKey } from "./_user_key.ts";
import type { BlobMeta, ByteRange, ReadOptions, StoredMetadata } from "./_types.ts";

/** The target of a read at `key`, after checking the key. */
export function readTarget(
  kv: KvLike,
  key: Deno.KvKey,
  options: ReadOptions,
  action: string,
): ReadTarget {
  assertUserKey(key, action);
  return targetAt(kv, key, options);
}

/** The target of a read at a key known to be valid. */
export function targetAt(kv: KvLike, key: Deno.KvKey, options: ReadOptions): ReadTarget {
  return { kv, key, keyText: describeKey(key), options };
}

/**
 * A buffered read's plaintext, gathered into one buffer of the blob's size.
 * An authenticated size (an encrypted record's) is allocated at once and
 * chunks are copied in as they come. An unauthenticated one (a plain
 * record's) is allocated only once half of it has arrived, the chunks so far
 * copied in then and the rest as they come: a forged size makes a read
 * allocate at most twice the bytes the store really delivered (a size far
 * beyond them fails at the first missing chunk, having allocated nothing).
 * A blob that arrives as one chunk owning its whole buffer is that chunk: no
 * copy.
 */
export class WholeBuffer implements ChunkSink {
  #bytes: Uint8Array | undefined;
  #pieces: Uint8Array[] = [];
  #length = 0;
  readonly #size: number;
  readonly #sizeAuthenticated: boolean;

  /** A buffer for a blob of `size` bytes, a size the record authenticates or not. */
  constructor(size: number, sizeAuthenticated: boolean) {
    this.#size = size;
    this.#sizeAuthenticated = sizeAuthenticated;
  }

  /** Appends a chunk (the reader has checked its length against the record). */
  append(chunk: Uint8Array): void {
    if (this.#bytes === undefined && this.#mayAllocate(chunk)) {
      this.#bytes = new Uint8Array(this.#size);
      let offset = 0;
      for (const piece of this.#pieces) {
        this.#bytes.set(piece, offset);
        offset += piece.length;
      }
      this.#pieces = [];
    }
    if (this.#bytes === undefined) this.#pieces.push(chunk);
    else this.#bytes.set(chunk, this.#length);
    this.#length += chunk.length;
  }

  /** Whether the buffer of the blob's size may be allocated now, before `chunk` is added. */
  #mayAllocate(chunk: Uint8Array): boolean {
    // The whole blob in one chunk: finish() hands it out as it is.
    if (this.#length === 0 && chunk.length === this.#size) return false;
    // Half of an unauthenticated size delivered bounds what a forged size can make us allocate.
    return this.#sizeAuthenticated || (this.#length + chunk.length) * 2 >= this.#size;
  }

  /** Whether the buffer of the blob's size has been allocated yet. */
  get allocated(): boolean {
    return this.#bytes !== undefined;
  }

  /** The bytes gathered. */
  finish(): Uint8Array {
    if (this.#bytes !== undefined) return this.#bytes;
    const only = this.#pieces[0];
    if (this.#pieces.length === 1 && only !== undefined && ownsBuffer(only)) return only;
    return concat(this.#pieces);
  }
}

/** Whether a view covers its whole buffer (handing it out shows no other bytes). */
function ownsBuffer(bytes: Uint8Array): boolean {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
}

/** Reads a whole blob into one buffer, restarting when it is replaced under the read. */
export async function readWhole(
  target: ReadTarget,
): Promise<
  { entry: Deno.KvEntryMaybe<unknown>; bytes: Uint8Array; fields: StoredMetadata } | null
> {
  for (let restarts = 0;; restarts++) {
    // A restart reads strongly: a lagging replica could keep serving the replaced record.
    const open = { prefetch: true, whole: true, strong: restarts > 0 };
    const { entry, record } = await openEntry(target, open);
    if (record === null) return null;
    const whole = new WholeBuffer(record.size, record.encrypted);
    try {
      await readAllChunks(target.kv, record, whole);
      return { entry, bytes: whole.finish(), fields: record.meta };
    } catch (error) {
      const explained = await explainMissing(target, record, error);
      if (explained !== "replaced") throw explained;
      if (restarts >= READ_RESTARTS_MAX) throw replacedError(target.keyText);
    }
  }
}

/**
 * Checks a byte range against the blob's size.
 *
 * @throws {TypeError} when its bounds are not numbers.
 * @throws {RangeError} when it is not a range of whole bytes inside the blob.
 */
function checkedRange(
  size: number,
  range: ByteRange | undefined,
  keyText: string,
): { start: number; stop: number } {
  const start = range?.start ?? 0;
  const stop = range?.end ?? size;
  if (typeof start !== "number" || typeof stop !== "number") {
    throw new TypeError(`Cannot read ${keyText}: range start and end must be numbers`);
  }
  if (
    !Number.isSafeInteger(start) || !Number.isSafeInteger(stop) || start < 0 || stop < start ||
    stop > size
  ) {
    throw new RangeError(
      `Cannot read ${keyText}: range ${start}..${stop} is outside the blob of ${size} bytes`,
    );
  }
  return { start, stop };
}

/** The chunks holding bytes `start` up to (not including) `stop`. */
function chunkSpan(start: number, stop: number, chunkSize: number): ChunkSpan {
  const first = Math.floor(start / chunkSize);
  return { first, end: start === stop ? first : Math.ceil(stop / chunkSize) };
}

/**
 * Bytes `start` up to (not including) `stop` of an opened record as a pull
 * stream: chunks are fetched ahead of the consumer, within the reader's
 * window. If the version is replaced meanwhile the stream errors: it has
 * shown its caller this version's size and type, so it never switches.
 */
export function streamRecord(
  target: ReadTarget,
  record: OpenedRecord,
  start: number,
  stop: number,
): ReadableStream<Uint8Array> {
  const span = chunkSpan(start, stop, record.chunkSize);
  async function* deliver(): AsyncGenerator<Uint8Array> {
    let position = span.first * record.chunkSize;
    try {
      for await (const chunk of readChunks(target.kv, record, span)) {
        const from = Math.max(0, start - position);
        const to = Math.min(chunk.length, stop - position);
        position += chunk.length;
        if (to > from) yield from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to);
      }
    } catch (error) {
      const explained = await explainMissing(target, record, error);
      throw explained === "replaced" ? replacedError(target.keyText) : explained;
    }
  }
  return ReadableStream.from(deliver());
}

/**
 * Opens a stream over a blob (or a byte range of it). The header is parsed
 * and authenticated before this resolves; chunks are fetched ahead of the
 * consumer and delivered with backpressure.
 */
export async function openStream(
  target: ReadTarget,
  range: ByteRange | undefined,
): Promise<{ entry: Deno.KvEntryMaybe<unknown>; stream: ReadableStream<Uint8Array> } | null> {
  const fromStart = (range?.start ?? 0) === 0 && range?.end === undefined;
  const { entry, record } = await openEntry(target, { prefetch: fromStart });
  if (record === null) return null;
  const { start, stop } = checkedRange(record.size, range, target.keyText);
  return { entry, stream: streamRecord(target, record, start, stop) };
}

/** A File for a stored File (name, type, lastModified restored), else a Blob. */
export function toBlob(bytes: Uint8Array, fields: StoredMetadata): Blob | File {
  const type = fields.type ?? "";
  if (fields.kind !== "file" || fields.name === undefined) {
    return new Blob([owned(bytes)], { type });
  }
  const modified = fields.lastModified === undefined ? {} : { lastModified: fields.lastModified };
  return new File([owned(bytes)], fields.name, { type, ...modified });
}

/**
 * The metadata of the record in `entry`: authenticated when keys are given;
 * without keys, an encrypted record's public header fields. Null when absent
 * or expired; a damaged record throws as a read would.
 */
export async function metaOfEntry(
  target: ReadTarget,
  entry: Deno.KvEntryMaybe<unknown>,
  readKeys: readonly KeyringEntry[] | undefined,
): Promise<BlobMeta | null> {
  if (readKeys === undefined && recordMagic(entry.value) === "sealed") {
    const header = parseHeader(entry.value as Uint8Array, target.keyText);
    return isExpired(header) ? null : metaOfSummary(summarizeHeader(header));
  }
  const record = await openRecord(target, entry, readKeys);
  return record && metaOfRecord(record);
}
