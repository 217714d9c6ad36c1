/**
 * Large binary values in Deno KV: a value is cut into chunks stored under a
 * fresh version id, and a small record at the caller's key points to them.
 * Writes are crash-safe (a failed or interrupted write leaves the previous
 * value readable), reads stream with bounded memory, and every chunk can be
 * encrypted with AES-GCM under a key the caller supplies.
 *
 * @example Store and read back a File
 * ```ts
 * import assert from "node:assert/strict";
 * import { get, set } from "@kvcrypt/kvcrypt/blob";
 *
 * const kv = await Deno.openKv(":memory:");
 * const file = new File(["hello"], "hello.txt", { type: "text/plain" });
 * await set(kv, ["files", "hello"], file);
 * const entry = await get(kv, ["files", "hello"], { blob: true });
 * assert.ok(entry.value instanceof File);
 * assert.equal(entry.value.name, "hello.txt");
 * assert.equal(await entry.value.text(), "hello");
 * kv.close();
 * ```
 *
 * @module
 */

import { ConcurrentModificationError, CorruptBlobError } from "./_errors.ts";
import { plainWriteFormat, type WriteFormat } from "./_format.ts";
import { type EncryptionKey, resolveRecipients } from "./_key_input.ts";
import { INTERNAL_PREFIX, versionKey, versionPrefix } from "./_kv_keys.ts";
import { createSealedFormat } from "./_kvc1.ts";
import {
  BUFFERED_BATCHES_IN_FLIGHT,
  READ_RESTARTS_MAX,
  STANZAS_MAX,
  VACUUM_LIST_BATCH,
  VACUUM_OLDER_THAN_MS,
} from "./_limits.ts";
import { type BlobMeta, metaOfRecord, metaOfSummary } from "./_meta.ts";
import {
  type ChunkSpan,
  explainMissing,
  openEntry,
  openRecord,
  readChunks,
  readKeysOf,
  type ReadOptions,
  type ReadTarget,
  replacedError,
} from "./_reader.ts";
import { decodeVersion, encodeMeta, recordMagic, VERSION_TOMBSTONE } from "./_record.ts";
import { type BlobValue, fixedPieces, sourceOf } from "./_source.ts";
import { isExpired, summarizeHeader, summarizeRecord } from "./_summary.ts";
import { assertUserKey, decodeKey, describeKey, encodeKey } from "./_user_key.ts";
import { finishTombstone, tombstoneOf } from "./_versions.ts";
import { assertBeforeDeadline, expiryOptions, VersionWriter, type WriteTarget } from "./_writer.ts";
import { bytesEqual, concat, owned } from "./_bytes.ts";
import {
  encodeHeader,
  type OpenedSealedRecord,
  parseHeader,
  systemRandom,
  wrapSecret,
} from "./_kvc1.ts";
import type { OpenedRecord } from "./_format.ts";
import type { Keyring } from "./keys.ts";
import { recordId } from "./_summary.ts";

export { ConcurrentModificationError, CorruptBlobError } from "./_errors.ts";
export type { EncryptionKey, KeyMaterial } from "./_key_input.ts";
export type {
  BlobMeta,
  BlobMetaBase,
  PlainBlobMeta,
  SealedBlobMeta,
  VerifiedBlobMeta,
} from "./_meta.ts";
export type { BlobKind } from "./_record.ts";
export type { ReadOptions } from "./_reader.ts";
export type { BlobValue } from "./_source.ts";

/** Options of {@linkcode set} and {@linkcode stage}. */
export interface SetOptions {
  /**
   * Encrypt every chunk and the metadata under this key (or, for an array,
   * for each of these recipients).
   */
  encryptionKey?: EncryptionKey | undefined;
  /** Milliseconds until the blob expires and reads as absent. */
  expireIn?: number | undefined;
  /**
   * Compare-and-set: commit only if the record's versionstamp is this one
   * (`null`: only if no blob is stored at the key). On a mismatch the write
   * resolves to `{ ok: false }` and leaves nothing behind.
   */
  versionstamp?: string | null | undefined;
  /** Aborts the write; it rejects with the signal's reason and leaves nothing behind. */
  signal?: AbortSignal | undefined;
  /** Called with the number of bytes committed so far. */
  onProgress?: ((bytesWritten: number) => void) | undefined;
}

/** Options of {@linkcode getAsStream}. */
export interface StreamOptions extends ReadOptions {
  /** Byte range to read: `start` inclusive, `end` exclusive (default: the size), like `Blob.slice`. */
  range?: { start: number; end?: number } | undefined;
}

/** A blob whose chunks are written, ready to commit inside the caller's atomic operation. */
export interface StagedBlob {
  /**
   * Adds the record's checks and set to `op` and returns it. The staged blob
   * commits only if the key still holds what it held when `stage` was called
   * (or the `versionstamp` given).
   */
  addTo(op: Deno.AtomicOperation): Deno.AtomicOperation;
  /**
   * Finishes the write after `op.commit()`: pass its result, or the error it
   * threw. On success the replaced blob's chunks are deleted; otherwise the
   * staged chunks are (unless a lost reply turns out to have committed).
   */
  complete(resultOrError: Deno.KvCommitResult | Deno.KvCommitError | unknown): Promise<void>;
}

