/**
 * The raw Deno KV ceiling the library is compared with: the same bytes
 * written as {@linkcode CHUNKS_PER_ATOMIC}-chunk atomics of
 * {@linkcode PLAIN_CHUNK_SIZE}-byte values under the library's chunk key
 * shape, and read back with one `kv.list` over the prefix (discarding the
 * chunks, or copying them into one buffer as a buffered read must). No records,
 * version entries, checks or validation: only what any chunking costs.
 *
 * @module
 */

import { chunkKey, chunkPrefix } from "../_kv_keys.ts";
import { CHUNKS_PER_ATOMIC, ID_BYTES, PLAIN_CHUNK_SIZE } from "../_limits.ts";

/** A fresh random id, so every raw write lands under its own prefix. */
export function rawId(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(ID_BYTES));
}

async function commitChunks(
  kv: Deno.Kv,
  id: Uint8Array,
  start: number,
  chunks: readonly Uint8Array[],
): Promise<void> {
  const op = kv.atomic();
  chunks.forEach((chunk, offset) => op.set(chunkKey(id, start + offset), chunk));
  const result = await op.commit();
  if (!result.ok) throw new Error(`raw atomic at chunk ${start} did not commit`);
}

/** Cuts a source piece into full chunks (views); every source piece is a whole number of chunks. */
function* chunksOf(piece: Uint8Array): Generator<Uint8Array> {
  if (piece.length % PLAIN_CHUNK_SIZE !== 0) {
    throw new Error(`piece of ${piece.length} bytes is not a whole number of chunks`);
  }
  for (let offset = 0; offset < piece.length; offset += PLAIN_CHUNK_SIZE) {
    yield piece.subarray(offset, offset + PLAIN_CHUNK_SIZE);
  }
}

/**
 * Writes `stream` as chunk atomics as it arrives, with up to `inFlight`
 * commits pending (1 = sequential). Returns the number of chunks written.
 */
export async function rawWrite(
  kv: Deno.Kv,
  id: Uint8Array,
  stream: ReadableStream<Uint8Array>,
  inFlight: number,
): Promise<number> {
  const pending = new Set<Promise<void>>();
  let batch: Uint8Array[] = [];
  let sent = 0;
  const flush = async () => {
    while (pending.size >= inFlight) await Promise.race(pending);
    const commit: Promise<void> = commitChunks(kv, id, sent, batch).then(() => {
      pending.delete(commit);
    });
    pending.add(commit);
    sent += batch.length;
    batch = [];
  };
  for await (const piece of stream) {
    for (const chunk of chunksOf(piece)) {
      batch.push(chunk);
      if (batch.length === CHUNKS_PER_ATOMIC) await flush();
    }
  }
  if (batch.length > 0) await flush();
  await Promise.all(pending);
  return sent;
}

/** Reads every chunk under `id` with one `kv.list` (default batch size), discarding it; returns the bytes seen. */
export async function rawRead(kv: Deno.Kv, id: Uint8Array): Promise<number> {
  let bytes = 0;
  for await (const entry of kv.list<Uint8Array>({ prefix: chunkPrefix(id) })) {
    bytes += entry.value.length;
  }
  return bytes;
}

/**
 * Reads every chunk under `id` with one `kv.list` into one fresh buffer of
 * `bytes` bytes, as a buffered read must deliver them.
 */
export async function rawReadIntoBuffer(
  kv: Deno.Kv,
  id: Uint8Array,
  bytes: number,
): Promise<Uint8Array> {
  const out = new Uint8Array(bytes);
  let offset = 0;
  for await (const entry of kv.list<Uint8Array>({ prefix: chunkPrefix(id) })) {
    out.set(entry.value, offset);
    offset += entry.value.length;
  }
  return out.subarray(0, offset);
}
