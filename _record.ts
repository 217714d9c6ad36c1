/**
 * What the record formats share: the magics, the metadata JSON, the version
 * entry, and what the chunk writer and reader need from a format. The plain
 * format is in _kvp1.ts, the encrypted ones in _kvc1.ts.
 *
 * @module
 */

import { ByteReader, bytesEqual, ByteWriter, fromUtf8, utf8 } from "./_bytes.ts";
import { META_JSON_MAX } from "./_limits.ts";
import type { StoredMetadata } from "./_types.ts";

/** The fields of a record that locate and size its chunks. */
export interface RecordLayout {
  /** The blob version id: the chunk key part. */
  id: Uint8Array;
  /** Plaintext bytes per full chunk. */
  chunkSize: number;
  /** Plaintext bytes in all. */
  size: number;
  /** Number of chunks: ceil(size / chunkSize). */
  chunks: number;
  /** Deadline in ms since the epoch after which the record reads as absent; 0 = none. */
  expiresAt: number;
}

/** Magic of a plain record. */
export const PLAIN_MAGIC: Uint8Array = utf8("KVP1");
/** Magic of an encrypted record whose recipients are all local keys. */
export const SEALED_MAGIC: Uint8Array = utf8("KVC1");
/** Magic of an encrypted record with at least one KeyWrapper stanza (KVC1 with typed stanzas). */
export const WRAPPED_MAGIC: Uint8Array = utf8("KVC2");

/**
 * kvcrypt's magics: "KV", an upper-case letter, a digit. KVP1, KVC1, KVC2
 * (records) and KVV1 (cryptoKv values) are in use; the rest are kept for
 * later formats.
 */
const MAGIC_FAMILY = /^KV[A-Z][0-9]$/;
/** Magics this version reads or writes. */
const KNOWN_MAGICS: ReadonlySet<string> = new Set(["KVP1", "KVC1", "KVC2", "KVV1"]);

/**
 * The magic of a value in a kvcrypt format newer than this version (say
 * "KVC3"), or undefined. Old readers leave such a record alone.
 */
export function newerFormatMagic(value: unknown): string | undefined {
  if (!(value instanceof Uint8Array) || value.length < PLAIN_MAGIC.length) return undefined;
  const magic = String.fromCharCode(...value.subarray(0, PLAIN_MAGIC.length));
  return MAGIC_FAMILY.test(magic) && !KNOWN_MAGICS.has(magic) ? magic : undefined;
}

/** Number of chunks a blob of `size` bytes is cut into. */
export function chunkCount(size: number, chunkSize: number): number {
  return Math.ceil(size / chunkSize);
}

/** Plaintext length of chunk `index` of a blob with this layout. */
export function chunkLength(layout: RecordLayout, index: number): number {
  return index < layout.chunks - 1 ? layout.chunkSize : layout.size - index * layout.chunkSize;
}

/**
 * Writes the layout fields that follow the id (and, encrypted, the
 * commitment) in every record format: chunkSize u32, size u64, chunks u32,
 * expiresAt u64.
 */
export function writeLayout(writer: ByteWriter, layout: RecordLayout): ByteWriter {
  return writer.u32(layout.chunkSize).u64(layout.size).u32(layout.chunks).u64(layout.expiresAt);
}

/**
 * Reads what {@linkcode writeLayout} writes, strictly: the format's own chunk
 * size, a size within `sizeMax`, and the chunk count that size gives.
 *
 * @throws {RangeError} when a field is out of bounds.
 */
export function readLayout(
  reader: ByteReader,
  id: Uint8Array,
  chunkSize: number,
  sizeMax = Number.MAX_SAFE_INTEGER,
): RecordLayout {
  const stored = reader.u32("chunk size");
  const size = reader.u64("size");
  const chunks = reader.u32("chunk count");
  const expiresAt = reader.u64("expiry");
  // Chunk keys and lengths follow from the chunk size: only the format's own.
  if (stored !== chunkSize) throw new RangeError("unsupported chunk size");
  if (size > sizeMax) throw new RangeError("size too large");
  // A count the size does not give would make reads miss chunks or invent them.
  if (chunks !== chunkCount(size, chunkSize)) throw new RangeError("chunk count does not match");
  return { id, chunkSize, size, chunks, expiresAt };
}

/** Whether the value at a user key starts with one of kvcrypt's record magics. */
export function recordMagic(value: unknown): "plain" | "sealed" | undefined {
  if (!(value instanceof Uint8Array) || value.length < PLAIN_MAGIC.length) return undefined;
  const magic = value.subarray(0, PLAIN_MAGIC.length);
  if (bytesEqual(magic, PLAIN_MAGIC)) return "plain";
  if (bytesEqual(magic, SEALED_MAGIC) || bytesEqual(magic, WRAPPED_MAGIC)) return "sealed";
  return undefined;
}

// ---------------------------------------------------------------------------
// Metadata JSON.

/**
 * The metadata of a byte array with no type: what most writes store, so it
 * is recognised by its bytes instead of being built and parsed each time.
 */
const BUFFER_META_JSON = utf8(JSON.stringify({ kind: "buffer" } satisfies StoredMetadata));

/** Whether metadata holds the kind "buffer" and nothing else. */
function isBufferMeta(meta: StoredMetadata): boolean {
  return meta.kind === "buffer" && !meta.type && meta.name === undefined &&
    meta.lastModified === undefined;
}

