/**
 * Plain blobs: `expireIn`, an expired blob that KV has not purged yet reads
 * as absent, and deadlines Deno KV cannot store.
 */

import assert from "node:assert/strict";
import { get, getAsBlob, getAsStream, getMeta, list, set } from "./blob.ts";
import { assertInternalCounts, CHUNK, rawRecord } from "./_testing/plain_record.ts";
import { assertBytes, assertRejects, kvTest, randomBytes, snapshot } from "./_testing/util.ts";

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
