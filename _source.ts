/**
 * Turns every value kind `set` accepts into its metadata and a sequence of
 * fixed-size plaintext pieces.
 *
 * @module
 */

import type { MetadataOptions, StoredMetadata } from "./_types.ts";

/**
 * A value ready for the chunk writer: its metadata and either its bytes (a
 * byte array, cut into pieces without a stream) or a stream of them.
 */
export type BlobSource =
  | { meta: StoredMetadata; bytes: Uint8Array; stream?: undefined }
  | { meta: StoredMetadata; stream: ReadableStream<Uint8Array>; bytes?: undefined };

function bytesOf(value: ArrayBuffer | ArrayBufferView): Uint8Array {
  // Only the view's own bytes: a subarray must not store its whole buffer.
  return value instanceof ArrayBuffer
    ? new Uint8Array(value)
    : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

/** A one-chunk stream over bytes already in memory. */
export function singleChunkStream(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      if (bytes.length > 0) controller.enqueue(bytes);
      controller.close();
    },
  });
}

/**
 * The value's own metadata with the caller's options applied: `name` makes
 * it a File (lastModified defaulting to now, as `new File` does), `type`
 * alone a Blob.
 *
 * @throws {TypeError} if an option has the wrong type, or `lastModified` is
 * given for a value that is not a File and without a `name`.
 */
export function applyMetadata(
  own: StoredMetadata,
  options: MetadataOptions,
  action: string,
): StoredMetadata {
  const { type, name, lastModified } = options;
  if (type !== undefined && typeof type !== "string") {
    throw new TypeError(`Cannot ${action}: type must be a string`);
  }
  if (name !== undefined && typeof name !== "string") {
    throw new TypeError(`Cannot ${action}: name must be a string`);
  }
  if (lastModified !== undefined && !Number.isSafeInteger(lastModified)) {
    throw new TypeError(`Cannot ${action}: lastModified must be a whole number of milliseconds`);
  }
  const file = name !== undefined || own.kind === "file";
  if (lastModified !== undefined && !file) {
    throw new TypeError(`Cannot ${action}: lastModified is kept for files only; give a name too`);
  }
  if (type === undefined && name === undefined && lastModified === undefined) return own;
  const meta: StoredMetadata = { kind: file ? "file" : "blob" };
  const finalType = type ?? own.type;
  if (finalType) meta.type = finalType;
  if (file) {
    meta.name = name ?? own.name ?? "";
    meta.lastModified = lastModified ?? own.lastModified ?? Date.now();
  }
  return meta;
}

/**
 * The metadata and bytes (or byte stream) of a value.
 *
 * @throws {TypeError} if the value is not binary.
 */
export function sourceOf(value: unknown, action: string): BlobSource {
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) {
    return { meta: { kind: "buffer" }, bytes: bytesOf(value) };
  }
  if (value instanceof ReadableStream) return { meta: { kind: "buffer" }, stream: value };
  if (value instanceof File) {
    return {
      meta: { kind: "file", type: value.type, name: value.name, lastModified: value.lastModified },
      stream: value.stream(),
    };
  }
  if (value instanceof Blob) {
    return { meta: { kind: "blob", type: value.type }, stream: value.stream() };
  }
  const what = value === null ? "null" : typeof value;
  throw new TypeError(
    `Cannot ${action}: the value is ${what}, expected an ArrayBuffer, ArrayBufferView, ReadableStream<Uint8Array>, Blob or File`,
  );
}

/**
 * The source's bytes in pieces of exactly `size` bytes (the last may be
 * shorter, and none is empty): views of a byte array, or a stream cut by
 * {@linkcode fixedPieces}.
 */
export function piecesOf(
  source: BlobSource,
  size: number,
  signal: AbortSignal | undefined,
  what: string,
): AsyncGenerator<Uint8Array> {
  return source.bytes === undefined
    ? fixedPieces(source.stream, size, signal, what)
    : bytePieces(source.bytes, size, signal);
}

/** Views of `bytes`, `size` bytes each; an abort stops them before the next. */
async function* bytePieces(
  bytes: Uint8Array,
  size: number,
  signal: AbortSignal | undefined,
): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < bytes.length; offset += size) {
    signal?.throwIfAborted();
    yield bytes.subarray(offset, offset + size);
  }
}

/** Releases the caller's stream (a request body, say) after a write that stopped. */
export async function releaseSource(source: BlobSource, reason: unknown): Promise<void> {
  if (source.stream !== undefined && !source.stream.locked) {
    await source.stream.cancel(reason).catch(() => {});
  }
}

/**
 * Cuts a byte stream into pieces of exactly `size` bytes (the last may be
 * shorter, and none is empty). Pieces lying inside one incoming chunk are
 * views, not copies. An abort cancels the stream at once, even while a read
 * is pending, and rejects with the signal's reason.
 *
 * @throws {TypeError} if the stream yields something other than a Uint8Array.
 */
export async function* fixedPieces(
  stream: ReadableStream<Uint8Array>,
  size: number,
  signal: AbortSignal | undefined,
  what: string,
): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  const cancel = () => reader.cancel(signal?.reason).catch(() => {});
  signal?.addEventListener("abort", cancel, { once: true });
  let finished = false;
  try {
    let pending: Uint8Array | undefined;
    let filled = 0;
    for (;;) {
      const { done, value: chunk } = await reader.read();
      // A cancelled read ends the stream early: that is the abort, not the end.
      signal?.throwIfAborted();
      if (done) break;
      if (!(chunk instanceof Uint8Array)) {
        throw new TypeError(
          `Cannot store ${what}: the stream yielded a value that is not a Uint8Array`,
        );
      }
      let offset = 0;
      while (offset < chunk.length) {
        if (pending === undefined && chunk.length - offset >= size) {
          yield chunk.subarray(offset, offset + size);
          offset += size;
          continue;
        }
        pending ??= new Uint8Array(size);
        const take = Math.min(size - filled, chunk.length - offset);
        pending.set(chunk.subarray(offset, offset + take), filled);
        filled += take;
        offset += take;
        if (filled === size) {
          yield pending;
          pending = undefined;
          filled = 0;
        }
      }
    }
    finished = true;
    if (pending !== undefined) yield pending.subarray(0, filled);
  } finally {
    signal?.removeEventListener("abort", cancel);
    // Stopped early (an error, an abort, or the writer gave up): release the source.
    if (!finished) await cancel();
    reader.releaseLock();
  }
}
