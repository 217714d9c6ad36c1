/**
 * Plain blobs: `stage` and `complete`: a blob committed together with the
 * caller's own mutation, and the clean-up after every way that can fail.
 */

import assert from "node:assert/strict";
import { get, set, stage } from "./blob.ts";
import { keepBlob } from "./_testing/blob_values.ts";
import { assertInternalCounts, CHUNK } from "./_testing/plain_record.ts";
import { assertBytes, internalEntries, kvTest, randomBytes, snapshot } from "./_testing/util.ts";

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
  const kept = await keepBlob(kv, ["doc"], 2 * CHUNK);
  const staged = await stage(kv, ["doc"], randomBytes(3 * CHUNK), { versionstamp: null });
  const result = await staged.addTo(kv.atomic()).commit();
  assert.equal(result.ok, false);
  await staged.complete(result);
  await kept.assertUntouched();
});

kvTest("stage() cleans up after complete(error) when the commit throws", async (kv) => {
  const kept = await keepBlob(kv, ["doc"], 2 * CHUNK);
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
  await kept.assertUntouched();
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