/** Options of {@linkcode remove}. */
export interface RemoveOptions {
  /** Remove only if the record's versionstamp is this one. */
  versionstamp?: string | null | undefined;
}

/** Options of {@linkcode vacuum}. */
export interface VacuumOptions {
  /**
   * Leave versions younger than this many milliseconds alone: they may be
   * writes in flight. Default one hour.
   */
  olderThan?: number | undefined;
}

/** What {@linkcode vacuum} removed. */
export interface VacuumResult {
  /** Version entries removed. */
  versions: number;
  /** Chunk entries removed. */
  chunks: number;
}

// ---------------------------------------------------------------------------
// Writing.

/** The versionstamp a record commit must check, or CONFLICT for a create-only write over a live blob. */
const CONFLICT = Symbol("conflict");

function expectedVersionstamp(
  current: Deno.KvEntryMaybe<unknown>,
  requested: string | null | undefined,
): string | null | typeof CONFLICT {
  if (requested !== null) return requested === undefined ? current.versionstamp : requested;
  if (current.versionstamp === null) return null;
  // An expired blob not yet purged counts as absent for a create-only write.
  const summary = summarizeRecord(current.value);
  return summary !== undefined && isExpired(summary) ? current.versionstamp : CONFLICT;
}

/** A Deno KV versionstamp: 20 lower-case hex digits. */
const VERSIONSTAMP = /^[0-9a-f]{20}$/;

/** Checks a caller's versionstamp option before it reaches Deno KV. */
function assertVersionstamp(versionstamp: unknown, action: string): void {
  if (
    versionstamp !== undefined && versionstamp !== null &&
    (typeof versionstamp !== "string" || !VERSIONSTAMP.test(versionstamp))
  ) {
    throw new TypeError(
      `Cannot ${action}: versionstamp must be null or a Deno KV versionstamp (20 hex digits)`,
    );
  }
}

function validateSetOptions(options: SetOptions, keyText: string): number {
  const { expireIn, versionstamp } = options;
  assertVersionstamp(versionstamp, `store ${keyText}`);
  if (expireIn === undefined) return 0;
  if (typeof expireIn !== "number") {
    throw new TypeError(`Cannot store ${keyText}: expireIn must be a number of milliseconds`);
  }
  if (!Number.isFinite(expireIn) || expireIn <= 0) {
    throw new RangeError(
      `Cannot store ${keyText}: expireIn must be a positive number of milliseconds`,
    );
  }
  return Date.now() + expireIn;
}

/** The chunked version a record commit replaces, if any. */
interface ReplacedVersion {
  id: Uint8Array;
  chunks: number;
}

function replacedVersion(entry: Deno.KvEntryMaybe<unknown>): ReplacedVersion | undefined {
  const summary = summarizeRecord(entry.value);
  return summary === undefined || summary.inline ? undefined : summary;
}

/**
 * Tombstones the replaced version in the atomic that replaces its record, so
 * no version is ever live without a record pointing to it.
 */
function tombstoneReplaced(
  op: Deno.AtomicOperation,
  replaced: ReplacedVersion | undefined,
  key: Deno.KvKey,
): Deno.AtomicOperation {
  return replaced === undefined ? op : op.set(versionKey(replaced.id), tombstoneOf(encodeKey(key)));
}

/** Deletes the replaced version's chunks and tombstone; leftovers of a failure are vacuum's. */
async function deleteReplaced(kv: Deno.Kv, replaced: ReplacedVersion | undefined): Promise<void> {
  if (replaced === undefined) return;
  try {
    await finishTombstone(kv, replaced.id, replaced.chunks);
  } catch {
    // The new value is committed; a crash here leaves a tombstone vacuum finishes.
  }
}

async function writeFormat(options: SetOptions, id: Uint8Array): Promise<WriteFormat> {
  if (options.encryptionKey === undefined) return plainWriteFormat;
  return createSealedFormat(await resolveRecipients(options.encryptionKey), id);
}

/** A version written but not yet published, with the record it will publish. */
interface PreparedWrite {
  target: WriteTarget;
  writer: VersionWriter;
  record: Uint8Array;
  current: Deno.KvEntryMaybe<unknown>;
}

/**
 * Step 1 of the write protocol: validates everything, then writes the chunks
 * while the current record is read. On failure nothing is left behind.
 */
async function prepareWrite(
  kv: Deno.Kv,
  key: Deno.KvKey,
  value: unknown,
  options: SetOptions,
): Promise<PreparedWrite> {
  assertUserKey(key, "store the blob");
  const keyText = describeKey(key);
  const source = sourceOf(value, `store ${keyText}`);
  const deadline = validateSetOptions(options, keyText);
  encodeMeta(source.meta, keyText);
  options.signal?.throwIfAborted();
  const target: WriteTarget = {
    kv,
    key,
    keyText,
    deadline,
    signal: options.signal,
    onProgress: options.onProgress,
  };
  const writer = new VersionWriter(target);
  const current = kv.get(key);
  current.catch(() => {});
  let pieces: AsyncGenerator<Uint8Array> | undefined;
  try {
    const format = await writeFormat(options, writer.id);
    pieces = fixedPieces(source.stream, format.chunkSize, options.signal, keyText);
    const record = await writer.write(pieces, format, source.meta);
    return { target, writer, record, current: await current };
  } catch (error) {
    await pieces?.return(undefined).catch(() => {});
    await writer.abandon();
    throw error;
  }
}

