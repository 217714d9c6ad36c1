import assert from "node:assert/strict";
import {
  type BlobListIterator,
  DecryptionError,
  generateKey,
  list,
  type ListOptions,
  set,
} from "./mod.ts";
import { INTERNAL_PREFIX } from "./_kv_keys.ts";
import { PLAIN_CHUNK_SIZE } from "./_limits.ts";
import { assertRejects, kvTest, randomBytes } from "./_testing/util.ts";

/** Several chunks: the blob's own entries sort under kvcrypt's prefix, between the user's keys. */
const CHUNKED = 3 * PLAIN_CHUNK_SIZE + 1;

type Key = Deno.KvKey;

/**
 * Blobs (plain or encrypted) among non-blob values; returns the blobs' keys in
 * KV order (strings before numbers before booleans; kvcrypt's own entries,
 * under a string prefix, sort before "a").
 */
async function fill(kv: Deno.Kv, options: { encryptionKey?: JsonWebKey } = {}): Promise<Key[]> {
  const blobs: Key[] = [["a"], ["a", "z"], ["a", 1], ["a", 2], ["b"], ["b", "c"], ["zz"], [1]];
  for (const [index, key] of blobs.entries()) {
    const value = index % 3 === 0 ? randomBytes(CHUNKED) : randomBytes(index + 1);
    await set(kv, key, value, options);
  }
  // Values that are not blobs, before, between and after the blobs.
  for (const key of [[0], ["a", 0], ["a", 1.5], ["a", "y"], ["b", "b"], ["zzz"], [true]]) {
    await kv.set(key, key.length === 1 ? "not a blob" : new Uint8Array([1, 2, 3]));
  }
  return blobs;
}

/** All keys of a listing read in pages of `limit`, and the number of pages. */
async function paged(
  kv: Deno.Kv,
  selector: Deno.KvListSelector,
  options: ListOptions & { limit: number },
): Promise<{ keys: Key[]; pages: number }> {
  const keys: Key[] = [];
  let cursor: string | undefined;
  for (let pages = 1;; pages++) {
    const page: BlobListIterator = list(kv, selector, { ...options, cursor });
    const entries = await Array.fromAsync(page);
    assert.ok(entries.length <= options.limit, `page ${pages} holds at most limit blobs`);
    keys.push(...entries.map((entry) => entry.key));
    if (page.cursor === "") return { keys, pages };
    assert.equal(entries.length, options.limit, "a page that is not the last one is full");
    cursor = page.cursor;
  }
}

kvTest(
  "list() limit counts blobs: chunk entries of 3 chunked blobs no longer eat it",
  async (kv) => {
    for (const key of [["x"], ["y"], ["z"]]) await set(kv, key, randomBytes(CHUNKED));
    const internal = await Array.fromAsync(kv.list({ prefix: [INTERNAL_PREFIX] }));
    assert.ok(internal.length > 3, "the store holds more internal entries than blobs");
    const two = await Array.fromAsync(list(kv, { prefix: [] }, { limit: 2 }));
    assert.deepEqual(two.map((entry) => entry.key), [["x"], ["y"]]);
    assert.deepEqual(two.map((entry) => entry.value.size), [CHUNKED, CHUNKED]);
  },
);

kvTest("list() skips non-blob values without counting them", async (kv) => {
  const blobs = await fill(kv);
  const all = await Array.fromAsync(list(kv, { prefix: [] }));
  assert.deepEqual(all.map((entry) => entry.key), blobs);
  for (let limit = 1; limit <= blobs.length + 1; limit++) {
    const first = await Array.fromAsync(list(kv, { prefix: [] }, { limit }));
    assert.deepEqual(first.map((entry) => entry.key), blobs.slice(0, limit), `limit ${limit}`);
  }
});

kvTest("list() pages add up to the whole listing, forward and reverse (plain)", async (kv) => {
  const blobs = await fill(kv);
  for (const reverse of [false, true]) {
    const expected = reverse ? [...blobs].reverse() : blobs;
    for (let limit = 1; limit <= blobs.length + 1; limit++) {
      for (const batchSize of [1, 100]) {
        const { keys, pages } = await paged(kv, { prefix: [] }, { limit, reverse, batchSize });
        assert.deepEqual(keys, expected, `limit ${limit}, reverse ${reverse}, batch ${batchSize}`);
        assert.ok(pages >= Math.ceil(blobs.length / limit));
      }
    }
  }
});