/** The stored metadata's UTF-8 JSON; RangeError past {@linkcode META_JSON_MAX}. */
export function encodeMeta(meta: StoredMetadata, what = "the blob"): Uint8Array {
  // A copy: the constant is what decodeMeta compares with.
  if (isBufferMeta(meta)) return BUFFER_META_JSON.slice();
  const fields: StoredMetadata = { kind: meta.kind };
  if (meta.type) fields.type = meta.type;
  if (meta.name !== undefined) fields.name = meta.name;
  if (meta.lastModified !== undefined) fields.lastModified = meta.lastModified;
  const bytes = utf8(JSON.stringify(fields));
  // Keeps every record inside one KV value whatever the header.
  if (bytes.length > META_JSON_MAX) {
    throw new RangeError(
      `Cannot store ${what}: its file name and type take ${bytes.length} bytes of metadata, more than ${META_JSON_MAX}`,
    );
  }
  return bytes;
}

/** Parses metadata JSON strictly; throws TypeError when it is not what kvcrypt writes. */
export function decodeMeta(bytes: Uint8Array): StoredMetadata {
  if (bytesEqual(bytes, BUFFER_META_JSON)) return { kind: "buffer" };
  const value: unknown = JSON.parse(fromUtf8(bytes));
  if (typeof value !== "object" || value === null) throw new TypeError("metadata is not an object");
  const { kind, type, name, lastModified } = value as Record<string, unknown>;
  if (kind !== "buffer" && kind !== "blob" && kind !== "file") {
    throw new TypeError("metadata has an unknown kind");
  }
  const meta: StoredMetadata = { kind };
  if (typeof type === "string") meta.type = type;
  if (typeof name === "string") meta.name = name;
  if (typeof lastModified === "number") meta.lastModified = lastModified;
  return meta;
}

// ---------------------------------------------------------------------------
// Version entries.

/** State byte of a version entry whose chunks may be referenced by a record. */
export const VERSION_LIVE = 1;
/** State byte of a version entry whose chunks are being deleted. */
export const VERSION_TOMBSTONE = 2;

/** A parsed version entry. */
export interface VersionEntry {
  /** {@linkcode VERSION_LIVE} or {@linkcode VERSION_TOMBSTONE}. */
  state: number;
  /** When the version was created (live) or tombstoned, ms since the epoch. */
  created: number;
  /** encodeKey() of the user key whose record may point to this version. */
  encodedKey: Uint8Array;
}

/** Bytes of a version entry: state u8 · created u64 · encodeKey(K). */
export function encodeVersion(entry: VersionEntry): Uint8Array {
  return new ByteWriter().u8(entry.state).u64(entry.created).bytes(entry.encodedKey).finish();
}

/** Parses a version entry; undefined when the value is not one. */
export function decodeVersion(value: unknown): VersionEntry | undefined {
  if (!(value instanceof Uint8Array)) return undefined;
  try {
    const reader = new ByteReader(value);
    const state = reader.u8("state");
    const created = reader.u64("created");
    if (state !== VERSION_LIVE && state !== VERSION_TOMBSTONE) return undefined;
    return { state, created, encodedKey: reader.rest() };
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------
// What the chunk writer and reader need from a record format.

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
    meta: StoredMetadata,
    key: Deno.KvKey,
    inline?: Uint8Array,
  ): Promise<Uint8Array>;
}

/** A chunk batch requested ahead of time: chunks `first` up to `end`, probing past it if `probe`. */
export interface Prefetch {
  /** First chunk fetched. */
  first: number;
  /** One past the last chunk fetched. */
  end: number;
  /** Whether the request also looked for a chunk past `end`. */
  probe: boolean;
  /** The stored chunks. */
  stored: Promise<Uint8Array[]>;
  /**
   * Their plaintext, when the format opened them while it checked the record
   * (a whole read of a blob this batch holds entirely).
   */
  opened?: Promise<Uint8Array[]> | undefined;
}

/**
 * The one batch fetched ahead that holds every chunk of a blob of `chunks`
 * chunks and probed past the last, if the prefetch is that; a whole read
 * then needs no other request.
 */
export function wholeBatch(
  prefetch: readonly Prefetch[] | undefined,
  chunks: number,
): Prefetch | undefined {
  const only = prefetch?.length === 1 ? prefetch[0] : undefined;
  return only !== undefined && only.probe && only.end === chunks ? only : undefined;
}

/** A record that has been parsed (and, if encrypted, authenticated) for reading. */
export interface OpenedRecord extends RecordLayout {
  /** Whether the blob is encrypted. */
  readonly encrypted: boolean;
  /** Its stored metadata (authenticated when encrypted). */
  readonly meta: StoredMetadata;
  /** Key ids of the recipients (empty for plain blobs). */
  readonly kids: readonly string[];
  /** Stored chunk 0, when the blob is stored inline. */
  readonly inline: Uint8Array | undefined;
  /**
   * Chunk batches fetched ahead (with the record, or while the header was
   * authenticated), first batch first.
   */
  readonly prefetch?: readonly Prefetch[] | undefined;
  /** Plaintext of stored chunk `index`; rejects when it is damaged or of the wrong length. */
  openChunk(index: number, stored: Uint8Array): Promise<Uint8Array>;
  /** The error for chunks found damaged (missing, extra) while the record is unchanged. */
  damaged(problem: string): Error;
}
