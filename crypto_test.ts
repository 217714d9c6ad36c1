/**
 * Tests of encrypted blobs (FORMAT.md, "Encrypted record, KVC1" and
 * "Decrypting a blob"): a tamper matrix over every header field and every
 * chunk, for buffered reads, streams and `getMeta`; round trips at the
 * boundary sizes with AES-128 and AES-256; two recipients and key rings; no
 * silent downgrade; `rewrap`; and the key commitment computed independently.
 */

import assert from "node:assert/strict";
import {
  AlreadyExistsError,
  CorruptBlobError,
  type EncryptionKey,
  get,
  getAsStream,
  getMeta,
  type KeyMaterial,
  list,
  rewrap,
  set,
} from "./blob.ts";
import { DecryptionError } from "./crypto.ts";
import { generateKey, importKey, keyring } from "./keys.ts";
import {
  deriveVersionKeys,
  encodeHeader,
  parseHeader,
  sealChunk,
  SUITE_AES_256_GCM,
  systemRandom,
  wrapSecret,
} from "./_kvc1.ts";
import { resolveRecipients } from "./_key_input.ts";
import { CHUNKS_IN_RECORD_COMMIT, SEALED_CHUNK_SIZE, SEALED_INLINE_MAX } from "./_limits.ts";
import { countWrites } from "./_testing/faulty_kv.ts";
import { assertBytes, assertRejects, type ErrorClass, kvTest, withKv } from "./_testing/util.ts";

// ---------------------------------------------------------------------------
// Helpers.

/** Plaintext bytes of a full encrypted chunk. */
const CHUNK = SEALED_CHUNK_SIZE;
/** Largest encrypted blob stored inside its record. */
const INLINE_MAX = SEALED_INLINE_MAX;
/** Stored bytes of a full sealed chunk: one whole KV value. */
const SEALED_CHUNK_BYTES = 65_536;
const TAG = 16;

const encoder = new TextEncoder();

type Jwk = JsonWebKey & { kid: string };

/** Deterministic bytes that differ per seed (no all-zero blocks). */
function pattern(length: number, seed = 0): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed * 101 + 7) % 251;
  return out;
}

/** Whether `needle` occurs in `haystack`. */
function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

function chunkKey(id: Uint8Array, index: number): Deno.KvKey {
  return ["__kvcrypt__", "chunk", id, index];
}

async function chunkEntries(kv: Deno.Kv, id?: Uint8Array): Promise<Deno.KvEntry<Uint8Array>[]> {
  const prefix = id === undefined ? ["__kvcrypt__", "chunk"] : ["__kvcrypt__", "chunk", id];
  return await Array.fromAsync(kv.list<Uint8Array>({ prefix }));
}

async function rawRecord(kv: Deno.Kv, key: Deno.KvKey): Promise<Uint8Array> {
  const entry = await kv.get(key);
  assert.ok(entry.value instanceof Uint8Array, "the record is bytes");
  return entry.value;
}

function describe(value: unknown): string {
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  if (value instanceof Blob) return `a Blob of ${value.size} bytes`;
  if (value instanceof ReadableStream) return "a stream";
  return typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
}

/** Asserts an error is one of `allowed` and says "Cannot …". */
function assertAllowed(error: unknown, allowed: readonly ErrorClass[], what: string): void {
  assert.ok(
    allowed.some((ErrorClass) => error instanceof ErrorClass),
    `${what}: expected ${allowed.map((c) => c.name).join(" or ")}, got ${describe(error)}`,
  );
  assert.match((error as Error).message, /^Cannot /, `${what}: message`);
}

/**
 * Asserts a stream read fails: either opening it rejects, or reading it
 * errors; a stream that ends normally (short or not) fails the test. With
 * `callMustReject`, opening itself must reject (a bad header or key).
 */
async function assertStreamFails(
  open: () => Promise<ReadableStream<Uint8Array> | null>,
  allowed: readonly ErrorClass[],
  callMustReject: boolean,
  what: string,
): Promise<void> {
  let stream: ReadableStream<Uint8Array> | null;
  try {
    stream = await open();
  } catch (error) {
    assertAllowed(error, allowed, `${what} (opening)`);
    return;
  }
  assert.ok(!callMustReject, `${what}: opening resolved although the header or key is bad`);
  assert.ok(stream !== null, `${what}: resolved to null (absent)`);
  const reader = stream.getReader();
  let received = 0;
  let failure: { error: unknown } | undefined;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      received += value.length;
    }
  } catch (error) {
    failure = { error };
  }
  assert.ok(failure !== undefined, `${what}: the stream ended normally after ${received} bytes`);
  assertAllowed(failure.error, allowed, `${what} (reading)`);
}

async function readAll(stream: ReadableStream<Uint8Array> | null): Promise<Uint8Array> {
  assert.ok(stream !== null, "a stream");
  return await new Response(stream).bytes();
}

/** A stream of `bytes` in pieces of `piece` bytes (crossing chunk boundaries). */
function streamOf(bytes: Uint8Array, piece: number): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + piece));
      offset += piece;
    },
  });
}

// ---------------------------------------------------------------------------
// a. Tamper matrix.

const KEY: Deno.KvKey = ["files", "report.pdf"];
const OTHER_KEY: Deno.KvKey = ["files", "other.pdf"];
const PLAIN_KEY: Deno.KvKey = ["files", "plain.pdf"];
const COPY_KEY: Deno.KvKey = ["files", "copy.pdf"];
const SIZE = 3 * CHUNK + 1_000;
const LAST_MODIFIED = 1_767_225_600_000;

function reportFile(seed: number, name = "report.pdf"): File {
  return new File([pattern(SIZE, seed)], name, {
    type: "application/pdf",
    lastModified: LAST_MODIFIED,
  });
}

