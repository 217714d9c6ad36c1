/**
 * The public types of the blob API (values, keys, metadata, options and
 * results), declared once here: the private modules import them, blob.ts
 * (and so mod.ts) re-exports them. Only {@linkcode StoredMetadata}, the
 * stored form of a blob's metadata, is private. The KV interface
 * (`KvLike`, `AtomicLike`) is in _kv_like.ts.
 *
 * @module
 */

import type { JsonWebKeySet } from "./_key_import.ts";
import type { Keyring, KeyWrapper } from "./_keyring.ts";
import type { AtomicLike } from "./_kv_like.ts";

// ---------------------------------------------------------------------------
// Values and keys.

/** A value `set` accepts. */
export type BlobValue = ArrayBuffer | ArrayBufferView | ReadableStream<Uint8Array> | Blob;

/** What kind of value a blob was written from; decides what `get(…, { blob: true })` returns. */
export type BlobKind = "buffer" | "blob" | "file";

/**
 * One key ring in any form kvcrypt accepts: a `CryptoKey` (AES-GCM, 128 or
 * 256 bits, with the empty kid), a JWK, a JWK Set, the JSON text of a JWK or
 * JWK Set, a {@linkcode Keyring}, or a {@linkcode KeyWrapper} (a key held in
 * a KMS or key service). Writes use its current (first) key; reads try all
 * of its keys.
 */
export type KeyMaterial = CryptoKey | JsonWebKey | JsonWebKeySet | string | Keyring | KeyWrapper;

/**
 * The `encryptionKey` option of reads: one key ring ({@linkcode KeyMaterial}),
 * or an array of them, whose keys are all tried.
 *
 * - A single key, JWK Set or `Keyring` is **one** key ring: a read tries every
 *   key in it, so older keys keep reading after a rotation.
 * - An **array** is a list of key rings to try, every key of every element:
 *   the same as one keyring holding them all.
 *
 * Writes (`set`, `stage`) take one {@linkcode KeyMaterial} as `encryptionKey`
 * (an array there is a `TypeError`) and several recipients as `recipients`.
 *
 * A string that is not JSON (such as a raw hex or base64 key) is rejected
 * with a `SyntaxError`: convert it with `importKey()` or pass a JWK.
 */
export type EncryptionKey = KeyMaterial | readonly KeyMaterial[];

// ---------------------------------------------------------------------------
// Metadata.

/**
 * The stored metadata: the fields of the metadata JSON every record carries
 * (the README's format section), sealed and authenticated inside an
 * encrypted record, in the clear in a plain one. Private: users see it
 * through {@linkcode BlobMeta}, and it is not re-exported by blob.ts.
 */
export interface StoredMetadata {
  /** `"buffer"` for bytes and streams, `"blob"` for a Blob, `"file"` for a File. */
  kind: BlobKind;
  /** The Blob's or File's MIME type; left out when empty. */
  type?: string;
  /** The File's name. */
  name?: string;
  /** The File's last modification time, ms since the epoch. */
  lastModified?: number;
}

/**
 * Fields every {@linkcode BlobMeta} has: the size, chunk count, version id
 * and expiry from the record's header, which any reader sees without a key.
 * They are authenticated only in a {@linkcode VerifiedBlobMeta}.
 */
export interface BlobMetaBase {
  /** Plaintext size in bytes. */
  size: number;
  /** Number of chunks (0 for an empty blob). */
  chunks: number;
  /** The version id in hex: changes on every write, never on `rewrap` (an ETag). */
  id: string;
  /** Expiry deadline, ms since the epoch, if the blob was written with `expireIn`. */
  expiresAt?: number;
}

/**
 * Metadata of an encrypted blob opened with the caller's key: the header
 * fields and the sealed {@linkcode StoredMetadata} fields (kind, type, name,
 * lastModified), all authenticated together with the blob's key in KV.
 */
export interface VerifiedBlobMeta extends BlobMetaBase {
  /** Authenticated by the key given. */
  verified: true;
  /** Always encrypted. */
  encrypted: true;
  /** What the blob was written from. */
  kind: BlobKind;
  /** MIME type ("" when none). */
  type: string;
  /** File name, for files. */
  name?: string;
  /** File modification time, for files. */
  lastModified?: number;
  /** Key ids of the recipients. */
  kids: string[];
}

