/**
 * The one chunk reader every read path uses (`get`, streams, ranges, blobs,
 * responses): opens the record, then fetches chunks in batches with several
 * requests in flight and yields plaintext in order (FORMAT.md, "Reading a blob").
 *
 * @module
 */

import type { KvLike } from "./_kv_like.ts";
import { bytesEqual } from "./_bytes.ts";
import { ConcurrentModificationError, CorruptBlobError, DecryptionError } from "./_errors.ts";
import { openPlainRecord } from "./_kvp1.ts";
import { resolveReadKeys } from "./_key_input.ts";
import type { KeyringEntry } from "./_keyring.ts";
import { chunkKey } from "./_kv_keys.ts";
import { openParsedRecord, parseRecordHeader } from "./_kvc1.ts";
import {
  BUFFERED_BATCHES_IN_FLIGHT,
  CHUNKS_OPENED_AHEAD,
  HINTED_BATCHES_MAX,
  KV_GET_MANY_MAX,
  READ_BATCH_CHUNKS,
  READ_BATCHES_IN_FLIGHT,
} from "./_limits.ts";
import {
  newerFormatMagic,
  type OpenedRecord,
  type Prefetch,
  type RecordLayout,
  recordMagic,
  wholeBatch,
} from "./_record.ts";
import { isExpired, recordId } from "./_summary.ts";
import type { ReadOptions } from "./_types.ts";
import { recallVersion, rememberVersion, type VersionHint } from "./_version_hints.ts";

/** A read in progress: where, and with which options. */
export interface ReadTarget {
  /** The store. */
  kv: KvLike;
  /** The user key. */
  key: Deno.KvKey;
  /** The key as printed in messages. */
  keyText: string;
  /** The caller's options. */
  options: ReadOptions;
}

/** The record entry at a key and, when it is a live blob, the record opened. */
export interface OpenedEntry {
  /** The KV entry of the record. */
  entry: Deno.KvEntryMaybe<unknown>;
  /** The opened record; null when absent or expired. */
  record: OpenedRecord | null;
}

/** Thrown inside the reader when a chunk that should exist is not there. */
class MissingChunkError extends Error {
  constructor(readonly index: number) {
    super(`chunk ${index} is missing`);
  }
}

/** How a read opens its record. */
export interface OpenOptions {
  /**
   * The caller will read from chunk 0: under a version hint, ask for the
   * hinted version's first chunks with the record (see
   * {@linkcode readRecord}); without one, fetch the first batch while an
   * encrypted header is authenticated. Default false.
   */
  prefetch?: boolean;
  /** Read the record with strong consistency whatever the caller asked (a restart). */
  strong?: boolean;
  /**
   * With `prefetch`: the caller reads the whole blob at once, so under a
   * hint up to {@linkcode HINTED_BATCHES_MAX} batches are asked for with the
   * record (a stream asks for one), and a first batch that holds the whole
   * blob may be opened while the record is checked. Default false.
   */
  whole?: boolean;
}

/** Reads the record at the target's key and opens it (see {@linkcode openRecord}). */
export async function openEntry(
  target: ReadTarget,
  open: OpenOptions = {},
): Promise<OpenedEntry> {
  const { kv, key, options } = target;
  const consistency = open.strong ? "strong" : options.consistency ?? "strong";
  const readKeys = options.encryptionKey === undefined
    ? undefined
    : settleQuietly(resolveReadKeys(options.encryptionKey));
  // A read from chunk 0 of a version seen before asks for its first chunks together with the record.
  const hint = open.prefetch ? recallVersion(kv, key) : undefined;
  const read = readRecord(kv, key, consistency, hint, open.whole ? HINTED_BATCHES_MAX : 1);
  const entry = await read.entry;
  const record = await openRecord(target, entry, await readKeys, open, read.ahead);
  noteVersion(kv, key, open.prefetch === true, hint, record);
  return { entry, record };
}

/**
 * Tells the version hints what the record named, unless it named the hinted
 * version (recalling it already marked it recently used) or there is
 * nothing to change (the hints were asked and had none, and there is
 * nothing to fetch ahead).
 */
function noteVersion(
  kv: KvLike,
  key: Deno.KvKey,
  recalled: boolean,
  hint: VersionHint | undefined,
  record: OpenedRecord | null,
): void {
  const chunked = record !== null && record.inline === undefined && record.chunks > 0;
  if (chunked && hint !== undefined && namesVersion(record, hint)) return;
  if (!chunked && recalled && hint === undefined) return;
  rememberVersion(kv, key, record && { id: record.id, chunks: record.chunks, inline: !chunked });
}

/** Whether a record layout names the hinted version: the same id and chunk count. */
function namesVersion(layout: RecordLayout, hint: VersionHint): boolean {
  return hint.chunks === layout.chunks && bytesEqual(hint.id, layout.id);
}