kvTest("list() pages add up to the whole listing of encrypted blobs, authenticated", async (kv) => {
  const encryptionKey = await generateKey();
  const blobs = await fill(kv, { encryptionKey });
  for (const reverse of [false, true]) {
    const expected = reverse ? [...blobs].reverse() : blobs;
    for (const limit of [1, 3, blobs.length]) {
      const { keys } = await paged(kv, { prefix: [] }, { limit, reverse, encryptionKey });
      assert.deepEqual(keys, expected, `limit ${limit}, reverse ${reverse}`);
    }
  }
  const page = await Array.fromAsync(list(kv, { prefix: ["a"] }, { limit: 2, encryptionKey }));
  for (const { value } of page) assert.ok(value.verified && value.encrypted);
  const keyless = await Array.fromAsync(list(kv, { prefix: ["a"] }, { limit: 2 }));
  assert.deepEqual(keyless.map((entry) => entry.value.verified), [false, false]);
  const wrongKey = await generateKey();
  const wrong = list(kv, { prefix: [] }, { limit: 1, encryptionKey: wrongKey });
  await assertRejects(() => Array.fromAsync(wrong), DecryptionError);
});

kvTest("list() pages follow prefix, start and end selectors", async (kv) => {
  const blobs = await fill(kv);
  const within = (from: number, to: number) => blobs.slice(from, to);
  const cases: [Deno.KvListSelector, Key[]][] = [
    [{ prefix: ["a"] }, within(1, 4)],
    [{ prefix: ["a"], start: ["a", 1] }, within(2, 4)],
    [{ prefix: ["a"], end: ["a", 2] }, within(1, 3)],
    [{ start: ["a"], end: ["b", "c"] }, within(0, 5)],
    [{ start: ["a", "z"], end: [1] }, within(1, 7)],
    // A range over kvcrypt's own entries too.
    [{ start: [""], end: [2] }, within(0, 8)],
    [{ prefix: ["b", "c"] }, []],
  ];
  for (const [selector, expected] of cases) {
    const all = await Array.fromAsync(list(kv, selector));
    assert.deepEqual(all.map((entry) => entry.key), expected, JSON.stringify(selector));
    for (const reverse of [false, true]) {
      for (const limit of [1, 2]) {
        const { keys } = await paged(kv, selector, { limit, reverse });
        const want = reverse ? [...expected].reverse() : expected;
        assert.deepEqual(keys, want, `${JSON.stringify(selector)} limit ${limit} ${reverse}`);
      }
    }
  }
});

kvTest("list() cursor continues after the last blob yielded, also after a break", async (kv) => {
  const blobs = await fill(kv);
  const iterator = list(kv, { prefix: [] });
  assert.throws(() => iterator.cursor, /^Error: Cannot get the cursor/);
  const seen: Key[] = [];
  for await (const entry of iterator) {
    seen.push(entry.key);
    if (seen.length === 3) break;
  }
  const rest = list(kv, { prefix: [] }, { cursor: iterator.cursor });
  assert.equal(rest.cursor, iterator.cursor, "before its first blob, the cursor given");
  seen.push(...(await Array.fromAsync(rest)).map((entry) => entry.key));
  assert.deepEqual(seen, blobs);
  assert.equal(rest.cursor, "", "an exhausted listing's cursor is empty");
  assert.deepEqual(await Array.fromAsync(list(kv, { prefix: ["nothing"] })), []);
});

kvTest("list() limit is a positive integer", async (kv) => {
  await set(kv, ["a"], randomBytes(3));
  for (const limit of [0, -1, 1.5, Number.NaN, Infinity]) {
    assert.throws(() => list(kv, { prefix: [] }, { limit }), RangeError, String(limit));
    assert.throws(() => list(kv, { prefix: [] }, { limit }), /^RangeError: Cannot list blobs/);
  }
  const notNumber = { limit: "2" } as unknown as ListOptions;
  assert.throws(() => list(kv, { prefix: [] }, notNumber), /^TypeError: Cannot list blobs/);
  assert.equal((await Array.fromAsync(list(kv, { prefix: [] }, { limit: 1 }))).length, 1);
});

kvTest("list() skips expired blobs without counting them", async (kv) => {
  await set(kv, ["a"], randomBytes(3));
  await set(kv, ["b"], randomBytes(3), { expireIn: 200 });
  await set(kv, ["c"], randomBytes(3));
  // The header's authenticated deadline decides, whether or not KV has deleted the entry yet.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const page = await Array.fromAsync(list(kv, { prefix: [] }, { limit: 2 }));
  assert.deepEqual(page.map((entry) => entry.key), [["a"], ["c"]]);
});
