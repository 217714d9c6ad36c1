/**
 * vacuum() removes only what it can prove orphaned: blobs at keys whose text
 * a careless decoder would change survive it, records of an unknown format
 * version or that fail to parse keep their chunks, and a key overwritten
 * with another value is cleaned; leftovers of crashed writes and removes are
 * collected, and live versions are never touched.
 */

import assert from "node:assert/strict";
import { ByteWriter } from "./_bytes.ts";
import { versionKey } from "./_kv_keys.ts";
import { encodeVersion, VERSION_LIVE } from "./_record.ts";
import { CHUNK, INTERNAL, rawRecord } from "./_testing/plain_record.ts";
import {
  assertBytes,
  assertRejects,
  internalEntries,
  keyText,
  kvTest,
  randomBytes,
  snapshot,
} from "./_testing/util.ts";
import { encodeKey } from "./_user_key.ts";
import { CorruptBlobError, get, remove, set, vacuum } from "./blob.ts";
import { DecryptionError } from "./crypto.ts";
import { generateKey } from "./keys.ts";

/** Four chunks: large enough that the blob has chunk entries and a version entry. */
const CHUNKED = 200_000;

/** Keys whose parts a BOM-stripping or normalizing decoder would change, and every part type. */
const TRICKY_KEYS: Deno.KvKey[] = [
  ["files", "\uFEFFreport.csv"],
  ["files", "a\uFEFFb"],
  ["\uFEFF"],
  ["\uFFFE", "\uFFFF"],
  ["nul\0inside", "\0"],
  ["e\u0301", "\u00E9"], // the same text in two normal forms: two keys
  ["x".repeat(1_500)],
  [-0],
  [0],
  [Infinity, -Infinity],
  [2n ** 70n, -(2n ** 70n), 0n],
  [true, false],
  [new Uint8Array([0, 0xef, 0xbb, 0xbf, 0xff])],
];

for (const encrypted of [false, true]) {
  const label = encrypted ? "encrypted" : "plain";
  kvTest(
    `vacuum() keeps ${label} chunked blobs at keys with a BOM, NUL, −0 and every part type`,
    async (kv) => {
      const options = encrypted ? { encryptionKey: await generateKey() } : {};
      const values = TRICKY_KEYS.map(() => randomBytes(CHUNKED));
      for (const [i, key] of TRICKY_KEYS.entries()) await set(kv, key, values[i]!, options);
      const before = await internalEntries(kv);
      assert.deepEqual(await vacuum(kv, { olderThan: 0 }), { versions: 0, chunks: 0, skipped: 0 });
      assert.deepEqual(await internalEntries(kv), before);
      for (const [i, key] of TRICKY_KEYS.entries()) {
        assertBytes((await get(kv, key, options)).value!, values[i]!, Deno.inspect(key));
      }
    },
  );
}

kvTest(
  "vacuum() keeps a blob whose key has a lone surrogate (stored by Deno KV as U+FFFD)",
  async (kv) => {
    const value = randomBytes(CHUNKED);
    await set(kv, ["files", "\uD800name"], value);
    assert.deepEqual(await vacuum(kv, { olderThan: 0 }), { versions: 0, chunks: 0, skipped: 0 });
    assertBytes((await get(kv, ["files", "\uFFFDname"])).value!, value);
    assertBytes((await get(kv, ["files", "\uD800name"])).value!, value);
  },
);

/** Replaces the first four bytes of the record at `key`; returns the original bytes. */
async function rewriteMagic(kv: Deno.Kv, key: Deno.KvKey, magic: string): Promise<Uint8Array> {
  const original = (await kv.get<Uint8Array>(key)).value!;
  const edited = original.slice();
  edited.set(new TextEncoder().encode(magic), 0);
  await kv.set(key, edited);
  return original;
}