/**
 * Starts the record read and, under a hint, the hinted version's first
 * batches (up to `batches`): in the same `getMany` as the record when the
 * whole version and the probe past its end fit one (the chunks then come from
 * the record's own snapshot), else as list pages alongside. Eventual reads
 * keep chunk reads strong, so they never share the call.
 */
function readRecord(
  kv: KvLike,
  key: Deno.KvKey,
  consistency: Deno.KvConsistencyLevel,
  hint: VersionHint | undefined,
  batches: number,
): { entry: Promise<Deno.KvEntryMaybe<unknown>>; ahead?: HintedBatches } {
  if (hint === undefined) return { entry: kv.get(key, { consistency }) };
  if (consistency === "eventual" || hint.chunks + 2 > KV_GET_MANY_MAX) {
    const ahead = { hint, batches: prefetchBatches(kv, hint, batches) };
    return { entry: kv.get(key, { consistency }), ahead };
  }
  const keys: Deno.KvKey[] = [key];
  for (let index = 0; index <= hint.chunks; index++) keys.push(chunkKey(hint.id, index));
  const many = kv.getMany<unknown[]>(keys, { consistency });
  const stored = settleQuietly(many.then((entries) => storedChunks(entries, 1, 0, hint.chunks)));
  return {
    entry: many.then((entries) => entries[0]!),
    ahead: { hint, batches: [{ first: 0, end: hint.chunks, probe: true, stored }] },
  };
}

/** Chunk batches requested under a hint, before the record said which version to read. */
export interface HintedBatches {
  /** The version the batches were fetched for. */
  hint: VersionHint;
  /** The batches, first batch first. */
  batches: readonly Prefetch[];
}

/**
 * The hinted batches when the record names the hinted version (same id, same
 * chunk count, chunked); otherwise undefined, and they are never read.
 */
function batchesFor(
  layout: RecordLayout & { inline?: unknown },
  ahead: HintedBatches | undefined,
): readonly Prefetch[] | undefined {
  // Only the version the record names: another version's chunks must never pass for this one's.
  const same = ahead !== undefined && layout.inline === undefined &&
    namesVersion(layout, ahead.hint);
  return same ? ahead.batches : undefined;
}

/** The caller's decryption keys, resolved (and cached), if any. */
export function readKeysOf(options: ReadOptions): Promise<readonly KeyringEntry[] | undefined> {
  return options.encryptionKey === undefined
    ? Promise.resolve(undefined)
    : resolveReadKeys(options.encryptionKey);
}

/**
 * Throws for a record in a format newer than this version reads: a
 * DecryptionError for a reader holding a key (a changed magic may be
 * tampering), a CorruptBlobError otherwise.
 */
function throwNewerFormat(keyText: string, magic: string, withKey: boolean): never {
  const detail =
    `the record is in format ${magic}, which a newer kvcrypt wrote; upgrade to read it`;
  if (withKey) throw new DecryptionError(`Cannot decrypt ${keyText}: ${detail}`);
  throw new CorruptBlobError(`Cannot read ${keyText}: ${detail}`);
}

/**
 * Opens the record in `entry` (read at the target's key): parses it, and for
 * an encrypted blob authenticates header, metadata and key (FORMAT.md,
 * "Decrypting a blob", steps 1–4). Null when absent or expired (step 6).
 */
export async function openRecord(
  target: ReadTarget,
  entry: Deno.KvEntryMaybe<unknown>,
  readKeys: readonly KeyringEntry[] | undefined,
  open: OpenOptions = {},
  ahead?: HintedBatches,
): Promise<OpenedRecord | null> {
  const prefetch = open.prefetch ?? false;
  const { key, keyText, options } = target;
  if (entry.versionstamp === null) return null;
  const magic = recordMagic(entry.value);
  if (magic === undefined) {
    const newer = newerFormatMagic(entry.value);
    // A format from a later version: say so instead of calling the blob damaged.
    if (newer !== undefined) throwNewerFormat(keyText, newer, readKeys !== undefined);
    // A reader holding a key fails closed: a damaged magic is tampering (step 1).
    if (readKeys !== undefined) {
      throw new DecryptionError(`Cannot decrypt ${keyText}: the header does not parse (step 1)`);
    }
    throw new CorruptBlobError(`Cannot read ${keyText}: the entry is not a kvcrypt blob`);
  }
  let record: OpenedRecord;
  if (magic === "plain") {
    // No silent downgrade: a reader expecting ciphertext refuses a plaintext record.
    if (readKeys !== undefined && !options.allowPlaintext) {
      throw new DecryptionError(
        `Cannot decrypt ${keyText}: the record is not encrypted (pass allowPlaintext: true to accept it)`,
      );
    }
    record = openPlainRecord(entry.value as Uint8Array, keyText, (layout) => {
      return prefetch ? batchesFor(layout, ahead) : undefined;
    });
  } else {
    if (readKeys === undefined) {
      throw new DecryptionError(
        `Cannot read ${keyText}: the blob is encrypted; pass encryptionKey`,
      );
    }
    const header = parseRecordHeader(entry.value as Uint8Array, keyText);
    // Start fetching chunks while the header is authenticated: the crypto
    // overlaps the round trip. Nothing fetched is used before it is opened.
    const first = prefetch && !header.inline
      ? batchesFor(header, ahead) ?? prefetchBatches(target.kv, header, 1)
      : undefined;
    record = await openParsedRecord(header, key, readKeys, keyText, first, open.whole);
  }
  // Checked after authentication, so the deadline itself cannot be forged.
  return isExpired(record) ? null : record;
}

