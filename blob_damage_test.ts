/**
 * Plain blobs: damaged records and chunks, and foreign values at a blob's
 * key, are refused with CorruptBlobError.
 */

import assert from "node:assert/strict";
import {
  CorruptBlobError,
  get,
  getAsBlob,
  getAsStream,
  getMeta,
  list,
  remove,
  set,
} from "./blob.ts";
import { CHUNK, chunkKeyOf } from "./_testing/plain_record.ts";
import { assertRejects, collect, kvTest, randomBytes, snapshot } from "./_testing/util.ts";

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

/** Makes a plain record claim 2^45 bytes (32 TiB) and the chunk count that size needs. */
function forgeSize(view: DataView): void {
  view.setBigUint64(24, 2n ** 45n);
  view.setUint32(32, 2 ** 45 / CHUNK);
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
    patch: forgeSize,
  },
  {
    // The first batch of chunks exists: they arrive, and still nothing of the forged size is allocated.
    what: "a forged size of 2^45 bytes whose first 16 chunks exist",
    size: 20 * CHUNK,
    header: false,
    patch: forgeSize,
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