for (const [encrypted, magic] of [[false, "KVP9"], [true, "KVC9"], [false, "KVC7"]] as const) {
  const label = encrypted ? "encrypted" : "plain";
  kvTest(
    `vacuum() keeps every chunk of ${
      label === "plain" ? "a" : "an"
    } ${label} blob whose record became ${magic}`,
    async (kv) => {
      const options = encrypted ? { encryptionKey: await generateKey() } : {};
      const value = randomBytes(CHUNKED);
      await set(kv, ["doc"], value, options);
      const before = await internalEntries(kv);
      const original = await rewriteMagic(kv, ["doc"], magic);
      assert.deepEqual(await vacuum(kv, { olderThan: 0 }), { versions: 0, chunks: 0, skipped: 1 });
      assert.deepEqual(await internalEntries(kv), before, "no chunk or version entry removed");
      await kv.set(["doc"], original);
      assertBytes((await get(kv, ["doc"], options)).value!, value, "readable once restored");
    },
  );
}

kvTest("vacuum() keeps the chunks of a record that fails to parse", async (kv) => {
  const value = randomBytes(CHUNKED);
  await set(kv, ["doc"], value);
  const before = await internalEntries(kv);
  const original = (await kv.get<Uint8Array>(["doc"])).value!;
  await kv.set(["doc"], original.subarray(0, 30)); // a KVP1 record cut short
  assert.deepEqual(await vacuum(kv, { olderThan: 0 }), { versions: 0, chunks: 0, skipped: 1 });
  assert.deepEqual(await internalEntries(kv), before);
  await kv.set(["doc"], original);
  assertBytes((await get(kv, ["doc"])).value!, value);
});

for (const encrypted of [false, true]) {
  const label = encrypted ? "encrypted" : "plain";
  kvTest(
    `vacuum() cleans ${
      label === "plain" ? "a" : "an"
    } ${label} blob whose key was overwritten with another value`,
    async (kv) => {
      const options = encrypted ? { encryptionKey: await generateKey() } : {};
      await set(kv, ["doc"], randomBytes(CHUNKED), options);
      const { chunks } = await internalEntries(kv);
      await kv.set(["doc"], { note: "no longer a blob" });
      assert.deepEqual(await vacuum(kv, { olderThan: 0 }), { versions: 1, chunks, skipped: 0 });
      assert.deepEqual((await internalEntries(kv)).keys.size, 0);
      assert.deepEqual((await kv.get(["doc"])).value, { note: "no longer a blob" });
    },
  );
}

kvTest(
  "vacuum() leaves a version alone whose stored key does not re-encode to the same bytes",
  async (kv) => {
    const id = randomBytes(16);
    // A bigint part with a leading zero byte: it decodes to [5n], whose encoding differs.
    const nonCanonical = new ByteWriter().u8(0x04).u32(3).bytes(Uint8Array.of(0, 0, 5)).finish();
    assert.notDeepEqual(encodeKey([5n]), nonCanonical);
    await kv.set(
      versionKey(id),
      encodeVersion({ state: VERSION_LIVE, created: 0, encodedKey: nonCanonical }),
    );
    assert.deepEqual(await vacuum(kv, { olderThan: 0 }), { versions: 0, chunks: 0, skipped: 1 });
    assert.notEqual((await kv.get(versionKey(id))).versionstamp, null);
  },
);

kvTest("get() of a record in an unknown format version says so and changes nothing", async (kv) => {
  await set(kv, ["doc"], randomBytes(CHUNKED));
  await rewriteMagic(kv, ["doc"], "KVP2");
  const before = await internalEntries(kv);
  const error = await assertRejects(get(kv, ["doc"]), CorruptBlobError);
  assert.match(
    error.message,
    /^Cannot read \["doc"\]: .*format KVP2, which a newer kvcrypt wrote/,
  );
  const encryptionKey = await generateKey();
  await assertRejects(get(kv, ["doc"], { encryptionKey }), DecryptionError);
  assert.deepEqual(await internalEntries(kv), before);
});

// ---------------------------------------------------------------------------
// vacuum() of plain blobs: leftovers it removes, live versions it keeps.

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
