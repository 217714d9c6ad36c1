/**
 * What the chunk pipelines need from a record format, and its plain
 * implementation. The encrypted implementation lives in _kvc1.ts.
 *
 * @module
 */

import { CorruptBlobError } from "./_errors.ts";
import { PLAIN_CHUNK_SIZE, PLAIN_INLINE_MAX } from "./_limits.ts";
import {
  type BlobMetaFields,
  chunkLength,
  decodePlainRecord,
  encodePlainRecord,
  type RecordLayout,
} from "./_record.ts";

/** How one write turns plaintext chunks and metadata into stored bytes. */
export interface WriteFormat {
  /** Plaintext bytes per full chunk. */
  readonly chunkSize: number;
  /** Largest blob stored inline in its record. */
  readonly inlineMax: number;
  /** Stored bytes of chunk `index`. */
  sealChunk(index: number, plaintext: Uint8Array): Promise<Uint8Array>;
  /** Record bytes; `inline` is the stored chunk 0 of an inline blob. */
  encodeRecord(
    layout: RecordLayout,
    meta: BlobMetaFields,
    key: Deno.KvKey,
    inline?: Uint8Array,
  ): Promise<Uint8Array>;
}

/** A chunk batch requested ahead of time: chunks 0 up to `end`, probing past it if `probe`. */
export interface Prefetch {
  /** One past the last chunk fetched. */
  end: number;
  /** Whether the request also looked for a chunk past `end`. */
  probe: boolean;
  /** The stored chunks. */
  stored: Promise<Uint8Array[]>;
}

/** A record that has been parsed (and, if encrypted, authenticated) for reading. */
export interface OpenedRecord extends RecordLayout {
  /** Whether the blob is encrypted. */
  readonly encrypted: boolean;
  /** Its metadata (authenticated when encrypted). */
  readonly meta: BlobMetaFields;
  /** Key ids of the recipients (empty for plain blobs). */
  readonly kids: readonly string[];
  /** Stored chunk 0, when the blob is stored inline. */
  readonly inline: Uint8Array | undefined;
  /** The first chunk batch, fetched while the header was being authenticated. */
  readonly prefetch?: Prefetch | undefined;
  /** Plaintext of stored chunk `index`; rejects when it is damaged or of the wrong length. */
  openChunk(index: number, stored: Uint8Array): Promise<Uint8Array>;
  /** The error for chunks found damaged (missing, extra) while the record is unchanged. */
  damaged(problem: string): Error;
}

/** The plain format: chunks stored as they are. */
export const plainWriteFormat: WriteFormat = {
  chunkSize: PLAIN_CHUNK_SIZE,
  inlineMax: PLAIN_INLINE_MAX,
  sealChunk: (_index, plaintext) => Promise.resolve(plaintext),
  encodeRecord: (layout, meta, _key, inline) =>
    Promise.resolve(encodePlainRecord(layout, meta, inline)),
};

/** Opens a plain record; the message prefix names the key. */
export function openPlainRecord(bytes: Uint8Array, keyText: string): OpenedRecord {
  let record;
  try {
    record = decodePlainRecord(bytes);
  } catch (cause) {
    throw new CorruptBlobError(`Cannot read ${keyText}: the record is damaged`, { cause });
  }
  return {
    ...record,
    encrypted: false,
    kids: [],
    openChunk(index, stored) {
      // Stops a truncated or padded chunk from passing as the blob's bytes.
      if (stored.length !== chunkLength(record, index)) {
        return Promise.reject(
          new CorruptBlobError(`Cannot read ${keyText}: chunk ${index} has the wrong length`),
        );
      }
      return Promise.resolve(stored);
    },
    damaged: (problem) => new CorruptBlobError(`Cannot read ${keyText}: ${problem}`),
  };
}