/** The pristine store every tamper case starts from. */
interface Fixture {
  /** Every KV entry after the writes. */
  entries: Deno.KvEntry<unknown>[];
  /** The writing key (kid "k1"). */
  jwk: Jwk;
  /** The record at KEY, its id and plaintext. */
  record: Uint8Array;
  id: Uint8Array;
  plaintext: Uint8Array;
}

let fixturePromise: Promise<Fixture> | undefined;

/**
 * A 3-chunk-plus-tail encrypted File at KEY, another encrypted blob under the
 * same key material at OTHER_KEY, and a plain blob of the same size at PLAIN_KEY.
 */
function fixture(): Promise<Fixture> {
  fixturePromise ??= withKv(async (kv) => {
    const jwk = await generateKey({ kid: "k1" });
    await set(kv, KEY, reportFile(1), { encryptionKey: jwk });
    await set(kv, OTHER_KEY, reportFile(2, "other.pdf"), { encryptionKey: jwk });
    await set(kv, PLAIN_KEY, reportFile(3, "plain.pdf"));
    const record = await rawRecord(kv, KEY);
    const id = parseHeader(record).id;
    assert.equal((await chunkEntries(kv, id)).length, 4, "the fixture has four chunk entries");
    return {
      entries: await Array.fromAsync(kv.list({ prefix: [] })),
      jwk,
      record,
      id,
      plaintext: pattern(SIZE, 1),
    };
  });
  return fixturePromise;
}

/** Runs `fn` with a fresh store holding a pristine copy of the fixture. */
function withFixture(f: Fixture, fn: (kv: Deno.Kv) => Promise<void>): Promise<void> {
  return withKv(async (kv) => {
    for (const entry of f.entries) await kv.set(entry.key, entry.value);
    await fn(kv);
  });
}

/** A header field by the offsets of FORMAT.md's KVC1 header table (one stanza, kid "k1"). */
interface Field {
  name: string;
  offset: number;
  length: number;
}

function headerFields(record: Uint8Array): Field[] {
  const view = new DataView(record.buffer, record.byteOffset, record.byteLength);
  const fields: Field[] = [];
  let offset = 0;
  const add = (name: string, length: number) => {
    fields.push({ name, offset, length });
    offset += length;
  };
  add("magic", 4);
  add("suite", 1);
  add("id", 16);
  add("commitment", 32);
  add("chunkSize", 4);
  add("size", 8);
  add("chunks", 4);
  add("expiresAt", 8);
  assert.equal(record[offset], 1, "one stanza");
  add("stanza count", 1);
  const kidLen = record[offset]!;
  assert.equal(kidLen, 2, 'kid "k1"');
  add("kidLen", 1);
  add("kid", kidLen);
  add("stanza iv", 12);
  add("wrapped", 48);
  add("metaIv", 12);
  const metaLen = view.getUint32(offset);
  add("metaLen", 4);
  add("meta", metaLen);
  assert.equal(offset, record.length, "a chunked record ends with the sealed metadata");
  return fields;
}

async function flipRecordByte(kv: Deno.Kv, offset: number): Promise<void> {
  const record = (await rawRecord(kv, KEY)).slice();
  record[offset]! ^= 0x01;
  await kv.set(KEY, record);
}

async function editChunk(
  kv: Deno.Kv,
  f: Fixture,
  index: number,
  edit: (bytes: Uint8Array) => unknown,
): Promise<void> {
  const entry = await kv.get<Uint8Array>(chunkKey(f.id, index));
  assert.ok(entry.value instanceof Uint8Array, `chunk ${index} exists`);
  await kv.set(chunkKey(f.id, index), edit(entry.value.slice()));
}

async function copyEntry(kv: Deno.Kv, from: Deno.KvKey, to: Deno.KvKey): Promise<void> {
  const entry = await kv.get(from);
  assert.ok(entry.versionstamp !== null, `${JSON.stringify(from)} exists`);
  await kv.set(to, entry.value);
}

interface TamperCase {
  name: string;
  /** The record or key is bad: streams must reject when opened, and getMeta with the key too. */
  header: boolean;
  /** Errors accepted (default DecryptionError). */
  allowed?: readonly ErrorClass[];
  /** Where to read (default KEY). */
  readAt?: Deno.KvKey;
  /** The key to read with (default the writing key). */
  readKey?: (f: Fixture) => Promise<EncryptionKey> | EncryptionKey;
  mutate?: (kv: Deno.Kv, f: Fixture) => Promise<void>;
}

function headerFlipCases(): TamperCase[] {
  // Fields of one byte get one case; longer ones a flip in their first and their last byte.
  const singleByte = new Set(["suite", "stanza count", "kidLen"]);
  const cases: TamperCase[] = [];
  const names = [
    "magic",
    "suite",
    "id",
    "commitment",
    "chunkSize",
    "size",
    "chunks",
    "expiresAt",
    "stanza count",
    "kidLen",
    "kid",
    "stanza iv",
    "wrapped",
    "metaIv",
    "metaLen",
    "meta",
  ];
  for (const name of names) {
    for (const end of singleByte.has(name) ? ["first"] as const : ["first", "last"] as const) {
      cases.push({
        name: `flipped bit in the ${end} byte of header field ${name}`,
        header: true,
        mutate: async (kv, f) => {
          const field = headerFields(f.record).find((field) => field.name === name)!;
          await flipRecordByte(
            kv,
            end === "first" ? field.offset : field.offset + field.length - 1,
          );
        },
      });
    }
  }
  return cases;
}