/** A chunk range: chunks `first` up to (not including) `end`. */
export interface ChunkSpan {
  /** First chunk. */
  first: number;
  /** One past the last chunk. */
  end: number;
}

/** Swallows a rejection now; the promise is still awaited (and throws) later. */
function settleQuietly<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}

/** Thrown inside the reader when a chunk lies past the last one. */
class PastEndError extends Error {}

/** A chunk past the end as the record's damage error; any other error as it is. */
function asDamage(record: OpenedRecord, error: unknown): unknown {
  return error instanceof PastEndError ? record.damaged(error.message) : error;
}

async function fetchStored(
  kv: KvLike,
  id: Uint8Array,
  first: number,
  end: number,
  probePastEnd: boolean,
): Promise<Uint8Array[]> {
  const fetchEnd = probePastEnd ? end + 1 : end;
  const count = fetchEnd - first;
  const selector = { start: chunkKey(id, first), end: chunkKey(id, fetchEnd) };
  const entries: Deno.KvEntry<unknown>[] = [];
  const options = { limit: count, batchSize: count, consistency: "strong" } as const;
  for await (const entry of kv.list(selector, options)) entries.push(entry);
  return storedChunks(entries, 0, first, end);
}

/**
 * The stored values of chunks `first` up to `end`, from `entries` on from
 * `skip`: a list page (only entries that exist) or a `getMany` reply (one
 * entry per key asked for, absent ones included); an entry after the last
 * chunk is the probe past the end.
 */
function storedChunks(
  entries: readonly Deno.KvEntryMaybe<unknown>[],
  skip: number,
  first: number,
  end: number,
): Uint8Array[] {
  const stored: Uint8Array[] = [];
  for (let at = skip; at < entries.length; at++) {
    const entry = entries[at]!;
    const index = first + stored.length;
    if (index === end) {
      // Stops an appended chunk from going unnoticed.
      if (entry.versionstamp !== null) {
        throw new PastEndError(`a chunk lies past the end (index ${end})`);
      }
      break;
    }
    // Stops a deleted, reordered or foreign chunk from shifting the data.
    if (
      entry.versionstamp === null || entry.key[3] !== index || !(entry.value instanceof Uint8Array)
    ) {
      throw new MissingChunkError(index);
    }
    stored.push(entry.value);
  }
  if (stored.length < end - first) throw new MissingChunkError(first + stored.length);
  return stored;
}

/** Requests the first `count` batches of a full read of a chunked blob. */
function prefetchBatches(kv: KvLike, layout: VersionHint, count: number): Prefetch[] {
  const batches: Prefetch[] = [];
  for (let first = 0; first < layout.chunks && batches.length < count; first += READ_BATCH_CHUNKS) {
    const end = Math.min(layout.chunks, first + READ_BATCH_CHUNKS);
    const probe = end === layout.chunks;
    const stored = settleQuietly(fetchStored(kv, layout.id, first, end, probe));
    batches.push({ first, end, probe, stored });
  }
  return batches;
}

/** How far ahead of its consumer a read fetches and opens chunks. */
export interface ReadPace {
  /** Batch requests kept in flight. */
  batchesInFlight: number;
  /**
   * Open (decrypt) each batch as soon as it arrives, for the most throughput;
   * otherwise chunks open in delivery order, a few ahead of the consumer, so
   * a stream's next byte never waits behind a whole batch.
   */
  openOnArrival: boolean;
}

/** A stream's pace: bounded read-ahead, chunks opened in delivery order. */
export const STREAM_PACE: ReadPace = {
  batchesInFlight: READ_BATCHES_IN_FLIGHT,
  openOnArrival: false,
};
/** A buffered read's pace: it holds the whole value anyway, so it reads and opens ahead. */
export const BUFFERED_PACE: ReadPace = {
  batchesInFlight: BUFFERED_BATCHES_IN_FLIGHT,
  openOnArrival: true,
};

