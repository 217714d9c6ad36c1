/**
 * The plain record format ("KVP1", FORMAT.md): the record's bytes, and the plain
 * implementation of what the chunk writer and reader need from a format.
 * Chunks are stored as they are.
 *
 * @module
 */

import { ByteReader, ByteWriter } from "./_bytes.ts";
import { CorruptBlobError } from "./_errors.ts";
import { ParsedRecords } from "./_parsed_records.ts";
import { ID_BYTES, META_JSON_MAX, PLAIN_CHUNK_SIZE, PLAIN_INLINE_MAX } from "./_limits.ts";
import {
  chunkLength,
  decodeMeta,
  encodeMeta,
  type OpenedRecord,
  PLAIN_MAGIC,
  type Prefetch,
  readLayout,
  type RecordLayout,
  type WriteFormat,
  writeLayout,
} from "./_record.ts";
import type { StoredMetadata } from "./_types.ts";

/** A parsed plain record. */
export interface PlainRecord extends RecordLayout {
  /** The metadata. */
  meta: StoredMetadata;
  /** The single chunk, when the blob is stored in its record. */
  inline: Uint8Array | undefined;
}

/** Bytes of a plain record ("KVP1"). */
export function encodePlainRecord(
  layout: RecordLayout,
  meta: StoredMetadata,
  inline?: Uint8Array,
): Uint8Array {
  const metaBytes = encodeMeta(meta);
  const writer = writeLayout(new ByteWriter().bytes(PLAIN_MAGIC).bytes(layout.id), layout)
    .u32(metaBytes.length).bytes(metaBytes);
  if (inline) writer.bytes(inline);
  return writer.finish();
}

/**
 * Plain records parsed recently or written by this process (inline ones are
 * not kept); a KVP1 record holds its version id right after the magic.
 * Exported for its tests.
 */
export const parsedPlainRecords: ParsedRecords<PlainRecord> = new ParsedRecords(
  PLAIN_MAGIC.length,
);

/**
 * A chunked record's bytes, kept with what {@linkcode decodePlainRecord}
 * gives for a private copy of them, so reading it back skips the parse.
 */
function encodeAndRemember(layout: RecordLayout, meta: StoredMetadata): Uint8Array {
  const bytes = encodePlainRecord(layout, meta);
  const copy = bytes.slice();
  parsedPlainRecords.add(copy, decodePlainRecord(copy));
  return bytes;
}

/**
 * Parses a plain record strictly; throws a TypeError or RangeError saying
 * what is wrong. Its byte fields are views of `bytes`, which must not change
 * afterwards.
 */
export function decodePlainRecord(bytes: Uint8Array): PlainRecord {
  const reader = new ByteReader(bytes);
  reader.bytes(PLAIN_MAGIC.length, "magic");
  const layout = readLayout(reader, reader.bytes(ID_BYTES, "id"), PLAIN_CHUNK_SIZE);
  const metaLen = reader.u32("metadata length");
  if (metaLen > META_JSON_MAX) throw new RangeError("metadata too long");
  const meta = decodeMeta(reader.bytes(metaLen, "metadata"));
  const rest = reader.rest();
  const inline = rest.length > 0 ? rest : undefined;
  if (inline && (layout.chunks !== 1 || inline.length !== layout.size)) {
    throw new RangeError("inline data does not match the size");
  }
  return { ...layout, meta, inline };
}

/** The plain format: chunks stored as they are. */
export const plainWriteFormat: WriteFormat = {
  chunkSize: PLAIN_CHUNK_SIZE,
  inlineMax: PLAIN_INLINE_MAX,
  sealChunk: (_index, plaintext) => Promise.resolve(plaintext),
  encodeRecord: (layout, meta, _key, inline) =>
    Promise.resolve(
      inline ? encodePlainRecord(layout, meta, inline) : encodeAndRemember(layout, meta),
    ),
};

/**
 * Opens a plain record; the message prefix names the key. `prefetchFor` may
 * give chunk batches already requested for the layout parsed.
 */
export function openPlainRecord(
  bytes: Uint8Array,
  keyText: string,
  prefetchFor?: (layout: PlainRecord) => readonly Prefetch[] | undefined,
): OpenedRecord {
  let record = parsedPlainRecords.find(bytes);
  if (record === undefined) {
    try {
      record = decodePlainRecord(bytes);
    } catch (cause) {
      throw new CorruptBlobError(`Cannot read ${keyText}: the record is damaged`, { cause });
    }
    // Kept with copies: the id is the only field that views the bytes.
    if (record.inline === undefined) {
      parsedPlainRecords.add(bytes.slice(), { ...record, id: record.id.slice() });
    }
  }
  return new OpenedPlainRecord(record, keyText, prefetchFor?.(record));
}

/** A plain record opened for reading: chunks are stored as they are. */
class OpenedPlainRecord implements OpenedRecord {
  readonly id: Uint8Array;
  readonly chunkSize: number;
  readonly size: number;
  readonly chunks: number;
  readonly expiresAt: number;
  readonly encrypted = false;
  readonly meta: StoredMetadata;
  readonly kids: readonly string[] = [];
  readonly inline: Uint8Array | undefined;
  readonly prefetch: readonly Prefetch[] | undefined;
  readonly #keyText: string;

  constructor(
    record: PlainRecord,
    keyText: string,
    prefetch: readonly Prefetch[] | undefined,
  ) {
    this.id = record.id;
    this.chunkSize = record.chunkSize;
    this.size = record.size;
    this.chunks = record.chunks;
    this.expiresAt = record.expiresAt;
    // A copy: the record may be a kept parse, which its reader must not change.
    this.meta = { ...record.meta };
    this.inline = record.inline;
    this.prefetch = prefetch;
    this.#keyText = keyText;
  }

  openChunk(index: number, stored: Uint8Array): Promise<Uint8Array> {
    // Stops a truncated or padded chunk from passing as the blob's bytes.
    if (stored.length !== chunkLength(this, index)) {
      return Promise.reject(
        new CorruptBlobError(`Cannot read ${this.#keyText}: chunk ${index} has the wrong length`),
      );
    }
    return Promise.resolve(stored);
  }

  damaged(problem: string): Error {
    return new CorruptBlobError(`Cannot read ${this.#keyText}: ${problem}`);
  }
}