function chunkCases(): TamperCase[] {
  const cases: TamperCase[] = [];
  for (let index = 0; index < 4; index++) {
    cases.push({
      name: `flipped bit in the first byte of chunk ${index}`,
      header: false,
      mutate: (kv, f) => editChunk(kv, f, index, (bytes) => (bytes[0]! ^= 0x01, bytes)),
    });
    cases.push({
      name: `flipped bit in the last byte (tag) of chunk ${index}`,
      header: false,
      mutate: (kv, f) =>
        editChunk(kv, f, index, (bytes) => (bytes[bytes.length - 1]! ^= 0x80, bytes)),
    });
  }
  cases.push(
    {
      name: "chunks 0 and 1 swapped",
      header: false,
      mutate: async (kv, f) => {
        const [a, b] = await Promise.all([0, 1].map((i) => kv.get(chunkKey(f.id, i))));
        await kv.set(chunkKey(f.id, 0), b!.value);
        await kv.set(chunkKey(f.id, 1), a!.value);
      },
    },
    {
      name: "chunk 2 deleted",
      header: false,
      allowed: [DecryptionError, CorruptBlobError],
      mutate: (kv, f) => kv.delete(chunkKey(f.id, 2)),
    },
    {
      name: "last chunk (3) deleted",
      header: false,
      allowed: [DecryptionError, CorruptBlobError],
      mutate: (kv, f) => kv.delete(chunkKey(f.id, 3)),
    },
    {
      name: "chunk 1 duplicated over chunk 2",
      header: false,
      mutate: (kv, f) => copyEntry(kv, chunkKey(f.id, 1), chunkKey(f.id, 2)),
    },
    {
      name: "chunk 1 truncated to 1,000 bytes",
      header: false,
      mutate: (kv, f) => editChunk(kv, f, 1, (bytes) => bytes.slice(0, 1_000)),
    },
    {
      name: "last chunk truncated by one byte",
      header: false,
      mutate: (kv, f) => editChunk(kv, f, 3, (bytes) => bytes.slice(0, -1)),
    },
    {
      name: "a chunk added past the end (index 4)",
      header: false,
      mutate: (kv, f) => copyEntry(kv, chunkKey(f.id, 3), chunkKey(f.id, 4)),
    },
    {
      name: "chunk 1 replaced by chunk 1 of another blob under the same key material",
      header: false,
      mutate: async (kv, f) => {
        const otherId = parseHeader(await rawRecord(kv, OTHER_KEY)).id;
        await copyEntry(kv, chunkKey(otherId, 1), chunkKey(f.id, 1));
      },
    },
    {
      name: "chunk 2 replaced by a value that is not bytes",
      header: false,
      allowed: [DecryptionError, CorruptBlobError],
      mutate: (kv, f) => kv.set(chunkKey(f.id, 2), "not a chunk").then(() => {}),
    },
  );
  return cases;
}

function recordCases(): TamperCase[] {
  return [
    {
      name: "record copied to another key (chunks are keyed by id, so they follow)",
      header: true,
      readAt: COPY_KEY,
      mutate: (kv) => copyEntry(kv, KEY, COPY_KEY),
    },
    {
      name: "another encrypted blob's record (same key material) put at this key",
      header: true,
      mutate: (kv) => copyEntry(kv, OTHER_KEY, KEY),
    },
    {
      name: "record replaced by a plaintext record of the same size",
      header: true,
      mutate: (kv) => copyEntry(kv, PLAIN_KEY, KEY),
    },
    {
      name: "record truncated to its header without the sealed metadata's tag",
      header: true,
      mutate: async (kv) => void await kv.set(KEY, (await rawRecord(kv, KEY)).slice(0, -TAG)),
    },
    {
      name: "a byte appended to the record",
      header: true,
      mutate: async (kv) => {
        const record = await rawRecord(kv, KEY);
        await kv.set(KEY, Uint8Array.of(...record, 0));
      },
    },
    {
      name: "wrong key with the same kid",
      header: true,
      readKey: () => generateKey({ kid: "k1" }),
    },
    {
      name: "wrong bare CryptoKey (the empty kid is tried against every stanza)",
      header: true,
      readKey: () =>
        crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]),
    },
    {
      name: "the right key bytes imported under another kid",
      header: true,
      readKey: (f) => ({ ...f.jwk, kid: "k2" }),
    },
  ];
}

const tamperCases = [...headerFlipCases(), ...chunkCases(), ...recordCases()];

Deno.test("tamper matrix: the untouched fixture reads back through every path", async () => {
  const f = await fixture();
  await withFixture(f, async (kv) => {
    const encryptionKey = f.jwk;
    assertBytes((await get(kv, KEY, { encryptionKey })).value, f.plaintext, "get()");
    const stream = (await get(kv, KEY, { encryptionKey, stream: true })).value;
    assertBytes(await readAll(stream), f.plaintext, "get(stream)");
    assertBytes(
      await readAll(await getAsStream(kv, KEY, { encryptionKey })),
      f.plaintext,
      "stream",
    );
    const meta = (await getMeta(kv, KEY, { encryptionKey })).value;
    assert.ok(meta?.verified && meta.encrypted);
    assert.equal(meta.name, "report.pdf");
    // The field layout the matrix flips is the record's real layout.
    const fields = headerFields(f.record);
    const header = parseHeader(f.record);
    const at = (name: string) => fields.find((field) => field.name === name)!;
    assert.deepEqual(f.record.slice(at("id").offset, at("id").offset + 16), header.id);
    assert.deepEqual(
      f.record.slice(at("metaIv").offset, at("metaIv").offset + 12),
      header.metaIv,
    );
    assert.equal(at("meta").length, header.sealedMeta.length);
  });
});

