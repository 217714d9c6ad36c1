/**
 * kv-toolbox 0.30's blob and `CryptoKv` API on kvcrypt's storage and
 * encryption: the same names, options, return shapes and sync/async-ness as
 * `@kitsonk/kv-toolbox/blob` and `@kitsonk/kv-toolbox/crypto`, so moving is an
 * import change plus one migration run (`migrateKvToolbox` from
 * `@kvcrypt/kvcrypt/migrate` converts what kv-toolbox wrote; this module
 * neither reads nor writes kv-toolbox's own entries).
 *
 * Blobs written here are kvcrypt blobs, readable by the rest of kvcrypt:
 * `CryptoKv` encrypts in kvcrypt's format (KVC1) with the hex key imported as
 * an AES-GCM key with the empty kid, so `importKey({ kty: "oct", k })` of the
 * same bytes opens them with kvcrypt's own functions.
 *
 * Where kvcrypt is stricter on purpose, this module is too:
 *
 * - Tampering: an encrypted blob whose chunks, metadata or header were changed,
 *   swapped, cut or moved throws `DecryptionError` (kvcrypt authenticates all of
 *   it); kv-toolbox decrypted chunks as they came and trusted its metadata.
 * - A plaintext blob read through `CryptoKv` throws `DecryptionError`
 *   (kv-toolbox returned null): it stops an attacker from replacing an
 *   encrypted blob with a plaintext one of their choosing. An encrypted blob
 *   read by the plain functions throws `DecryptionError` too (kv-toolbox
 *   returned the ciphertext).
 * - Without the key, an encrypted blob's kind, type and name are sealed: the
 *   plain `getMeta` and `list` show it as `{ kind: "buffer", encrypted: true,
 *   size }`; `CryptoKv.getBlobMeta` gives the full metadata.
 * - A custom `Encryptor` is not supported (`TypeError`): kvcrypt encrypts with
 *   KVC1 only. Keys held outside the process (a KMS) are planned as
 *   `KeyWrapper` recipients of KVC1 blobs.
 * - Keys are 128 or 256 bits (32 or 64 hex digits, or 16 or 32 bytes):
 *   `generateKey(192)` and 192-bit keys throw `RangeError`, because KVC1
 *   names AES-128-GCM and AES-256-GCM only and Chromium-based Web Crypto has
 *   no AES-192 (Deno and Node have it, so `migrateKvToolbox` can still read
 *   kv-toolbox blobs encrypted with one).
 * - `getAsResponse` sends kvcrypt's safe headers: a Content-Type that is not a
 *   valid header value becomes `application/octet-stream`, a download name is
 *   quoted and percent-encoded (RFC 6266: `attachment; filename="…";
 *   filename*=UTF-8''…`), plus the security headers kvcrypt's own
 *   `getAsResponse` sends; `headers` replace the computed fields of the same
 *   name. Like kv-toolbox's, it takes no request, so it sends no ETag,
 *   Last-Modified or Accept-Ranges: for conditional and ranged requests use
 *   kvcrypt's `getAsResponse`.
 * - A value at the key that is not a kvcrypt blob makes reads and `remove`
 *   throw `CorruptBlobError` and is left alone (kv-toolbox returned null).
 * - `set` of a typed array stores the view's bytes only (kv-toolbox stored its
 *   whole underlying buffer).
 *
 * Storage differs by design: one record at the key and chunks under kvcrypt's
 * prefix (no `__kv_toolbox_blob__` / `__kv_toolbox_meta__` sub-keys), and
 * streams deliver kvcrypt's chunks (up to 64 KiB) rather than 63,000-byte
 * parts. `list`'s `limit` counts blobs, never other entries.
 *
 * @example Move from kv-toolbox by changing the import
 * ```ts
 * import assert from "node:assert/strict";
 * import { CryptoKv, generateKey, get, getMeta, set } from "@kvcrypt/kvcrypt/kv-toolbox";
 *
 * const kv = await Deno.openKv(":memory:");
 * await set(kv, ["hello"], new Uint8Array([1, 2, 3]));
 * assert.deepEqual((await get(kv, ["hello"])).value, new Uint8Array([1, 2, 3]));
 * assert.deepEqual((await getMeta(kv, ["hello"])).value, { kind: "buffer", size: 3 });
 *
 * const cryptoKv = new CryptoKv(kv, generateKey());
 * await cryptoKv.setBlob(["secret"], new Uint8Array(100_000));
 * assert.equal((await cryptoKv.getBlob(["secret"])).value?.length, 100_000);
 * kv.close();
 * ```
 *
 * @module
 */

import type { KvLike, KvListIteratorLike } from "./_kv_like.ts";
import { concat, toHex } from "./_bytes.ts";
import {
  get as kvcryptGet,
  getAsBlob as kvcryptGetAsBlob,
  getAsResponse as kvcryptGetAsResponse,
  getAsStream as kvcryptGetAsStream,
  getMeta as kvcryptGetMeta,
  list as kvcryptList,
  remove as kvcryptRemove,
  set as kvcryptSet,
} from "./blob.ts";
import {
  downloadName,
  fromParts,
  lazyStream,
  type ListedValue,
  NO_AES_192,
  toolboxKeyBytes,
  toolboxKeyring,
  ToolboxListIterator,
  type ToolboxMeta,
  toolboxMeta,
  toParts,
} from "./_kv_toolbox.ts";
import type { Keyring } from "./_keyring.ts";
import { contentDisposition } from "./_response.ts";
import { readTarget, readWhole } from "./_read_protocol.ts";
import { assertUserKey } from "./_user_key.ts";

