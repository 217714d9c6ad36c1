/**
 * Plain blobs: `remove`, `list` and `getMeta`.
 */

import assert from "node:assert/strict";
import { get, getMeta, list, remove, set } from "./blob.ts";
import { CHUNK, INLINE_MAX, INTERNAL, rawRecord } from "./_testing/plain_record.ts";
import {
  assertBytes,
  hex,
  internalEntries,
  kvTest,
  randomBytes,
  snapshot,
  streamOf,
} from "./_testing/util.ts";

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