for (const c of tamperCases) {
  Deno.test({
    name: `tamper matrix: ${c.name} → ${
      c.allowed ? "DecryptionError (or CorruptBlobError)" : "DecryptionError"
    }`,
    async fn() {
      const f = await fixture();
      const allowed = c.allowed ?? [DecryptionError];
      const at = c.readAt ?? KEY;
      await withFixture(f, async (kv) => {
        await c.mutate?.(kv, f);
        const encryptionKey = c.readKey ? await c.readKey(f) : f.jwk;
        const error = await assertRejects(
          get(kv, at, { encryptionKey }),
          allowed,
          undefined,
          "get()",
        );
        assert.ok(!error.message.includes(f.jwk.k!), "no key material in the message");
        await assertRejects(
          get(kv, at, { encryptionKey, blob: true }),
          allowed,
          undefined,
          "get(blob)",
        );
        await assertStreamFails(
          async () => (await get(kv, at, { encryptionKey, stream: true })).value,
          allowed,
          c.header,
          "get(stream)",
        );
        await assertStreamFails(
          () => getAsStream(kv, at, { encryptionKey }),
          allowed,
          c.header,
          "getAsStream()",
        );
        if (c.header) {
          await assertRejects(getMeta(kv, at, { encryptionKey }), allowed, undefined, "getMeta()");
        }
      });
    },
  });
}

Deno.test("tamper matrix: a record read without its key never shows kind, type or name", async () => {
  const f = await fixture();
  await withFixture(f, async (kv) => {
    await flipRecordByte(kv, headerFields(f.record).find((x) => x.name === "meta")!.offset);
    // Without a key, only public fields, unverified; the damaged metadata is not opened.
    const meta = (await getMeta(kv, KEY)).value;
    assert.ok(meta !== null && !meta.verified && meta.encrypted);
    assert.ok(!("name" in meta) && !("type" in meta) && !("kind" in meta));
    await assertRejects(get(kv, KEY), DecryptionError, undefined, "get() without a key");
  });
});

// ---------------------------------------------------------------------------
// b. Round trips at the boundary sizes.

const ROUND_TRIP_SIZES = [
  0,
  1,
  INLINE_MAX - 1,
  INLINE_MAX,
  INLINE_MAX + 1,
  CHUNK - 1,
  CHUNK,
  CHUNK + 1,
  12 * CHUNK,
  13 * CHUNK + 5,
];
const FILE_NAME = "Quarterly-Report-Ω.pdf";
const FILE_TYPE = "application/x-kvcrypt-secret";
const FILE_MODIFIED = 1_767_225_600_123;
const KINDS = ["Uint8Array", "ReadableStream", "Blob", "File"] as const;

Deno.test("round trip: the boundary sizes are the ones the format derives", () => {
  assert.equal(CHUNK, 65_520);
  // Header of 16 stanzas with 64-byte kids and 2,048 bytes of metadata, plus the inline tag.
  const headerMax = 78 + 16 * (1 + 64 + 12 + 48) + 12 + 4 + 2_048 + TAG;
  assert.equal(INLINE_MAX, 65_536 - headerMax - TAG);
  assert.ok(INLINE_MAX < CHUNK - 1);
});

function inputOf(kind: typeof KINDS[number], data: Uint8Array<ArrayBuffer>) {
  switch (kind) {
    case "Uint8Array": {
      // A view into a larger buffer: only the view's bytes are the value.
      const buffer = new Uint8Array(data.length + 7).fill(0xee);
      buffer.set(data, 3);
      return buffer.subarray(3, 3 + data.length);
    }
    case "ReadableStream":
      return streamOf(data, 10_007);
    case "Blob":
      return new Blob([data], { type: FILE_TYPE });
    case "File":
      return new File([data], FILE_NAME, { type: FILE_TYPE, lastModified: FILE_MODIFIED });
  }
}

