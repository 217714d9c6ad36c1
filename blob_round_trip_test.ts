/**
 * Plain blobs: every value kind at every boundary size reads back unchanged
 * through every reader, with the bytes in KV checked directly; views store
 * only their bytes; the inline limit.
 */

import assert from "node:assert/strict";
import { getMeta, set } from "./blob.ts";
import { META_JSON_MAX } from "./_limits.ts";
import {
  assertReadsBack,
  expectedMeta,
  FILE_MODIFIED,
  SIZES,
  VALUE_TYPES,
} from "./_testing/blob_values.ts";
import { assertInternalCounts, CHUNK, INLINE_MAX, storedBytes } from "./_testing/plain_record.ts";
import { assertBytes, internalEntries, kvTest, randomBytes } from "./_testing/util.ts";

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
