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

import type { KvLike } from "./_kv_like.ts";
import { commitWrite, prepareWrite, removeBlob, StagedWrite } from "./_write_protocol.ts";
import { BlobListing } from "./_list.ts";
import { VACUUM_OLDER_THAN_MS } from "./_limits.ts";
import { metaOfEntry, openStream, readTarget, readWhole, toBlob } from "./_read_protocol.ts";
import { readKeysOf } from "./_chunk_reader.ts";
import { respond } from "./_response.ts";
import { rewrapBlob } from "./_rewrap.ts";
import { rotateBlobs } from "./_rotate.ts";
import { vacuumVersions } from "./_vacuum.ts";
import type {
  BlobListIterator,
  BlobMeta,
  BlobValue,
  ListOptions,
  ReadOptions,
  RemoveOptions,
  ResponseOptions,
  RewrapOptions,
  RotateOptions,
  RotateResult,
  SetOptions,
  StagedBlob,
  StreamOptions,
  VacuumOptions,
  VacuumResult,
} from "./_types.ts";

export {
  AlreadyExistsError,
  ConcurrentModificationError,
  CorruptBlobError,
  NotFoundError,
} from "./_errors.ts";
export type { AtomicLike, KvLike, KvListIteratorLike } from "./_kv_like.ts";
export type {
  BlobKind,
  BlobListIterator,
  BlobMeta,
  BlobMetaBase,
  BlobValue,
  ByteRange,
  EncryptionKey,
  KeyMaterial,
  ListOptions,
  MetadataOptions,
  PlainBlobMeta,
  ReadOptions,
  RemoveOptions,
  ResponseOptions,
  RewrapOptions,
  RotateOptions,
  RotateResult,
  SealedBlobMeta,
  SetOptions,
  StagedBlob,
  StreamOptions,
  VacuumOptions,
  VacuumResult,
  VerifiedBlobMeta,
} from "./_types.ts";

// ---------------------------------------------------------------------------
// Writing.

/**
 * Stores a binary value at `key`, replacing any blob stored there.
 *
 * The value is streamed in chunks (memory stays bounded whatever its size);
 * small values are stored in the record itself. Without `versionstamp` the
 * last writer wins; with it the write is a compare-and-set. A write that
 * fails, is aborted or crashes leaves the previous value readable.
 *
 * Encryption is for one key ring (`encryptionKey`: its current key) or for
 * several recipients (`recipients`: one wrapped copy of the blob's secret
 * each, and any one of them reads the blob); never both.
 *
 * @param kv The store.
 * @param key Where to store the blob.
 * @param value Bytes (an ArrayBuffer or any view: only the view's bytes), a
 * ReadableStream of Uint8Array, a Blob or a File (type, name and
 * lastModified are kept).
 * @param options Encryption, expiry, compare-and-set, abort, progress, and
 * metadata (`type`, `name`, `lastModified`) for a stream or bytes.
 * @returns The commit result of the record; `{ ok: false }` only when
 * `versionstamp` was given and did not match.
 * @throws {TypeError} if the key or value is not valid, `encryptionKey` is
 * an array (pass several recipients as `recipients`), both `encryptionKey`
 * and `recipients` are given, or a key is not a key.
 * @throws {SyntaxError} if a key given as JSON text does not parse.
 * @throws {RangeError} if the metadata is too large, `expireIn` is not
 * positive, its deadline passes during the write, or `recipients` lists
 * none or more than 16.
 * @throws {ConcurrentModificationError} if `vacuum` removed the version while
 * it was being written.
 *
 * @example A streamed upload keeps its file name and type
 * ```ts
 * import assert from "node:assert/strict";
 * import { getAsBlob, set } from "@kvcrypt/kvcrypt";
 *
 * const kv = await Deno.openKv(":memory:");
 * const body = new Blob(["%PDF-1.7 …"]).stream(); // e.g. request.body
 * await set(kv, ["docs", 1], body, { name: "report.pdf", type: "application/pdf" });
 * const file = await getAsBlob(kv, ["docs", 1]);
 * assert.ok(file instanceof File);
 * assert.equal(file.name, "report.pdf");
 * assert.equal(file.type, "application/pdf");
 * kv.close();
 * ```
 *
 * @example Encrypt for two recipients: each reads alone
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateKey, get, set } from "@kvcrypt/kvcrypt";
 *
 * const kv = await Deno.openKv(":memory:");
 * const alice = await generateKey({ kid: "alice" });
 * const bob = await generateKey({ kid: "bob" });
 * await set(kv, ["shared"], new Uint8Array(100_000), { recipients: [alice, bob] });
 * assert.equal((await get(kv, ["shared"], { encryptionKey: bob })).value?.length, 100_000);
 * await assert.rejects(set(kv, ["shared"], new Uint8Array(1), { encryptionKey: [alice, bob] as never }), TypeError);
 * kv.close();
 * ```
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
  kv: KvLike,
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
 * @param options Encryption, expiry, compare-and-set, abort, progress, and
 * metadata (`type`, `name`, `lastModified`) for a stream or bytes.
 * @returns The commit result, `{ ok: false }` when `versionstamp` did not match.
 */
