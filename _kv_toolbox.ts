/**
 * The pieces of the kv-toolbox compatibility module (`kv_toolbox.ts`) that
 * translate between kv-toolbox 0.30's shapes and kvcrypt's: metadata, the
 * JSON form of a blob, hex keys, lazy streams, list iterators and download
 * names. Storage and encryption are kvcrypt's own.
 *
 * @module
 */

import type { KvListIteratorLike } from "./_kv_like.ts";
import { fromBase64, fromHex, toBase64 } from "./_bytes.ts";
import { importKeys } from "./_key_import.ts";
import type { Keyring } from "./_keyring.ts";
import type { BlobKind, BlobListIterator } from "./_types.ts";

/**
 * Bytes per `parts` string of kv-toolbox's JSON form: its chunk size, which
 * its `toJSON` cuts at and its tests count (`toValue` accepts any split).
 */
export const JSON_PART_BYTES = 63_000;

/** Metadata as kv-toolbox 0.30 returns it. */
export type ToolboxMeta = {
  kind: "blob";
  encrypted?: boolean;
  type: string;
  size?: number;
} | {
  kind: "file";
  encrypted?: boolean;
  type: string;
  lastModified: number;
  name: string;
  size?: number;
} | {
  kind: "buffer";
  encrypted?: boolean;
  size?: number;
};

/** What kvcrypt knows of a blob: its metadata, or a record's fields and size. */
export interface MetaSource {
  /** Absent when an encrypted blob was read without its key (kind, type and name are sealed). */
  kind?: BlobKind;
  type?: string;
  name?: string;
  lastModified?: number;
  size: number;
  encrypted?: boolean;
}

/**
 * kv-toolbox's metadata of a kvcrypt blob. An encrypted blob read without its
 * key shows as `{ kind: "buffer", encrypted: true, size }`: its kind, type and
 * name are sealed.
 */
export function toolboxMeta(source: MetaSource): ToolboxMeta {
  const encrypted = source.encrypted ? { encrypted: true } : {};
  const { size } = source;
  if (source.kind === "file") {
    const { type = "", name = "", lastModified = 0 } = source;
    return { kind: "file", ...encrypted, type, lastModified, name, size };
  }
  if (source.kind === "blob") return { kind: "blob", ...encrypted, type: source.type ?? "", size };
  return { kind: "buffer", ...encrypted, size };
}

/** Base64url strings of `bytes` cut into {@linkcode JSON_PART_BYTES} pieces. */
export function toParts(bytes: Uint8Array): string[] {
  const parts: string[] = [];
  for (let offset = 0; offset < bytes.length; offset += JSON_PART_BYTES) {
    parts.push(toBase64(bytes.subarray(offset, offset + JSON_PART_BYTES), "base64url"));
  }
  return parts;
}

/**
 * The bytes of JSON `parts`.
 *
 * @throws {TypeError} if `parts` is not an array of strings.
 * @throws {SyntaxError} if a part is not base64url.
 */
export function fromParts(parts: unknown): Uint8Array<ArrayBuffer>[] {
  if (!Array.isArray(parts) || !parts.every((part) => typeof part === "string")) {
    throw new TypeError("Cannot convert the JSON to a value: parts must be an array of strings");
  }
  return parts.map((part) => fromBase64(part, "base64url"));
}

/** Raw AES key lengths in bytes kvcrypt encrypts with: AES-128-GCM and AES-256-GCM. */
const KEY_BYTES: readonly number[] = [128 / 8, 256 / 8];

/** A kv-toolbox 192-bit key's length in bytes. */
const AES_192_BYTES = 192 / 8;

/** Why kvcrypt refuses 192-bit keys, for error messages. */
export const NO_AES_192 =
  "kvcrypt's format (KVC1) encrypts with AES-128-GCM or AES-256-GCM only, and Chromium-based Web Crypto has no AES-192";

/** Whether `value` looks like a kv-toolbox `Encryptor` (`encrypt` and `decrypt` methods). */
function isEncryptor(value: unknown): boolean {
  return typeof value === "object" && value !== null && "encrypt" in value &&
    typeof value.encrypt === "function" && "decrypt" in value &&
    typeof value.decrypt === "function";
}

/**
 * The raw bytes of a kv-toolbox key (hex string or bytes), checked; a copy the
 * caller wipes.
 *
 * @throws {TypeError} for an `Encryptor` or a value that is neither a string nor a Uint8Array.
 * @throws {SyntaxError} for a string that is not hex.
 * @throws {RangeError} for a key that is not 128 or 256 bits (192 included).
 */