for (const bits of [128, 256] as const) {
  for (const size of ROUND_TRIP_SIZES) {
    kvTest(
      `round trip: ${size} bytes with AES-${bits} as Uint8Array, ReadableStream, Blob and File`,
      async (kv) => {
        const jwk = await generateKey({ bits, kid: `rt-${bits}` });
        for (const [seed, kind] of KINDS.entries()) {
          const key = ["rt", kind];
          const data = pattern(size, seed + size);
          await set(kv, key, inputOf(kind, data), { encryptionKey: jwk });
          const what = `${kind} of ${size}`;

          assertBytes((await get(kv, key, { encryptionKey: jwk })).value, data, `${what}: get()`);
          const streamed = await readAll(await getAsStream(kv, key, { encryptionKey: jwk }));
          assertBytes(streamed, data, `${what}: getAsStream()`);
          const blob = (await get(kv, key, { encryptionKey: jwk, blob: true })).value;
          assert.ok(blob !== null);
          assertBytes(await blob.bytes(), data, `${what}: get(blob)`);
          assert.equal(blob instanceof File, kind === "File", `${what}: File or Blob`);
          assert.equal(blob.type, kind === "File" || kind === "Blob" ? FILE_TYPE : "");
          if (blob instanceof File) {
            assert.equal(blob.name, FILE_NAME);
            assert.equal(blob.lastModified, FILE_MODIFIED);
          }

          // Storage: inline up to INLINE_MAX, else full sealed chunks and a sealed tail.
          const record = await rawRecord(kv, key);
          assert.ok(record.length <= 65_536, `${what}: the record fits one KV value`);
          const header = parseHeader(record);
          assert.equal(header.suite, bits === 128 ? 0x01 : 0x02, `${what}: suite`);
          assert.equal(header.size, size);
          const chunks = await chunkEntries(kv, header.id);
          if (size === 0) {
            assert.equal(header.chunks, 0);
            assert.equal(header.inline, undefined);
            assert.equal(chunks.length, 0);
          } else if (size <= INLINE_MAX) {
            assert.equal(header.inline?.length, size + TAG, `${what}: stored inline`);
            assert.equal(chunks.length, 0, `${what}: no chunk entries`);
          } else {
            assert.equal(header.inline, undefined, `${what}: not inline`);
            const count = Math.ceil(size / CHUNK);
            assert.equal(chunks.length, count, `${what}: chunk entries`);
            chunks.forEach((entry, i) => {
              assert.equal(entry.key[3], i);
              const plain = i < count - 1 ? CHUNK : size - (count - 1) * CHUNK;
              assert.equal(entry.value.length, plain + TAG, `${what}: chunk ${i} length`);
              if (i < count - 1) assert.equal(entry.value.length, SEALED_CHUNK_BYTES);
            });
          }

          // No plaintext in the store: neither content nor metadata.
          const stored = [record, ...chunks.map((entry) => entry.value)];
          if (size >= 32) {
            const window = data.subarray(size - 32);
            assert.ok(!stored.some((bytes) => contains(bytes, window)), `${what}: content leaked`);
          }
          for (const secret of [FILE_NAME, FILE_TYPE, String(FILE_MODIFIED), "kind"]) {
            assert.ok(!contains(record, encoder.encode(secret)), `${what}: "${secret}" leaked`);
          }

          // Without a key: public header fields only, unverified.
          const keyless = (await getMeta(kv, key)).value;
          assert.ok(keyless !== null);
          assert.deepEqual(keyless, {
            size,
            chunks: header.chunks,
            id: header.id.toHex(),
            verified: false,
            encrypted: true,
            kids: [`rt-${bits}`],
          });
          // With the key: authenticated, and the sealed fields are back.
          const verified = (await getMeta(kv, key, { encryptionKey: jwk })).value;
          assert.ok(verified !== null && verified.verified && verified.encrypted);
          assert.equal(verified.size, size);
          assert.equal(
            verified.kind,
            kind === "File" ? "file" : kind === "Blob" ? "blob" : "buffer",
          );
          assert.equal(verified.type, kind === "File" || kind === "Blob" ? FILE_TYPE : "");
          assert.equal(verified.name, kind === "File" ? FILE_NAME : undefined);
          assert.equal(verified.lastModified, kind === "File" ? FILE_MODIFIED : undefined);
        }
      },
    );
  }
}

/** A kid of the longest length a stanza takes (64 bytes), distinct per `i`. */
function kid(i: number): string {
  return i.toString().padStart(64, "k");
}

/** A File whose metadata JSON is as long as a record takes (2,048 bytes). */
function largestMetadataFile(bytes: Uint8Array<ArrayBuffer>): File {
  const base = JSON.stringify({ kind: "file", type: FILE_TYPE, name: "", lastModified: 1 }).length;
  return new File([bytes], "n".repeat(2_048 - base), { type: FILE_TYPE, lastModified: 1 });
}

kvTest(
  "round trip: the largest one-commit write (11 full chunks, longest key, largest metadata, 16 recipients, expireIn, an overwrite) fits one atomic",
  async (kv) => {
    // CHUNKS_IN_RECORD_COMMIT assumes the rest of the atomic fits in one chunk's room.
    const size = CHUNKS_IN_RECORD_COMMIT * SEALED_CHUNK_SIZE;
    const file = largestMetadataFile(pattern(size, 3));
    const key = ["max", "k".repeat(2_040)];
    const recipients = await Promise.all(
      Array.from({ length: 16 }, (_, i) => generateKey({ kid: kid(i) })),
    );
    await set(kv, key, pattern(3 * SEALED_CHUNK_SIZE, 1), { recipients });
    const log = await countWrites(
      kv,
      (wrapped) => set(wrapped, key, file, { recipients, expireIn: 60_000 }),
    );
    assert.equal(log[0]!.keys.filter((k) => k[1] === "chunk").length, CHUNKS_IN_RECORD_COMMIT);
    assert.ok(log[0]!.keys.some((k) => k[0] === "max"), "the record is in the same atomic");
    const read = await get(kv, key, { encryptionKey: recipients[15]!, blob: true });
    assert.ok(read.value instanceof File);
    assertBytes(await read.value.bytes(), pattern(size, 3), "read by the 16th recipient");
  },
);

kvTest(
  "round trip: an inline blob at INLINE_MAX with the largest metadata takes 15 more recipients with 64-byte kids",
  async (kv) => {
    // The inline limit assumes the largest header: check that it really fits one KV value.
    const file = largestMetadataFile(pattern(INLINE_MAX, 9));
    const first = await generateKey({ kid: kid(0) });
    await set(kv, ["max"], file, { encryptionKey: first });
    const others = await Promise.all(
      Array.from({ length: 15 }, (_, i) => generateKey({ bits: 128, kid: kid(i + 1) })),
    );
    const result = await rewrap(kv, ["max"], { encryptionKey: first, add: others });
    assert.ok(result.ok);
    const record = await rawRecord(kv, ["max"]);
    assert.equal(record.length, 65_536, "the largest record is exactly one KV value");
    assert.equal(parseHeader(record).stanzas.length, 16);
    const read = await get(kv, ["max"], { encryptionKey: others[14]! });
    assertBytes(read.value, pattern(INLINE_MAX, 9), "read by the 16th recipient");
  },
);

// ---------------------------------------------------------------------------
// c. Recipients and key rings.