export function set(
  kv: KvLike,
  key: Deno.KvKey,
  value: BlobValue,
  options?: SetOptions,
): Promise<Deno.KvCommitResult | Deno.KvCommitError>;
export async function set(
  kv: KvLike,
  key: Deno.KvKey,
  value: BlobValue,
  options: SetOptions = {},
): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
  const prepared = await prepareWrite(kv, key, value, options, true);
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
 * @returns A staged blob: `commit(op)` it with your atomic (or add it to
 * one, commit, then `complete`).
 * @throws {TypeError} for a bad key, value or key option, as {@linkcode set}.
 * @throws {SyntaxError} for key text that does not parse, as {@linkcode set}.
 * @throws {RangeError} for bad sizes, expiry or recipient counts, as {@linkcode set}.
 *
 * @example Commit a blob and an index entry together
 * ```ts
 * import assert from "node:assert/strict";
 * import { get, stage } from "@kvcrypt/kvcrypt";
 *
 * const kv = await Deno.openKv(":memory:");
 * const staged = await stage(kv, ["docs", 1], new Uint8Array(200_000));
 * const result = await staged.commit(kv.atomic().set(["index", "latest"], 1));
 * assert.ok(result.ok);
 * assert.equal((await get(kv, ["docs", 1])).value?.length, 200_000);
 * kv.close();
 * ```
 *
 * @example Or commit it yourself, then complete
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
  kv: KvLike,
  key: Deno.KvKey,
  value: BlobValue,
  options: SetOptions = {},
): Promise<StagedBlob> {
  return new StagedWrite(await prepareWrite(kv, key, value, options), options.versionstamp);
}

// ---------------------------------------------------------------------------
// Reading.

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
 * @throws {SyntaxError} if a key given as JSON text does not parse.
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
  kv: KvLike,
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
  kv: KvLike,
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
  kv: KvLike,
  key: Deno.KvKey,
  options?: ReadOptions & { stream?: false; blob?: false },
): Promise<Deno.KvEntryMaybe<Uint8Array>>;
export async function get(
  kv: KvLike,
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
  const value = options.blob ? toBlob(whole.bytes, whole.fields) : whole.bytes;
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
  kv: KvLike,
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
  kv: KvLike,
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
  kv: KvLike,
  key: Deno.KvKey,
  options: ReadOptions = {},
): Promise<Deno.KvEntryMaybe<BlobMeta>> {
  const target = readTarget(kv, key, options, "read the blob's metadata");
  const [entry, readKeys] = await Promise.all([
    kv.get(key, { consistency: options.consistency ?? "strong" }),
    readKeysOf(options),
  ]);
  const meta = await metaOfEntry(target, entry, readKeys);
  if (meta === null) return { key, value: null, versionstamp: null };
  return { key, value: meta, versionstamp: entry.versionstamp! };
}

/**
 * Lists the blobs under a selector, with their metadata. Entries that are not
 * kvcrypt blobs (kvcrypt's own chunks, other values) and expired blobs are
 * skipped and do not count against `limit`. The iterator's `cursor`
 * continues after the last blob yielded, as `Deno.KvListIterator`'s does:
 * pass it back as `cursor` (same selector) for the next page; it is `""`
 * once the listing is exhausted.
 *
 * @param kv The store.
 * @param selector As for `Deno.Kv.list`.
 * @param options `limit` (in blobs), `cursor`, `reverse`, `batchSize`,
 * `consistency`, and read options; with an `encryptionKey`, encrypted
 * entries are authenticated.
 * @returns The blobs' entries with metadata as values, and a `cursor`.
 * @throws {TypeError} if `limit` is not a number.
 * @throws {RangeError} if `limit` is not a positive integer.
 * @throws {DecryptionError} (while iterating) if a key is given and an
 * encrypted blob does not open with it.
 *
 * @example List a folder, two blobs per page
 * ```ts
 * import assert from "node:assert/strict";
 * import { list, set } from "@kvcrypt/kvcrypt";
 *
 * const kv = await Deno.openKv(":memory:");
 * await set(kv, ["dir", "a"], new Uint8Array(10));
 * await set(kv, ["dir", "b"], new Uint8Array(200_000));
 * await set(kv, ["dir", "c"], new Uint8Array(3));
 * const first = list(kv, { prefix: ["dir"] }, { limit: 2 });
 * const sizes = [];
 * for await (const entry of first) sizes.push(entry.value.size);
 * assert.deepEqual(sizes, [10, 200_000]);
 * const rest = list(kv, { prefix: ["dir"] }, { limit: 2, cursor: first.cursor });
 * assert.deepEqual((await Array.fromAsync(rest)).map((entry) => entry.key), [["dir", "c"]]);
 * assert.equal(rest.cursor, "");
 * kv.close();
 * ```
 */
