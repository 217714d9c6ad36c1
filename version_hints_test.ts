/**
 * The version hints behind one-wave reads: a whole read of a blob this store
 * handle wrote or read before asks for the record and the hinted version's
 * first chunks at once, and uses those chunks only when the record names the
 * same version. Call counts and depths are in latency_test.ts.
 */

import assert from "node:assert/strict";
import {
  DecryptionError,
  generateKey,
  get,
  getAsBlob,
  getAsResponse,
  getAsStream,
  remove,
  set,
} from "./mod.ts";
import { chunkPrefix } from "./_kv_keys.ts";
import { PLAIN_CHUNK_SIZE, READ_BATCH_CHUNKS, SEALED_CHUNK_SIZE } from "./_limits.ts";
import { parseHeader } from "./_kvc1.ts";
import { decodeMeta, encodeMeta } from "./_record.ts";
import { summarizeRecord } from "./_summary.ts";
import { recallVersion, rememberVersion, VERSION_HINTS_MAX } from "./_version_hints.ts";
import { LatencyKv } from "./_testing/latency_kv.ts";
import { assertBytes, assertRejects, kvTest, randomBytes } from "./_testing/util.ts";

const formats = [
  { name: "plain", options: {}, chunk: PLAIN_CHUNK_SIZE },
  { name: "AES-256", options: { encryptionKey: await generateKey() }, chunk: SEALED_CHUNK_SIZE },
] as const;

/** Another handle on the same store: it shares the data, not the hints. */
function otherHandle(kv: Deno.Kv): Deno.Kv {
  return new LatencyKv(kv, 0).kv;
}

/** The stored chunk entries of the blob at `key`. */
async function chunksOf(kv: Deno.Kv, key: Deno.KvKey): Promise<Deno.KvEntry<unknown>[]> {
  const id = summarizeRecord((await kv.get(key)).value)!.id;
  return await Array.fromAsync(kv.list({ prefix: chunkPrefix(id) }));
}

for (const { name, options, chunk } of formats) {
  kvTest(
    `whole reads never use chunks fetched for a replaced version of a ${name} blob`,
    async (kv) => {
      const reads: [string, (key: Deno.KvKey, extra: object) => Promise<Uint8Array | null>][] = [
        ["get", async (key, extra) => (await get(kv, key, { ...options, ...extra })).value],
        ["getAsBlob", async (key, extra) => {
          const blob = await getAsBlob(kv, key, { ...options, ...extra });
          return blob && new Uint8Array(await blob.arrayBuffer());
        }],
        ["getAsResponse", async (key, extra) => {
          const response = await getAsResponse(kv, key, { ...options, ...extra });
          return new Uint8Array(await response.arrayBuffer());
        }],
      ];
      // One getMany with the record; list pages with it (two pages); an eventual read's lists.
      const shapes = [
        { chunks: 3, extra: {} },
        { chunks: READ_BATCH_CHUNKS + 1, extra: {} },
        { chunks: 3, extra: { consistency: "eventual" } },
      ];
      for (const { chunks, extra } of shapes) {
        for (const [what, read] of reads) {
          const key = ["doc", what, chunks, JSON.stringify(extra)];
          await set(kv, key, randomBytes(chunks * chunk), options); // kv's hint: the old version
          const oldChunks = await chunksOf(kv, key);
          const fresh = randomBytes(chunks * chunk);
          await set(otherHandle(kv), key, fresh, options); // same size; the old chunks are deleted
          // ... and put back, so the hinted fetch finds the old version's chunks.
          for (const entry of oldChunks) await kv.set(entry.key, entry.value);
          assertBytes(await read(key, extra), fresh, `${what}, ${chunks} chunks, ${extra}`);
        }
      }
    },
  );

  kvTest(
    `a read that does not fetch ahead still forgets the hint of a removed ${name} blob`,
    async (kv) => {
      await set(kv, ["gone"], randomBytes(2 * chunk), options);
      assert.ok(recallVersion(kv, ["gone"]) !== undefined);
      await remove(otherHandle(kv), ["gone"]);
      const range = { start: 1, end: 2 };
      assert.equal(await getAsStream(kv, ["gone"], { ...options, range }), null);
      assert.equal(recallVersion(kv, ["gone"]), undefined, "a ranged read found it gone");
    },
  );

  kvTest(
    `a ${name} blob's hint keeps only its 16 id bytes, not the record they came from`,
    async (kv) => {
      await set(otherHandle(kv), ["doc"], randomBytes(2 * chunk), options);
      await get(kv, ["doc"], options); // learnt from the record just read
      const hint = recallVersion(kv, ["doc"])!;
      assert.equal(hint.id.buffer.byteLength, 16);
    },
  );

  kvTest(
    `a ${name} blob removed or replaced inline through another handle reads as it is now`,
    async (kv) => {
      await set(kv, ["gone"], randomBytes(2 * chunk), options);
      await set(kv, ["small"], randomBytes(2 * chunk), options);
      await get(kv, ["gone"], options);
      const other = otherHandle(kv);
      await remove(other, ["gone"]);
      const inline = randomBytes(100);
      await set(other, ["small"], inline, options);
      assert.equal((await get(kv, ["gone"], options)).value, null);
      assertBytes((await get(kv, ["small"], options)).value, inline);
    },
  );

  kvTest(`reads and writes of a ${name} blob keep its hint up to date`, async (kv) => {
    const data = randomBytes(2 * chunk);
    await set(kv, ["doc"], data, options);
    const written = summarizeRecord((await kv.get(["doc"])).value)!;
    assert.deepEqual(recallVersion(kv, ["doc"]), { id: written.id, chunks: 2 }, "after set");
    await set(kv, ["doc"], randomBytes(10), options);
    assert.equal(
      recallVersion(kv, ["doc"]),
      undefined,
      "an inline blob has nothing to fetch ahead",
    );
    await set(otherHandle(kv), ["doc"], data, options);
    await get(kv, ["doc"], options);
    const read = summarizeRecord((await kv.get(["doc"])).value)!;
    assert.deepEqual(recallVersion(kv, ["doc"]), { id: read.id, chunks: 2 }, "after get");
    await remove(kv, ["doc"]);
    assert.equal(recallVersion(kv, ["doc"]), undefined, "after remove");
  });
}

