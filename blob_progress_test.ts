/**
 * Plain blobs: `onProgress` reports increasing byte counts ending at the size,
 * and a throwing callback does not stop the write.
 */

import assert from "node:assert/strict";
import { get, set } from "./blob.ts";
import { CHUNKS_PER_ATOMIC } from "./_limits.ts";
import { MiB, oddPieces } from "./_testing/blob_values.ts";
import { CHUNK, INLINE_MAX } from "./_testing/plain_record.ts";
import { assertBytes, kvTest, randomBytes, streamOf } from "./_testing/util.ts";

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