/**
 * A blob's metadata as kv-toolbox returns it: kind, type, name and
 * lastModified of a Blob or File, the size, and `encrypted: true` for a
 * blob `CryptoKv` wrote. This is kv-toolbox's shape, not the `BlobMeta` that
 * kvcrypt's own `getMeta` returns.
 */
export type BlobMeta = ToolboxMeta;

/** A blob value as JSON: its metadata and base64url `parts`. */
export type BlobJSON = BlobBlobJSON | BlobBufferJSON | BlobFileJSON;

/** A {@linkcode Blob} value as JSON. */
export interface BlobBlobJSON {
  /** Kind and type (and the size, when read from the store). */
  meta: { kind: "blob"; type: string; size?: number };
  /** The bytes, base64url, in pieces of 63,000 bytes. */
  parts: string[];
}

/** An array buffer or typed array value as JSON. */
export interface BlobBufferJSON {
  /** Kind (and the size, when read from the store). */
  meta: { kind: "buffer"; size?: number };
  /** The bytes, base64url, in pieces of 63,000 bytes. */
  parts: string[];
}

/** A {@linkcode File} value as JSON. */
export interface BlobFileJSON {
  /** Kind, type, lastModified and name (and the size, when read from the store). */
  meta: { kind: "file"; type: string; lastModified: number; name: string; size?: number };
  /** The bytes, base64url, in pieces of 63,000 bytes. */
  parts: string[];
}

/** Options of {@linkcode list}: `Deno.KvListOptions` and the kind of value to yield. */
export interface BlobKvListOptions extends Deno.KvListOptions {
  /**
   * Yield each value as a ReadableStream of Uint8Array.
   *
   * @default {false}
   */
  stream?: boolean;
  /**
   * Yield each value as a Blob or File.
   *
   * @default {false}
   */
  blob?: boolean;
  /**
   * Yield each value as a Uint8Array.
   *
   * @default {false}
   */
  bytes?: boolean;
  /**
   * Yield each value's {@linkcode BlobMeta}.
   *
   * @default {true}
   */
  meta?: boolean;
}

/** Options of {@linkcode getAsResponse}. */
export interface GetAsResponseOptions {
  /**
   * Consistency of the record read.
   *
   * @default {"strong"}
   */
  consistency?: Deno.KvConsistencyLevel | undefined;
  /**
   * Send `Content-Disposition: attachment` with the File's name, or one made
   * from the key's last part and the type (`attachment` is sent for types a
   * browser would run whatever this says).
   *
   * @default {false}
   */
  contentDisposition?: boolean | undefined;
  /** Headers for the 200 response; they replace computed ones of the same name. */
  headers?: HeadersInit | undefined;
  /** Body of the 404 when no blob is stored. */
  notFoundBody?: BodyInit | undefined;
  /** Headers of the 404. */
  notFoundHeaders?: HeadersInit | undefined;
}

/** The read option kv-toolbox's functions take. */
export interface ConsistencyOption {
  /**
   * Consistency of the record read (chunks are always read strongly).
   *
   * @default {"strong"}
   */
  consistency?: Deno.KvConsistencyLevel | undefined;
}

/** A value {@linkcode set} and `CryptoKv.setBlob` store: bytes, a stream, a Blob or a File. */
export type ToolboxValue =
  | ArrayBufferLike
  | ArrayBufferView
  | ReadableStream<Uint8Array>
  | Blob
  | File;

/** kvcrypt takes ArrayBuffers and views: a SharedArrayBuffer is stored through a view of it. */
function storable(value: ToolboxValue) {
  return typeof SharedArrayBuffer === "function" && value instanceof SharedArrayBuffer
    ? new Uint8Array(value)
    : value as ArrayBuffer | ArrayBufferView | ReadableStream<Uint8Array> | Blob;
}

/** The absent entry kv-toolbox returns. */
function absent(key: Deno.KvKey): Deno.KvEntryMaybe<never> {
  return { key: [...key], value: null, versionstamp: null };
}

// ---------------------------------------------------------------------------
// Writing and removing.

/**
 * Stores a binary value at `key` as a kvcrypt blob, replacing any blob there.
 *
 * @param kv The store.
 * @param key Where to store it.
 * @param blob Bytes (an ArrayBuffer, SharedArrayBuffer or any view: only the
 * view's bytes), a ReadableStream of Uint8Array, a Blob or a File.
 * @param options `expireIn` in milliseconds.
 * @returns The commit result.
 * @throws {TypeError} if the key or value is not valid.
 * @throws {RangeError} if `expireIn` is not positive or its deadline passes during the write.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { get, set } from "@kvcrypt/kvcrypt/kv-toolbox";
 *
 * const kv = await Deno.openKv(":memory:");
 * const result = await set(kv, ["a"], new Blob(["hello"], { type: "text/plain" }));
 * assert.ok(result.ok);
 * assert.equal((await get(kv, ["a"])).versionstamp, result.versionstamp);
 * kv.close();
 * ```
 */