kvTest(
  "a one-call read of an encrypted blob whose metadata was changed fails step 4 and returns no byte",
  async (kv) => {
    const { options } = formats[1];
    for (const chunks of [1, 3]) {
      const key = ["doc", chunks];
      await set(kv, key, randomBytes(chunks * SEALED_CHUNK_SIZE), options); // kv's hint: this version
      const record = (await kv.get<Uint8Array>(key)).value!;
      // The last byte of the record is the sealed metadata's tag: the chunks still open.
      const changed = record.slice();
      changed[changed.length - 1]! ^= 0x01;
      await kv.set(key, changed);
      for (const read of [() => get(kv, key, options), () => getAsBlob(kv, key, options)]) {
        await assertRejects(read(), DecryptionError, /step 4/);
      }
    }
  },
);

kvTest(
  "a one-call read of an encrypted blob finds a chunk deleted, moved, or added past the end",
  async (kv) => {
    const { options } = formats[1];
    const tampers: [string, (chunks: Deno.KvEntry<unknown>[]) => Promise<void>][] = [
      ["chunk 1 deleted", async (chunks) => await kv.delete(chunks[1]!.key)],
      [
        "chunk 1 copied over chunk 0",
        async (chunks) => {
          await kv.set(chunks[0]!.key, chunks[1]!.value);
        },
      ],
      ["a chunk added past the end", async (chunks) => {
        await kv.set([...chunks[2]!.key.slice(0, 3), 3], chunks[2]!.value);
      }],
    ];
    for (const [what, tamper] of tampers) {
      const key = ["doc", what];
      await set(kv, key, randomBytes(3 * SEALED_CHUNK_SIZE), options); // kv's hint: this version
      await tamper(await chunksOf(kv, key));
      for (const read of [() => get(kv, key, options), () => getAsBlob(kv, key, options)]) {
        await assertRejects(read(), DecryptionError, /step 5/, what);
      }
    }
  },
);

kvTest(
  "an encrypted record edited after it was read is parsed and checked again, byte for byte",
  async (kv) => {
    const { options } = formats[1];
    const data = randomBytes(2 * SEALED_CHUNK_SIZE);
    await set(kv, ["doc"], data, options);
    assertBytes((await get(kv, ["doc"], options)).value, data, "read once: its header is known");
    const record = (await kv.get<Uint8Array>(["doc"])).value!;
    // Bytes across the header (magic, suite, id, layout, stanza, metaLen) and the sealed metadata.
    const authenticated = parseHeader(record).authenticated.length;
    const offsets = [
      0,
      4,
      5,
      20,
      21,
      53,
      60,
      70,
      authenticated - 1,
      authenticated,
      record.length - 1,
    ];
    for (const at of offsets) {
      const edited = record.slice();
      edited[at]! ^= 0x01;
      await kv.set(["doc"], edited);
      await assertRejects(get(kv, ["doc"], options), DecryptionError, undefined, `byte ${at}`);
    }
    await kv.set(["doc"], record);
    assertBytes((await get(kv, ["doc"], options)).value, data, "the original reads again");
  },
);

Deno.test("version hints are bounded per store handle, least recently used first out", () => {
  const store = {};
  const id = new Uint8Array(16);
  for (let i = 0; i < VERSION_HINTS_MAX; i++) {
    rememberVersion(store, ["k", i], { id, chunks: 2, inline: false });
  }
  assert.ok(recallVersion(store, ["k", 0]) !== undefined, "recalling marks it used");
  rememberVersion(store, ["k", VERSION_HINTS_MAX], { id, chunks: 2, inline: false });
  assert.ok(recallVersion(store, ["k", 0]) !== undefined, "the recently used one stays");
  assert.equal(recallVersion(store, ["k", 1]), undefined, "the least recently used one goes");
  assert.ok(recallVersion(store, ["k", VERSION_HINTS_MAX]) !== undefined);
  assert.equal(recallVersion({}, ["k", 2]), undefined, "another handle has its own hints");
});

Deno.test("version hints keep keys apart that print alike", () => {
  const store = {};
  const id = new Uint8Array(16);
  rememberVersion(store, [new Uint8Array([1])], { id, chunks: 3, inline: false });
  rememberVersion(store, ["1"], { id, chunks: 4, inline: false });
  assert.equal(recallVersion(store, [new Uint8Array([2])]), undefined, "bytes of one length");
  assert.equal(recallVersion(store, [1]), undefined, "a number and a string");
  assert.equal(recallVersion(store, [new Uint8Array([1])])?.chunks, 3);
  assert.equal(recallVersion(store, ["1"])?.chunks, 4);
});

Deno.test("the metadata of a byte array is a fresh copy each time", () => {
  const first = encodeMeta({ kind: "buffer" });
  first.fill(0);
  assert.deepEqual(decodeMeta(encodeMeta({ kind: "buffer" })), { kind: "buffer" });
  assert.equal(new TextDecoder().decode(encodeMeta({ kind: "buffer" })), '{"kind":"buffer"}');
});