kvTest("set() with two recipients: each reads alone, a third key cannot", async (kv) => {
  const alice = await generateKey({ bits: 256, kid: "alice" });
  const bob = await generateKey({ bits: 128, kid: "bob" });
  const carol = await generateKey({ kid: "carol" });
  for (const size of [1_000, 2 * CHUNK + 3]) {
    const data = pattern(size, 4);
    const key = ["shared", size];
    await set(kv, key, data, { recipients: [alice, bob] });
    const header = parseHeader(await rawRecord(kv, key));
    assert.deepEqual(header.stanzas.map((stanza) => stanza.kid), ["alice", "bob"]);
    assert.equal(header.suite, 0x02, "the suite follows the first recipient (AES-256)");
    for (const reader of [alice, bob]) {
      assertBytes((await get(kv, key, { encryptionKey: reader })).value, data, reader.kid);
    }
    await assertRejects(
      get(kv, key, { encryptionKey: carol }),
      DecryptionError,
      undefined,
      "carol",
    );
    // Carol under a recipient's kid still fails: the kid selects, the key must open.
    await assertRejects(
      get(kv, key, { encryptionKey: { ...carol, kid: "bob" } as Jwk }),
      DecryptionError,
      undefined,
      "carol as bob",
    );
    const meta = (await getMeta(kv, key)).value;
    assert.deepEqual(meta?.encrypted && meta.kids, ["alice", "bob"]);
  }
  // The suite byte follows the first recipient's key: bob first gives AES-128.
  await set(kv, ["bob-first"], pattern(10), { recipients: [bob, alice] });
  assert.equal(parseHeader(await rawRecord(kv, ["bob-first"])).suite, 0x01);
  assertBytes((await get(kv, ["bob-first"], { encryptionKey: alice })).value, pattern(10), "");
});

kvTest(
  "a key ring writes with its current key and reads blobs written with the old one",
  async (kv) => {
    const oldJwk = await generateKey({ kid: "old" });
    const newJwk = await generateKey({ kid: "new" });
    const oldData = pattern(CHUNK + 10, 5);
    await set(kv, ["old"], oldData, { encryptionKey: oldJwk });
    const rings: [string, KeyMaterial][] = [
      ["keyring(new, old)", await keyring(newJwk, oldJwk)],
      ["JWK Set object", { keys: [newJwk, oldJwk] }],
      ["JWK Set JSON", JSON.stringify({ keys: [newJwk, oldJwk] })],
      ["importKey(JWK Set)", await importKey({ keys: [newJwk, oldJwk] })],
    ];
    for (const [label, ring] of rings) {
      const what = `${label}`;
      assertBytes((await get(kv, ["old"], { encryptionKey: ring })).value, oldData, what);
      const newData = pattern(300, label.length);
      await set(kv, ["new", label], newData, { encryptionKey: ring });
      const header = parseHeader(await rawRecord(kv, ["new", label]));
      assert.deepEqual(header.stanzas.map((stanza) => stanza.kid), ["new"], `${what}: one stanza`);
      assertBytes((await get(kv, ["new", label], { encryptionKey: newJwk })).value, newData, what);
      await assertRejects(
        get(kv, ["new", label], { encryptionKey: oldJwk }),
        DecryptionError,
        undefined,
        `${what}: the old key alone`,
      );
    }
  },
);

// ---------------------------------------------------------------------------
// d. No silent downgrade.

kvTest("get() refuses a plain record when given a key, unless allowPlaintext", async (kv) => {
  const jwk = await generateKey();
  for (const size of [100, 2 * CHUNK]) {
    const data = pattern(size, 6);
    const key = ["plain", size];
    await set(kv, key, data);
    const what = `plain ${size}`;
    await assertRejects(get(kv, key, { encryptionKey: jwk }), DecryptionError, undefined, what);
    await assertStreamFails(
      () => getAsStream(kv, key, { encryptionKey: jwk }),
      [DecryptionError],
      true,
      what,
    );
    await assertRejects(
      getMeta(kv, key, { encryptionKey: jwk }),
      DecryptionError,
      undefined,
      what,
    );
    const allowed = { encryptionKey: jwk, allowPlaintext: true };
    assertBytes((await get(kv, key, allowed)).value, data, `${what}: allowPlaintext`);
    assertBytes(await readAll(await getAsStream(kv, key, allowed)), data, `${what}: stream`);
    assertBytes((await get(kv, key)).value, data, `${what}: no key`);
  }
});

kvTest("get() refuses an encrypted record read without a key", async (kv) => {
  const jwk = await generateKey();
  for (const size of [100, 2 * CHUNK]) {
    const key = ["sealed", size];
    await set(kv, key, pattern(size), { encryptionKey: jwk });
    await assertRejects(get(kv, key), DecryptionError, undefined, `${size}: get()`);
    await assertRejects(
      get(kv, key, { allowPlaintext: true }),
      DecryptionError,
      undefined,
      "allow",
    );
    await assertStreamFails(() => getAsStream(kv, key), [DecryptionError], true, `${size}`);
  }
});

// ---------------------------------------------------------------------------
// e. rewrap.

async function sealedBlob(kv: Deno.Kv, key: Deno.KvKey, size: number, jwk: Jwk) {
  const data = pattern(size, 8);
  await set(kv, key, new File([data], "r.pdf", { type: "application/pdf" }), {
    encryptionKey: jwk,
  });
  return data;
}

function chunkStamps(entries: Deno.KvEntry<Uint8Array>[]) {
  return entries.map((entry) => ({
    key: entry.key,
    versionstamp: entry.versionstamp,
    length: entry.value.length,
  }));
}