/**
 * Metadata of a plain (unencrypted) blob: the header fields and the stored
 * metadata fields, all complete and visible to anyone, none authenticated.
 */
export interface PlainBlobMeta extends BlobMetaBase {
  /** Plain records carry no authentication. */
  verified: false;
  /** Not encrypted. */
  encrypted: false;
  /** What the blob was written from. */
  kind: BlobKind;
  /** MIME type ("" when none). */
  type: string;
  /** File name, for files. */
  name?: string;
  /** File modification time, for files. */
  lastModified?: number;
}

/**
 * Metadata of an encrypted blob read without a key: only the header fields
 * anyone can see (size, chunks, id, expiry, recipients' kids), none
 * authenticated; kind, type and name stay sealed.
 */
export interface SealedBlobMeta extends BlobMetaBase {
  /** Not authenticated: no key was given. */
  verified: false;
  /** Encrypted; kind, type and name are sealed. */
  encrypted: true;
  /** Key ids of the recipients. */
  kids: string[];
}

/**
 * What `getMeta` and `list` return for a blob, the public description of a
 * stored blob: {@linkcode VerifiedBlobMeta} (encrypted, opened with a key,
 * authenticated), {@linkcode PlainBlobMeta} (plain, complete, not
 * authenticated) or {@linkcode SealedBlobMeta} (encrypted, read without a
 * key, header fields only). Check `verified` and `encrypted` first.
 */
export type BlobMeta = VerifiedBlobMeta | PlainBlobMeta | SealedBlobMeta;

// ---------------------------------------------------------------------------
// Writing.

/** Metadata a caller gives `set` for a value, replacing what the value itself carries. */
export interface MetadataOptions {
  /** MIME type; the value is then stored as a Blob (or a File, with `name`). */
  type?: string | undefined;
  /** File name; the value is then stored as a File. */
  name?: string | undefined;
  /** A File's last modification time, ms since the epoch (only with a name or for a File). */
  lastModified?: number | undefined;
}

/** Options of {@linkcode set} and {@linkcode stage}. */
export interface SetOptions extends MetadataOptions {
  /**
   * Encrypt every chunk and the metadata for this one key or key ring (its
   * current key). An array is a `TypeError`: pass several recipients as
   * `recipients`. Not together with `recipients`.
   */
  encryptionKey?: KeyMaterial | undefined;
  /**
   * Encrypt for several recipients: the blob's secret is wrapped once for
   * each entry (a key, a key ring's current key, or a `KeyWrapper`), and any
   * one of them reads the blob. 1 to 16 entries; not together with
   * `encryptionKey`.
   */
  recipients?: readonly KeyMaterial[] | undefined;
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
  /** Called with the number of bytes committed so far; what it throws is ignored. */
  onProgress?: ((bytesWritten: number) => void) | undefined;
}

