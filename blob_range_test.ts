/**
 * Plain blobs: ranged reads with `getAsStream`, across chunk and read-batch
 * boundaries, and the ranges it refuses.
 */

import assert from "node:assert/strict";
import { getAsStream, set } from "./blob.ts";
import { CHUNK } from "./_testing/plain_record.ts";
import { assertBytes, assertRejects, collect, kvTest, randomBytes } from "./_testing/util.ts";

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