export function toolboxKeyBytes(encryptWith: unknown): Uint8Array<ArrayBuffer> {
  if (isEncryptor(encryptWith)) {
    throw new TypeError(
      "Cannot use a custom Encryptor: kvcrypt encrypts with its own format (KVC1) only; pass a hex key or its bytes (keys held outside the process are planned as KeyWrapper recipients)",
    );
  }
  let raw: Uint8Array<ArrayBuffer>;
  if (typeof encryptWith === "string") {
    try {
      raw = fromHex(encryptWith);
    } catch {
      // The message never quotes the string: it is key material.
      throw new SyntaxError("Cannot use the key: it is not a string of hex digit pairs");
    }
  } else if (encryptWith instanceof Uint8Array) {
    raw = new Uint8Array(encryptWith);
  } else {
    throw new TypeError("Cannot use the key: expected a hex string or a Uint8Array");
  }
  if (KEY_BYTES.includes(raw.length)) return raw;
  raw.fill(0);
  if (raw.length === AES_192_BYTES) throw new RangeError(`Cannot use a 192-bit key: ${NO_AES_192}`);
  throw new RangeError(`Cannot use the key: expected 128 or 256 bits, got ${raw.length * 8}`);
}

/**
 * Imports a kv-toolbox key as a keyring with the empty kid; the raw copy is
 * wiped once encoded.
 *
 * @throws As {@linkcode toolboxKeyBytes}.
 */
export function toolboxKeyring(encryptWith: unknown): Promise<Keyring> {
  const raw = toolboxKeyBytes(encryptWith);
  const jwk = { kty: "oct", k: toBase64(raw, "base64url") };
  raw.fill(0);
  const keyring = importKeys(jwk);
  // A failure surfaces where the keyring is awaited, never as an unhandled rejection.
  keyring.catch(() => {});
  return keyring;
}

/**
 * A stream that opens its source on the first read (as kv-toolbox's
 * `getAsStream`, which returns a stream at once): empty when `open` finds
 * nothing, erroring with whatever `open` throws.
 */
export function lazyStream(
  open: () => Promise<ReadableStream<Uint8Array> | null>,
): ReadableStream<Uint8Array> {
  let reader: ReadableStreamDefaultReader<Uint8Array> | null | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      reader ??= (await open())?.getReader() ?? null;
      if (reader === null) return controller.close();
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel(reason) {
      return reader?.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/** A blob entry listed by kvcrypt, turned into kv-toolbox's value; null when it is gone. */
export type ListedValue<T> = (entry: Deno.KvEntry<MetaSource>) => Promise<T | null>;

/**
 * kv-toolbox's list iterator over a kvcrypt listing: its `cursor` stays at the
 * last blob yielded once the listing ends (kv-toolbox callers page until a
 * short page), where kvcrypt's becomes `""`.
 */
export class ToolboxListIterator<T> implements KvListIteratorLike<T> {
  #blobs: BlobListIterator;
  #value: ListedValue<T>;
  #cursor: string | undefined;

  /**
   * @param blobs The kvcrypt listing.
   * @param value Reads each blob as the value asked for.
   */
  constructor(blobs: BlobListIterator, value: ListedValue<T>) {
    this.#blobs = blobs;
    this.#value = value;
  }

  /**
   * Pass as `cursor` to continue after the last blob yielded.
   *
   * @throws {Error} before the first blob, when no `cursor` option was given.
   */
  get cursor(): string {
    return this.#cursor ?? this.#blobs.cursor;
  }

  async next(): Promise<IteratorResult<Deno.KvEntry<T>, undefined>> {
    for (;;) {
      const next = await this.#blobs.next();
      if (next.done) return { done: true, value: undefined };
      this.#cursor = this.#blobs.cursor;
      const value = await this.#value(next.value);
      // Removed between the listing and the read: there is nothing to yield.
      if (value === null) continue;
      return { done: false, value: { ...next.value, value } };
    }
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Deno.KvEntry<T>> {
    return this;
  }
}

/**
 * Common file extensions by media type, for download names of blobs that are
 * not Files (kv-toolbox used the full media-type database; others get "bin").
 */
const EXTENSIONS: Readonly<Record<string, string>> = {
  "application/gzip": "gz",
  "application/json": "json",
  "application/pdf": "pdf",
  "application/xml": "xml",
  "application/zip": "zip",
  "audio/mpeg": "mp3",
  "audio/ogg": "oga",
  "audio/wav": "wav",
  "image/avif": "avif",
  "image/gif": "gif",
  "image/jpeg": "jpg",
  "image/png": "png",
  "image/svg+xml": "svg",
  "image/webp": "webp",
  "text/css": "css",
  "text/csv": "csv",
  "text/html": "html",
  "text/javascript": "js",
  "text/markdown": "md",
  "text/plain": "txt",
  "video/mp4": "mp4",
  "video/webm": "webm",
};

/**
 * kv-toolbox's download name for a blob that is not a File: the key's last
 * part (`file` when it is binary) and an extension for the type.
 */
export function downloadName(key: Deno.KvKey, type: string): string {
  const last = key[key.length - 1];
  const base = (typeof last !== "object" && String(last)) || "file";
  const essence = type.split(";", 1)[0]!.trim().toLowerCase();
  return `${base}.${EXTENSIONS[essence] ?? "bin"}`;
}