/** A blob whose chunks are written, ready to commit inside the caller's atomic operation. */
export interface StagedBlob {
  /**
   * Adds the record's checks and set to `op` and returns it. The staged blob
   * commits only if the key still holds what it held when `stage` was called
   * (or the `versionstamp` given).
   */
  addTo<Op extends AtomicLike>(op: Op): Op;
  /**
   * Finishes the write after `op.commit()` returned. It looks at the record:
   * if it holds the staged blob, the replaced blob's chunks are deleted;
   * otherwise the staged chunks are and the blob stored before is kept
   * (whatever the result said: a commit of an atomic that did not carry
   * `addTo` committed nothing of the staged blob). Calling it again does
   * nothing.
   *
   * @param result What `op.commit()` returned.
   */
  complete(result: Deno.KvCommitResult | Deno.KvCommitError): Promise<void>;
  /**
   * Finishes the write after `op.commit()` threw: as for a result, the
   * record decides, so a commit that applied although its reply was lost
   * keeps the staged blob.
   *
   * @param error What `op.commit()` threw (any value).
   */
  complete(error: unknown): Promise<void>;
  /**
   * Commits `op` with the staged record (added as {@linkcode StagedBlob.addTo}
   * does, unless `addTo` already was given `op`) and finishes the write, so
   * no `complete` and no try/catch is needed. A commit that throws is looked
   * at first: one that applied (its reply was lost) resolves `{ ok: true }`,
   * one that did not removes the staged chunks and rejects with the commit's
   * error (or with the cleanup's, should removing the chunks fail too). A
   * staged blob commits once: after `commit` or `complete`, `commit` throws.
   *
   * @param op The caller's atomic operation, with their other checks and mutations.
   * @returns The commit's result: `{ ok: false }` when a check failed (the
   * caller's, or the key changed since `stage`), with the staged chunks removed.
   * @throws {RangeError} if the `expireIn` deadline passed before the commit (the staged chunks are removed).
   *
   * @example A failed check writes nothing and removes the staged chunks
   * ```ts
   * import assert from "node:assert/strict";
   * import { get, stage } from "@kvcrypt/kvcrypt";
   *
   * const kv = await Deno.openKv(":memory:");
   * await kv.set(["index", "latest"], 0);
   * const staged = await stage(kv, ["docs", 1], new Uint8Array(200_000));
   * const op = kv.atomic().check({ key: ["index", "latest"], versionstamp: null });
   * assert.equal((await staged.commit(op)).ok, false);
   * assert.equal((await get(kv, ["docs", 1])).value, null);
   * kv.close();
   * ```
   */
  commit(op: AtomicLike): Promise<Deno.KvCommitResult | Deno.KvCommitError>;
}

/** Options of {@linkcode remove}. */
export interface RemoveOptions {
  /** Remove only if the record's versionstamp is this one. */
  versionstamp?: string | null | undefined;
}

// ---------------------------------------------------------------------------
// Reading.

/** Options every read accepts. */
export interface ReadOptions {
  /**
   * Key(s) to decrypt with. Required for encrypted blobs; with it, a plain
   * record is refused unless `allowPlaintext` is set.
   */
  encryptionKey?: EncryptionKey | undefined;
  /**
   * Consistency of the record read (chunks are always read strongly).
   *
   * @default {"strong"}
   */
  consistency?: Deno.KvConsistencyLevel | undefined;
  /**
   * Accept a plain record although `encryptionKey` was given.
   *
   * @default {false}
   */
  allowPlaintext?: boolean | undefined;
}

/** A byte range: `start` inclusive, `end` exclusive (default: the size). */
export type ByteRange = { start: number; end?: number };

/** Options of {@linkcode getAsStream}. */
export interface StreamOptions extends ReadOptions {
  /**
   * Byte range to read: `start` inclusive, `end` exclusive (default: the
   * size), like `Blob.slice`. Without it: the whole blob.
   */
  range?: ByteRange | undefined;
}

/** Options of {@linkcode getAsResponse}. */
export interface ResponseOptions extends ReadOptions {
  /**
   * The request to answer: its method (HEAD gets headers only) and its
   * `If-None-Match`, `Range` and `If-Range` fields (`If-Modified-Since` is
   * ignored: a File's date is chosen by its writer).
   * Without it: a 200 with the whole blob.
   */
  request?: Request | undefined;
  /**
   * Headers for every response about the stored blob (200, 206, 304, 416;
   * not the 404), replacing computed ones of the same name: Cache-Control,
   * Vary, CORS, a Content-Type of your own…
   */
  headers?: HeadersInit | undefined;
  /**
   * Send `Content-Disposition: attachment` with the name of a stored File.
   * Types a browser would run or render as a document are sent as
   * `attachment` whatever this says (see `allowActiveContent`).
   *
   * @default {true}
   */
  contentDisposition?: boolean | undefined;
  /**
   * Let types a browser would run or render as a document (HTML, XHTML,
   * SVG, XML, JavaScript, and every type outside the passive list: images
   * other than SVG, audio, video, PDF, `text/plain`,
   * `application/octet-stream`) be displayed inline. Without it they are
   * sent as `attachment`, since a stored type is whatever the uploader
   * claimed. Only for content you trust: the sandboxing
   * Content-Security-Policy is still sent unless `headers` replaces it.
   *
   * @default {false}
   */
  allowActiveContent?: boolean | undefined;
  /** Body of the 404 when no blob is stored (or it expired). Without it: no body. */
  notFoundBody?: BodyInit | undefined;
  /** Headers of that 404. */
  notFoundHeaders?: HeadersInit | undefined;
}