kvTest("rewrap() moves a blob to a new key and leaves its chunks untouched", async (kv) => {
  const oldJwk = await generateKey({ kid: "old" });
  const newJwk = await generateKey({ kid: "new" });
  const data = await sealedBlob(kv, KEY, SIZE, oldJwk);
  const before = chunkStamps(await chunkEntries(kv));
  assert.equal(before.length, 4);
  const header1 = parseHeader(await rawRecord(kv, KEY));

  const result = await rewrap(kv, KEY, {
    encryptionKey: oldJwk,
    add: newJwk,
    remove: ["old"],
  });
  assert.ok(result.ok);

  assert.deepEqual(
    chunkStamps(await chunkEntries(kv)),
    before,
    "chunks keep their versionstamps",
  );
  const header2 = parseHeader(await rawRecord(kv, KEY));
  assert.deepEqual(header2.id, header1.id);
  assert.deepEqual(header2.commitment, header1.commitment);
  assert.notDeepEqual(header2.metaIv, header1.metaIv, "a fresh metaIv");
  assert.deepEqual(header2.stanzas.map((stanza) => stanza.kid), ["new"]);

  assertBytes((await get(kv, KEY, { encryptionKey: newJwk })).value, data, "new key");
  await assertRejects(
    get(kv, KEY, { encryptionKey: oldJwk }),
    DecryptionError,
    undefined,
    "old key",
  );
  const meta = (await getMeta(kv, KEY, { encryptionKey: newJwk })).value;
  assert.ok(meta?.verified);
  assert.equal(meta.name, "r.pdf");
  assert.equal(meta.type, "application/pdf");
});

kvTest("rewrap() adding a recipient keeps the existing stanza byte for byte", async (kv) => {
  const a = await generateKey({ kid: "a" });
  const b = await generateKey({ bits: 128, kid: "b" });
  const data = await sealedBlob(kv, KEY, CHUNK + 1, a);
  const header1 = parseHeader(await rawRecord(kv, KEY));
  assert.ok((await rewrap(kv, KEY, { encryptionKey: a, add: b })).ok);
  const header2 = parseHeader(await rawRecord(kv, KEY));
  assert.deepEqual(header2.stanzas[0], header1.stanzas[0]);
  assert.deepEqual(header2.stanzas.map((stanza) => stanza.kid), ["a", "b"]);
  assert.notDeepEqual(header2.metaIv, header1.metaIv);
  for (const reader of [a, b]) {
    assertBytes((await get(kv, KEY, { encryptionKey: reader })).value, data, reader.kid);
  }
});

kvTest("rewrap() with a wrong key rejects with DecryptionError and changes nothing", async (kv) => {
  const jwk = await generateKey({ kid: "k" });
  await sealedBlob(kv, KEY, SIZE, jwk);
  const before = await kv.get(KEY);
  for (const wrong of [await generateKey({ kid: "k" }), await generateKey({ kid: "x" })]) {
    await assertRejects(
      rewrap(kv, KEY, { encryptionKey: wrong, add: await generateKey({ kid: "n" }) }),
      DecryptionError,
      undefined,
      `wrong key ${wrong.kid}`,
    );
  }
  const after = await kv.get(KEY);
  assert.equal(after.versionstamp, before.versionstamp);
  assertBytes(after.value as Uint8Array, before.value as Uint8Array, "record");
});

kvTest(
  "rewrap() refuses to leave no recipient (RangeError) or to add a kid twice (AlreadyExistsError)",
  async (kv) => {
    const jwk = await generateKey({ kid: "k" });
    await sealedBlob(kv, KEY, SIZE, jwk);
    const before = await kv.get(KEY);
    await assertRejects(
      rewrap(kv, KEY, { encryptionKey: jwk, remove: ["k"] }),
      RangeError,
      undefined,
      "remove all",
    );
    await assertRejects(
      rewrap(kv, KEY, { encryptionKey: jwk, add: await generateKey({ kid: "k" }) }),
      AlreadyExistsError,
      undefined,
      "kid present",
    );
    const after = await kv.get(KEY);
    assert.equal(after.versionstamp, before.versionstamp, "nothing changed");
    assertBytes(
      (await get(kv, KEY, { encryptionKey: jwk })).value,
      pattern(SIZE, 8),
      "still reads",
    );
  },
);

kvTest("rewrap() rewraps an inline encrypted blob", async (kv) => {
  const oldJwk = await generateKey({ kid: "old" });
  const newJwk = await generateKey({ bits: 128, kid: "new" });
  const data = await sealedBlob(kv, KEY, 1_000, oldJwk);
  const header1 = parseHeader(await rawRecord(kv, KEY));
  assert.ok(header1.inline !== undefined);
  const result = await rewrap(kv, KEY, {
    encryptionKey: oldJwk,
    add: newJwk,
    remove: ["old"],
  });
  assert.ok(result.ok);
  const header2 = parseHeader(await rawRecord(kv, KEY));
  assert.deepEqual(header2.inline, header1.inline, "the sealed inline chunk is kept");
  assert.notDeepEqual(header2.metaIv, header1.metaIv);
  assert.equal((await chunkEntries(kv)).length, 0);
  assertBytes((await get(kv, KEY, { encryptionKey: newJwk })).value, data, "new key");
  await assertRejects(
    get(kv, KEY, { encryptionKey: oldJwk }),
    DecryptionError,
    undefined,
    "old key",
  );
});

kvTest(
  "rewrap() of a plain blob rejects with DecryptionError and leaves it as it was",
  async (kv) => {
    const jwk = await generateKey({ kid: "k" });
    await set(kv, ["plain"], pattern(100));
    const before = await kv.get(["plain"]);
    await assertRejects(
      rewrap(kv, ["plain"], { encryptionKey: jwk, add: await generateKey({ kid: "n" }) }),
      DecryptionError,
      undefined,
      "plain",
    );
    assert.equal((await kv.get(["plain"])).versionstamp, before.versionstamp);
  },
);