/**
 * Steps 2–4 of the write protocol: commits the record with its checks,
 * retries a lost race (without a caller versionstamp), deletes the replaced
 * version, and cleans up on any failure.
 */
async function commitWrite(
  prepared: PreparedWrite,
  requested: string | null | undefined,
): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
  const { target, writer, record } = prepared;
  const { kv, key, keyText } = target;
  let current = prepared.current;
  for (;;) {
    const expected = expectedVersionstamp(current, requested);
    if (expected === CONFLICT) {
      await writer.abandon();
      return { ok: false };
    }
    try {
      assertBeforeDeadline(target);
    } catch (error) {
      await writer.abandon();
      throw error;
    }
    const op = kv.atomic().check({ key, versionstamp: expected });
    // A vacuum that removed this version makes the commit fail instead of
    // publishing a record whose chunks are going away.
    if (writer.versionstamp !== null) {
      op.check({ key: writer.versionKey, versionstamp: writer.versionstamp });
    }
    const replaced = replacedVersion(current);
    tombstoneReplaced(op.set(key, record, expiryOptions(target.deadline)), replaced, key);
    let result: Deno.KvCommitResult | Deno.KvCommitError;
    try {
      result = await op.commit();
    } catch (error) {
      // The reply may be lost although the commit applied: look before cleaning up.
      const published = await writer.abandon();
      if (published === undefined) throw error;
      result = { ok: true, versionstamp: published.versionstamp! };
    }
    if (result.ok) {
      await deleteReplaced(kv, replaced);
      writer.reportDone();
      return result;
    }
    if (writer.versionstamp !== null) {
      const version = await kv.get(writer.versionKey);
      if (version.versionstamp !== writer.versionstamp) {
        await writer.abandon();
        throw new ConcurrentModificationError(
          `Cannot store ${keyText}: vacuum removed its version before the commit`,
        );
      }
    }
    if (requested !== undefined) {
      await writer.abandon();
      return result;
    }
    // Another writer committed first; the last writer wins, so try again.
    current = await kv.get(key);
  }
}

/**
 * Stores a binary value at `key`, replacing any blob stored there.
 *
 * The value is streamed in chunks (memory stays bounded whatever its size);
 * small values are stored in the record itself. Without `versionstamp` the
 * last writer wins; with it the write is a compare-and-set. A write that
 * fails, is aborted or crashes leaves the previous value readable.
 *
 * @param kv The store.
 * @param key Where to store the blob.
 * @param value Bytes (an ArrayBuffer or any view: only the view's bytes), a
 * ReadableStream of Uint8Array, a Blob or a File (type, name and
 * lastModified are kept).
 * @param options Encryption, expiry, compare-and-set, abort and progress.
 * @returns The commit result of the record; `{ ok: false }` only when
 * `versionstamp` was given and did not match.
 * @throws {TypeError} if the key or value is not valid.
 * @throws {RangeError} if the metadata is too large, `expireIn` is not
 * positive, or its deadline passes during the write.
 * @throws {ConcurrentModificationError} if `vacuum` removed the version while
 * it was being written.
 *
 * @example Last writer wins, or compare-and-set
 * ```ts
 * import assert from "node:assert/strict";
 * import { get, set } from "@kvcrypt/kvcrypt";
 *
 * const kv = await Deno.openKv(":memory:");
 * const first = await set(kv, ["img"], new Uint8Array(100_000), { versionstamp: null });
 * assert.ok(first.ok);
 * const again = await set(kv, ["img"], new Uint8Array(1), { versionstamp: null });
 * assert.equal(again.ok, false);
 * assert.equal((await get(kv, ["img"])).value?.length, 100_000);
 * kv.close();
 * ```
 */
export function set(
  kv: Deno.Kv,
  key: Deno.KvKey,
  value: BlobValue,
  options?: SetOptions & { versionstamp?: undefined },
): Promise<Deno.KvCommitResult>;
/**
 * Stores a binary value at `key` as a compare-and-set when `versionstamp` is
 * given; see the first overload.
 *
 * @param kv The store.
 * @param key Where to store the blob.
 * @param value The bytes, stream, Blob or File.
 * @param options Encryption, expiry, compare-and-set, abort and progress.
 * @returns The commit result, `{ ok: false }` when `versionstamp` did not match.
 */
export function set(
  kv: Deno.Kv,
  key: Deno.KvKey,
  value: BlobValue,
  options?: SetOptions,
): Promise<Deno.KvCommitResult | Deno.KvCommitError>;
export async function set(
  kv: Deno.Kv,
  key: Deno.KvKey,
  value: BlobValue,
  options: SetOptions = {},
): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
  const prepared = await prepareWrite(kv, key, value, options);
  return await commitWrite(prepared, options.versionstamp);
}

