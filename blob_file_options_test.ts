/**
 * Plain blobs: the `name`, `type` and `lastModified` options of `set`, which
 * decide whether a value reads back as bytes, a Blob or a File.
 */

import assert from "node:assert/strict";
import { get, getAsBlob, getMeta, set, type SetOptions } from "./blob.ts";
import { CHUNK } from "./_testing/plain_record.ts";
import {
  assertBytes,
  assertRejects,
  kvTest,
  randomBytes,
  snapshot,
  streamOf,
} from "./_testing/util.ts";

kvTest("set() of a stream with name, type and lastModified stores a File", async (kv) => {
  const data = randomBytes(3 * CHUNK + 5);
  await set(kv, ["up"], streamOf([data]), {
    name: "scan.pdf",
    type: "application/pdf",
    lastModified: 1_700_000_000_000,
  });
  const file = await getAsBlob(kv, ["up"]);
  assert.ok(file instanceof File);
  assert.equal(file.name, "scan.pdf");
  assert.equal(file.type, "application/pdf");
  assert.equal(file.lastModified, 1_700_000_000_000);
  assertBytes(new Uint8Array(await file.arrayBuffer()), data);
});

kvTest("set() of bytes or a stream with only a type stores a Blob", async (kv) => {
  for (const value of [new Uint8Array([1, 2, 3]), streamOf([new Uint8Array([1, 2, 3])])]) {
    await set(kv, ["typed"], value, { type: "image/png" });
    const blob = await getAsBlob(kv, ["typed"]);
    assert.ok(blob instanceof Blob && !(blob instanceof File));
    assert.equal(blob.type, "image/png");
    const meta = (await getMeta(kv, ["typed"])).value!;
    assert.ok(!meta.encrypted && meta.kind === "blob");
  }
});

kvTest("set() with a name and no lastModified stamps the time of the write", async (kv) => {
  const before = Date.now();
  await set(kv, ["named"], new Uint8Array(4), { name: "a.bin" });
  const file = await getAsBlob(kv, ["named"]);
  assert.ok(file instanceof File);
  assert.ok(file.lastModified >= before && file.lastModified <= Date.now());
});

kvTest("set() options replace a File's own name and type", async (kv) => {
  const file = new File(["x"], "old.txt", { type: "text/plain", lastModified: 5 });
  await set(kv, ["renamed"], file, { name: "new.md", type: "text/markdown" });
  const back = await getAsBlob(kv, ["renamed"]);
  assert.ok(back instanceof File);
  assert.deepEqual([back.name, back.type, back.lastModified], ["new.md", "text/markdown", 5]);
});

kvTest(
  "set() rejects bad metadata options with TypeError, releases the stream and keeps the old value",
  async (kv) => {
    const old = randomBytes(2 * CHUNK);
    await set(kv, ["k"], old);
    const before = await snapshot(kv);
    const cases: Record<string, unknown>[] = [
      { type: 5 },
      { name: null },
      { lastModified: "yesterday" },
      { lastModified: 1.5 },
      { lastModified: 10 }, // no name: only files keep it
    ];
    for (const options of cases) {
      let cancelled = false;
      const stream = new ReadableStream<Uint8Array>({
        cancel() {
          cancelled = true;
        },
      });
      await assertRejects(
        () => set(kv, ["k"], stream, options as SetOptions),
        TypeError,
        /^Cannot store \["k"\]: /,
      );
      assert.ok(cancelled, `${JSON.stringify(options)}: the stream is released`);
    }
    assertBytes((await get(kv, ["k"])).value!, old);
    assert.deepEqual(await snapshot(kv), before);
  },
);