export async function set(
  kv: KvLike,
  key: Deno.KvKey,
  blob: ToolboxValue,
  options: { expireIn?: number } = {},
): Promise<Deno.KvCommitResult> {
  return await kvcryptSet(kv, key, storable(blob), options);
}

/**
 * Removes the blob at `key` (nothing happens when none is stored).
 *
 * @param kv The store.
 * @param key The blob's key.
 * @returns Resolves once the record and its chunks are deleted.
 * @throws {CorruptBlobError} if the entry at `key` is not a kvcrypt blob (it is left alone).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { get, remove, set } from "@kvcrypt/kvcrypt/kv-toolbox";
 *
 * const kv = await Deno.openKv(":memory:");
 * await set(kv, ["a"], new Uint8Array(100_000));
 * await remove(kv, ["a"]);
 * assert.equal((await get(kv, ["a"])).value, null);
 * kv.close();
 * ```
 */
export async function remove(kv: KvLike, key: Deno.KvKey): Promise<void> {
  await kvcryptRemove(kv, key);
}

// ---------------------------------------------------------------------------
// Reading.

/**
 * Reads a blob: a Uint8Array by default, a ReadableStream with
 * `{ stream: true }`, a Blob or File with `{ blob: true }`.
 *
 * @param kv The store.
 * @param key The blob's key.
 * @param options `consistency`, and `stream` or `blob`.
 * @returns The entry; its value is null when no blob is stored.
 * @throws {CorruptBlobError} if the entry is not a kvcrypt blob.
 * @throws {DecryptionError} if the blob is encrypted (read it with {@linkcode CryptoKv}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { get, set } from "@kvcrypt/kvcrypt/kv-toolbox";
 *
 * const kv = await Deno.openKv(":memory:");
 * await set(kv, ["f"], new File(["hi"], "a.txt", { type: "text/plain" }));
 * const entry = await get(kv, ["f"], { blob: true });
 * assert.ok(entry.value instanceof File);
 * assert.equal(await entry.value.text(), "hi");
 * assert.equal((await get(kv, ["nothing"])).value, null);
 * kv.close();
 * ```
 */
export function get(
  kv: KvLike,
  key: Deno.KvKey,
  options: ConsistencyOption & { stream: true },
): Promise<Deno.KvEntryMaybe<ReadableStream<Uint8Array>>>;
/**
 * Reads a blob as a Blob, or a File when a File was stored.
 *
 * @param kv The store.
 * @param key The blob's key.
 * @param options `consistency` and `blob: true`.
 * @returns The entry; its value is null when no blob is stored.
 */
export function get(
  kv: KvLike,
  key: Deno.KvKey,
  options: ConsistencyOption & { blob: true },
): Promise<Deno.KvEntryMaybe<Blob | File>>;
/**
 * Reads a whole blob into a Uint8Array.
 *
 * @param kv The store.
 * @param key The blob's key.
 * @param options `consistency`.
 * @returns The entry; its value is null when no blob is stored.
 */
export function get(
  kv: KvLike,
  key: Deno.KvKey,
  options?: ConsistencyOption & { blob?: boolean; stream?: boolean },
): Promise<Deno.KvEntryMaybe<Uint8Array>>;
export async function get(
  kv: KvLike,
  key: Deno.KvKey,
  options: ConsistencyOption & { blob?: boolean; stream?: boolean } = {},
): Promise<Deno.KvEntryMaybe<ReadableStream<Uint8Array> | Uint8Array | Blob | File>> {
  const { consistency, stream = false, blob = false } = options;
  const entry = stream
    ? await kvcryptGet(kv, key, { consistency, stream: true })
    : blob
    ? await kvcryptGet(kv, key, { consistency, blob: true })
    : await kvcryptGet(kv, key, { consistency });
  return entry.value === null ? absent(key) : { ...entry, key: [...key] };
}

/**
 * Reads a blob as a stream, returned at once: the record is read on the
 * first pull, and the stream is empty when no blob is stored.
 *
 * @param kv The store.
 * @param key The blob's key.
 * @param options `consistency`.
 * @returns The stream; it errors with `DecryptionError` for an encrypted blob,
 * `CorruptBlobError` for an entry that is not a blob.
 * @throws {TypeError} if the key is not valid.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getAsStream, set } from "@kvcrypt/kvcrypt/kv-toolbox";
 *
 * const kv = await Deno.openKv(":memory:");
 * await set(kv, ["a"], new Uint8Array([1, 2, 3]));
 * assert.deepEqual(await new Response(getAsStream(kv, ["a"])).bytes(), new Uint8Array([1, 2, 3]));
 * assert.equal((await new Response(getAsStream(kv, ["b"])).bytes()).length, 0);
 * kv.close();
 * ```
 */