/**
 * Writes a blob's chunks now and lets the caller commit its record inside
 * their own atomic operation, together with other mutations.
 *
 * @param kv The store.
 * @param key Where the blob's record goes.
 * @param value As for {@linkcode set}.
 * @param options As for {@linkcode set}; `versionstamp` adds that check.
 * @returns A staged blob: add it to an atomic, commit, then `complete`.
 * @throws {TypeError} for a bad key or value, as {@linkcode set}.
 * @throws {RangeError} for bad sizes or expiry, as {@linkcode set}.
 *
 * @example Commit a blob and an index entry together
 * ```ts
 * import assert from "node:assert/strict";
 * import { get, stage } from "@kvcrypt/kvcrypt";
 *
 * const kv = await Deno.openKv(":memory:");
 * const staged = await stage(kv, ["docs", 1], new Uint8Array(200_000));
 * const op = staged.addTo(kv.atomic()).set(["index", "latest"], 1);
 * let result;
 * try {
 *   result = await op.commit();
 * } catch (error) {
 *   await staged.complete(error);
 *   throw error;
 * }
 * await staged.complete(result);
 * assert.ok(result.ok);
 * assert.equal((await get(kv, ["docs", 1])).value?.length, 200_000);
 * kv.close();
 * ```
 */
export async function stage(
  kv: Deno.Kv,
  key: Deno.KvKey,
  value: BlobValue,
  options: SetOptions = {},
): Promise<StagedBlob> {
  const prepared = await prepareWrite(kv, key, value, options);
  const { target, writer, record, current } = prepared;
  const expected = expectedVersionstamp(current, options.versionstamp);
  const replaced = replacedVersion(current);
  let completed = false;
  return {
    addTo(op) {
      assertBeforeDeadline(target);
      // A create-only stage over a live blob checks for absence, so the commit fails.
      op.check({ key, versionstamp: expected === CONFLICT ? null : expected });
      if (writer.versionstamp !== null) {
        op.check({ key: writer.versionKey, versionstamp: writer.versionstamp });
      }
      return tombstoneReplaced(op.set(key, record, expiryOptions(target.deadline)), replaced, key);
    },
    async complete(resultOrError) {
      if (completed) return;
      completed = true;
      const ok = typeof resultOrError === "object" && resultOrError !== null &&
        (resultOrError as { ok?: unknown }).ok === true;
      if (ok || await writer.abandon() !== undefined) await deleteReplaced(kv, replaced);
    },
  };
}

// ---------------------------------------------------------------------------
// Reading.

function readTarget(
  kv: Deno.Kv,
  key: Deno.KvKey,
  options: ReadOptions,
  action: string,
): ReadTarget {
  assertUserKey(key, action);
  return { kv, key, keyText: describeKey(key), options };
}

/** Reads a whole blob into one buffer, restarting when it is replaced under the read. */
async function readWhole(
  target: ReadTarget,
): Promise<{ entry: Deno.KvEntryMaybe<unknown>; bytes: Uint8Array; meta: BlobMeta } | null> {
  for (let restarts = 0;; restarts++) {
    const { entry, record } = await openEntry(target);
    if (record === null) return null;
    const bytes = new Uint8Array(record.size);
    try {
      let offset = 0;
      const span = { first: 0, end: record.chunks };
      for await (const chunk of readChunks(target.kv, record, span, BUFFERED_BATCHES_IN_FLIGHT)) {
        bytes.set(chunk, offset);
        offset += chunk.length;
      }
      return { entry, bytes, meta: metaOfRecord(record) };
    } catch (error) {
      const explained = await explainMissing(target, record, error);
      if (explained !== "replaced") throw explained;
      if (restarts >= READ_RESTARTS_MAX) throw replacedError(target.keyText);
    }
  }
}

function spanOf(
  size: number,
  chunkSize: number,
  range: StreamOptions["range"],
  keyText: string,
): ChunkSpan & { start: number; stop: number } {
  const start = range?.start ?? 0;
  const stop = range?.end ?? size;
  if (
    !Number.isSafeInteger(start) || !Number.isSafeInteger(stop) || start < 0 || stop < start ||
    stop > size
  ) {
    throw new RangeError(
      `Cannot read ${keyText}: range ${start}..${stop} is outside the blob of ${size} bytes`,
    );
  }
  return {
    start,
    stop,
    first: Math.floor(start / chunkSize),
    end: start === stop ? Math.floor(start / chunkSize) : Math.ceil(stop / chunkSize),
  };
}

/**
 * Opens a stream over a blob (or a byte range of it). The header is parsed
 * and authenticated before this resolves; chunks are fetched ahead of the
 * consumer and delivered with backpressure.
 */
async function openStream(
  target: ReadTarget,
  range: StreamOptions["range"],
): Promise<{ entry: Deno.KvEntryMaybe<unknown>; stream: ReadableStream<Uint8Array> } | null> {
  const { entry, record } = await openEntry(target);
  if (record === null) return null;
  const span = spanOf(record.size, record.chunkSize, range, target.keyText);
  async function* deliver(): AsyncGenerator<Uint8Array> {
    let position = span.first * record!.chunkSize;
    try {
      for await (const chunk of readChunks(target.kv, record!, span)) {
        const from = Math.max(0, span.start - position);
        const to = Math.min(chunk.length, span.stop - position);
        position += chunk.length;
        if (to > from) yield from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to);
      }
    } catch (error) {
      const explained = await explainMissing(target, record!, error);
      // A stream has shown its caller this version's size and type: it never switches versions.
      throw explained === "replaced" ? replacedError(target.keyText) : explained;
    }
  }
  return { entry, stream: ReadableStream.from(deliver()) };
}

