/**
 * The values `set` accepts, each built from the same bytes, the boundary
 * sizes plain blobs are tested at, and the checks that a blob reads back as
 * it was stored through every reader.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type BlobValue, get, getAsBlob, getAsStream, set } from "../blob.ts";
import { CHUNKS_PER_ATOMIC } from "../_limits.ts";
import { CHUNK, INLINE_MAX } from "./plain_record.ts";
import { assertBytes, collect, hex, randomBytes, snapshot, streamOf } from "./util.ts";

/** Bytes in a mebibyte. */
export const MiB = 1024 * 1024;

/** What a value should read back as. */
export interface Expected {
  kind: "buffer" | "blob" | "file";
  type: string;
  name?: string;
  lastModified?: number;
}

/** Asserts `value` is a Blob (a File exactly when `expected` says so) holding `data`. */
export async function assertBlob(
  value: unknown,
  data: Uint8Array,
  expected: Expected,
): Promise<void> {
  assert.ok(value instanceof Blob, "a Blob");
  if (expected.kind === "file") {
    assert.ok(value instanceof File, "a stored File comes back as a File");
    assert.equal(value.name, expected.name);
    assert.equal(value.lastModified, expected.lastModified);
  } else {
    assert.ok(!(value instanceof File), "only a stored File comes back as a File");
  }
  assert.equal(value.type, expected.type);
  assert.equal(value.size, data.length);
  assertBytes(new Uint8Array(await value.arrayBuffer()), data, "Blob bytes");
}

/** A stream of `data` cut into pieces of 0, 1, 7, 65,535 and 100,000 bytes, repeating. */
export function oddPieces(data: Uint8Array): Uint8Array[] {
  const pattern = [0, 1, 7, 65_535, 100_000];
  const pieces: Uint8Array[] = [];
  for (let offset = 0, i = 0; offset < data.length; i++) {
    const length = pattern[i % pattern.length]!;
    pieces.push(data.subarray(offset, Math.min(data.length, offset + length)));
    offset += length;
  }
  pieces.push(new Uint8Array(0));
  return pieces;
}

/** Copies `data` into a fresh buffer at `offset`, with random bytes around it. */
export function embedded(data: Uint8Array, offset: number): ArrayBuffer {
  const buffer = randomBytes(offset + data.length + 13);
  buffer.set(data, offset);
  return buffer.buffer;
}

/** The name and modification time of the File in {@linkcode VALUE_TYPES}. */
export const FILE_NAME = "naïve photo 📷.png";
export const FILE_MODIFIED = 1_600_000_000_123;

/** Every kind of value `set` accepts, built from the same bytes. */
export const VALUE_TYPES: {
  name: string;
  accepts(size: number): boolean;
  make(data: Uint8Array<ArrayBuffer>): { value: BlobValue; expected: Expected };
}[] = [
  {
    name: "ArrayBuffer",
    accepts: () => true,
    make: (data) => ({ value: data.slice().buffer, expected: { kind: "buffer", type: "" } }),
  },
  {
    name: "Uint8Array",
    accepts: () => true,
    make: (data) => ({ value: data.slice(), expected: { kind: "buffer", type: "" } }),
  },
  {
    name: "subarray",
    accepts: () => true,
    make: (data) => ({
      value: new Uint8Array(embedded(data, 17)).subarray(17, 17 + data.length),
      expected: { kind: "buffer", type: "" },
    }),
  },
  {
    name: "DataView",
    accepts: () => true,
    make: (data) => ({
      value: new DataView(embedded(data, 5), 5, data.length),
      expected: { kind: "buffer", type: "" },
    }),
  },
  {
    name: "Int16Array",
    accepts: (size) => size % 2 === 0,
    make: (data) => ({
      value: new Int16Array(embedded(data, 6), 6, data.length / 2),
      expected: { kind: "buffer", type: "" },
    }),
  },
  {
    name: "ReadableStream",
    accepts: () => true,
    make: (data) => ({ value: streamOf(oddPieces(data)), expected: { kind: "buffer", type: "" } }),
  },
  {
    name: "Blob",
    accepts: () => true,
    make: (data) => ({
      value: new Blob([data], { type: "application/x-kvcrypt-test" }),
      expected: { kind: "blob", type: "application/x-kvcrypt-test" },
    }),
  },
  {
    name: "File",
    accepts: () => true,
    make: (data) => ({
      value: new File([data], FILE_NAME, { type: "image/png", lastModified: FILE_MODIFIED }),
      expected: { kind: "file", type: "image/png", name: FILE_NAME, lastModified: FILE_MODIFIED },
    }),
  },
];