// ---------------------------------------------------------------------------
// f. Key commitment, computed independently.

Deno.test("the header's commitment is HKDF-SHA-256(S, id, 'kvcrypt/1 blob' || suite) computed independently", async () => {
  for (const bits of [128, 256] as const) {
    const jwk = await generateKey({ bits, kid: "c" });
    await withKv(async (kv) => {
      const data = pattern(500, bits);
      await set(kv, ["c"], data, { encryptionKey: jwk });
      const record = await rawRecord(kv, ["c"]);
      const header = parseHeader(record);
      // Unwrap S with plain Web Crypto from the JWK's raw bytes.
      const kek = await crypto.subtle.importKey(
        "raw",
        Uint8Array.fromBase64(jwk.k!, { alphabet: "base64url" }),
        "AES-GCM",
        false,
        ["decrypt"],
      );
      const stanza = header.stanzas[0]!;
      assert.equal(stanza.form, "key");
      if (stanza.form !== "key") return;
      const secret = new Uint8Array(
        await crypto.subtle.decrypt(
          {
            name: "AES-GCM",
            iv: new Uint8Array(stanza.iv),
            additionalData: Uint8Array.of(...encoder.encode("kvcrypt/1 wrap"), ...header.id),
          },
          kek,
          new Uint8Array(stanza.wrapped),
        ),
      );
      assert.equal(secret.length, 32);
      const suite = bits === 128 ? 0x01 : 0x02;
      assert.equal(header.suite, suite);
      const keyBytes = bits / 8;
      const okm = new Uint8Array(
        await crypto.subtle.deriveBits(
          {
            name: "HKDF",
            hash: "SHA-256",
            salt: new Uint8Array(header.id),
            info: Uint8Array.of(...encoder.encode("kvcrypt/1 blob"), suite),
          },
          await crypto.subtle.importKey("raw", secret, "HKDF", false, ["deriveBits"]),
          (keyBytes + 12 + 32) * 8,
        ),
      );
      assert.equal(header.commitment.toHex(), okm.subarray(keyBytes + 12).toHex());
      // The same derivation opens the inline chunk (nonce N0 XOR be96(0) = N0).
      const kenc = await crypto.subtle.importKey(
        "raw",
        okm.slice(0, keyBytes),
        "AES-GCM",
        false,
        ["decrypt"],
      );
      const opened = await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: okm.slice(keyBytes, keyBytes + 12) },
        kenc,
        new Uint8Array(header.inline!),
      );
      assertBytes(new Uint8Array(opened), data, "inline chunk");
    });
  }
});

kvTest("getMeta() without a key treats an expired encrypted blob as absent", async (kv) => {
  const jwk = await generateKey({ kid: "e" });
  await set(kv, ["exp"], pattern(100), { encryptionKey: jwk, expireIn: 300 });
  await new Promise((resolve) => setTimeout(resolve, 350));
  assert.equal((await get(kv, ["exp"], { encryptionKey: jwk })).value, null);
  assert.equal((await getMeta(kv, ["exp"], { encryptionKey: jwk })).value, null);
  assert.equal((await getMeta(kv, ["exp"])).value, null);
});

kvTest("list() with a key reports a tampered record instead of leaving it out", async (kv) => {
  const jwk = await generateKey({ kid: "l" });
  await set(kv, ["dir", "a"], pattern(100), { encryptionKey: jwk });
  await set(kv, ["dir", "b"], pattern(200_000), { encryptionKey: jwk });
  const bytes = (await kv.get<Uint8Array>(["dir", "b"])).value!.slice();
  new DataView(bytes.buffer).setBigUint64(69, 1n); // expiresAt edited into the past
  await kv.set(["dir", "b"], bytes);
  await assertRejects(
    Array.fromAsync(list(kv, { prefix: ["dir"] }, { encryptionKey: jwk })),
    DecryptionError,
    undefined,
    "list",
  );
});

kvTest(
  "get() rejects a header whose commitment is wrong although its metadata tag is valid",
  async (kv) => {
    // Built with the version's real keys, so only the key commitment (step 3) can catch it.
    const jwk = await generateKey({ kid: "c" });
    const [ring] = await resolveRecipients(jwk);
    const secret = crypto.getRandomValues(new Uint8Array(32));
    const id = crypto.getRandomValues(new Uint8Array(16));
    const keys = await deriveVersionKeys(secret, id, SUITE_AES_256_GCM);
    const stanza = await wrapSecret(ring!.current, secret, id, systemRandom);
    const plaintext = pattern(100);
    const sealed = await sealChunk(keys, 0, plaintext);
    const fields = { id, chunkSize: SEALED_CHUNK_SIZE, size: 100, chunks: 1, expiresAt: 0 };
    const build = async (commitment: Uint8Array) => {
      const header = await encodeHeader(
        { ...fields, suite: SUITE_AES_256_GCM, commitment, stanzas: [stanza] },
        keys,
        { kind: "buffer" },
        ["doc"],
        systemRandom,
      );
      const record = new Uint8Array(header.length + sealed.length);
      record.set(header);
      record.set(sealed, header.length);
      return record;
    };
    await kv.set(["doc"], await build(keys.commitment));
    assert.deepEqual((await get(kv, ["doc"], { encryptionKey: jwk })).value, plaintext);
    const wrong = keys.commitment.slice();
    wrong[0]! ^= 1;
    await kv.set(["doc"], await build(wrong));
    await assertRejects(
      get(kv, ["doc"], { encryptionKey: jwk }),
      DecryptionError,
      /commitment/,
      "a wrong commitment",
    );
  },
);
