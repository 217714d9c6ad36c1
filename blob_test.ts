import assert from "node:assert/strict";
import {
  type BlobValue,
  CorruptBlobError,
  get,
  getAsBlob,
  getAsStream,
  getMeta,
  list,
  remove,
  set,
  type SetOptions,
  stage,
  vacuum,
} from "./blob.ts";
import { CHUNKS_PER_ATOMIC, META_JSON_MAX, PLAIN_CHUNK_SIZE, PLAIN_INLINE_MAX } from "./_limits.ts";
import { encodeKey } from "./_user_key.ts";
import {
  assertBytes,
  collect,
  hex,
  internalEntries,
  keyText,
  kvTest,
  randomBytes,
  streamOf,
} from "./_testing/util.ts";

// ---------------------------------------------------------------------------
// Helpers.

const CHUNK = PLAIN_CHUNK_SIZE;
const INLINE_MAX = PLAIN_INLINE_MAX;
const MiB = 1024 * 1024;
const INTERNAL = "__kvcrypt__";

type ErrorClass = abstract new (...args: never[]) => Error;

/**
 * Asserts that calling `fn` rejects (or throws) an `ErrorClass` whose message
 * starts with "Cannot" and matches `pattern`.
 */
async function assertRejects(
  fn: () => unknown,
  ErrorClass: ErrorClass,
  pattern?: RegExp,
  label = "",
): Promise<Error> {
  let caught: unknown = undefined;
  let threw = false;
  try {
    await fn();
  } catch (error) {
    caught = error;
    threw = true;
  }
  assert.ok(threw, `${label}: expected ${ErrorClass.name}, but it resolved`);
  assert.ok(caught instanceof ErrorClass, `${label}: expected ${ErrorClass.name}, got ${caught}`);
  assert.match(caught.message, /^Cannot /);
  if (pattern !== undefined) assert.match(caught.message, pattern);
  return caught;
}

/** Asserts that calling `fn` rejects with exactly `expected` (the same object). */
async function assertRejectsWith(fn: () => unknown, expected: unknown): Promise<void> {
  let caught: unknown = undefined;
  let threw = false;
  try {
    await fn();
  } catch (error) {
    caught = error;
    threw = true;
  }
  assert.ok(threw, "expected a rejection, but it resolved");
  assert.equal(caught, expected, `rejected with ${caught}, not ${expected}`);
}

/** Every entry in the store: key text → versionstamp. */
async function snapshot(kv: Deno.Kv): Promise<Map<string, string>> {
  const entries = new Map<string, string>();
  for await (const entry of kv.list({ prefix: [] })) {
    entries.set(keyText(entry.key), entry.versionstamp);
  }
  return entries;
}

/** The internal entries a plain blob of `size` bytes owns: none inline, else chunks + a version. */
function expectedInternal(size: number): { chunks: number; versions: number; other: number } {
  if (size <= INLINE_MAX) return { chunks: 0, versions: 0, other: 0 };
  return { chunks: Math.ceil(size / CHUNK), versions: 1, other: 0 };
}

async function assertInternalCounts(kv: Deno.Kv, size: number, label = ""): Promise<void> {
  const { chunks, versions, other } = await internalEntries(kv);
  assert.deepEqual(
    { chunks, versions, other },
    expectedInternal(size),
    `${label} internal entries`,
  );
}

/** A plain record parsed independently of the library, per FORMAT.md, "Plain record, KVP1". */
interface RawRecord {
  id: Uint8Array;
  chunkSize: number;
  size: number;
  chunks: number;
  expiresAt: number;
  meta: Record<string, unknown>;
  inline: Uint8Array;
}