export function getAsStream(
  kv: KvLike,
  key: Deno.KvKey,
  options: ConsistencyOption = {},
): ReadableStream<Uint8Array> {
  assertUserKey(key, "read the blob");
  const { consistency } = options;
  return lazyStream(() => kvcryptGetAsStream(kv, key, { consistency }));
}

/**
 * Reads a blob as a Blob, or a File (name, type, lastModified) when a File was stored.
 *
 * @param kv The store.
 * @param key The blob's key.
 * @param options `consistency`.
 * @returns The Blob or File, or null when no blob is stored.
 * @throws {CorruptBlobError} if the entry is not a kvcrypt blob.
 * @throws {DecryptionError} if the blob is encrypted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getAsBlob, set } from "@kvcrypt/kvcrypt/kv-toolbox";
 *
 * const kv = await Deno.openKv(":memory:");
 * await set(kv, ["b"], new Blob(["abc"], { type: "text/plain" }));
 * const blob = await getAsBlob(kv, ["b"]);
 * assert.equal(blob?.type, "text/plain");
 * assert.equal(await blob?.text(), "abc");
 * kv.close();
 * ```
 */
export async function getAsBlob(
  kv: KvLike,
  key: Deno.KvKey,
  options: ConsistencyOption = {},
): Promise<Blob | File | null> {
  return await kvcryptGetAsBlob(kv, key, { consistency: options.consistency });
}

/**
 * Reads a blob as JSON: its metadata (with the size) and its bytes as
 * base64url parts, for {@linkcode toValue} or sending over the wire.
 *
 * @param kv The store.
 * @param key The blob's key.
 * @param options `consistency`.
 * @returns The JSON, or null when no blob is stored.
 * @throws {CorruptBlobError} if the entry is not a kvcrypt blob.
 * @throws {DecryptionError} if the blob is encrypted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getAsJSON, set, toValue } from "@kvcrypt/kvcrypt/kv-toolbox";
 *
 * const kv = await Deno.openKv(":memory:");
 * await set(kv, ["a"], new Uint8Array(100_000));
 * const json = await getAsJSON(kv, ["a"]);
 * assert.deepEqual(json?.meta, { kind: "buffer", size: 100_000 });
 * assert.equal(json?.parts.length, 2);
 * assert.equal((toValue(json!) as Uint8Array).length, 100_000);
 * kv.close();
 * ```
 */
export async function getAsJSON(
  kv: KvLike,
  key: Deno.KvKey,
  options: ConsistencyOption = {},
): Promise<BlobJSON | null> {
  const target = readTarget(kv, key, { consistency: options.consistency }, "read the blob");
  const whole = await readWhole(target);
  if (whole === null) return null;
  const meta = toolboxMeta({ ...whole.fields, size: whole.bytes.length });
  return { meta, parts: toParts(whole.bytes) } as BlobJSON;
}

/**
 * Reads a blob's metadata without reading its chunks.
 *
 * @param kv The store.
 * @param key The blob's key.
 * @param options `consistency`.
 * @returns The entry; its value is null when no blob is stored. An encrypted
 * blob shows as `{ kind: "buffer", encrypted: true, size }` (its kind, type
 * and name are sealed; see `CryptoKv.getBlobMeta`).
 * @throws {CorruptBlobError} if the entry is not a kvcrypt blob.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getMeta, set } from "@kvcrypt/kvcrypt/kv-toolbox";
 *
 * const kv = await Deno.openKv(":memory:");
 * await set(kv, ["f"], new File(["hi"], "a.txt", { type: "text/plain", lastModified: 5 }));
 * assert.deepEqual((await getMeta(kv, ["f"])).value, {
 *   kind: "file",
 *   type: "text/plain",
 *   lastModified: 5,
 *   name: "a.txt",
 *   size: 2,
 * });
 * kv.close();
 * ```
 */
export async function getMeta(
  kv: KvLike,
  key: Deno.KvKey,
  options: ConsistencyOption = {},
): Promise<Deno.KvEntryMaybe<BlobMeta>> {
  const entry = await kvcryptGetMeta(kv, key, { consistency: options.consistency });
  if (entry.value === null) return absent(key);
  return { key: [...key], value: toolboxMeta(entry.value), versionstamp: entry.versionstamp };
}

/**
 * Answers with a blob as an HTTP response: 200 ("OK") with the body,
 * Content-Type and Content-Length, or 404 ("Not Found") when no blob is
 * stored. The record is read before this resolves.
 *
 * @param kv The store.
 * @param key The blob's key.
 * @param options `contentDisposition`, `headers`, the 404's body and headers, `consistency`.
 * @returns The response.
 * @throws {CorruptBlobError} if the entry is not a kvcrypt blob.
 * @throws {DecryptionError} if the blob is encrypted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getAsResponse, set } from "@kvcrypt/kvcrypt/kv-toolbox";
 *
 * const kv = await Deno.openKv(":memory:");
 * await set(kv, ["report"], new Blob(["a,b"], { type: "text/csv" }));
 * const response = await getAsResponse(kv, ["report"], { contentDisposition: true });
 * assert.equal(response.statusText, "OK");
 * assert.equal(response.headers.get("content-type"), "text/csv");
 * assert.match(response.headers.get("content-disposition")!, /filename="report\.csv"/);
 * assert.equal(await response.text(), "a,b");
 * assert.equal((await getAsResponse(kv, ["missing"])).status, 404);
 * kv.close();
 * ```
 */
