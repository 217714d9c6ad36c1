/**
 * Plain blobs: compare-and-set with `versionstamp` (create-only, match,
 * mismatch) and concurrent writers.
 */

import assert from "node:assert/strict";
import { get, set } from "./blob.ts";
import { assertInternalCounts, CHUNK } from "./_testing/plain_record.ts";
import { assertBytes, kvTest, randomBytes, snapshot } from "./_testing/util.ts";

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