function toBlob(bytes: Uint8Array, meta: BlobMeta): Blob | File {
  if (meta.encrypted && !meta.verified) throw new TypeError("unreachable: unverified metadata");
  const type = "type" in meta ? meta.type : "";
  if ("kind" in meta && meta.kind === "file" && meta.name !== undefined) {
    return new File([owned(bytes)], meta.name, {
      type,
      ...(meta.lastModified === undefined ? {} : { lastModified: meta.lastModified }),
    });
  }
  return new Blob([owned(bytes)], { type });
}

/**
 * Reads a blob. By default the whole value as a Uint8Array; with
 * `{ stream: true }` a ReadableStream; with `{ blob: true }` a File for a
 * stored File and a Blob otherwise.
 *
 * @param kv The store.
 * @param key The blob's key.
 * @param options The decryption key and read options, plus `stream` or `blob`.
 * @returns An entry whose value is null when no blob is stored (or it expired).
 * @throws {CorruptBlobError} if the entry is not a kvcrypt blob or a plain blob is damaged.
 * @throws {DecryptionError} for a wrong key, a tampered blob, or a plain record read with a key.
 * @throws {ConcurrentModificationError} if the blob kept being replaced while read.
 *
 * @example Bytes, stream or Blob
 * ```ts
 * import assert from "node:assert/strict";
 * import { get, set } from "@kvcrypt/kvcrypt";
 *
 * const kv = await Deno.openKv(":memory:");
 * await set(kv, ["a"], new Uint8Array([1, 2, 3]));
 * assert.deepEqual((await get(kv, ["a"])).value, new Uint8Array([1, 2, 3]));
 * const stream = (await get(kv, ["a"], { stream: true })).value!;
 * assert.deepEqual(await new Response(stream).bytes(), new Uint8Array([1, 2, 3]));
 * assert.equal((await get(kv, ["a"], { blob: true })).value?.size, 3);
 * assert.equal((await get(kv, ["missing"])).value, null);
 * kv.close();
 * ```
 */
export function get(
  kv: Deno.Kv,
  key: Deno.KvKey,
  options: ReadOptions & { stream: true; blob?: false },
): Promise<Deno.KvEntryMaybe<ReadableStream<Uint8Array>>>;
/**
 * Reads a blob as a Blob, or a File when a File was stored; see the first overload.
 *
 * @param kv The store.
 * @param key The blob's key.
 * @param options Read options with `blob: true`.
 * @returns An entry whose value is null when no blob is stored.
 */
export function get(
  kv: Deno.Kv,
  key: Deno.KvKey,
  options: ReadOptions & { blob: true; stream?: false },
): Promise<Deno.KvEntryMaybe<Blob | File>>;
/**
 * Reads a whole blob into a Uint8Array; see the first overload.
 *
 * @param kv The store.
 * @param key The blob's key.
 * @param options Read options.
 * @returns An entry whose value is null when no blob is stored.
 */
export function get(
  kv: Deno.Kv,
  key: Deno.KvKey,
  options?: ReadOptions & { stream?: false; blob?: false },
): Promise<Deno.KvEntryMaybe<Uint8Array>>;
export async function get(
  kv: Deno.Kv,
  key: Deno.KvKey,
  options: ReadOptions & { stream?: boolean; blob?: boolean } = {},
): Promise<Deno.KvEntryMaybe<Uint8Array | ReadableStream<Uint8Array> | Blob | File>> {
  const target = readTarget(kv, key, options, "read the blob");
  const absent = { key, value: null, versionstamp: null };
  if (options.stream) {
    const opened = await openStream(target, undefined);
    if (opened === null) return absent;
    return { key, value: opened.stream, versionstamp: opened.entry.versionstamp! };
  }
  const whole = await readWhole(target);
  if (whole === null) return absent;
  const value = options.blob ? toBlob(whole.bytes, whole.meta) : whole.bytes;
  return { key, value, versionstamp: whole.entry.versionstamp! };
}

/**
 * Reads a blob, or a byte range of it, as a stream. The record is read and
 * (if encrypted) authenticated before this resolves, so a wrong key or a
 * tampered header rejects the call itself.
 *
 * @param kv The store.
 * @param key The blob's key.
 * @param options Read options and an optional `range` (`end` exclusive).
 * @returns The stream, or null when no blob is stored.
 * @throws {RangeError} if the range lies outside the blob.
 * @throws {CorruptBlobError} if the entry is not a kvcrypt blob.
 * @throws {DecryptionError} for a wrong key or a tampered record.
 *
 * @example Read bytes 1 to 3
 * ```ts
 * import assert from "node:assert/strict";
 * import { getAsStream, set } from "@kvcrypt/kvcrypt";
 *
 * const kv = await Deno.openKv(":memory:");
 * await set(kv, ["a"], new Uint8Array([0, 1, 2, 3, 4]));
 * const stream = await getAsStream(kv, ["a"], { range: { start: 1, end: 4 } });
 * assert.deepEqual(await new Response(stream).bytes(), new Uint8Array([1, 2, 3]));
 * kv.close();
 * ```
 */