export async function getAsResponse(
  kv: KvLike,
  key: Deno.KvKey,
  options: GetAsResponseOptions = {},
): Promise<Response> {
  const { consistency, contentDisposition: attach = false, headers } = options;
  const { notFoundBody, notFoundHeaders } = options;
  const response = await kvcryptGetAsResponse(kv, key, {
    consistency,
    contentDisposition: attach,
    headers,
    notFoundBody,
    notFoundHeaders,
  });
  if (response.status === 404) {
    const init = { status: 404, statusText: "Not Found", headers: response.headers };
    return new Response(response.body, init);
  }
  const sent = toolboxHeaders(response.headers, new Headers(headers), key, attach);
  return new Response(response.body, { status: response.status, statusText: "OK", headers: sent });
}

/** Headers of kvcrypt's responses that promise conditional or ranged requests. */
const UNANSWERED_HEADERS = ["accept-ranges", "etag", "last-modified"];

/** kvcrypt's response headers as kv-toolbox's getAsResponse sends them. */
function toolboxHeaders(
  computed: Headers,
  given: Headers,
  key: Deno.KvKey,
  attach: boolean,
): Headers {
  const sent = new Headers(computed);
  // No request is taken, so no condition or Range is answered: no validators, no Accept-Ranges.
  for (const name of UNANSWERED_HEADERS) if (!given.has(name)) sent.delete(name);
  // A File already has its name; other blobs get kv-toolbox's name (still an attachment).
  const disposition = sent.get("content-disposition") ?? "";
  if (attach && !given.has("content-disposition") && !disposition.includes("filename")) {
    const type = sent.get("content-type") ?? "";
    sent.set("content-disposition", contentDisposition(downloadName(key, type)));
  }
  return sent;
}

/** What `list` yields for each blob, by the option set. */
function listedValue(
  kv: KvLike,
  options: BlobKvListOptions,
): ListedValue<BlobMeta | Uint8Array | Blob | File | ReadableStream<Uint8Array>> {
  const { consistency } = options;
  if (options.stream) {
    return async ({ key }) => (await kvcryptGet(kv, key, { consistency, stream: true })).value;
  }
  if (options.blob) {
    return async ({ key }) => (await kvcryptGet(kv, key, { consistency, blob: true })).value;
  }
  if (options.bytes) return async ({ key }) => (await kvcryptGet(kv, key, { consistency })).value;
  return ({ value }) => Promise.resolve(toolboxMeta(value));
}

/**
 * Lists the blobs under a selector, yielding each as a stream.
 *
 * @param kv The store.
 * @param selector As for `Deno.Kv.list`.
 * @param options `Deno.KvListOptions` and `stream: true`.
 * @returns A list iterator with a `cursor`.
 */
export function list(
  kv: KvLike,
  selector: Deno.KvListSelector,
  options: BlobKvListOptions & { stream: true },
): KvListIteratorLike<ReadableStream<Uint8Array>>;
/**
 * Lists the blobs under a selector, yielding each as a Blob or File.
 *
 * @param kv The store.
 * @param selector As for `Deno.Kv.list`.
 * @param options `Deno.KvListOptions` and `blob: true`.
 * @returns A list iterator with a `cursor`.
 */
export function list(
  kv: KvLike,
  selector: Deno.KvListSelector,
  options: BlobKvListOptions & { blob: true },
): KvListIteratorLike<Blob | File>;
/**
 * Lists the blobs under a selector, yielding each as a Uint8Array.
 *
 * @param kv The store.
 * @param selector As for `Deno.Kv.list`.
 * @param options `Deno.KvListOptions` and `bytes: true`.
 * @returns A list iterator with a `cursor`.
 */
export function list(
  kv: KvLike,
  selector: Deno.KvListSelector,
  options: BlobKvListOptions & { bytes: true },
): KvListIteratorLike<Uint8Array>;
/**
 * Lists the blobs under a selector with their metadata. Entries that are
 * not blobs are skipped and do not count against `limit`; the `cursor`
 * continues after the last blob yielded (and stays there at the end).
 *
 * @param kv The store.
 * @param selector As for `Deno.Kv.list`.
 * @param options `Deno.KvListOptions` (`limit` counts blobs), and at most one
 * of `meta` (the default), `bytes`, `blob` or `stream`.
 * @returns A list iterator with a `cursor`.
 * @throws {TypeError} if more than one value kind is set, or `limit` is not a number.
 * @throws {RangeError} if `limit` is not a positive integer.
 *
 * @example Page through blobs
 * ```ts
 * import assert from "node:assert/strict";
 * import { list, set } from "@kvcrypt/kvcrypt/kv-toolbox";
 *
 * const kv = await Deno.openKv(":memory:");
 * for (const n of [1, 2, 3]) await set(kv, ["files", n], new Uint8Array(n));
 * await kv.set(["files", 1.5], "not a blob");
 * const first = list(kv, { prefix: ["files"] }, { limit: 2 });
 * assert.deepEqual((await Array.fromAsync(first)).map((entry) => entry.value), [
 *   { kind: "buffer", size: 1 },
 *   { kind: "buffer", size: 2 },
 * ]);
 * const rest = list(kv, { prefix: ["files"] }, { bytes: true, cursor: first.cursor });
 * assert.deepEqual((await Array.fromAsync(rest)).map((entry) => entry.value), [new Uint8Array(3)]);
 * kv.close();
 * ```
 */