export function list(
  kv: KvLike,
  selector: Deno.KvListSelector,
  options: ListOptions = {},
): BlobListIterator {
  return new BlobListing(kv, selector, options);
}

// ---------------------------------------------------------------------------
// Rewrapping.

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
 * @throws {TypeError} if `encryptionKey` is missing or an option is not of its type.
 * @throws {SyntaxError} if a key given as JSON text does not parse.
 * @throws {NotFoundError} if nothing is stored at the key.
 * @throws {DecryptionError} if `encryptionKey` does not open the blob, or the blob is not encrypted.
 * @throws {AlreadyExistsError} if an added kid already has a stanza (and is not removed in the same call).
 * @throws {RangeError} if the blob would end with no recipient or more than 16.
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
  kv: KvLike,
  key: Deno.KvKey,
  options: RewrapOptions,
): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
  return await rewrapBlob(kv, key, options);
}

// ---------------------------------------------------------------------------
// Rotation.

/**
 * Rotates every encrypted blob under a selector to a key ring's current
 * key. By default only headers change (like {@linkcode rewrap}): the
 * stanzas of the ring's older keys are replaced by one for its current key,
 * other recipients' stanzas are kept, chunks are not touched. With
 * `reencrypt: true` every blob is written again under a fresh secret for
 * the ring's current key, so a key that kept an old secret (or an old
 * header) reads nothing new; a blob with a recipient outside the ring is
 * then skipped, never silently narrowed.
 *
 * Every step checks the record's versionstamp: a concurrent write wins and
 * is counted as skipped. Running it again after an abort or a crash
 * finishes the job (a header-only rotation finds finished blobs unchanged).
 *
 * @param kv The store.
 * @param selector Which keys to look at, as for `Deno.Kv.list`.
 * @param options The key ring (current key first), `reencrypt`, `signal`, `onProgress`.
 * @returns How many blobs were rotated, unchanged, skipped and failed.
 * @throws {TypeError} if `encryptionKey` is missing, an array of recipients, or not a key.
 *
 * @example Move every blob to a new key, then drop the old one
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateKey, get, keyring, rotate, set } from "@kvcrypt/kvcrypt";
 *
 * const kv = await Deno.openKv(":memory:");
 * const old = await generateKey({ kid: "2025" });
 * for (let i = 0; i < 3; i++) await set(kv, ["docs", i], new Uint8Array(100_000), { encryptionKey: old });
 * const fresh = await generateKey({ kid: "2026" });
 * const ring = await keyring(fresh, old);
 * assert.deepEqual(await rotate(kv, { prefix: ["docs"] }, { encryptionKey: ring }), {
 *   rotated: 3,
 *   unchanged: 0,
 *   skipped: 0,
 *   failed: 0,
 * });
 * assert.equal((await get(kv, ["docs", 2], { encryptionKey: fresh })).value?.length, 100_000);
 * kv.close();
 * ```
 */
export async function rotate(
  kv: KvLike,
  selector: Deno.KvListSelector,
  options: RotateOptions,
): Promise<RotateResult> {
  return await rotateBlobs(kv, selector, options);
}

// ---------------------------------------------------------------------------
// Responses.