export async function getAsStream(
  kv: Deno.Kv,
  key: Deno.KvKey,
  options: StreamOptions = {},
): Promise<ReadableStream<Uint8Array> | null> {
  const target = readTarget(kv, key, options, "read the blob");
  return (await openStream(target, options.range))?.stream ?? null;
}

/**
 * Reads a blob as a Blob, or as a File (name, type and lastModified
 * restored) when a File was stored.
 *
 * @param kv The store.
 * @param key The blob's key.
 * @param options Read options.
 * @returns The Blob or File, or null when no blob is stored.
 * @throws {CorruptBlobError} if the entry is not a kvcrypt blob or is damaged.
 * @throws {DecryptionError} for a wrong key or a tampered blob.
 *
 * @example A File comes back as a File
 * ```ts
 * import assert from "node:assert/strict";
 * import { getAsBlob, set } from "@kvcrypt/kvcrypt";
 *
 * const kv = await Deno.openKv(":memory:");
 * await set(kv, ["f"], new File(["hi"], "a.txt", { type: "text/plain", lastModified: 5 }));
 * const file = await getAsBlob(kv, ["f"]);
 * assert.ok(file instanceof File);
 * assert.equal(file.lastModified, 5);
 * assert.equal(file.type, "text/plain");
 * kv.close();
 * ```
 */
export async function getAsBlob(
  kv: Deno.Kv,
  key: Deno.KvKey,
  options: ReadOptions = {},
): Promise<Blob | File | null> {
  return (await get(kv, key, { ...options, blob: true })).value;
}

/**
 * Reads a blob's metadata. With a key, an encrypted blob's metadata is
 * authenticated like `get` (`verified: true`); without one, only its public
 * header fields are returned (`verified: false`).
 *
 * @param kv The store.
 * @param key The blob's key.
 * @param options Read options.
 * @returns An entry whose value is null when no blob is stored.
 * @throws {CorruptBlobError} if the entry is not a kvcrypt blob.
 * @throws {DecryptionError} for a wrong key or a tampered record.
 *
 * @example Size and type without reading the chunks
 * ```ts
 * import assert from "node:assert/strict";
 * import { getMeta, set } from "@kvcrypt/kvcrypt";
 *
 * const kv = await Deno.openKv(":memory:");
 * await set(kv, ["b"], new Blob(["abc"], { type: "text/plain" }));
 * const meta = (await getMeta(kv, ["b"])).value!;
 * assert.equal(meta.size, 3);
 * assert.ok(!meta.encrypted && meta.type === "text/plain");
 * kv.close();
 * ```
 */
export async function getMeta(
  kv: Deno.Kv,
  key: Deno.KvKey,
  options: ReadOptions = {},
): Promise<Deno.KvEntryMaybe<BlobMeta>> {
  const target = readTarget(kv, key, options, "read the blob's metadata");
  if (options.encryptionKey === undefined) {
    const entry = await kv.get(key, { consistency: options.consistency ?? "strong" });
    const meta = keylessMeta(entry, target.keyText);
    if (meta === "expired") return { key, value: null, versionstamp: null };
    if (meta !== null) return { key, value: meta, versionstamp: entry.versionstamp! };
  }
  const { entry, record } = await openEntry(target);
  if (record === null) return { key, value: null, versionstamp: null };
  return { key, value: metaOfRecord(record), versionstamp: entry.versionstamp! };
}

/** Metadata of an encrypted record read without a key; null for anything else. */
function keylessMeta(
  entry: Deno.KvEntryMaybe<unknown>,
  keyText: string,
): BlobMeta | "expired" | null {
  if (recordMagic(entry.value) !== "sealed") return null;
  const header = parseHeader(entry.value as Uint8Array, keyText);
  if (isExpired(header)) return "expired";
  return metaOfSummary(summarizeHeader(header));
}

/**
 * Lists the blobs under a selector (entries that are not kvcrypt blobs are
 * skipped, and so are expired ones), with their metadata.
 *
 * @param kv The store.
 * @param selector As for `Deno.Kv.list`.
 * @param options `Deno.KvListOptions` plus read options; with an
 * `encryptionKey`, encrypted entries are authenticated.
 * @returns The blobs' entries with metadata as values.
 * @throws {DecryptionError} if a key is given and an encrypted blob does not open with it.
 *
 * @example List a folder
 * ```ts
 * import assert from "node:assert/strict";
 * import { list, set } from "@kvcrypt/kvcrypt";
 *
 * const kv = await Deno.openKv(":memory:");
 * await set(kv, ["dir", "a"], new Uint8Array(10));
 * await set(kv, ["dir", "b"], new Uint8Array(200_000));
 * const sizes = [];
 * for await (const entry of list(kv, { prefix: ["dir"] })) sizes.push(entry.value.size);
 * assert.deepEqual(sizes, [10, 200_000]);
 * kv.close();
 * ```
 */