/**
 * Yields the plaintext chunks of `span` in order, fetching and opening
 * ahead at the given pace. A read to the last chunk also checks that no
 * chunk lies past it.
 */
export async function* readChunks(
  kv: KvLike,
  record: OpenedRecord,
  span: ChunkSpan,
  pace: ReadPace = STREAM_PACE,
): AsyncGenerator<Uint8Array> {
  if (span.first >= span.end) return;
  if (record.inline !== undefined) {
    yield await record.openChunk(0, record.inline);
    return;
  }
  const verifyEnd = span.end === record.chunks;
  const open = (index: number, chunk: Uint8Array) => settleQuietly(record.openChunk(index, chunk));
  const fetch = (first: number, end: number, probe: boolean) => {
    const ahead = record.prefetch?.find((batch) =>
      batch.first === first && batch.end === end && batch.probe === probe
    );
    return ahead?.stored ?? fetchStored(kv, record.id, first, end, probe);
  };
  const queue: Promise<{ first: number; chunks: (Uint8Array | Promise<Uint8Array>)[] }>[] = [];
  let next = span.first;
  const schedule = () => {
    while (queue.length < pace.batchesInFlight && next < span.end) {
      const first = next;
      const end = Math.min(span.end, first + READ_BATCH_CHUNKS);
      next = end;
      const fetched = fetch(first, end, verifyEnd && end === span.end).then(
        (stored) => ({
          first,
          chunks: pace.openOnArrival ? stored.map((chunk, i) => open(first + i, chunk)) : stored,
        }),
        (error) => {
          throw asDamage(record, error);
        },
      );
      queue.push(settleQuietly(fetched));
    }
  };
  schedule();
  const opening: Promise<Uint8Array>[] = [];
  while (queue.length > 0) {
    const { first, chunks } = await queue.shift()!;
    schedule();
    for (const [offset, chunk] of chunks.entries()) {
      opening.push(chunk instanceof Uint8Array ? open(first + offset, chunk) : chunk);
      if (opening.length > CHUNKS_OPENED_AHEAD) yield await opening.shift()!;
    }
  }
  while (opening.length > 0) yield await opening.shift()!;
}

/** Where a whole read puts the chunks it opens. */
export interface ChunkSink {
  /** Takes the next chunk's plaintext. */
  append(chunk: Uint8Array): void;
}

/**
 * Opens every chunk of the blob in order into `sink`: an inline chunk or a
 * first batch that holds the whole blob (and its probe past the end) is
 * opened at once (or was, while the record was checked), anything longer is
 * read by {@linkcode readChunks} at the buffered pace.
 */
export async function readAllChunks(
  kv: KvLike,
  record: OpenedRecord,
  sink: ChunkSink,
): Promise<void> {
  const { inline } = record;
  if (inline !== undefined) return sink.append(await record.openChunk(0, inline));
  const prefetch = wholeBatch(record.prefetch, record.chunks);
  if (prefetch === undefined) {
    const span = { first: 0, end: record.chunks };
    for await (const chunk of readChunks(kv, record, span, BUFFERED_PACE)) sink.append(chunk);
    return;
  }
  let opened: Uint8Array[];
  try {
    opened = await (prefetch.opened ?? openStored(record, await prefetch.stored));
  } catch (error) {
    throw asDamage(record, error);
  }
  for (const chunk of opened) sink.append(chunk);
}

/** Opens stored chunks 0 … n − 1 of a record, all at once. */
function openStored(record: OpenedRecord, stored: Uint8Array[]): Promise<Uint8Array[]> {
  return Promise.all(stored.map((chunk, index) => record.openChunk(index, chunk)));
}

/**
 * Turns a missing chunk into the right error: `"replaced"` when the record
 * now holds another version (the caller restarts or fails with
 * ConcurrentModificationError), else the damage error of the record.
 */
export async function explainMissing(
  target: ReadTarget,
  record: OpenedRecord,
  error: unknown,
): Promise<Error | "replaced"> {
  if (!(error instanceof MissingChunkError)) return error as Error;
  const current = await target.kv.get(target.key, { consistency: "strong" });
  const id = recordId(current.value);
  // Compare ids, not versionstamps: a rewrap changes the versionstamp, not the chunks.
  if (id === undefined || !bytesEqual(id, record.id)) return "replaced";
  return record.damaged(error.message);
}

/** The error for a read that lost its version after delivering bytes. */
export function replacedError(keyText: string): ConcurrentModificationError {
  return new ConcurrentModificationError(
    `Cannot read ${keyText}: it was replaced or removed while being read`,
  );
}