export function list(
  kv: KvLike,
  selector: Deno.KvListSelector,
  options?: BlobKvListOptions,
): KvListIteratorLike<BlobMeta>;
export function list(
  kv: KvLike,
  selector: Deno.KvListSelector,
  options: BlobKvListOptions = {},
): KvListIteratorLike<BlobMeta | Uint8Array | Blob | File | ReadableStream<Uint8Array>> {
  const { stream, blob, bytes, meta, limit, cursor, reverse, consistency, batchSize } = options;
  if ([stream, blob, bytes, meta].filter(Boolean).length > 1) {
    throw new TypeError("Cannot list blobs as more than one of meta, bytes, blob and stream");
  }
  const blobs = kvcryptList(kv, selector, { limit, cursor, reverse, consistency, batchSize });
  return new ToolboxListIterator(blobs, listedValue(kv, options));
}

// ---------------------------------------------------------------------------
// JSON and values.

/**
 * A Blob of a string.
 *
 * @param value The text.
 * @param type The Blob's type.
 * @returns The Blob.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { toBlob } from "@kvcrypt/kvcrypt/kv-toolbox";
 *
 * const blob = toBlob("<p>hi</p>", "text/html");
 * assert.equal(blob.type, "text/html");
 * assert.equal(await blob.text(), "<p>hi</p>");
 * ```
 */
export function toBlob(value: string, type: string = "text/plain"): Blob {
  return new Blob([value], { type });
}

/** A Blob's bytes (`Blob.prototype.bytes` is missing on Node 20). */
async function bytesOf(blob: Blob): Promise<Uint8Array> {
  return new Uint8Array(await blob.arrayBuffer());
}

/**
 * The JSON form of a File: kind, type, lastModified and name, and base64url parts.
 *
 * @param blob The File.
 * @returns Its JSON form.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { toJSON } from "@kvcrypt/kvcrypt/kv-toolbox";
 *
 * const json = await toJSON(new File(["hi"], "a.txt", { type: "text/plain", lastModified: 1 }));
 * assert.deepEqual(json, {
 *   meta: { kind: "file", type: "text/plain", lastModified: 1, name: "a.txt" },
 *   parts: ["aGk"],
 * });
 * ```
 */
export function toJSON(blob: File): Promise<BlobFileJSON>;
/**
 * The JSON form of a Blob: kind and type, and base64url parts.
 *
 * @param blob The Blob.
 * @returns Its JSON form.
 */
export function toJSON(blob: Blob): Promise<BlobBlobJSON>;
/**
 * The JSON form of bytes: kind `buffer`, and base64url parts (a view's bytes only).
 *
 * @param blob An ArrayBuffer or a view.
 * @returns Its JSON form.
 */
export function toJSON(blob: ArrayBufferLike | ArrayBufferView): Promise<BlobBufferJSON>;
export async function toJSON(
  blob: ArrayBufferLike | ArrayBufferView | Blob | File,
): Promise<BlobJSON> {
  if (blob instanceof File) {
    const { type, lastModified, name } = blob;
    return {
      meta: { kind: "file", type, lastModified, name },
      parts: toParts(await bytesOf(blob)),
    };
  }
  if (blob instanceof Blob) {
    return { meta: { kind: "blob", type: blob.type }, parts: toParts(await bytesOf(blob)) };
  }
  const bytes = ArrayBuffer.isView(blob)
    ? new Uint8Array(blob.buffer, blob.byteOffset, blob.byteLength)
    : new Uint8Array(blob);
  return { meta: { kind: "buffer" }, parts: toParts(bytes) };
}

/**
 * The File of a File's JSON form.
 *
 * @param json As {@linkcode toJSON} or {@linkcode getAsJSON} made it.
 * @returns The File.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { toJSON, toValue } from "@kvcrypt/kvcrypt/kv-toolbox";
 *
 * const file = toValue(await toJSON(new File(["hi"], "a.txt", { lastModified: 1 })));
 * assert.equal(file.name, "a.txt");
 * assert.equal(await file.text(), "hi");
 * assert.deepEqual(toValue({ meta: { kind: "buffer" }, parts: ["AQID"] }), new Uint8Array([1, 2, 3]));
 * ```
 */
export function toValue(json: BlobFileJSON): File;
/**
 * The Blob of a Blob's JSON form.
 *
 * @param json As {@linkcode toJSON} or {@linkcode getAsJSON} made it.
 * @returns The Blob.
 */
export function toValue(json: BlobBlobJSON): Blob;
/**
 * The bytes of a buffer's JSON form.
 *
 * @param json As {@linkcode toJSON} or {@linkcode getAsJSON} made it.
 * @returns The bytes.
 */