/** Options of `list`: `Deno.KvListOptions` counted in blobs, plus read options. */
export interface ListOptions extends ReadOptions {
  /** Yield at most this many blobs (entries that are not blobs do not count). Without it: all. */
  limit?: number | undefined;
  /** A `cursor` of an earlier listing with the same selector: continue after its last blob. */
  cursor?: string | undefined;
  /**
   * List in descending key order.
   *
   * @default {false}
   */
  reverse?: boolean | undefined;
  /**
   * Entries fetched per `Deno.Kv.list` batch (blobs and non-blobs alike).
   * Left out, the store's own default applies (Deno KV's is 100).
   *
   * @default {100}
   */
  batchSize?: number | undefined;
}

/** The iterator `list` returns: blob entries with metadata, and a cursor like `Deno.KvListIterator`'s. */
export interface BlobListIterator extends AsyncIterableIterator<Deno.KvEntry<BlobMeta>> {
  /**
   * Where to continue: pass it as `cursor` to a `list` of the same selector
   * to get the blobs after the last one yielded. The empty string once the
   * listing is exhausted; the `cursor` option (if given) before the first
   * blob.
   *
   * @throws {Error} if read before the first blob (and no cursor was given).
   */
  readonly cursor: string;
}

// ---------------------------------------------------------------------------
// Keys and upkeep.

/** Options of `rewrap`. */
export interface RewrapOptions {
  /**
   * A key that opens the blob now (a keyring may hold old and new keys; an
   * array is a list of keys to try, as for reads).
   */
  encryptionKey: EncryptionKey;
  /**
   * Recipients to add, as `recipients` of `set`: one stanza per entry (a
   * key, a key ring's current key, or a KeyWrapper); a single entry may be
   * given without the array.
   */
  add?: KeyMaterial | readonly KeyMaterial[] | undefined;
  /** Key ids whose stanzas are dropped (kids not present are ignored). */
  remove?: readonly string[] | undefined;
  /** Rewrap only if the record's versionstamp is this one. */
  versionstamp?: string | undefined;
}

/** Options of `rotate`. */
export interface RotateOptions {
  /**
   * One key ring: a `Keyring`, a JWK Set, or its JSON, current key first.
   * Its older keys' stanzas are replaced by one for the current key.
   */
  encryptionKey: KeyMaterial;
  /**
   * Write every blob again under a fresh secret, so a key (or anyone) that
   * kept an old secret reads nothing new: revocation. Blobs with a recipient
   * outside the ring are skipped, never narrowed.
   *
   * @default {false}
   */
  reencrypt?: boolean | undefined;
  /** Aborts the run; it rejects with the signal's reason (run it again to finish). */
  signal?: AbortSignal | undefined;
  /** Called with the counts so far after each blob; what it throws is ignored. */
  onProgress?: ((progress: RotateResult) => void) | undefined;
}

/** What a rotation did, item by item. */
export interface RotateResult {
  /** Items now written for the ring's current key (and no older key of it). */
  rotated: number;
  /** Items that already were. */
  unchanged: number;
  /**
   * Items left as they are: no key of the ring opens them, a recipient's key
   * was not given (with `reencrypt`), or a concurrent write changed them
   * first (that write wins).
   */
  skipped: number;
  /** Items that could not be opened although the ring names them (damaged, tampered). */
  failed: number;
}

/** Options of {@linkcode vacuum}. */
export interface VacuumOptions {
  /**
   * Leave versions younger than this many milliseconds alone: they may be
   * writes in flight.
   *
   * @default {3_600_000} (one hour)
   */
  olderThan?: number | undefined;
}

/** What {@linkcode vacuum} removed, and what it left alone. */
export interface VacuumResult {
  /** Version entries removed. */
  versions: number;
  /** Chunk entries removed. */
  chunks: number;
  /**
   * Old versions kept because the record at their key could not be
   * understood: a format version this kvcrypt does not know (a newer
   * kvcrypt's), or a record that fails to parse. Their chunks stay.
   */
  skipped: number;
}