export async function* list(
  kv: Deno.Kv,
  selector: Deno.KvListSelector,
  options: Deno.KvListOptions & ReadOptions = {},
): AsyncIterableIterator<Deno.KvEntry<BlobMeta>> {
  const { encryptionKey, allowPlaintext, ...listOptions } = options;
  const readKeys = await readKeysOf(options);
  for await (const entry of kv.list(selector, listOptions)) {
    // A chunk's bytes may look like a record: kvcrypt's own entries are never blobs.
    if (entry.key[0] === INTERNAL_PREFIX) continue;
    const summary = summarizeRecord(entry.value);
    if (summary === undefined || isExpired(summary)) continue;
    let meta: BlobMeta | null;
    if (summary.encrypted && readKeys === undefined) {
      meta = metaOfSummary(summary);
    } else {
      const target = {
        kv,
        key: entry.key,
        keyText: describeKey(entry.key),
        options: { encryptionKey, allowPlaintext },
      };
      const record = await openRecord(target, entry, readKeys);
      meta = record && metaOfRecord(record);
    }
    if (meta !== null) yield { key: entry.key, value: meta, versionstamp: entry.versionstamp };
  }
}

// ---------------------------------------------------------------------------
// Rewrapping.

/** Options of {@linkcode rewrap}. */
export interface RewrapOptions {
  /** A key that opens the blob now (a keyring may hold old and new keys). */
  encryptionKey: EncryptionKey;
  /** Recipients to add: one stanza per element (its current key). */
  add?: EncryptionKey | undefined;
  /** Key ids whose stanzas are dropped (kids not present are ignored). */
  remove?: readonly string[] | undefined;
  /** Rewrap only if the record's versionstamp is this one. */
  versionstamp?: string | undefined;
}

/**
 * Changes who can read an encrypted blob by rewriting its header only: the
 * secret is unwrapped with a key the caller holds, stanzas for new keys are
 * added, stanzas are dropped by kid, the rest stay byte for byte, and the
 * metadata is sealed again under a fresh nonce. Chunks are not touched.
 *
 * It cannot revoke: a removed recipient who kept the blob's secret, or
 * anyone who restores the old header, can still read this version. To
 * revoke, write the blob again.
 *
 * @param kv The store.
 * @param key The blob's key.
 * @param options The key that opens it, and the recipients to add or remove.
 * @returns The commit result; `{ ok: false }` only when `versionstamp` did not match.
 * @throws {TypeError} if nothing is stored at the key, the blob is not
 * encrypted, or an added kid already has a stanza.
 * @throws {RangeError} if the blob would end with no recipient or more than 16.
 * @throws {DecryptionError} if `encryptionKey` does not open the blob.
 *
 * @example Rotate to a new key
 * ```ts
 * import assert from "node:assert/strict";
 * import { DecryptionError, generateKey, get, rewrap, set } from "@kvcrypt/kvcrypt";
 *
 * const kv = await Deno.openKv(":memory:");
 * const oldKey = await generateKey({ kid: "2025" });
 * const newKey = await generateKey({ kid: "2026" });
 * await set(kv, ["doc"], new Uint8Array(100_000), { encryptionKey: oldKey });
 * await rewrap(kv, ["doc"], { encryptionKey: oldKey, add: newKey, remove: ["2025"] });
 * assert.equal((await get(kv, ["doc"], { encryptionKey: newKey })).value?.length, 100_000);
 * await assert.rejects(get(kv, ["doc"], { encryptionKey: oldKey }), DecryptionError);
 * kv.close();
 * ```
 */
export async function rewrap(
  kv: Deno.Kv,
  key: Deno.KvKey,
  options: RewrapOptions,
): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
  // Opened with allowPlaintext so a plain blob gets rewrap's own TypeError.
  const target = readTarget(kv, key, { ...options, allowPlaintext: true }, "rewrap the blob");
  if (options.encryptionKey === undefined) {
    throw new TypeError(`Cannot rewrap ${target.keyText}: encryptionKey is required`);
  }
  assertVersionstamp(options.versionstamp, `rewrap ${target.keyText}`);
  const added = options.add === undefined ? [] : await resolveRecipients(options.add);
  const removed = new Set(options.remove ?? []);
  for (;;) {
    const { entry, record } = await openEntry(target);
    if (record === null) {
      throw new TypeError(`Cannot rewrap ${target.keyText}: no blob is stored at the key`);
    }
    if (!isSealed(record)) {
      throw new TypeError(`Cannot rewrap ${target.keyText}: the blob is not encrypted`);
    }
    if (options.versionstamp !== undefined && options.versionstamp !== entry.versionstamp) {
      return { ok: false };
    }
    const bytes = await rewrapRecord(record, key, target.keyText, added, removed);
    const result = await kv.atomic().check(entry).set(key, bytes, expiryOptions(record.expiresAt))
      .commit();
    if (result.ok || options.versionstamp !== undefined) return result;
  }
}

function isSealed(record: OpenedRecord): record is OpenedSealedRecord {
  return record.encrypted;
}

/** The record with stanzas dropped and added and the metadata sealed under a fresh nonce. */
async function rewrapRecord(
  record: OpenedSealedRecord,
  key: Deno.KvKey,
  keyText: string,
  added: readonly Keyring[],
  removed: ReadonlySet<string>,
): Promise<Uint8Array> {
  const { header, keys, secret } = record;
  const kept = header.stanzas.filter((stanza) => !removed.has(stanza.kid));
  for (const ring of added) {
    const kid = ring.current.kid;
    if (kid !== "" && kept.some((stanza) => stanza.kid === kid)) {
      throw new TypeError(
        `Cannot rewrap ${keyText}: kid "${kid}" already has a stanza; remove it in the same call to replace it`,
      );
    }
  }
  const stanzas = [
    ...kept,
    ...await Promise.all(
      added.map((ring) => wrapSecret(ring.current, secret, header.id, systemRandom)),
    ),
  ];
  if (stanzas.length === 0 || stanzas.length > STANZAS_MAX) {
    throw new RangeError(
      `Cannot rewrap ${keyText}: a blob needs 1 to ${STANZAS_MAX} recipients, this would leave ${stanzas.length}`,
    );
  }
  const fields = { ...header, stanzas };
  const bytes = await encodeHeader(fields, keys, record.meta, key, systemRandom);
  return header.inline === undefined ? bytes : concat([bytes, header.inline]);
}