/**
 * Answers an HTTP request with a blob, like a static file server: 200 with
 * the whole blob, 206 for a single `Range` (`bytes=a-b`, `a-`, `-n`), 416
 * for a range past the end, 304 when `If-None-Match` (weak comparison, `*`,
 * lists) says the client's copy is current, and 404 when nothing is stored. The ETag is the blob's version id
 * (strong: every write changes it, `rewrap` does not). Responses carry
 * Content-Type (`application/octet-stream` when none was stored),
 * Content-Length, Accept-Ranges and, for a File, Last-Modified and
 * `Content-Disposition: attachment` with the name quoted and
 * percent-encoded (RFC 6266). Several ranges, a malformed Range or an
 * `If-Range` that is not the current ETag get the whole blob (200); HEAD gets
 * the headers only; other methods get the whole blob with no condition or
 * range evaluated. Caching headers are the caller's (`headers`).
 *
 * Safe for user content by default: every response about a blob carries
 * `X-Content-Type-Options: nosniff` and a sandboxing
 * `Content-Security-Policy` (no script, no subresources, a unique origin),
 * and a type a browser would run or render as a document (HTML, SVG, XML,
 * JavaScript, anything but images, audio, video, PDF, plain text and raw
 * bytes) is sent as `attachment`, for Blobs too, unless
 * `allowActiveContent` is set. `headers` may replace any of these.
 *
 * The record is read and, if encrypted, authenticated before this resolves,
 * so a wrong key rejects the call rather than sending a 200 with a broken
 * body. The body streams with backpressure. A chunk that fails to open makes
 * the body stream error; so does a replacement or removal of the blob while
 * the body streams (`ConcurrentModificationError`): a response never mixes
 * two versions. Clients resume with `Range` and `If-Range: <ETag>`, which
 * answers 206 from the same version, or 200 with the new one.
 *
 * @param kv The store.
 * @param key The blob's key.
 * @param options Read options, the request, and extra headers.
 * @returns The response (404 when no blob is stored).
 * @throws {TypeError} if the key is not valid.
 * @throws {CorruptBlobError} if the entry is not a kvcrypt blob.
 * @throws {DecryptionError} for a wrong key or a tampered record.
 *
 * @example Whole file, a range, then a revalidation
 * ```ts
 * import assert from "node:assert/strict";
 * import { getAsResponse, set } from "@kvcrypt/kvcrypt";
 *
 * const kv = await Deno.openKv(":memory:");
 * await set(kv, ["files", "a"], new File(["hello world"], "a.txt", { type: "text/plain" }));
 * const full = await getAsResponse(kv, ["files", "a"]);
 * assert.equal(full.status, 200);
 * assert.equal(full.headers.get("content-type"), "text/plain");
 * assert.equal(await full.text(), "hello world");
 *
 * const url = "http://localhost/files/a";
 * const ranged = new Request(url, { headers: { range: "bytes=6-" } });
 * const part = await getAsResponse(kv, ["files", "a"], { request: ranged });
 * assert.equal(part.status, 206);
 * assert.equal(part.headers.get("content-range"), "bytes 6-10/11");
 * assert.equal(await part.text(), "world");
 *
 * const etag = full.headers.get("etag")!;
 * const revalidate = new Request(url, { headers: { "if-none-match": etag } });
 * assert.equal((await getAsResponse(kv, ["files", "a"], { request: revalidate })).status, 304);
 * assert.equal((await getAsResponse(kv, ["files", "b"])).status, 404);
 * kv.close();
 * ```
 */
export async function getAsResponse(
  kv: KvLike,
  key: Deno.KvKey,
  options: ResponseOptions = {},
): Promise<Response> {
  return await respond(readTarget(kv, key, options, "read the blob"), options);
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
  kv: KvLike,
  key: Deno.KvKey,
  options: RemoveOptions = {},
): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
  return await removeBlob(kv, key, options.versionstamp);
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
 * It deletes only what it can prove orphaned: a version is removed when the
 * record at its key is absent, is not a kvcrypt record, or is a record this
 * version of kvcrypt understands that names another version. A record of an
 * unknown format version (written by a newer kvcrypt sharing the database)
 * or one that fails to parse keeps its chunks, counted in `skipped`.
 *
 * @param kv The store.
 * @param options `olderThan` in milliseconds (default one hour).
 * @returns How many versions and chunks were removed, and how many versions were kept as not provably orphaned.
 * @throws {TypeError} if `olderThan` is not a number.
 * @throws {RangeError} if `olderThan` is negative.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { set, vacuum } from "@kvcrypt/kvcrypt";
 *
 * const kv = await Deno.openKv(":memory:");
 * await set(kv, ["x"], new Uint8Array(100_000));
 * assert.deepEqual(await vacuum(kv, { olderThan: 0 }), { versions: 0, chunks: 0, skipped: 0 });
 * kv.close();
 * ```
 */
export async function vacuum(kv: KvLike, options: VacuumOptions = {}): Promise<VacuumResult> {
  const olderThan = options.olderThan ?? VACUUM_OLDER_THAN_MS;
  if (typeof olderThan !== "number") {
    throw new TypeError("Cannot vacuum: olderThan must be a number of milliseconds");
  }
  if (!(olderThan >= 0)) {
    throw new RangeError("Cannot vacuum: olderThan must be a non-negative number of milliseconds");
  }
  return await vacuumVersions(kv, olderThan);
}