/** Boundary sizes: empty, tiny, the inline limit ±1, a chunk ±1, one and two atomics, 5 MiB. */
export const SIZES = [
  0,
  1,
  INLINE_MAX - 1,
  INLINE_MAX,
  INLINE_MAX + 1,
  CHUNK - 1,
  CHUNK,
  CHUNK + 1,
  CHUNKS_PER_ATOMIC * CHUNK,
  (CHUNKS_PER_ATOMIC + 1) * CHUNK,
  5 * MiB,
];

/** The metadata `getMeta` reports for a plain blob. */
export function expectedMeta(
  size: number,
  id: Uint8Array,
  expected: Expected,
): Record<string, unknown> {
  return {
    size,
    chunks: Math.ceil(size / CHUNK),
    id: hex(id),
    verified: false,
    encrypted: false,
    kind: expected.kind,
    type: expected.type,
    ...(expected.name === undefined ? {} : { name: expected.name }),
    ...(expected.lastModified === undefined ? {} : { lastModified: expected.lastModified }),
  };
}

/** Asserts the blob at `key` reads back as `data` through every reader. */
export async function assertReadsBack(
  kv: Deno.Kv,
  key: Deno.KvKey,
  data: Uint8Array,
  expected: Expected,
  versionstamp: string,
): Promise<void> {
  const whole = await get(kv, key);
  assert.ok(whole.value instanceof Uint8Array, "get() gives a Uint8Array");
  assertBytes(whole.value, data, "get()");
  assert.equal(whole.versionstamp, versionstamp);
  assert.deepEqual(whole.key, key);

  const streamed = await get(kv, key, { stream: true });
  assert.ok(streamed.value instanceof ReadableStream, "get({ stream }) gives a stream");
  assertBytes(await collect(streamed.value), data, "get({ stream: true })");
  assert.equal(streamed.versionstamp, versionstamp);

  const blob = await get(kv, key, { blob: true });
  await assertBlob(blob.value, data, expected);
  assert.equal(blob.versionstamp, versionstamp);

  const stream = await getAsStream(kv, key);
  assert.ok(stream instanceof ReadableStream, "getAsStream() gives a stream");
  assertBytes(await collect(stream), data, "getAsStream()");

  await assertBlob(await getAsBlob(kv, key), data, expected);
}

/** A plain blob stored before a write that must fail, and the check that it failed cleanly. */
export interface KeptBlob {
  /** The bytes stored. */
  data: Uint8Array;
  /**
   * Asserts that the store holds exactly the entries (and versionstamps) it
   * held once the blob was stored, and that the blob still reads back whole.
   */
  assertUntouched(label?: string): Promise<void>;
}

/** Stores `size` random bytes at `key` and takes a {@linkcode snapshot} of the store. */
export async function keepBlob(kv: Deno.Kv, key: Deno.KvKey, size: number): Promise<KeptBlob> {
  const data = randomBytes(size);
  await set(kv, key, data);
  const before = await snapshot(kv);
  return {
    data,
    async assertUntouched(label = "the store is unchanged") {
      assert.deepEqual(await snapshot(kv), before, label);
      assertBytes((await get(kv, key)).value!, data, `${label}: the kept blob`);
    },
  };
}
