/**
 * A plain blob ("KVP1") read straight from Deno KV, independently of the
 * library: the record's fields, its chunk entries, the bytes they hold, and
 * how many internal entries a blob of a given size owns.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PLAIN_CHUNK_SIZE, PLAIN_INLINE_MAX } from "../_limits.ts";
import { internalEntries } from "./util.ts";

/** Plaintext bytes of a full plain chunk. */
export const CHUNK = PLAIN_CHUNK_SIZE;
/** Largest plain blob stored inside its record. */
export const INLINE_MAX = PLAIN_INLINE_MAX;
/** The first key part of kvcrypt's internal entries. */
export const INTERNAL = "__kvcrypt__";

/** The internal entries a plain blob of `size` bytes owns: none inline, else chunks + a version. */
export function expectedInternal(
  size: number,
): { chunks: number; versions: number; other: number } {
  if (size <= INLINE_MAX) return { chunks: 0, versions: 0, other: 0 };
  return { chunks: Math.ceil(size / CHUNK), versions: 1, other: 0 };
}

/** Asserts the store holds exactly the internal entries of one plain blob of `size` bytes. */
export async function assertInternalCounts(kv: Deno.Kv, size: number, label = ""): Promise<void> {
  const { chunks, versions, other } = await internalEntries(kv);
  assert.deepEqual(
    { chunks, versions, other },
    expectedInternal(size),
    `${label} internal entries`,
  );
}

/** A plain record parsed independently of the library, per FORMAT.md, "Plain record, KVP1". */
export interface RawRecord {
  id: Uint8Array;
  chunkSize: number;
  size: number;
  chunks: number;
  expiresAt: number;
  meta: Record<string, unknown>;
  inline: Uint8Array;
}

/** Parses the bytes of a plain record. */
export function parseRecord(bytes: Uint8Array): RawRecord {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  assert.equal(new TextDecoder().decode(bytes.subarray(0, 4)), "KVP1", "record magic");
  const metaLen = view.getUint32(44);
  return {
    id: bytes.slice(4, 20),
    chunkSize: view.getUint32(20),
    size: Number(view.getBigUint64(24)),
    chunks: view.getUint32(32),
    expiresAt: Number(view.getBigUint64(36)),
    meta: JSON.parse(new TextDecoder().decode(bytes.subarray(48, 48 + metaLen))),
    inline: bytes.slice(48 + metaLen),
  };
}

/** The record stored at `key`, parsed. */
export async function rawRecord(kv: Deno.Kv, key: Deno.KvKey): Promise<RawRecord> {
  const entry = await kv.get(key);
  assert.ok(entry.value instanceof Uint8Array, "the record is stored as bytes");
  return parseRecord(entry.value);
}

/** The chunk entries of version `id`, in key order. */
export async function chunksOf(kv: Deno.Kv, id: Uint8Array): Promise<Deno.KvEntry<unknown>[]> {
  return await Array.fromAsync(kv.list({ prefix: [INTERNAL, "chunk", id] }));
}

/**
 * The bytes actually stored for the blob at `key`, read straight from KV: the
 * record's inline data, or its chunks (checked for index order and size).
 */
export async function storedBytes(
  kv: Deno.Kv,
  key: Deno.KvKey,
): Promise<{ record: RawRecord; bytes: Uint8Array }> {
  const record = await rawRecord(kv, key);
  assert.equal(record.chunkSize, CHUNK, "record chunkSize");
  assert.equal(record.chunks, Math.ceil(record.size / CHUNK), "record chunk count");
  const chunks = await chunksOf(kv, record.id);
  if (record.size <= INLINE_MAX) {
    assert.equal(chunks.length, 0, "an inline blob has no chunk entries");
    return { record, bytes: record.inline };
  }
  assert.equal(record.inline.length, 0, "a chunked record carries no data");
  assert.equal(chunks.length, record.chunks, "stored chunk count");
  const bytes = new Uint8Array(record.size);
  chunks.forEach((chunk, index) => {
    assert.equal(chunk.key[3], index, "chunk index");
    assert.ok(chunk.value instanceof Uint8Array, "a chunk is bytes");
    const expected = index < record.chunks - 1 ? CHUNK : record.size - index * CHUNK;
    assert.equal(chunk.value.length, expected, `length of chunk ${index}`);
    bytes.set(chunk.value, index * CHUNK);
  });
  return { record, bytes };
}

/** The key of chunk `index` of the blob at `key`, found by listing. */
export async function chunkKeyOf(kv: Deno.Kv, key: Deno.KvKey, index: number): Promise<Deno.KvKey> {
  const { id } = await rawRecord(kv, key);
  const chunk = (await chunksOf(kv, id))[index];
  assert.ok(chunk !== undefined, `chunk ${index} exists`);
  assert.equal(chunk.key[3], index);
  return chunk.key;
}