// ---------------------------------------------------------------------------
// Removing.

/**
 * Removes the blob at `key`: its record in one atomic, then its chunks.
 *
 * @param kv The store.
 * @param key The blob's key.
 * @param options `versionstamp` to remove only that version.
 * @returns The commit result; `{ ok: false }` only when `versionstamp` did not match.
 * @throws {CorruptBlobError} if the entry is not a kvcrypt blob (it is left alone).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { get, remove, set } from "@kvcrypt/kvcrypt";
 *
 * const kv = await Deno.openKv(":memory:");
 * await set(kv, ["x"], new Uint8Array(100_000));
 * assert.ok((await remove(kv, ["x"])).ok);
 * assert.equal((await get(kv, ["x"])).value, null);
 * kv.close();
 * ```
 */
export async function remove(
  kv: Deno.Kv,
  key: Deno.KvKey,
  options: RemoveOptions = {},
): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
  assertUserKey(key, "remove the blob");
  assertVersionstamp(options.versionstamp, `remove ${describeKey(key)}`);
  for (;;) {
    const current = await kv.get(key);
    if (current.versionstamp !== null && recordMagic(current.value) === undefined) {
      throw new CorruptBlobError(
        `Cannot remove ${describeKey(key)}: the entry is not a kvcrypt blob`,
      );
    }
    const expected = options.versionstamp === undefined
      ? current.versionstamp
      : options.versionstamp;
    const replaced = replacedVersion(current);
    const op = kv.atomic().check({ key, versionstamp: expected }).delete(key);
    const result = await tombstoneReplaced(op, replaced, key).commit();
    if (result.ok) {
      await deleteReplaced(kv, replaced);
      return result;
    }
    if (options.versionstamp !== undefined) return result;
  }
}

// ---------------------------------------------------------------------------
// Vacuum.

/**
 * Removes what crashed or abandoned writes left behind: versions older than
 * `olderThan` that no record points to, and unfinished tombstones. Lists
 * version entries only, never chunk values, and is safe to run while
 * others write: a writer that publishes first makes vacuum skip the version,
 * and a vacuum that wins makes the writer fail instead of publishing.
 *
 * @param kv The store.
 * @param options `olderThan` in milliseconds (default one hour).
 * @returns How many versions and chunks were removed.
 * @throws {RangeError} if `olderThan` is negative.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { set, vacuum } from "@kvcrypt/kvcrypt";
 *
 * const kv = await Deno.openKv(":memory:");
 * await set(kv, ["x"], new Uint8Array(100_000));
 * assert.deepEqual(await vacuum(kv, { olderThan: 0 }), { versions: 0, chunks: 0 });
 * kv.close();
 * ```
 */
export async function vacuum(kv: Deno.Kv, options: VacuumOptions = {}): Promise<VacuumResult> {
  const olderThan = options.olderThan ?? VACUUM_OLDER_THAN_MS;
  if (typeof olderThan !== "number" || !(olderThan >= 0)) {
    throw new RangeError("Cannot vacuum: olderThan must be a non-negative number of milliseconds");
  }
  const cutoff = Date.now() - olderThan;
  const removed: VacuumResult = { versions: 0, chunks: 0 };
  const versions = kv.list<Uint8Array>({ prefix: versionPrefix() }, {
    batchSize: VACUUM_LIST_BATCH,
    consistency: "strong",
  });
  for await (const entry of versions) {
    const id = entry.key[2];
    const version = decodeVersion(entry.value);
    if (!(id instanceof Uint8Array) || version === undefined || version.created > cutoff) continue;
    if (version.state !== VERSION_TOMBSTONE && !await tombstoneOrphan(kv, entry, id)) continue;
    removed.chunks += await finishTombstone(kv, id);
    removed.versions++;
  }
  return removed;
}

/**
 * Tombstones a live version no record points to, in an atomic that checks
 * both the record and the version entry. False when the version is live or
 * someone changed either entry meanwhile.
 */
async function tombstoneOrphan(
  kv: Deno.Kv,
  entry: Deno.KvEntry<Uint8Array>,
  id: Uint8Array,
): Promise<boolean> {
  const version = decodeVersion(entry.value)!;
  let userKey: Deno.KvKey;
  try {
    userKey = decodeKey(version.encodedKey);
  } catch {
    return false;
  }
  const record = await kv.get(userKey);
  const current = recordId(record.value);
  if (current !== undefined && bytesEqual(current, id)) return false;
  // Both checks: a writer publishing this version, or a concurrent deleter, wins.
  const result = await kv.atomic().check(record).check(entry)
    .set(entry.key, tombstoneOf(version.encodedKey)).commit();
  return result.ok;
}