export function toValue(json: BlobBufferJSON): Uint8Array;
/**
 * The value of any JSON form.
 *
 * @param json As {@linkcode toJSON} or {@linkcode getAsJSON} made it.
 * @returns A File, a Blob or bytes, by `meta.kind`.
 * @throws {TypeError} if `parts` is not an array of strings.
 * @throws {SyntaxError} if a part is not base64url.
 */
export function toValue(json: BlobJSON): Uint8Array | Blob | File;
export function toValue(json: BlobJSON): Uint8Array | Blob | File {
  const parts = fromParts(json.parts);
  const { meta } = json;
  if (meta.kind === "file") {
    return new File(parts, meta.name, { type: meta.type, lastModified: meta.lastModified });
  }
  if (meta.kind === "blob") return new Blob(parts, { type: meta.type });
  return concat(parts);
}

// ---------------------------------------------------------------------------
// Encryption.

/** A store {@linkcode CryptoKv} can also close: `Deno.Kv`, or `@deno/kv`'s `Kv`. */
export type ClosableKv = KvLike & { close(): void };

/**
 * kv-toolbox's `CryptoKv`: blobs encrypted with a hex key, in kvcrypt's
 * format (KVC1). The key is imported as an AES-GCM key with the empty kid.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CryptoKv, generateKey } from "@kvcrypt/kvcrypt/kv-toolbox";
 *
 * const kv = await Deno.openKv(":memory:");
 * const cryptoKv = new CryptoKv(kv, generateKey());
 * await cryptoKv.setBlob(["doc"], new File(["secret"], "doc.txt", { type: "text/plain" }));
 * const file = await cryptoKv.getAsBlob(["doc"]);
 * assert.ok(file instanceof File);
 * assert.equal(await file.text(), "secret");
 * assert.equal((await cryptoKv.getBlobMeta(["doc"])).value?.encrypted, true);
 * kv.close();
 * ```
 */
export class CryptoKv {
  #kv: ClosableKv;
  #keyring: Promise<Keyring>;

  /**
   * Encrypts and decrypts blobs in `kv` with a key.
   *
   * @param kv The store.
   * @param encryptWith The key: 32 or 64 hex digits, or 16 or 32 bytes (copied).
   * @throws {TypeError} for a custom `Encryptor` (unsupported) or a value of another type.
   * @throws {SyntaxError} for a string that is not hex.
   * @throws {RangeError} for a key that is not 128 or 256 bits (192 included).
   */
  constructor(kv: ClosableKv, encryptWith: string | Uint8Array) {
    this.#kv = kv;
    this.#keyring = toolboxKeyring(encryptWith);
  }