function parseRecord(bytes: Uint8Array): RawRecord {
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

async function rawRecord(kv: Deno.Kv, key: Deno.KvKey): Promise<RawRecord> {
  const entry = await kv.get(key);
  assert.ok(entry.value instanceof Uint8Array, "the record is stored as bytes");
  return parseRecord(entry.value);
}

/** The chunk entries of version `id`, in key order. */
async function chunksOf(kv: Deno.Kv, id: Uint8Array): Promise<Deno.KvEntry<unknown>[]> {
  return await Array.fromAsync(kv.list({ prefix: [INTERNAL, "chunk", id] }));
}

/**
 * The bytes actually stored for the blob at `key`, read straight from KV: the
 * record's inline data, or its chunks (checked for index order and size).
 */
async function storedBytes(
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
async function chunkKeyOf(kv: Deno.Kv, key: Deno.KvKey, index: number): Promise<Deno.KvKey> {
  const { id } = await rawRecord(kv, key);
  const chunk = (await chunksOf(kv, id))[index];
  assert.ok(chunk !== undefined, `chunk ${index} exists`);
  assert.equal(chunk.key[3], index);
  return chunk.key;
}

/** What a value should read back as. */
interface Expected {
  kind: "buffer" | "blob" | "file";
  type: string;
  name?: string;
  lastModified?: number;
}

async function assertBlob(value: unknown, data: Uint8Array, expected: Expected): Promise<void> {
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
function oddPieces(data: Uint8Array): Uint8Array[] {
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
function embedded(data: Uint8Array, offset: number): ArrayBuffer {
  const buffer = randomBytes(offset + data.length + 13);
  buffer.set(data, offset);
  return buffer.buffer;
}

const FILE_NAME = "naïve photo 📷.png";
const FILE_MODIFIED = 1_600_000_000_123;

/** Every kind of value `set` accepts, built from the same bytes. */
const VALUE_TYPES: {
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
const SIZES = [
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
function expectedMeta(size: number, id: Uint8Array, expected: Expected): Record<string, unknown> {
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
async function assertReadsBack(
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

// ---------------------------------------------------------------------------
// 1. Round trips.

for (const type of VALUE_TYPES) {
  for (const size of SIZES) {
    if (!type.accepts(size)) continue;
    kvTest(
      `get() returns a ${type.name} of ${size} bytes unchanged through every reader`,
      async (kv) => {
        const data = randomBytes(size);
        const { value, expected } = type.make(data);
        const result = await set(kv, ["value"], value);
        assert.equal(result.ok, true);
        if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) {
          assert.equal(value.byteLength, size, "set() leaves the input buffer attached");
        }

        await assertInternalCounts(kv, size);
        const stored = await storedBytes(kv, ["value"]);
        assert.equal(stored.record.size, size, "record size");
        assertBytes(stored.bytes, data, "bytes stored in KV");

        const meta = await getMeta(kv, ["value"]);
        assert.deepEqual(meta.value, expectedMeta(size, stored.record.id, expected));
        assert.equal(meta.versionstamp, result.versionstamp);

        await assertReadsBack(kv, ["value"], data, expected, result.versionstamp);
      },
    );
  }
}

kvTest("set() of a subarray stores only the view's bytes, inline and in chunks", async (kv) => {
  for (const size of [100, INLINE_MAX, INLINE_MAX + 1, 3 * CHUNK + 5]) {
    const whole = randomBytes(size + 2 * CHUNK);
    const view = whole.subarray(CHUNK - 3, CHUNK - 3 + size);
    await set(kv, ["view", size], view);
    assert.equal((await getMeta(kv, ["view", size])).value?.size, size);
    const stored = await storedBytes(kv, ["view", size]);
    assert.equal(stored.record.size, size);
    assertBytes(stored.bytes, view, `stored bytes of a ${size}-byte view`);
    if (size <= INLINE_MAX) {
      // The record is the header, the metadata and exactly the view's bytes.
      const raw = (await kv.get<Uint8Array>(["view", size])).value!;
      const metaLen = JSON.stringify(stored.record.meta).length;
      assert.equal(raw.length, 48 + metaLen + size);
    }
  }
});

kvTest(
  "set() stores a blob of PLAIN_INLINE_MAX bytes inline even with the largest metadata",
  async (kv) => {
    // Builds a File whose metadata JSON is exactly META_JSON_MAX bytes.
    const base = JSON.stringify({ kind: "file", name: "", lastModified: FILE_MODIFIED }).length;
    const name = "n".repeat(META_JSON_MAX - base);
    const data = randomBytes(INLINE_MAX);
    await set(kv, ["max"], new File([data], name, { lastModified: FILE_MODIFIED }));
    const raw = (await kv.get<Uint8Array>(["max"])).value!;
    assert.equal(raw.length, 65_536, "the record fills one KV value exactly");
    await assertInternalCounts(kv, INLINE_MAX);
    await assertReadsBack(kv, ["max"], data, {
      kind: "file",
      type: "",
      name,
      lastModified: FILE_MODIFIED,
    }, (await kv.get(["max"])).versionstamp!);
  },
);

kvTest(
  "set() stores at most PLAIN_INLINE_MAX bytes inline, and chunks one byte more",
  async (kv) => {
    assert.equal(CHUNK, 65_536);
    assert.equal(
      INLINE_MAX,
      65_536 - (48 + META_JSON_MAX),
      "inline limit leaves the largest header",
    );
    await set(kv, ["at"], randomBytes(INLINE_MAX));
    assert.equal(
      (await internalEntries(kv)).keys.size,
      0,
      "an inline blob writes no internal entry",
    );
    await set(kv, ["over"], randomBytes(INLINE_MAX + 1));
    const after = await internalEntries(kv);
    assert.equal(after.chunks, 1);
    assert.equal(after.versions, 1);
    assert.equal(after.other, 0);
  },
);

// ---------------------------------------------------------------------------
// 2. Ranges.

const RANGED_SIZE = 20 * CHUNK + 123; // crosses a read batch (16 chunks) and ends mid-chunk

const RANGES: { size: number; ranges: [number, number | undefined][] }[] = [
  {
    size: RANGED_SIZE,
    ranges: [
      [0, undefined],
      [0, RANGED_SIZE],
      [0, 0],
      [0, 1],
      [0, CHUNK - 1],
      [0, CHUNK],
      [0, CHUNK + 1],
      [CHUNK - 1, CHUNK],
      [CHUNK - 1, CHUNK + 1],
      [CHUNK, CHUNK],
      [CHUNK, 2 * CHUNK],
      [CHUNK + 1, 2 * CHUNK - 1],
      [CHUNK - 1, undefined],
      [CHUNK, undefined],
      [CHUNK + 1, undefined],
      [16 * CHUNK - 1, 16 * CHUNK + 1],
      [123, 123 + 17 * CHUNK],
      [RANGED_SIZE - 1, RANGED_SIZE],
      [RANGED_SIZE - 1, undefined],
      [RANGED_SIZE, RANGED_SIZE],
      [RANGED_SIZE, undefined],
      [0, RANGED_SIZE - 1],
    ],
  },
  {
    size: 1000,
    ranges: [[0, undefined], [0, 0], [0, 1000], [10, 20], [999, 1000], [1000, 1000], [
      500,
      undefined,
    ]],
  },
  { size: 0, ranges: [[0, undefined], [0, 0]] },
];

for (const { size, ranges } of RANGES) {
  kvTest(`getAsStream() returns exactly the requested range of a ${size}-byte blob`, async (kv) => {
    const data = randomBytes(size);
    await set(kv, ["ranged"], data);
    for (const [start, end] of ranges) {
      const range = end === undefined ? { start } : { start, end };
      const stream = await getAsStream(kv, ["ranged"], { range });
      assert.ok(stream !== null);
      assertBytes(await collect(stream), data.subarray(start, end), `range ${start}..${end}`);
    }
  });
}

kvTest("getAsStream() rejects a range outside the blob with a RangeError", async (kv) => {
  await set(kv, ["ranged"], randomBytes(RANGED_SIZE));
  await set(kv, ["small"], randomBytes(10));
  const bad: [Deno.KvKey, { start: number; end?: number }][] = [
    [["ranged"], { start: -1 }],
    [["ranged"], { start: -1, end: 10 }],
    [["ranged"], { start: 0, end: RANGED_SIZE + 1 }],
    [["ranged"], { start: RANGED_SIZE + 1 }],
    [["ranged"], { start: 10, end: 9 }],
    [["ranged"], { start: CHUNK + 1, end: CHUNK }],
    [["ranged"], { start: 1.5 }],
    [["ranged"], { start: 0, end: 2.5 }],
    [["ranged"], { start: Number.NaN }],
    [["ranged"], { start: 0, end: Number.NaN }],
    [["ranged"], { start: 0, end: Infinity }],
    [["small"], { start: 0, end: 11 }],
    [["small"], { start: 11 }],
  ];
  for (const [key, range] of bad) {
    await assertRejects(() => getAsStream(kv, key, { range }), RangeError);
  }
});

// ---------------------------------------------------------------------------
// 3. Compare-and-set.

const CAS_SIZES: [number, number][] = [
  [1000, 2000],
  [1000, 3 * CHUNK],
  [3 * CHUNK, 1000],
  [3 * CHUNK, 14 * CHUNK + 1],
];

for (const [oldSize, newSize] of CAS_SIZES) {
  kvTest(
    `set() with versionstamp null creates only if absent (${oldSize} then ${newSize} bytes)`,
    async (kv) => {
      const first = randomBytes(oldSize);
      const created = await set(kv, ["cas"], first, { versionstamp: null });
      assert.equal(created.ok, true);
      assertBytes((await get(kv, ["cas"])).value!, first);

      const before = await snapshot(kv);
      const again = await set(kv, ["cas"], randomBytes(newSize), { versionstamp: null });
      assert.deepEqual(again, { ok: false });
      assertBytes((await get(kv, ["cas"])).value!, first, "old value");
      assert.deepEqual(await snapshot(kv), before, "nothing left behind");
    },
  );

  kvTest(
    `set() with a versionstamp commits only if it matches (${oldSize} then ${newSize} bytes)`,
    async (kv) => {
      const stale = await set(kv, ["cas"], randomBytes(oldSize));
      const current = randomBytes(oldSize);
      const fresh = await set(kv, ["cas"], current);

      const before = await snapshot(kv);
      const lost = await set(kv, ["cas"], randomBytes(newSize), {
        versionstamp: stale.versionstamp,
      });
      assert.deepEqual(lost, { ok: false });
      assertBytes((await get(kv, ["cas"])).value!, current, "old value");
      assert.deepEqual(await snapshot(kv), before, "nothing left behind");

      const next = randomBytes(newSize);
      const won = await set(kv, ["cas"], next, { versionstamp: fresh.versionstamp });
      assert.equal(won.ok, true);
      assertBytes((await get(kv, ["cas"])).value!, next);
      await assertInternalCounts(kv, newSize, "only the new version's");
    },
  );
}

kvTest("set() with a versionstamp fails when nothing is stored", async (kv) => {
  const other = await set(kv, ["other"], randomBytes(10));
  const before = await snapshot(kv);
  const result = await set(kv, ["absent"], randomBytes(3 * CHUNK), {
    versionstamp: other.versionstamp,
  });
  assert.deepEqual(result, { ok: false });
  assert.equal((await kv.get(["absent"])).versionstamp, null);
  assert.deepEqual(await snapshot(kv), before);
});

kvTest(
  "set() without a versionstamp: the last writer wins and old chunks are removed",
  async (kv) => {
    for (const size of [5 * CHUNK, 10, 3 * CHUNK + 1, 0, 13 * CHUNK]) {
      const data = randomBytes(size);
      await set(kv, ["lww"], data);
      assertBytes((await get(kv, ["lww"])).value!, data);
      await assertInternalCounts(kv, size, `after writing ${size} bytes`);
    }
  },
);

kvTest("set() by concurrent writers leaves one whole value, never a torn one", async (kv) => {
  const values = [randomBytes(20 * CHUNK + 1), randomBytes(17 * CHUNK), randomBytes(100)];
  const results = await Promise.all(values.map((value) => set(kv, ["race"], value)));
  for (const result of results) assert.equal(result.ok, true);
  const stored = (await get(kv, ["race"])).value!;
  const winner = values.find((value) => value.length === stored.length);
  assert.ok(winner !== undefined, "the stored value is one of those written");
  assertBytes(stored, winner);
  await assertInternalCounts(kv, winner.length, "only the winner's");
});

kvTest("set() by concurrent create-only writers lets exactly one win", async (kv) => {
  const values = [randomBytes(15 * CHUNK), randomBytes(3 * CHUNK + 7), randomBytes(500)];
  const results = await Promise.all(
    values.map((value) => set(kv, ["race"], value, { versionstamp: null })),
  );
  const winners = results.flatMap((result, i) => result.ok ? [values[i]!] : []);
  assert.equal(winners.length, 1, "exactly one create-only write succeeds");
  assertBytes((await get(kv, ["race"])).value!, winners[0]!);
  await assertInternalCounts(kv, winners[0]!.length, "only the winner's");
});

// ---------------------------------------------------------------------------
// 4. Bad input.

const BAD_KEYS: [string, unknown][] = [
  ["a string", "key"],
  ["an empty array", []],
  ["a symbol part", [Symbol("part")]],
  ["a NaN part", [Number.NaN]],
  ["an object part", [{}]],
  ["an undefined part", [undefined]],
  ["null", null],
  ["the reserved prefix", [INTERNAL, "x"]],
  ["the reserved prefix alone", [INTERNAL]],
];

const CALLS: [string, (kv: Deno.Kv, key: Deno.KvKey) => Promise<unknown>][] = [
  ["set()", (kv, key) => set(kv, key, randomBytes(10))],
  ["set() of a big value", (kv, key) => set(kv, key, randomBytes(3 * CHUNK))],
  ["stage()", (kv, key) => stage(kv, key, randomBytes(3 * CHUNK))],
  ["get()", (kv, key) => get(kv, key)],
  ["get({ stream })", (kv, key) => get(kv, key, { stream: true })],
  ["get({ blob })", (kv, key) => get(kv, key, { blob: true })],
  ["getAsStream()", (kv, key) => getAsStream(kv, key)],
  ["getAsBlob()", (kv, key) => getAsBlob(kv, key)],
  ["getMeta()", (kv, key) => getMeta(kv, key)],
  ["remove()", (kv, key) => remove(kv, key)],
];

for (const [what, key] of BAD_KEYS) {
  kvTest(`set(), get() and friends reject ${what} as the key with a TypeError`, async (kv) => {
    const kept = randomBytes(3 * CHUNK);
    await set(kv, ["keep"], kept);
    const before = await snapshot(kv);
    for (const [name, call] of CALLS) {
      const error = await assertRejects(
        () => call(kv, key as Deno.KvKey),
        TypeError,
        undefined,
        name,
      );
      assert.ok(error.message.length > 10, `${name}: a clear message`);
    }
    assert.deepEqual(await snapshot(kv), before, "the store is unchanged");
    assertBytes((await get(kv, ["keep"])).value!, kept);
  });
}

kvTest("set() rejects a key inside kvcrypt's own chunks and leaves the chunk alone", async (kv) => {
  await set(kv, ["victim"], randomBytes(2 * CHUNK));
  const chunk = await chunkKeyOf(kv, ["victim"], 1);
  const before = await snapshot(kv);
  await assertRejects(() => set(kv, chunk, randomBytes(10)), TypeError, /__kvcrypt__/);
  await assertRejects(() => remove(kv, chunk), TypeError);
  assert.deepEqual(await snapshot(kv), before);
});

const BAD_VALUES: [string, unknown][] = [
  ["a string", "hello"],
  ["a number", 42],
  ["a plain object", { byteLength: 3 }],
  ["null", null],
  ["undefined", undefined],
  ["an array of numbers", [1, 2, 3]],
];

for (const [what, value] of BAD_VALUES) {
  kvTest(
    `set() rejects ${what} as the value with a TypeError and keeps the old value`,
    async (kv) => {
      const kept = randomBytes(3 * CHUNK);
      await set(kv, ["key"], kept);
      const before = await snapshot(kv);
      const error = await assertRejects(() => set(kv, ["key"], value as BlobValue), TypeError);
      assert.match(error.message, /\["key"\]/, "names the key");
      await assertRejects(() => stage(kv, ["key"], value as BlobValue), TypeError);
      assert.deepEqual(await snapshot(kv), before);
      assertBytes((await get(kv, ["key"])).value!, kept);
    },
  );
}

/** A stream of `full` random full chunks (plus an optional short piece), then `end()`. */
function failingStream(
  full: number,
  extra: number,
  end: (controller: ReadableStreamDefaultController<Uint8Array>) => void,
): { stream: ReadableStream<Uint8Array>; cancelled: () => boolean } {
  let sent = 0;
  let cancelled = false;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent < full) controller.enqueue(randomBytes(CHUNK));
      else if (sent === full && extra > 0) controller.enqueue(randomBytes(extra));
      else end(controller);
      sent++;
    },
    cancel() {
      cancelled = true;
    },
  });
  return { stream, cancelled: () => cancelled };
}

const FAILURE_POINTS: [number, number][] = [
  [0, 0], // before the first byte
  [0, 100], // inside what would be an inline blob
  [CHUNKS_PER_ATOMIC, 0], // exactly one chunk atomic
  [CHUNKS_PER_ATOMIC + 1, 0], // one chunk into the second atomic
  [20, 5], // 1.25 MiB, several atomics
  [40, 0], // 2.5 MiB
];

for (const [full, extra] of FAILURE_POINTS) {
  kvTest(
    `set() rejects with the stream's own error after ${
      full * CHUNK + extra
    } bytes and keeps the old value`,
    async (kv) => {
      const kept = randomBytes(5 * CHUNK + 3);
      await set(kv, ["key"], kept);
      const before = await snapshot(kv);
      const boom = new Error("disk on fire");
      const { stream } = failingStream(full, extra, (controller) => controller.error(boom));
      await assertRejectsWith(() => set(kv, ["key"], stream), boom);
      assert.deepEqual(await snapshot(kv), before, "no orphan entries, old record untouched");
      assertBytes((await get(kv, ["key"])).value!, kept);
    },
  );
}

kvTest("set() rejects a stream that yields something other than a Uint8Array", async (kv) => {
  const kept = randomBytes(100);
  await set(kv, ["key"], kept);
  const before = await snapshot(kv);
  for (const full of [0, 15]) {
    const { stream } = failingStream(
      full,
      0,
      (controller) => controller.enqueue("text" as unknown as Uint8Array),
    );
    await assertRejects(() => set(kv, ["key"], stream), TypeError);
    assert.deepEqual(await snapshot(kv), before);
  }
  assertBytes((await get(kv, ["key"])).value!, kept);
});

kvTest(
  "set() with an already-aborted signal rejects with its reason and writes nothing",
  async (kv) => {
    const kept = randomBytes(2 * CHUNK);
    await set(kv, ["key"], kept);
    const before = await snapshot(kv);
    const reason = new Error("user gave up");
    for (const value of [randomBytes(10), randomBytes(3 * CHUNK), streamOf([randomBytes(CHUNK)])]) {
      await assertRejectsWith(
        () => set(kv, ["key"], value, { signal: AbortSignal.abort(reason) }),
        reason,
      );
    }
    const signal = AbortSignal.abort();
    await assertRejectsWith(() => set(kv, ["key"], randomBytes(10), { signal }), signal.reason);
    await assertRejectsWith(() => stage(kv, ["key"], randomBytes(10), { signal }), signal.reason);
    assert.deepEqual(await snapshot(kv), before);
    assertBytes((await get(kv, ["key"])).value!, kept);
  },
);

kvTest(
  "set() aborted midway through a big stream rejects with the reason and leaves no orphans",
  async (kv) => {
    const kept = randomBytes(3 * CHUNK);
    await set(kv, ["key"], kept);
    const before = await snapshot(kv);
    const controller = new AbortController();
    const reason = new Error("user gave up midway");
    let pulled = 0;
    let cancelled = false;
    const stream = new ReadableStream<Uint8Array>({
      pull(stream) {
        pulled++;
        if (pulled === 30) controller.abort(reason); // after ~1.9 MiB
        if (pulled > 200) stream.close();
        else stream.enqueue(randomBytes(CHUNK));
      },
      cancel() {
        cancelled = true;
      },
    });
    await assertRejectsWith(() => set(kv, ["key"], stream, { signal: controller.signal }), reason);
    assert.ok(pulled < 60, `stopped reading soon after the abort (pulled ${pulled})`);
    assert.ok(cancelled, "the source stream is cancelled");
    assert.deepEqual(await snapshot(kv), before);
    assertBytes((await get(kv, ["key"])).value!, kept);
  },
);

kvTest("set() rejects expireIn 0, negative, NaN or infinite with a RangeError", async (kv) => {
  const kept = randomBytes(10);
  await set(kv, ["key"], kept);
  const before = await snapshot(kv);
  for (const expireIn of [0, -1, -0.5, Number.NaN, Infinity, -Infinity]) {
    for (const value of [randomBytes(10), randomBytes(2 * CHUNK)]) {
      const error = await assertRejects(() => set(kv, ["key"], value, { expireIn }), RangeError);
      assert.match(error.message, /expireIn/);
    }
  }
  assert.deepEqual(await snapshot(kv), before);
  assertBytes((await get(kv, ["key"])).value!, kept);
});

/** A File name whose metadata JSON `{"kind":"file","name":…,"lastModified":…}` takes `bytes` bytes. */
function nameForMeta(bytes: number, char = "n"): string {
  const base = new TextEncoder().encode(
    JSON.stringify({ kind: "file", name: "", lastModified: FILE_MODIFIED }),
  ).length;
  const charBytes = new TextEncoder().encode(char).length;
  assert.equal((bytes - base) % charBytes, 0);
  return char.repeat((bytes - base) / charBytes);
}

kvTest("set() rejects a File whose metadata exceeds 2,048 bytes with a RangeError", async (kv) => {
  const kept = randomBytes(3 * CHUNK);
  await set(kv, ["key"], kept);
  const before = await snapshot(kv);
  const tooLong = [
    nameForMeta(META_JSON_MAX + 1),
    nameForMeta(META_JSON_MAX + 2, "é"), // 2-byte UTF-8: fewer than 2,048 characters
    nameForMeta(10_000),
  ];
  for (const name of tooLong) {
    for (const data of [randomBytes(10), randomBytes(3 * CHUNK)]) {
      const file = new File([data], name, { lastModified: FILE_MODIFIED });
      await assertRejects(() => set(kv, ["key"], file), RangeError);
      await assertRejects(() => set(kv, ["new"], file), RangeError);
      await assertRejects(() => stage(kv, ["new"], file), RangeError);
    }
  }
  await assertRejects(
    () => set(kv, ["new"], new Blob(["x"], { type: `a/${"b".repeat(3000)}` })),
    RangeError,
  );
  assert.deepEqual(await snapshot(kv), before, "nothing written");
  assertBytes((await get(kv, ["key"])).value!, kept);

  // The limit itself is allowed, counted in UTF-8 bytes.
  for (const name of [nameForMeta(META_JSON_MAX), nameForMeta(META_JSON_MAX, "é")]) {
    await set(kv, ["ok"], new File(["x"], name, { lastModified: FILE_MODIFIED }));
    assert.equal((await getAsBlob(kv, ["ok"]) as File).name, name);
  }
});

kvTest("set() names the key in every error message", async (kv) => {
  const name = nameForMeta(META_JSON_MAX + 1);
  const tooLong = await assertRejects(
    () => set(kv, ["docs", "report"], new File(["x"], name, { lastModified: FILE_MODIFIED })),
    RangeError,
  );
  assert.match(tooLong.message, /\["docs", "report"\]/);
  const notBytes = await assertRejects(
    () => set(kv, ["docs", "report"], streamOf(["text" as unknown as Uint8Array])),
    TypeError,
  );
  assert.match(notBytes.message, /\["docs", "report"\]/);
  const expiry = await assertRejects(
    () => set(kv, ["docs", "report"], randomBytes(1), { expireIn: 0 }),
    RangeError,
  );
  assert.match(expiry.message, /\["docs", "report"\]/);
});

kvTest("set() rejects a versionstamp that is not a string with a TypeError", async (kv) => {
  const kept = randomBytes(3 * CHUNK);
  await set(kv, ["key"], kept);
  const before = await snapshot(kv);
  for (const versionstamp of [42, {}, false]) {
    await assertRejects(
      () => set(kv, ["key"], randomBytes(3 * CHUNK), { versionstamp: versionstamp as string }),
      TypeError,
      /versionstamp/,
    );
  }
  assert.deepEqual(await snapshot(kv), before);
  assertBytes((await get(kv, ["key"])).value!, kept);
});

kvTest("set() with a malformed versionstamp string fails and keeps the old value", async (kv) => {
  const kept = randomBytes(3 * CHUNK);
  await set(kv, ["key"], kept);
  const before = await snapshot(kv);
  for (const value of [randomBytes(10), randomBytes(3 * CHUNK)]) {
    await assert.rejects(set(kv, ["key"], value, { versionstamp: "not a versionstamp" }));
  }
  await assert.rejects(remove(kv, ["key"], { versionstamp: "not a versionstamp" }));
  assert.deepEqual(await snapshot(kv), before, "no orphans, old record untouched");
  assertBytes((await get(kv, ["key"])).value!, kept);
});

kvTest(
  "set() and remove() reject a malformed versionstamp string with a clear TypeError",
  async (kv) => {
    await set(kv, ["key"], randomBytes(3 * CHUNK));
    for (const versionstamp of ["not a versionstamp", "", "0".repeat(19), "G".repeat(20)]) {
      await assertRejects(
        () => set(kv, ["key"], randomBytes(10), { versionstamp }),
        TypeError,
        /versionstamp/,
        "set()",
      );
      await assertRejects(
        () => remove(kv, ["key"], { versionstamp }),
        TypeError,
        /versionstamp/,
        "remove()",
      );
    }
  },
);

kvTest(
  "set() rejects when the expireIn deadline passes during the write, leaving nothing",
  async (kv) => {
    const kept = randomBytes(100);
    await set(kv, ["key"], kept);
    const before = await snapshot(kv);
    let sent = 0;
    const slow = new ReadableStream<Uint8Array>({
      async pull(controller) {
        await new Promise((resolve) => setTimeout(resolve, 15));
        if (sent++ < 3) controller.enqueue(randomBytes(CHUNK));
        else controller.close();
      },
    });
    await assertRejects(() => set(kv, ["key"], slow, { expireIn: 10 }), RangeError, /expireIn/);
    assert.deepEqual(await snapshot(kv), before);
    assertBytes((await get(kv, ["key"])).value!, kept);
  },
);

// ---------------------------------------------------------------------------
// 5. Damaged and foreign entries.

const READS: [string, (kv: Deno.Kv, key: Deno.KvKey) => Promise<unknown>][] = [
  ["get()", (kv, key) => get(kv, key)],
  ["get({ blob })", (kv, key) => get(kv, key, { blob: true })],
  [
    "get({ stream })",
    async (kv, key) => await collect((await get(kv, key, { stream: true })).value!),
  ],
  ["getAsStream()", async (kv, key) => await collect((await getAsStream(kv, key))!)],
  ["getAsBlob()", (kv, key) => getAsBlob(kv, key)],
];

const FOREIGN_VALUES: [string, unknown][] = [
  ["a string", "hello"],
  ["a number", 42],
  ["an object", { size: 3 }],
  ["a Uint8Array without the magic", new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])],
  ["a Uint8Array shorter than the magic", new TextEncoder().encode("KV")],
  ["the magic as a string", "KVP1"],
  ["the magic followed by garbage", new TextEncoder().encode("KVP1 but not a record at all")],
];

for (const [what, value] of FOREIGN_VALUES) {
  kvTest(`get(), getAsStream() and getMeta() reject ${what} with CorruptBlobError`, async (kv) => {
    await kv.set(["x"], value);
    const before = await snapshot(kv);
    for (const [name, read] of READS) {
      const error = await assertRejects(() => read(kv, ["x"]), CorruptBlobError, undefined, name);
      assert.match(error.message, /\["x"\]/, `${name} names the key`);
    }
    await assertRejects(() => getAsStream(kv, ["x"]), CorruptBlobError);
    await assertRejects(() => getMeta(kv, ["x"]), CorruptBlobError);
    if (value instanceof Uint8Array && new TextDecoder().decode(value).startsWith("KVP1")) {
      // A damaged record is reported, never silently left out of a listing.
      await assertRejects(() => Array.fromAsync(list(kv, { prefix: [] })), CorruptBlobError);
    } else {
      assert.deepEqual(await Array.fromAsync(list(kv, { prefix: [] })), [], "list() skips it");
    }
    assert.deepEqual(await snapshot(kv), before);
  });
}

/** Writes a record and returns it with its raw bytes. */
async function patchedRecord(
  kv: Deno.Kv,
  size: number,
  patch: (view: DataView, bytes: Uint8Array) => void,
): Promise<void> {
  await set(kv, ["x"], randomBytes(size));
  const bytes = (await kv.get<Uint8Array>(["x"])).value!.slice();
  patch(new DataView(bytes.buffer), bytes);
  await kv.set(["x"], bytes);
}

/** Record tampers; `header` ones are visible without reading chunks, so getMeta() sees them too. */
const RECORD_TAMPERS: {
  what: string;
  size: number;
  header: boolean;
  patch: (view: DataView, bytes: Uint8Array) => void;
}[] = [
  {
    what: "a chunk size other than 65,536",
    size: 3 * CHUNK,
    header: true,
    patch: (view) => view.setUint32(20, 65_520),
  },
  {
    what: "a chunk count that does not match the size",
    size: 3 * CHUNK,
    header: true,
    patch: (view) => view.setUint32(32, 4),
  },
  {
    what: "a size larger than its chunks",
    size: 3 * CHUNK - 10,
    header: false,
    patch: (view) => view.setBigUint64(24, BigInt(3 * CHUNK - 9)),
  },
  {
    what: "a size smaller than its chunks",
    size: 3 * CHUNK - 10,
    header: false,
    patch: (view) => view.setBigUint64(24, BigInt(3 * CHUNK - 11)),
  },
  {
    // Plain sizes are not authenticated: a read must fail at the first missing
    // chunk, not try to allocate 32 TiB.
    what: "a forged size of 2^45 bytes and a matching chunk count",
    size: 3 * CHUNK,
    header: false,
    patch: (view) => {
      view.setBigUint64(24, 2n ** 45n);
      view.setUint32(32, 2 ** 45 / CHUNK);
    },
  },
  {
    what: "inline data longer than its size",
    size: 100,
    header: true,
    patch: (view) => view.setBigUint64(24, 99n),
  },
  {
    what: "a metadata length past the end",
    size: 100,
    header: true,
    patch: (view) => view.setUint32(44, 60_000),
  },
  {
    what: "metadata that is not JSON",
    size: 100,
    header: true,
    patch: (_view, bytes) => bytes.set([0x7b, 0x7b], 48),
  },
];

for (const { what, size, header, patch } of RECORD_TAMPERS) {
  kvTest(`get() rejects a record with ${what} with CorruptBlobError`, async (kv) => {
    await patchedRecord(kv, size, patch);
    for (const [name, read] of READS) {
      await assertRejects(() => read(kv, ["x"]), CorruptBlobError, undefined, name);
    }
    if (header) await assertRejects(() => getMeta(kv, ["x"]), CorruptBlobError);
  });
}

const CHUNK_TAMPERS: [string, (kv: Deno.Kv) => Promise<void>][] = [
  ["chunk 0 deleted", async (kv) => await kv.delete(await chunkKeyOf(kv, ["x"], 0))],
  ["chunk 1 deleted", async (kv) => await kv.delete(await chunkKeyOf(kv, ["x"], 1))],
  ["the last chunk deleted", async (kv) => await kv.delete(await chunkKeyOf(kv, ["x"], 5))],
  ["chunk 1 truncated", async (kv) => {
    const key = await chunkKeyOf(kv, ["x"], 1);
    await kv.set(key, (await kv.get<Uint8Array>(key)).value!.slice(0, 1000));
  }],
  ["the last chunk truncated", async (kv) => {
    const key = await chunkKeyOf(kv, ["x"], 5);
    await kv.set(key, (await kv.get<Uint8Array>(key)).value!.slice(0, 99));
  }],
  ["the last chunk padded", async (kv) => {
    const key = await chunkKeyOf(kv, ["x"], 5);
    const chunk = (await kv.get<Uint8Array>(key)).value!;
    await kv.set(key, new Uint8Array([...chunk, 0]));
  }],
  ["chunk 2 replaced by a string", async (kv) => {
    await kv.set(await chunkKeyOf(kv, ["x"], 2), "not bytes");
  }],
  ["an extra chunk after the last", async (kv) => {
    const key = await chunkKeyOf(kv, ["x"], 5);
    await kv.set([...key.slice(0, 3), 6], randomBytes(10));
  }],
];

for (const [what, tamper] of CHUNK_TAMPERS) {
  kvTest(`get() and stream reads reject a blob with ${what} with CorruptBlobError`, async (kv) => {
    await set(kv, ["x"], randomBytes(5 * CHUNK + 100)); // 6 chunks
    await tamper(kv);
    for (const [name, read] of READS) {
      await assertRejects(() => read(kv, ["x"]), CorruptBlobError, undefined, name);
    }
    // The stream itself opens (the record is fine); reading it fails.
    const stream = (await get(kv, ["x"], { stream: true })).value;
    assert.ok(stream instanceof ReadableStream);
    await assertRejects(() => collect(stream), CorruptBlobError);
  });
}

kvTest(
  "remove() rejects an entry that is not a blob with CorruptBlobError and keeps it",
  async (kv) => {
    for (const [_what, value] of FOREIGN_VALUES.slice(0, 4)) {
      await kv.set(["x"], value);
      const before = await kv.get(["x"]);
      await assertRejects(() => remove(kv, ["x"]), CorruptBlobError, /\["x"\]/);
      const after = await kv.get(["x"]);
      assert.equal(after.versionstamp, before.versionstamp);
      assert.deepEqual(after.value, value);
    }
  },
);

// ---------------------------------------------------------------------------
// 6. Expiry.

for (const size of [10, 3 * CHUNK]) {
  kvTest(`get() returns null for an expired ${size}-byte blob not yet purged`, async (kv) => {
    const started = Date.now();
    await set(kv, ["dir", "temp"], randomBytes(size), { expireIn: 50 });
    const meta = (await getMeta(kv, ["dir", "temp"])).value!;
    assert.ok(
      meta.expiresAt! >= started + 50 && meta.expiresAt! <= Date.now() + 50,
      "expiresAt is the deadline",
    );
    assert.equal((await rawRecord(kv, ["dir", "temp"])).expiresAt, meta.expiresAt);
    assert.equal((await get(kv, ["dir", "temp"])).value?.length, size, "readable before expiry");

    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.notEqual((await kv.get(["dir", "temp"])).versionstamp, null, "KV has not purged it");
    const expired = await get(kv, ["dir", "temp"]);
    // Compared field by field: a diff of a large Uint8Array against null takes minutes.
    assert.ok(expired.value === null, "get() value is null");
    assert.equal(expired.versionstamp, null);
    assert.deepEqual(expired.key, ["dir", "temp"]);
    assert.equal((await get(kv, ["dir", "temp"], { stream: true })).value, null);
    assert.equal((await get(kv, ["dir", "temp"], { blob: true })).value, null);
    assert.equal(await getAsStream(kv, ["dir", "temp"]), null);
    assert.equal(await getAsBlob(kv, ["dir", "temp"]), null);
    assert.equal((await getMeta(kv, ["dir", "temp"])).value, null);
    assert.equal((await getMeta(kv, ["dir", "temp"])).versionstamp, null);
    assert.deepEqual(await Array.fromAsync(list(kv, { prefix: ["dir"] })), []);

    const next = randomBytes(2 * CHUNK + 1);
    const created = await set(kv, ["dir", "temp"], next, { versionstamp: null });
    assert.equal(created.ok, true, "a create-only write treats the expired blob as absent");
    assertBytes((await get(kv, ["dir", "temp"])).value!, next);
    await assertInternalCounts(kv, next.length, "the expired version is cleaned up");
  });
}

// ---------------------------------------------------------------------------
// 7. remove(), list(), getMeta().

for (const size of [0, 10, INLINE_MAX + 1, 13 * CHUNK + 1]) {
  kvTest(`remove() deletes a ${size}-byte blob's record and every internal entry`, async (kv) => {
    await set(kv, ["other"], randomBytes(2 * CHUNK));
    const others = await snapshot(kv);
    await set(kv, ["gone"], randomBytes(size));
    const result = await remove(kv, ["gone"]);
    assert.equal(result.ok, true);
    assert.equal((await kv.get(["gone"])).versionstamp, null);
    assert.equal((await get(kv, ["gone"])).value, null);
    assert.deepEqual(await snapshot(kv), others, "only the other blob's entries remain");
  });
}

kvTest("remove() with a stale versionstamp returns ok: false and removes nothing", async (kv) => {
  const stale = await set(kv, ["x"], randomBytes(3 * CHUNK));
  const kept = randomBytes(4 * CHUNK);
  const fresh = await set(kv, ["x"], kept);
  const before = await snapshot(kv);
  assert.deepEqual(await remove(kv, ["x"], { versionstamp: stale.versionstamp }), { ok: false });
  assert.deepEqual(await snapshot(kv), before);
  assertBytes((await get(kv, ["x"])).value!, kept);
  assert.equal((await remove(kv, ["x"], { versionstamp: fresh.versionstamp })).ok, true);
  assert.equal((await internalEntries(kv)).keys.size, 0);
});

kvTest("list() yields the blobs under a prefix only, with their metadata", async (kv) => {
  await set(kv, ["dir", "a"], randomBytes(10));
  await set(kv, ["dir", "b"], new Blob([randomBytes(200_000)], { type: "text/plain" }));
  await set(
    kv,
    ["dir", "c"],
    new File([randomBytes(5)], "c.txt", { type: "text/plain", lastModified: 7 }),
  );
  await kv.set(["dir", "d"], "not a blob");
  await kv.set(["dir", "e"], new Uint8Array([9, 9, 9, 9, 9]));
  await set(kv, ["dir", "sub", "f"], streamOf([randomBytes(3), new Uint8Array(), randomBytes(4)]));
  await set(kv, ["elsewhere"], randomBytes(3 * CHUNK));

  const listed = await Array.fromAsync(list(kv, { prefix: ["dir"] }));
  assert.deepEqual(listed.map((entry) => entry.key), [
    ["dir", "a"],
    ["dir", "b"],
    ["dir", "c"],
    ["dir", "sub", "f"],
  ]);
  assert.deepEqual(
    listed.map(({ value }) => [value.size, "kind" in value ? value.kind : undefined]),
    [[10, "buffer"], [200_000, "blob"], [5, "file"], [7, "buffer"]],
  );
  for (const entry of listed) {
    const meta = await getMeta(kv, entry.key);
    assert.deepEqual(entry.value, meta.value);
    assert.equal(entry.versionstamp, meta.versionstamp);
  }
  const reversed = await Array.fromAsync(list(kv, { prefix: ["dir"] }, { reverse: true }));
  assert.deepEqual(reversed.map((entry) => entry.key), listed.map((entry) => entry.key).reverse());

  const everything = await Array.fromAsync(list(kv, { prefix: [] }));
  assert.deepEqual(everything.map((entry) => entry.key), [
    ["dir", "a"],
    ["dir", "b"],
    ["dir", "c"],
    ["dir", "sub", "f"],
    ["elsewhere"],
  ], "the whole store lists the user's blobs, no internal entries");
});

kvTest("list() over the whole store never yields a chunk that looks like a record", async (kv) => {
  // A valid-looking plain record of exactly 65,536 bytes, stored as the first chunk of a blob.
  const meta = new TextEncoder().encode(JSON.stringify({ kind: "buffer" }));
  const inline = 65_536 - 48 - meta.length;
  const fake = new Uint8Array(65_536);
  const view = new DataView(fake.buffer);
  fake.set(new TextEncoder().encode("KVP1"));
  fake.set(randomBytes(16), 4);
  view.setUint32(20, CHUNK);
  view.setBigUint64(24, BigInt(inline));
  view.setUint32(32, 1);
  view.setUint32(44, meta.length);
  fake.set(meta, 48);
  fake.set(randomBytes(inline), 48 + meta.length);
  await set(kv, ["dump"], new Blob([fake, new Uint8Array([1])]));

  const everything = await Array.fromAsync(list(kv, { prefix: [] }));
  assert.deepEqual(everything.map((entry) => entry.key), [["dump"]]);
});

kvTest("getMeta() describes a plain blob without reading its chunks", async (kv) => {
  assert.deepEqual(await getMeta(kv, ["absent"]), {
    key: ["absent"],
    value: null,
    versionstamp: null,
  });
  const file = new File([randomBytes(2 * CHUNK + 1)], "r.bin", {
    type: "application/octet-stream",
    lastModified: 42,
  });
  const result = await set(kv, ["f"], file);
  const first = await getMeta(kv, ["f"]);
  const { id } = await rawRecord(kv, ["f"]);
  assert.deepEqual(first.value, {
    size: 2 * CHUNK + 1,
    chunks: 3,
    id: hex(id),
    verified: false,
    encrypted: false,
    kind: "file",
    type: "application/octet-stream",
    name: "r.bin",
    lastModified: 42,
  });
  assert.equal(first.versionstamp, result.versionstamp);

  // Metadata needs no chunk: it still answers with every chunk gone.
  for await (const chunk of kv.list({ prefix: [INTERNAL, "chunk"] })) await kv.delete(chunk.key);
  assert.deepEqual((await getMeta(kv, ["f"])).value, first.value);

  // Every write is a new version id, even of the same bytes.
  await set(kv, ["f"], file);
  const second = (await getMeta(kv, ["f"])).value!;
  assert.match(second.id, /^[0-9a-f]{32}$/);
  assert.notEqual(second.id, first.value!.id);
});

// ---------------------------------------------------------------------------
// 8. stage().

kvTest(
  "stage() commits a blob with another mutation in one atomic, then removes the old chunks",
  async (kv) => {
    const old = randomBytes(4 * CHUNK);
    await set(kv, ["doc"], old);
    const oldKeys = (await internalEntries(kv)).keys;
    const next = randomBytes(13 * CHUNK + 9);
    const staged = await stage(kv, ["doc"], next);
    assertBytes((await get(kv, ["doc"])).value!, old, "nothing visible before the commit");

    const result = await staged.addTo(kv.atomic()).set(["index", "latest"], "doc").commit();
    assert.equal(result.ok, true);
    assertBytes((await get(kv, ["doc"])).value!, next);
    assert.equal((await kv.get(["index", "latest"])).value, "doc");
    assert.equal((await kv.get(["doc"])).versionstamp, result.versionstamp);
    const beforeComplete = (await internalEntries(kv)).keys;
    assert.ok([...oldKeys].every((key) => beforeComplete.has(key)), "complete() does the cleanup");

    await staged.complete(result);
    const after = await internalEntries(kv);
    assert.ok([...oldKeys].every((key) => !after.keys.has(key)), "old chunks removed");
    await assertInternalCounts(kv, next.length, "only the new version's");
    assertBytes((await get(kv, ["doc"])).value!, next);
  },
);

kvTest(
  "stage().complete({ ok: true }) from an atomic without addTo keeps the live blob and removes the staged chunks",
  async (kv) => {
    const live = randomBytes(4 * CHUNK);
    await set(kv, ["doc"], live);
    const before = await snapshot(kv);
    const staged = await stage(kv, ["doc"], randomBytes(6 * CHUNK));
    // The caller forgot addTo: this commit carries nothing of the staged blob.
    const result = await kv.atomic().set(["index"], 1).commit();
    assert.equal(result.ok, true);
    await staged.complete(result);
    assertBytes((await get(kv, ["doc"])).value!, live, "the live blob is intact");
    await assertInternalCounts(kv, live.length, "no staged chunk left");
    const after = await snapshot(kv);
    for (const [key, versionstamp] of before) assert.equal(after.get(key), versionstamp, key);
  },
);

kvTest(
  "stage() whose key changed before the commit fails, and complete() removes its chunks",
  async (kv) => {
    await set(kv, ["doc"], randomBytes(2 * CHUNK));
    const staged = await stage(kv, ["doc"], randomBytes(13 * CHUNK));
    const other = randomBytes(3 * CHUNK + 1);
    await set(kv, ["doc"], other); // another writer wins the race
    const before = await snapshot(kv);

    const result = await staged.addTo(kv.atomic()).set(["index"], 1).commit();
    assert.equal(result.ok, false);
    assert.equal((await kv.get(["index"])).versionstamp, null);
    await staged.complete(result);
    await assertInternalCounts(kv, other.length, "no staged chunk left");
    const after = await snapshot(kv);
    for (const [key, versionstamp] of after) assert.equal(before.get(key), versionstamp, key);
    assertBytes((await get(kv, ["doc"])).value!, other);
  },
);

kvTest("stage() with versionstamp null over a live blob fails and leaves no chunks", async (kv) => {
  const kept = randomBytes(2 * CHUNK);
  await set(kv, ["doc"], kept);
  const before = await snapshot(kv);
  const staged = await stage(kv, ["doc"], randomBytes(3 * CHUNK), { versionstamp: null });
  const result = await staged.addTo(kv.atomic()).commit();
  assert.equal(result.ok, false);
  await staged.complete(result);
  assert.deepEqual(await snapshot(kv), before);
  assertBytes((await get(kv, ["doc"])).value!, kept);
});

kvTest("stage() cleans up after complete(error) when the commit throws", async (kv) => {
  const kept = randomBytes(2 * CHUNK);
  await set(kv, ["doc"], kept);
  const before = await snapshot(kv);
  const staged = await stage(kv, ["doc"], randomBytes(13 * CHUNK));
  const op = staged.addTo(kv.atomic()).set(["too big"], new Uint8Array(70_000));
  let thrown: unknown = undefined;
  try {
    await op.commit();
  } catch (error) {
    thrown = error;
  }
  assert.ok(thrown instanceof TypeError, "the commit throws");
  await staged.complete(thrown);
  assert.deepEqual(await snapshot(kv), before);
  assertBytes((await get(kv, ["doc"])).value!, kept);
});

kvTest(
  "stage() complete(error) after a commit that applied keeps the new blob (lost reply)",
  async (kv) => {
    await set(kv, ["doc"], randomBytes(2 * CHUNK));
    const next = randomBytes(3 * CHUNK);
    const staged = await stage(kv, ["doc"], next);
    const result = await staged.addTo(kv.atomic()).commit();
    assert.equal(result.ok, true);
    await staged.complete(new Error("connection reset before the reply"));
    assertBytes((await get(kv, ["doc"])).value!, next);
    await assertInternalCounts(kv, next.length, "the old version is removed, the new one kept");
  },
);

// ---------------------------------------------------------------------------
// 9. onProgress.

for (const size of [1, INLINE_MAX, INLINE_MAX + 1, 13 * CHUNK, 5 * MiB + 3]) {
  kvTest(`set() reports increasing progress ending at the size (${size} bytes)`, async (kv) => {
    for (const value of [randomBytes(size), streamOf(oddPieces(randomBytes(size)))]) {
      const calls: number[] = [];
      await set(kv, ["p"], value, { onProgress: (bytes) => calls.push(bytes) });
      assert.ok(calls.length > 0, "called at least once");
      assert.equal(calls.at(-1), size, "the last call is the size");
      calls.forEach((bytes, i) => {
        assert.ok(bytes > (calls[i - 1] ?? 0), `increasing: ${calls}`);
        assert.ok(bytes <= size);
      });
      if (size > CHUNKS_PER_ATOMIC * CHUNK) {
        assert.ok(calls.length > 1, "reported during the write");
      }
    }
  });
}

// ---------------------------------------------------------------------------
// 10. vacuum().

/** Rewrites the `created` field (u64 after the state byte) of the version entry of `id`. */
async function backdateVersion(kv: Deno.Kv, id: Uint8Array, state?: number): Promise<void> {
  const key = [INTERNAL, "version", id];
  const bytes = (await kv.get<Uint8Array>(key)).value!.slice();
  const view = new DataView(bytes.buffer);
  assert.equal(view.getUint8(0), 1, "a live version entry");
  view.setBigUint64(1, 0n);
  if (state !== undefined) view.setUint8(0, state);
  await kv.set(key, bytes);
}

kvTest("vacuum() finds nothing to remove in a store written only through the API", async (kv) => {
  assert.deepEqual(await vacuum(kv, { olderThan: 0 }), { versions: 0, chunks: 0, skipped: 0 });
  const live = randomBytes(3 * CHUNK);
  await set(kv, ["a"], randomBytes(2 * CHUNK));
  await set(kv, ["a"], live);
  await set(kv, ["b"], randomBytes(5));
  await set(kv, ["c"], randomBytes(14 * CHUNK));
  await remove(kv, ["c"]);
  const before = await snapshot(kv);
  assert.deepEqual(await vacuum(kv, { olderThan: 0 }), { versions: 0, chunks: 0, skipped: 0 });
  assert.deepEqual(await vacuum(kv), { versions: 0, chunks: 0, skipped: 0 });
  assert.deepEqual(await snapshot(kv), before);
  assertBytes((await get(kv, ["a"])).value!, live);
});

kvTest("vacuum() removes a version no record points to, and keeps the live blob", async (kv) => {
  const live = randomBytes(4 * CHUNK);
  await set(kv, ["live"], live);
  const liveEntries = await snapshot(kv);
  await set(kv, ["gone"], randomBytes(5 * CHUNK + 1)); // 6 chunks
  await kv.delete(["gone"]); // as if a crash hit right after the record's removal

  assert.deepEqual(
    await vacuum(kv),
    { versions: 0, chunks: 0, skipped: 0 },
    "too young by default",
  );
  assert.deepEqual(await vacuum(kv, { olderThan: 0 }), { versions: 1, chunks: 6, skipped: 0 });
  assert.deepEqual(await snapshot(kv), liveEntries);
  assertBytes((await get(kv, ["live"])).value!, live);
  assert.deepEqual(await vacuum(kv, { olderThan: 0 }), { versions: 0, chunks: 0, skipped: 0 });
});

kvTest("vacuum() removes an old version whose key now holds something else", async (kv) => {
  const live = randomBytes(2 * CHUNK);
  await set(kv, ["live"], live);
  const liveEntries = await snapshot(kv);
  await set(kv, ["k"], randomBytes(3 * CHUNK)); // 3 chunks
  const { id } = await rawRecord(kv, ["k"]);
  await backdateVersion(kv, id);
  await kv.set(["k"], "overwritten outside kvcrypt");

  assert.deepEqual(
    await vacuum(kv),
    { versions: 1, chunks: 3, skipped: 0 },
    "older than the default hour",
  );
  const after = await snapshot(kv);
  after.delete(keyText(["k"]));
  assert.deepEqual(after, liveEntries);
  assertBytes((await get(kv, ["live"])).value!, live);
});

kvTest("vacuum() never removes an old version its record still points to", async (kv) => {
  const data = randomBytes(3 * CHUNK);
  await set(kv, ["k"], data);
  await backdateVersion(kv, (await rawRecord(kv, ["k"])).id);
  const before = await snapshot(kv);
  assert.deepEqual(await vacuum(kv, { olderThan: 0 }), { versions: 0, chunks: 0, skipped: 0 });
  assert.deepEqual(await snapshot(kv), before);
  assertBytes((await get(kv, ["k"])).value!, data);
});

kvTest("vacuum() finishes a tombstone a crash left behind", async (kv) => {
  await set(kv, ["k"], randomBytes(2 * CHUNK + 1)); // 3 chunks
  const { id } = await rawRecord(kv, ["k"]);
  await kv.delete(["k"]);
  await backdateVersion(kv, id, 2);
  await kv.delete([INTERNAL, "chunk", id, 0]); // the crash came after the first deletes
  assert.deepEqual(await vacuum(kv), { versions: 1, chunks: 2, skipped: 0 });
  assert.equal((await internalEntries(kv)).keys.size, 0);
});

kvTest("vacuum() rejects a negative olderThan with a RangeError", async (kv) => {
  for (const olderThan of [-1, Number.NaN]) {
    await assertRejects(() => vacuum(kv, { olderThan }), RangeError);
  }
});

// ---------------------------------------------------------------------------
// Key size.

kvTest("set() rejects a key Deno KV cannot store before writing anything", async (kv) => {
  const fits = ["k", "x".repeat(2043)]; // 2,048 bytes in Deno KV's encoding
  const tooLong = ["k", "x".repeat(2044)];
  await set(kv, fits, randomBytes(3 * CHUNK));
  const before = await snapshot(kv);
  const error = await assertRejects(() => set(kv, tooLong, randomBytes(3 * CHUNK)), RangeError);
  assert.match(error.message, /^Cannot store the blob: the key takes 2049 bytes/);
  await assertRejects(() => get(kv, tooLong), RangeError);
  await assertRejects(() => remove(kv, tooLong), RangeError);
  assert.deepEqual(await snapshot(kv), before, "nothing written");
});

kvTest("vacuum() removes an orphan whose key Deno KV cannot store, and goes on", async (kv) => {
  await set(kv, ["live"], randomBytes(2 * CHUNK));
  // A leftover as an older release could leave it: a version for an oversized key.
  const id = crypto.getRandomValues(new Uint8Array(16));
  const oversized = encodeKey(["k", "x".repeat(3000)]);
  const version = new Uint8Array(9 + oversized.length);
  version[0] = 1; // live
  version.set(oversized, 9); // created = 0: long ago
  await kv.set([INTERNAL, "version", id], version);
  await kv.set([INTERNAL, "chunk", id, 0], randomBytes(CHUNK));
  assert.deepEqual(await vacuum(kv, { olderThan: 0 }), { versions: 1, chunks: 1, skipped: 0 });
  assert.equal((await get(kv, ["live"])).value?.length, 2 * CHUNK);
});

kvTest("set() takes a fractional expireIn and refuses one Deno KV cannot store", async (kv) => {
  assert.ok((await set(kv, ["frac"], randomBytes(3 * CHUNK), { expireIn: 60_000.5 })).ok);
  assert.equal((await get(kv, ["frac"])).value?.length, 3 * CHUNK);
  const before = await snapshot(kv);
  for (const expireIn of [2 ** 53, Number.MAX_VALUE]) {
    const error = await assertRejects(
      () => set(kv, ["huge"], randomBytes(3 * CHUNK), { expireIn }),
      RangeError,
    );
    assert.match(error.message, /^Cannot store \["huge"\]: expireIn/);
  }
  assert.deepEqual(await snapshot(kv), before, "nothing written");
});

kvTest("set() commits although its onProgress callback throws", async (kv) => {
  const value = randomBytes(30 * CHUNK);
  const result = await set(kv, ["p"], value, {
    onProgress: () => {
      throw new Error("a buggy progress bar");
    },
  });
  assert.ok(result.ok);
  assertBytes((await get(kv, ["p"])).value!, value);
});

kvTest("set() cancels the caller's stream whatever stops it before the upload", async (kv) => {
  const failures: [string, (stream: ReadableStream<Uint8Array>) => Promise<unknown>][] = [
    ["an aborted signal", (s) => set(kv, ["k"], s, { signal: AbortSignal.abort(new Error("no")) })],
    ["a bad expireIn", (s) => set(kv, ["k"], s, { expireIn: -1 })],
    ["a bad encryptionKey", (s) => set(kv, ["k"], s, { encryptionKey: "not json" })],
    ["a bad versionstamp", (s) => set(kv, ["k"], s, { versionstamp: "nope" })],
  ];
  for (const [what, run] of failures) {
    let cancelled = false;
    const stream = new ReadableStream<Uint8Array>({
      pull: (controller) => controller.enqueue(randomBytes(CHUNK)),
      cancel: () => {
        cancelled = true;
      },
    });
    await assert.rejects(run(stream));
    assert.ok(cancelled, `${what}: the stream is cancelled`);
  }
  assert.equal((await get(kv, ["k"])).value, null);
});

kvTest(
  "vacuum() and getAsStream() reject arguments of the wrong type with TypeError",
  async (kv) => {
    await set(kv, ["x"], randomBytes(10));
    await assertRejects(() => vacuum(kv, { olderThan: "5" as unknown as number }), TypeError);
    const range = { start: "1" as unknown as number };
    await assertRejects(() => getAsStream(kv, ["x"], { range }), TypeError);
  },
);

// ---------------------------------------------------------------------------
// Metadata options.

kvTest("set() of a stream with name, type and lastModified stores a File", async (kv) => {
  const data = randomBytes(3 * CHUNK + 5);
  await set(kv, ["up"], streamOf([data]), {
    name: "scan.pdf",
    type: "application/pdf",
    lastModified: 1_700_000_000_000,
  });
  const file = await getAsBlob(kv, ["up"]);
  assert.ok(file instanceof File);
  assert.equal(file.name, "scan.pdf");
  assert.equal(file.type, "application/pdf");
  assert.equal(file.lastModified, 1_700_000_000_000);
  assertBytes(new Uint8Array(await file.arrayBuffer()), data);
});

kvTest("set() of bytes or a stream with only a type stores a Blob", async (kv) => {
  for (const value of [new Uint8Array([1, 2, 3]), streamOf([new Uint8Array([1, 2, 3])])]) {
    await set(kv, ["typed"], value, { type: "image/png" });
    const blob = await getAsBlob(kv, ["typed"]);
    assert.ok(blob instanceof Blob && !(blob instanceof File));
    assert.equal(blob.type, "image/png");
    const meta = (await getMeta(kv, ["typed"])).value!;
    assert.ok(!meta.encrypted && meta.kind === "blob");
  }
});

kvTest("set() with a name and no lastModified stamps the time of the write", async (kv) => {
  const before = Date.now();
  await set(kv, ["named"], new Uint8Array(4), { name: "a.bin" });
  const file = await getAsBlob(kv, ["named"]);
  assert.ok(file instanceof File);
  assert.ok(file.lastModified >= before && file.lastModified <= Date.now());
});

kvTest("set() options replace a File's own name and type", async (kv) => {
  const file = new File(["x"], "old.txt", { type: "text/plain", lastModified: 5 });
  await set(kv, ["renamed"], file, { name: "new.md", type: "text/markdown" });
  const back = await getAsBlob(kv, ["renamed"]);
  assert.ok(back instanceof File);
  assert.deepEqual([back.name, back.type, back.lastModified], ["new.md", "text/markdown", 5]);
});

kvTest(
  "set() rejects bad metadata options with TypeError, releases the stream and keeps the old value",
  async (kv) => {
    const old = randomBytes(2 * CHUNK);
    await set(kv, ["k"], old);
    const before = await snapshot(kv);
    const cases: Record<string, unknown>[] = [
      { type: 5 },
      { name: null },
      { lastModified: "yesterday" },
      { lastModified: 1.5 },
      { lastModified: 10 }, // no name: only files keep it
    ];
    for (const options of cases) {
      let cancelled = false;
      const stream = new ReadableStream<Uint8Array>({
        cancel() {
          cancelled = true;
        },
      });
      await assertRejects(
        () => set(kv, ["k"], stream, options as SetOptions),
        TypeError,
        /^Cannot store \["k"\]: /,
      );
      assert.ok(cancelled, `${JSON.stringify(options)}: the stream is released`);
    }
    assertBytes((await get(kv, ["k"])).value!, old);
    assert.deepEqual(await snapshot(kv), before);
  },
);