  /**
   * Reads and decrypts a blob: a Uint8Array, or a Blob or File with `{ blob: true }`.
   *
   * @param key The blob's key.
   * @param options `consistency`, and `blob: true`.
   * @returns The entry; its value is null when no blob is stored.
   */
  getBlob(
    key: Deno.KvKey,
    options: ConsistencyOption & { blob: true },
  ): Promise<Deno.KvEntryMaybe<Blob | File>>;
  /**
   * Reads and decrypts a blob into a Uint8Array.
   *
   * @param key The blob's key.
   * @param options `consistency`.
   * @returns The entry; its value is null when no blob is stored.
   * @throws {DecryptionError} for another key, a tampered blob, or a plaintext blob.
   * @throws {CorruptBlobError} if the entry is not a kvcrypt blob.
   */
  getBlob(
    key: Deno.KvKey,
    options?: ConsistencyOption & { blob?: boolean },
  ): Promise<Deno.KvEntryMaybe<Uint8Array>>;
  async getBlob(
    key: Deno.KvKey,
    options: ConsistencyOption & { blob?: boolean } = {},
  ): Promise<Deno.KvEntryMaybe<Uint8Array | Blob | File>> {
    const read = { consistency: options.consistency, encryptionKey: await this.#keyring };
    const entry = options.blob
      ? await kvcryptGet(this.#kv, key, { ...read, blob: true })
      : await kvcryptGet(this.#kv, key, read);
    return entry.value === null ? absent(key) : { ...entry, key: [...key] };
  }

  /**
   * Reads and decrypts a blob as a Blob, or a File when a File was stored.
   *
   * @param key The blob's key.
   * @param options `consistency`.
   * @returns The Blob or File, or null when no blob is stored.
   * @throws {DecryptionError} for another key, a tampered blob, or a plaintext blob.
   */
  async getAsBlob(key: Deno.KvKey, options: ConsistencyOption = {}): Promise<Blob | File | null> {
    const encryptionKey = await this.#keyring;
    return await kvcryptGetAsBlob(this.#kv, key, {
      consistency: options.consistency,
      encryptionKey,
    });
  }

  /**
   * Reads and decrypts a blob as JSON (as {@linkcode toJSON} of its Blob or File).
   *
   * @param key The blob's key.
   * @param options `consistency`.
   * @returns The JSON, or null when no blob is stored.
   * @throws {DecryptionError} for another key, a tampered blob, or a plaintext blob.
   */
  async getAsJSON(key: Deno.KvKey, options: ConsistencyOption = {}): Promise<BlobJSON | null> {
    const blob = await this.getAsBlob(key, options);
    return blob === null ? null : await toJSON(blob);
  }

  /**
   * Reads an encrypted blob's metadata, authenticated with the key.
   *
   * @param key The blob's key.
   * @param options `consistency`.
   * @returns The entry with `encrypted: true`; its value is null when no blob is stored.
   * @throws {DecryptionError} for another key, a tampered record, or a plaintext blob.
   */
  async getBlobMeta(
    key: Deno.KvKey,
    options: ConsistencyOption = {},
  ): Promise<Deno.KvEntryMaybe<BlobMeta>> {
    const encryptionKey = await this.#keyring;
    const read = { consistency: options.consistency, encryptionKey };
    const entry = await kvcryptGetMeta(this.#kv, key, read);
    if (entry.value === null) return absent(key);
    return { key: [...key], value: toolboxMeta(entry.value), versionstamp: entry.versionstamp };
  }

  /**
   * Encrypts and stores a blob, replacing any blob at `key`.
   *
   * @param key Where to store it.
   * @param blob Bytes, a Blob, a File, or a ReadableStream of Uint8Array.
   * @param options `expireIn` in milliseconds.
   * @returns The commit result.
   * @throws {TypeError} if the key or value is not valid.
   */
  async setBlob(
    key: Deno.KvKey,
    blob: ToolboxValue,
    options: { expireIn?: number } = {},
  ): Promise<Deno.KvCommitResult> {
    const encryptionKey = await this.#keyring;
    return await kvcryptSet(this.#kv, key, storable(blob), { ...options, encryptionKey });
  }

  /**
   * Removes the blob at `key` (no key needed).
   *
   * @param key The blob's key.
   * @returns Resolves once the blob is deleted.
   * @throws {CorruptBlobError} if the entry is not a kvcrypt blob (it is left alone).
   */
  async deleteBlob(key: Deno.KvKey): Promise<void> {
    await kvcryptRemove(this.#kv, key);
  }

  /** Closes the store. */
  close(): void {
    this.#kv.close();
  }
}

/** Key sizes {@linkcode generateKey} accepts. */
const GENERATED_BITS: readonly number[] = [128, 256];

/**
 * A random key for {@linkcode CryptoKv}, as lower-case hex.
 *
 * @param bitLength 128 or 256 (192 is refused: kvcrypt has no AES-192).
 * @returns 32 or 64 hex digits.
 * @throws {RangeError} for any other length.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateKey } from "@kvcrypt/kvcrypt/kv-toolbox";
 *
 * assert.match(generateKey(), /^[0-9a-f]{64}$/);
 * assert.match(generateKey(128), /^[0-9a-f]{32}$/);
 * ```
 */
export function generateKey(bitLength: 128 | 256 = 256): string {
  if ((bitLength as number) === 192) {
    throw new RangeError(`Cannot generate a 192-bit key: ${NO_AES_192}`);
  }
  if (!GENERATED_BITS.includes(bitLength)) {
    throw new RangeError("Cannot generate the key: the bit length must be 128 or 256");
  }
  const raw = crypto.getRandomValues(new Uint8Array(bitLength / 8));
  const hex = toHex(raw);
  raw.fill(0);
  return hex;
}

/** `Deno.openKv`, where it exists. */
function openKvOf(): ((path?: string) => Promise<Deno.Kv>) | undefined {
  const deno = (globalThis as { Deno?: { openKv?: (path?: string) => Promise<Deno.Kv> } }).Deno;
  return deno?.openKv?.bind(deno);
}

/**
 * Opens a store with `Deno.openKv(path)` and returns a {@linkcode CryptoKv}
 * on it (on Node, open one with `@deno/kv` and use `new CryptoKv(kv, key)`).
 *
 * @param encryptWith The key, as for `new CryptoKv`.
 * @param path The store's path (default: Deno's default store).
 * @returns The CryptoKv; its `close()` closes the store.
 * @throws {TypeError} where `Deno.openKv` is missing, or for a bad key type.
 * @throws {RangeError} for a key that is not 128 or 256 bits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateKey, openCryptoKv } from "@kvcrypt/kvcrypt/kv-toolbox";
 *
 * const cryptoKv = await openCryptoKv(generateKey(), ":memory:");
 * await cryptoKv.setBlob(["a"], new Uint8Array([1]));
 * assert.deepEqual((await cryptoKv.getBlob(["a"])).value, new Uint8Array([1]));
 * cryptoKv.close();
 * ```
 */
export async function openCryptoKv(
  encryptWith: string | Uint8Array,
  path?: string | undefined,
): Promise<CryptoKv> {
  const openKv = openKvOf();
  if (openKv === undefined) {
    throw new TypeError(
      "Cannot open a store: Deno.openKv is missing (on Node, open one with @deno/kv and use new CryptoKv(kv, key))",
    );
  }
  // The key is checked before the store is opened, so a bad key leaves nothing open.
  toolboxKeyBytes(encryptWith).fill(0);
  return new CryptoKv(await openKv(path), encryptWith);
}
